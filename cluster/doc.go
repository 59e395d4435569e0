// Package cluster owns how a node takes part in the cluster: the raft instance (bolt log
// and stable store, file snapshots, TCP transport), proposing commands and classifying
// their outcome, the leadership loop that owns leader-only work, and snapshots and restores
// of the whole state.
//
// It must not know what commands mean (that is the fsm package) nor speak HTTP (that is the
// api package). It turns raft's errors into its own sentinels (ErrNoLeader,
// ErrOutcomeUnknown, …) so that callers never match on raft internals.
package cluster
