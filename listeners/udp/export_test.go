package udp

// The tests are package udp_test: internal/testutil, which they need for certificates,
// imports the node, which imports the listeners.

// IsClientHello is isClientHello, for the fuzz target.
var IsClientHello = isClientHello

// PionLogs silences pion/dtls in test clients too.
var PionLogs = pionLogs

// Sizes the tests probe.
const (
	PionReadSize   = pionReadSize
	HelloHeaderLen = recordHeaderLen + handshakeHeaderLen
)

// HasServerHello is hasServerHello, for the fuzz target.
var HasServerHello = hasServerHello
