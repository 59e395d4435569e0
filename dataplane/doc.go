// Package dataplane owns what a node runs for devices, assembled in one place: the table
// of listener types, the listener supervisor, the debug hub and their metrics. node calls
// New and Run; the API consumes the small views it exposes (listener status, debug
// events). It must not import raft or the API, and it never writes the replicated state.
//
// Start and stop: Run starts after the node has replayed its local log (WaitReplayed), so
// no port is bound for a component that a later local entry disables, and it does not
// wait for a quorum: a node that lost its peers still serves its devices. Run returns
// once every listener has stopped; the node stops it before raft.
package dataplane
