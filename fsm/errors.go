package fsm

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by Apply, matched with errors.Is at the API edge.
var (
	// ErrNotFound: the resource to change does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a create named an id that is already taken.
	ErrExists = errors.New("already exists")
	// ErrIndexMismatch: the caller's If-Match index is no longer the stored one.
	ErrIndexMismatch = errors.New("resource was changed since it was read")
	// ErrAlreadyInitialized: the cluster already has its first admin and token key.
	ErrAlreadyInitialized = errors.New("cluster already initialized")
	// ErrUnknownCommand: a command type this version does not know and may not ignore.
	ErrUnknownCommand = errors.New("unknown command type")
	// ErrBadSnapshot: a snapshot that does not decode or whose checksum does not match.
	ErrBadSnapshot = errors.New("invalid snapshot")
)

// RuleError is a business rule that refused a command. Code is the stable snake_case word
// that clients match on, e.g. "certificate_in_use". Refusals that depend on other resources
// are 409; those that make the request itself invalid in the current state (a reference to
// a certificate that does not exist, an immutable field) are 400 and name the Field.
type RuleError struct {
	Code    string
	Message string
	// Status is the HTTP status: 409 when zero.
	Status int
	// Field is the dotted path of the offending field, if any.
	Field string
}

func (e *RuleError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Refuse builds a RuleError.
func Refuse(code, format string, args ...any) error {
	return &RuleError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Reject builds a 400 RuleError about one field.
func Reject(code, field, format string, args ...any) error {
	return &RuleError{Code: code, Message: fmt.Sprintf(format, args...), Status: 400, Field: field}
}

// Invalid is Reject with the generic validation_failed code: the field names something that
// does not exist or does not fit.
func Invalid(field, format string, args ...any) error {
	return Reject("validation_failed", field, format, args...)
}
