// Package testutil holds the helpers every level of linkops' tests shares: in-process
// nodes on random loopback ports, API clients logged in as admin or viewer, a throwaway
// certificate authority, and polling until a condition holds. It is imported only by tests.
package testutil
