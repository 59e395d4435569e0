// Package resource owns the shapes of linkops' replicated resources: the Go types that the
// REST API accepts and returns and that the FSM stores, their field validation, and which of
// their fields are secrets.
//
// It must not touch raft, the state store or HTTP: the api package decodes and validates a
// request with it, the fsm package stores the result. Validation here is state-free (field
// formats, lengths, PEM parsing); rules that depend on other resources (references,
// uniqueness) are checked by the FSM when a command is applied, so two racing writes cannot
// both win.
package resource
