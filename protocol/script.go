package protocol

import "errors"

// CheckScript loads a TCP SCRIPT parser once in the sandbox, bounded like every load, so
// that a network component whose script has a syntax error or defines no split function
// is refused when it is saved rather than when its listener starts. The error names the
// line and column, or what is missing.
func CheckScript(src string) error {
	if _, err := CompileSplitter(src); err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			return errors.New(pe.Message)
		}
		return err
	}
	return nil
}
