package cluster

import "errors"

// Sentinel errors of the cluster package, matched with errors.Is at the API edge.
var (
	// ErrNoLeader: no leader is known, so a write cannot be accepted now.
	ErrNoLeader = errors.New("no cluster leader")
	// ErrNotLeader: this node is not the leader (writes must be forwarded).
	ErrNotLeader = errors.New("this node is not the leader")
	// ErrOutcomeUnknown: the write was handed to raft but leadership was lost before it
	// was known to be committed; it may or may not take effect.
	ErrOutcomeUnknown = errors.New("outcome unknown: leadership was lost while the write was in flight")
	// ErrShutdown: the node is shutting down.
	ErrShutdown = errors.New("node is shutting down")
)
