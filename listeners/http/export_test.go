package httplistener

// WithTimeouts is a Listener with shortened timeouts, for the tests (package
// httplistener_test: internal/testutil, which they need, imports the node, which imports
// the listeners).
func WithTimeouts(t Timeouts) Listener { return Listener{timeouts: t} }
