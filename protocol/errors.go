package protocol

import (
	"errors"
	"fmt"
)

// Error is a refusal of a package, naming what is wrong.
type Error struct {
	// Field is the short name the API maps to a form field: "file" for the archive (or, from
	// LoadDir, the directory), "manifest" for manifest.json, "codec" for the JavaScript.
	Field string
	// Message says what is wrong in words an uploader can act on.
	Message string
	// TooLarge marks a package over MaxPackageBytes, which the API answers with 413.
	TooLarge bool
}

func (e *Error) Error() string { return e.Message }

// Errors of Codec.Decode and Codec.Encode. They are wrapped with the details, so match them
// with errors.Is. The returned errors never hold JavaScript values: inspecting one must not
// run codec code outside the sandbox's time limit.
var (
	// ErrTimeout: the call did not finish within CallTimeout.
	ErrTimeout = errors.New("codec call timed out")
	// ErrException: the codec threw, overflowed its call stack, or its engine failed.
	ErrException = errors.New("codec threw an exception")
	// ErrGarbage: the codec returned something other than the documented shape.
	ErrGarbage = errors.New("codec returned garbage")
	// ErrInput: the input cannot be given to the codec (too large, or not JSON).
	ErrInput = errors.New("codec input refused")
	// ErrNoAuthenticate: Authenticate was called on a codec that exports no authenticate
	// (ask HasAuthenticate first).
	ErrNoAuthenticate = errors.New("codec exports no authenticate function")
)

func fileError(format string, args ...any) *Error {
	return &Error{Field: "file", Message: fmt.Sprintf(format, args...)}
}

func codecError(format string, args ...any) *Error {
	return &Error{Field: "codec", Message: fmt.Sprintf(format, args...)}
}
