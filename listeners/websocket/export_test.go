package websocket

import "time"

// WithTimings is a Listener with a shortened ping interval and handshake timeout, for
// the tests (package websocket_test: internal/testutil, which they need, imports the
// node, which imports the listeners).
func WithTimings(pingEvery, handshake time.Duration) Listener {
	return Listener{pingEvery: pingEvery, handshake: handshake}
}
