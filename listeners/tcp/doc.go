// Package tcp owns the TCP_SERVER network component's socket: accepting connections
// (TLS when the component is secure), splitting each byte stream into messages by the
// component's parser, and writing downlinks; it knows nothing of devices or gateways and
// must not touch another listener's package or the replicated state.
//
// # Framing
//
// Framing (framing.go, no sockets) implements SPEC §4.3.1 exactly: DIRECT (each read is
// one message), DELIMITED, FIXED_LENGTH, LENGTH_FIELD (the message is the whole frame,
// header included) and SCRIPT (a sandboxed split function, protocol.Splitter). A
// connection that buffers more than MaxBuffered bytes without completing a message, or
// whose LENGTH_FIELD header announces more, is closed (oversize); so is one whose split
// says garbage or fails (garbage, script, script_timeout). split is shown a prefix of the
// buffered bytes, 256 at first and doubling while it asks for more: bytes cross the
// sandbox one number at a time, and showing all of a read full of small messages for each
// of them would be quadratic. Each connection reads into a buffer of its own
// (readSize, also the largest DIRECT message: the most a TLS record holds), and a framer
// keeps only the bytes of the message not yet complete.
//
// # Connections
//
// One goroutine per connection does the TLS handshake (bounded by handshakeTimeout), asks
// the handler to admit it (env.Open), then reads, frames and hands each message to the
// session in order. A session's ErrDropped keeps the connection (NoGateway drops every
// message, SPEC §4.3.1); ErrNotAuthorized, ErrBadCredentials and ErrTooLarge close it.
// keepAliveTimeout is a read deadline renewed before every read. Conn.Send writes under a
// mutex with writeTimeout, so a device that stops reading costs its own connection only;
// a failed write closes the connection, since a partial frame has broken the stream.
//
// Closing a connection closes its TCP socket directly, even under TLS: tls.Conn.Close
// would first wait for a write in progress, and stopping a listener must not.
package tcp
