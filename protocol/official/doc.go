// Package official owns the wire formats of the JetLinks official protocol (SPEC §5.2):
// topics, JSON payloads, MQTT credentials, the binary TCP and UDP messages, CoAP payload
// encryption and the WebSocket envelope; it must not touch sockets, HTTP, raft or the state
// store: the gateway package adapts it to its transports. Every function is pure, so any
// node, test or simulated device can call it.
//
// The formats follow the reference implementation, jetlinks-official-protocol (the
// classes named in the comments), and SPEC where the two differ.
//
// # Topics and JSON (MQTT, HTTP, WebSocket, CoAP)
//
// Every message lives under /{productId}/{deviceId}/<suffix>. DecodeJSON and EncodeJSON
// are the platform's side (up in, down out); EncodeUpJSON and DecodeDownJSON the device's,
// for simulated devices. Decoded numbers are int64 when integral and float64 otherwise.
// A function call's inputs go out as [{name, value}] sorted by name, and its id as both
// "functionId" (the reference's field) and "function" (SPEC's table).
//
// MQTT: CheckMQTT verifies a CONNECT's credentials (signed or plain; ErrStaleTimestamp
// and ErrBadCredentials are both refused as bad credentials), AllowedSubscription keeps a
// device's SUBSCRIBE within its own topics, and TopicsOf lists where its downlinks go.
// A time-sync request is answered on the request's topic plus "/reply".
//
// HTTP posts the JSON to the topic as a path, and WebSocket wraps it in
// {"topic", "payload"} (DecodeWebSocket, EncodeWebSocket).
//
// # CoAP
//
// The path is the topic and the payload the JSON encrypted with AES-ECB and PKCS#7 padding
// under the product's secureKey (Encrypt, Decrypt, DecodeCoAP). The device id may come in
// option CoAPDeviceIDOption (2100) instead of the path; CoAPDeviceID says which device a
// request speaks for, and so whose key decrypts it. A time-sync answer is a 2.05 body made
// by EncodeCoAPReply. CBOR payloads are not accepted.
//
// # Binary (TCP and UDP)
//
// A binary message is a type byte (FrameType), a timestamp (int64 ms), a seq (uint16), the
// deviceId and the type's body, all big-endian, values as typed values (DataType): see
// Frame. A TCP frame puts a uint32 length before it (EncodeTCP, DecodeTCP, ReadTCP); a UDP
// datagram an authType byte and the secureKey (Datagram). An online frame carrying the
// secureKey comes first on a connection and is acked (AckFor).
//
// SPEC §5.2 writes the deviceId as a typed value (0x0B + length + UTF-8, or 0x00 NULL for
// the connection's device), which the package-level functions speak. The reference's
// encoder has written it without the type byte since late 2022; Dialect{UntypedDeviceID:
// true} speaks that. The seq stands for a messageId only at the gateway, which remembers
// the messageIds of the downlinks it numbered (FrameOf).
//
// Decoders take any bytes: garbage is an error, never a panic, and no decoder allocates
// more than a small multiple of its input (counts are checked against the bytes left
// before anything is made for them, and nesting stops at MaxDepth).
package official
