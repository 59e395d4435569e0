// Package modbus owns the 通道 (channel) gateways of provider modbus-tcp (SPEC §5.3): it
// polls the configured points of a Modbus TCP device, reports them as properties of the
// gateway's device through a session of this node, writes properties/write downlinks to
// holding registers and coils, and answers this node's part of the gateway's status. It
// must not bind sockets, write the replicated state or import raft and HTTP handlers: the
// session manager records presence and properties, and the node runs the poller as a
// leader routine.
//
// # DESIGN: which node polls, and why
//
// The raft leader polls every enabled modbus-tcp gateway: Service.Run is a leader routine
// (node.go), and it keeps one goroutine per gateway, restarted when the gateway's
// configuration changes and stopped when the gateway is disabled or removed. A Modbus
// device usually accepts few TCP clients and must see one poller, and the leader is already
// the one node the cluster agrees on; choosing another node would need a replicated
// assignment and a failure detector of its own. When the polling node dies, raft elects a
// new leader within its election time (a few seconds, well under the 15 s of SPEC §5.3) and
// its leader routine starts polling; the old node's session is released by the session
// reaper once gossip declares it dead, and since the new session connected later, presence
// keeps it. A leader that loses leadership without dying stops polling and closes its
// sessions (the device goes offline until the new leader's first answered poll).
//
// The price: the leader carries the polling load (one request per point and interval per
// gateway), which is small next to raft's own work for the handful of channel gateways a
// cluster has.
//
// # Sessions and failures
//
// The device's session is connectionless (no Close): opened by the first answered poll
// through session.Manager.Seen, it has no KeepOnline, so only this package ends it: after
// FailuresOffline polls in a row without an answer, spanning at least OfflineAfter, the
// session is closed and the error kept for the status (failed); the next answered poll opens
// a new one. Its Send answers writeProperty and readProperty downlinks by talking to the
// device directly, so properties/write reaches the register from whichever node the API
// request arrived at (the API routes downlinks to the node holding the session).
//
// Values: wider types span registers high word first; the reported value is raw × scale
// (default 1), rounded to 15 significant digits so that 215 × 0.1 reads 21.5; a write
// stores value ÷ scale rounded to the nearest integer for integer types.
package modbus
