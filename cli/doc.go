// Package cli is the `linkops` command: `linkops agent` runs a node, every other command
// is a client of a node's REST API (like consul or nomad), printing tables by default and
// JSON with -o json.
//
// It must hold no business logic: the agent side is the node package, the client side the
// client package.
package cli
