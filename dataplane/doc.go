// Package dataplane owns what a node runs for devices, assembled in one place: the table
// of listener types, the listener supervisor, the gateway runtime, the session manager,
// the debug hub and their metrics. node calls New and Run; the API consumes the small views
// it exposes (listener status, debug events, sessions). It must not import raft or the
// API, and it never writes the replicated state: the one thing it tells the cluster —
// which node holds which device (presence) — it proposes through the function it is given,
// in batches (see package session).
//
// Start and stop: Run starts after the node has replayed its local log (WaitReplayed), so
// no port is bound for a component that a later local entry disables, and it does not
// wait for a quorum: a node that lost its peers still serves its devices. Stopping, the
// listeners close first (their devices go offline), then the presence queue is flushed
// while raft still runs, then the device properties file; the node stops it before raft.
//
// See DESIGN.md for how the device side fits together and why.
package dataplane
