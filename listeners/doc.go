// Package listeners owns what the network components of this node do on the wire: the
// contract every listener type implements (Listener, Env, Handler, Session, Conn, Frame),
// which specs this node must run (Desired), the TLS and DTLS material taken from
// certificate resources (TLSSource), the debug stream (Hub), per-component metrics and the
// supervisor that keeps the running listeners equal to the stored state (Supervisor).
//
// One sub-package per component type (listeners/mqtt, listeners/tcp, …) implements
// Listener; each knows sockets and framing and nothing about devices, gateways or raft.
// What a message means is the Handler's business: the gateway mux implements it; until a
// gateway exists NoGateway refuses or drops as SPEC §4.3.1 says.
//
// The package must not import raft, the API or any listener sub-package; it reads the
// replicated state only through the fsm.View it is given, and never writes it.
//
// # Data flow
//
//	fsm state ──watch──▶ Supervisor ──Desired──▶ start / restart / stop ──▶ Listener.Serve
//	                                                       │
//	device ──▶ Listener ──▶ tap (debug stream, metrics) ──▶ Handler ──▶ Session
//
// A listener is restarted only when its own Spec changed (Spec.Fingerprint). A certificate
// update never restarts anything: the TLSSource of every listener that uses it is swapped
// in place, so new handshakes present the new certificate and established connections
// stay up.
package listeners
