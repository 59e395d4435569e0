// Package httplistener owns the HTTP side of the HTTP-based component types: the
// HTTP_SERVER listener (Listener: one request is one message) and the socket, TLS and
// timeout handling it shares with WEB_SOCKET_SERVER (Server). It must not know what a
// message means (that is the Handler's business) nor touch the replicated state.
//
// The directory is listeners/http; the package is named httplistener so that it can be
// imported next to net/http without an alias.
//
// # Requests
//
// Each request is one message: Frame{Topic: the request path, Payload: the body} goes to
// env.Request with ConnInfo{Transport: "HTTP", Remote, Method, Path, Query, Header (a copy), TLS}.
// The Reply becomes the response: Code (0: 200), ContentType (empty with a body:
// application/octet-stream; nothing is sniffed) and Payload. A Reply returned together
// with an error is sent as is (its Code, or the error's status when 0), so a gateway can
// answer a refusal in its own protocol's words (SPEC §5.2's {"success": false}); without
// one, refusals are RFC 9457 problem JSON:
//
//	ErrNoGateway                        404 no_gateway (SPEC §4.3.1)
//	ErrNotAuthorized, ErrBadCredentials 401 unauthorized, bad_credentials
//	ErrTooLarge, a body over MaxBody    413 body_too_large
//	the listener stopping               503 unavailable
//	anything else (ErrDropped, …)       400 dropped, rejected
//
// There is no downlink on a request: Conn.Send fails with errors.ErrUnsupported, and
// Conn.Close makes the response close the TCP connection.
//
// # Connections
//
// Keep-alive TCP connections are counted with env.Track (open connections, not
// requests). Problems net/http answers itself are counted too, from the connection's
// life: a request that never reached the handler (garbage, a truncated or oversized
// header, a read timeout) as bad_request, a TLS handshake that did not complete as
// tls_handshake. Only HTTP/1.1 is served: devices speak it, and HTTP/2 would add
// goroutines and settings per connection for nothing they use.
package httplistener
