// Package session owns the device sessions of one node: which devices are connected here
// (Manager), the latest properties they reported (Properties, kept on this node's disk),
// the replies that downlinks wait for, the per-device message stream (Hub), and this node's
// side of presence — the batched writer that tells the cluster which sessions it holds and
// the follower that closes the sessions another node took over. It must not import raft,
// HTTP handlers or listeners: it proposes presence commands through a function it is given
// (Propose) and never writes the replicated state directly.
//
// # Presence
//
// Which node holds a device is a replicated table (fsm.Presence): every node reads it
// locally for downlinks, device answers and takeover. A session's online and offline go
// to raft through one writer per node that keeps only the latest transition per device and
// flushes every FlushInterval or MaxBatch changes, so a connect storm of 15,000 devices is a
// handful of raft entries, and a connect never waits for raft (a node without a leader
// keeps serving; the queue flushes when raft is back).
//
// Takeover and late offlines converge by two FSM rules (an online never replaces a session
// that connected later; an offline applies only to the session it names) and by the
// follower here: when the table names a later session of a device held on this node, the
// local copy is closed without writing offline. On one node, a takeover replaces the
// session in place, and the old connection's late close (mochi calls it after the new
// connection's connect) is ignored because it no longer is the device's session. A node
// that restarts, or comes back from a partition during which the leader released its
// devices, reconciles the table with what it holds: sessions it no longer has go offline,
// sessions it still has go online again.
//
// # Key decisions and trade-offs
//
//   - Presence in raft rather than a gossip directory: every node must agree on one holder
//     (downlinks, takeover, OTA); raft already orders and replicates, and batching keeps the
//     cost to a few entries a second under a storm. Its price is that a device's online shows
//     only once a quorum is reachable; the device is served meanwhile.
//   - Sessions are ordered by the holder's clock (ConnectedAt), not by raft order: two
//     nodes' batches may reach the leader in either order. Clocks skewed by more than the
//     gap between two connects of one device could pick the older session; NTP keeps skew to
//     milliseconds, and a device reconnects far less often.
//   - Properties stay on the node that received them (never raft, SPEC §4.6) in a bbolt
//     file written behind, at most every PropertiesFlushInterval; a device answer merges
//     every node's latest values, so values survive reconnecting elsewhere and a restart.
package session
