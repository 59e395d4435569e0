// Package websocket owns the WEB_SOCKET_SERVER listener: it upgrades requests on any path
// (RFC 6455, gorilla/websocket), turns each text or binary message into a Frame for the
// connection's Session, and writes downlinks back. It must not know what a message means
// (that is the Handler's business) nor touch the replicated state; sockets, TLS and the
// handshake's HTTP side come from listeners/http's Server.
//
// # Connections
//
// A WebSocket upgrade request on any path is accepted, whatever its Origin: devices are
// not browsers, and they authenticate per connection (a header or ?token=), never with
// cookies a foreign page could borrow. The upgraded connection goes to env.Open with
// ConnInfo{Transport: "WebSocket", Remote, Method, Path, Query, Header (a copy), TLS}. A
// refusal closes it at once with 1008 (policy violation) and the refusal's text; with
// NoGateway it is admitted and its messages are dropped and counted (SPEC §4.3.1).
//
// Each text or binary message (reassembled from its fragments) is one Frame{Topic: the
// request path, Payload}; a message over MaxMessage closes the connection with 1009. A
// Session's ErrNotAuthorized or ErrBadCredentials closes it with 1008, ErrTooLarge with
// 1009; any other refusal costs only that message. A Reply is ignored: downlinks go
// through Conn.Send.
//
// A request that is not an upgrade gets 426 Upgrade Required; a malformed upgrade gets
// 400 (or 405 for a method other than GET) with gorilla's description of what is wrong.
//
// # Downlinks and closing
//
// Conn.Send writes one message, serialised with every other write. Its payload goes as a
// text message when it is valid UTF-8 with no control character but tab, CR and LF (JSON,
// the official protocol's frames, any readable text), as a binary message otherwise: a
// text message must be valid UTF-8 or the device's library drops the connection (RFC
// 6455 §8.1), and binary protocols carry NULs and length prefixes. The Frame's Topic is
// not sent (the official protocol carries its topic inside the JSON).
//
// Conn.Close sends a close frame (1000 and the reason, cut to the 123 bytes a close frame
// holds), waits up to a second for the device's answering close frame, then closes the
// socket. Stopping the listener does the same with 1001 (going away) for every
// connection.
//
// # Keep-alive
//
// The server pings every 30 s; a connection from which nothing (no message, no pong, no
// ping) arrived for two intervals is closed and counted as a timeout, so dead peers
// behind NAT do not pile up. The pings run on a timer rather than a goroutine per
// connection, to keep idle connections small.
package websocket
