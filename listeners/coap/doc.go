// Package coap owns the COAP_SERVER listener: CoAP over UDP (RFC 7252) with block-wise
// transfers (RFC 7959), over DTLS (pion/dtls) when the component is secure; it must not
// touch devices, gateways or raft, and knows only sockets, CoAP messages and the
// listeners contract.
//
// Each request is one message: env.Request gets Frame{Topic: "/" + the URI path, Payload:
// the whole body, block-wise transfers reassembled} and the Reply becomes the response.
//
// # What go-coap does not bound, and how this package does
//
// go-coap (plgd-dev/go-coap/v3) keeps one connection, with its own goroutine, per source
// address, reassembles block-wise bodies of up to 2^20 blocks (1 GiB) in memory, and
// keeps up to 4096 concurrent reassemblies per peer. A UDP source address costs an
// attacker nothing, so every one of these is capped here:
//
//   - a request body is at most MaxBodySize: a Block1 block (or a Size1 announcement)
//     that would take it past the cap is answered 4.13 with Size1 before go-coap buffers
//     it (the RequestMonitor hook runs before block-wise reassembly);
//   - at most MaxUploads block-wise uploads are reassembled at once per listener, one per
//     peer; one more gets 5.03, so reassembly memory stays under MaxUploads × MaxBodySize;
//   - at most MaxPeers peers (source addresses, or DTLS sessions) are kept; a datagram
//     from one more is dropped (OnNewConn closes the connection go-coap just made; a DTLS
//     session is closed once its handshake is done), and a peer silent for
//     PeerIdleTimeout is forgotten, goroutine and all;
//   - DTLS handshakes time out after HandshakeTimeout, and at most MaxHandshakes are in
//     flight, MaxHandshakesPerIP from one IP address (pion keeps state for every
//     ClientHello, before the cookie exchange proves the address).
//
// go-coap's UDP read loop queues each request for its peer's goroutine (16 deep) and
// waits when the queue is full: a handler slow enough for that stalls reading for every
// peer, so the handler must stay fast (the gateway decodes in memory).
//
// The DTLS certificate is read from the TLSSource on every handshake (pion's
// GetCertificate), and the client certificate is checked against the current trust
// bundle by VerifyConnection, so a certificate update needs no restart.
package coap
