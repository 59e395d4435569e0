package official

import "errors"

// Errors of this package, wrapped with details: match them with errors.Is.
var (
	// ErrTopic: a topic or path is not /{productId}/{deviceId}/<suffix> with a suffix of
	// this protocol in the direction asked for.
	ErrTopic = errors.New("official: bad topic")
	// ErrPayload: a JSON payload (or WebSocket envelope) does not decode into the message
	// its topic names.
	ErrPayload = errors.New("official: bad payload")
	// ErrFrame: bytes are not a binary message (TCP frame or UDP datagram).
	ErrFrame = errors.New("official: malformed binary message")
	// ErrUnsupported: the message cannot be written in the format asked for (its type has no
	// topic or binary type in that direction, or a value has no binary data type).
	ErrUnsupported = errors.New("official: unsupported message")
	// ErrBadCredentials: an MQTT username/password pair is wrong.
	ErrBadCredentials = errors.New("official: bad credentials")
	// ErrStaleTimestamp: a signed MQTT username carries a correct signature over a timestamp
	// more than MaxClockSkew away from the node's clock (a replay, or a device clock off).
	// Like ErrBadCredentials, it is refused as bad credentials.
	ErrStaleTimestamp = errors.New("official: stale timestamp")
	// ErrKey: a CoAP secureKey is not 16, 24 or 32 bytes, so it is no AES key.
	ErrKey = errors.New("official: secureKey is not an AES key")
	// ErrDecrypt: a CoAP payload is not a whole number of AES blocks or its PKCS#7 padding
	// is wrong, which is what a wrong key looks like.
	ErrDecrypt = errors.New("official: payload does not decrypt")
)
