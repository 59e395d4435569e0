// Package fsm owns linkops' replicated state: the typed, versioned commands that raft
// carries, the finite state machine that applies them, the in-memory state store (go-memdb)
// that every read is served from, and the snapshot format.
//
// It must not touch the network, raft's wiring or HTTP. Writers encode a command with
// Encode and hand the bytes to the cluster package; readers use Store. The FSM re-checks
// every invariant that depends on state (existence, If-Match indexes, uniqueness,
// references) because two writes validated at the same time on two nodes may race; the
// first one applied wins and the other gets a matchable error. See DESIGN.md.
package fsm
