// Package node assembles one linkops node: its configuration (flags, environment,
// config file), its data directory and identity, the FSM, the cluster membership, and the
// HTTP API; it starts them in order and stops them in reverse.
//
// It owns wiring and lifecycles only. What state means is the fsm package's business, how
// raft runs is the cluster package's, and what the API does is the api package's.
package node
