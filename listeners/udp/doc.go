// Package udp owns the UDP network component's socket: plain datagrams, or DTLS
// (pion/dtls v3) when the component is secure; it knows nothing of devices or gateways
// and must not touch another listener's package or the replicated state.
//
// # Plain UDP
//
// Each datagram is one message. A source ip:port gets a Conn (env.Open) on its first
// datagram; Conn.Send writes a datagram back to that address. UDP has no disconnect, so a
// peer silent for IdleTimeout is forgotten (Session.Closed("idle")), and the peer table is
// capped at MaxPeers: when full, the peer idle longest is evicted (peers_full) rather than
// refusing newcomers, so a spoofed-source flood costs a bounded table and the devices that
// talk regularly stay. One goroutine reads every datagram into one reused 64 KiB buffer
// and calls the handler synchronously (the Frame is valid only during Receive); the
// handler must not block on the network.
//
// # DTLS
//
// Each source address that starts with a ClientHello is one association: after its
// handshake it is one Conn, and each record is one message.
//
// pion/dtls's listener (dtls.Listen / NewListener) is not used, for three reasons:
//   - its Config is fixed when the listener is made, so a trust bundle could not change
//     without a restart (the certificate could, through GetCertificate);
//   - it never times a handshake out: an accepted Conn handshakes on its first Read with
//     context.Background(), and retransmits forever, so every half-open handshake (a
//     spoofed ClientHello never answers the HelloVerifyRequest) would keep a Conn and its
//     goroutines until the listener stops;
//   - it cannot limit handshakes per source IP or in total.
//
// Instead the listener demultiplexes the one socket itself (pipe: a net.PacketConn per
// association fed by the read loop) and runs dtls.ServerWithOptions on each, with options
// built per association: GetCertificate reads spec.TLS on every handshake (an updated
// certificate applies to new handshakes while established associations keep theirs), and
// with a trust bundle ClientAuth is RequireAnyClientCert and VerifyPeerCertificate is
// spec.TLS.VerifyClient (the current bundle, client-auth key usage). Certificates only: we
// never pass a PSK (pion refuses to run with a PSK unless PSK cipher suites are named).
//
// Bounds on what a stranger can make it hold:
//   - a datagram from an unknown source that is not the first fragment of a ClientHello
//     (isClientHello) is dropped before any state exists (garbage);
//   - at most MaxHandshakes handshakes run at once, MaxHandshakesPerIP per source IP
//     (handshake_limit), each ended after HandshakeTimeout (tls_handshake): a flood of
//     ClientHellos from many source ports holds at most MaxHandshakes associations, about
//     four goroutines each, for at most HandshakeTimeout;
//   - at most pipeDepth datagrams wait per association (queue_full), none over pion's
//     8 KiB read buffer (oversize), and associations share the MaxPeers table and its
//     idle timeout with plain peers.
//
// Two more pion/dtls traps, worked around here:
//   - a client sends application data the moment it has the server's Finished; pion's
//     server, until it has marked its own handshake done a moment later, keeps one such
//     record and drops the rest, so a device's first messages would be lost. The pipe
//     holds application data back until the handshake completed;
//   - an established association ignores a new ClientHello, so a device that restarts
//     behind the same ip:port could not handshake until the old association idled out.
//     A ClientHello on an established association starts a successor; it replaces the
//     old one once its handshake completes (RFC 6347 §4.2.8), and gets the old one's
//     records only once pion sent it a ServerHello, i.e. the client returned the cookie,
//     so a spoofed or stale ClientHello never costs a live association (dtlsMode.route).
//
// The HelloVerifyRequest cookie is pion's, per association, not stateless: answering it
// before any state exists would need the association to start at message_seq 1, which
// pion's server cannot. So a spoofed ClientHello costs one handshake slot for
// HandshakeTimeout, and a spoofer who knows a device's ip:port can delay that device's
// handshake by as much, repeatedly; it cannot end an established association.
package udp
