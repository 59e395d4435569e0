package protocol

import "errors"

// CheckScript compiles a TCP SCRIPT parser without running it, so that a network component
// whose script has a syntax error is refused when it is saved rather than when it starts.
// The error names the line and column.
func CheckScript(src string) error {
	if _, err := compileScript("script", src); err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			return errors.New(pe.Message)
		}
		return err
	}
	return nil
}
