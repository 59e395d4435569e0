package listeners

import "errors"

// Refusals a Handler gives and each transport turns into its own answer (SPEC §4.3.1,
// §5.2).
var (
	// ErrNoGateway: no enabled gateway serves the component. MQTT CONNACK 0x05 / 0x87,
	// HTTP 404 no_gateway, CoAP 4.04; TCP, UDP and WebSocket messages are dropped.
	ErrNoGateway = errors.New("no enabled gateway uses this network component")
	// ErrNotAuthorized: the device is unknown or not allowed here. CONNACK 0x05 / 0x87.
	ErrNotAuthorized = errors.New("not authorized")
	// ErrBadCredentials: wrong credentials or a stale signature. CONNACK 0x04 / 0x86.
	ErrBadCredentials = errors.New("bad user name or password")
	// ErrDropped: a message was received but not handled; it is counted.
	ErrDropped = errors.New("message dropped")
	// ErrTooLarge: a message or frame over the component's limit; the connection is closed.
	ErrTooLarge = errors.New("message too large")
)
