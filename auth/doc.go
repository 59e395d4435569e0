// Package auth owns operator credentials: bcrypt password hashes and the bearer tokens the
// API issues at login.
//
// Tokens are HS256 JWTs signed with a key kept in the replicated state, so a token issued by
// any node is accepted by every node. A token names its user; it stops working when it
// expires, when the user is deleted, or when the user's password changes after it was
// issued. This package must not touch raft or HTTP: the api package reads the key and the
// user from the state store and asks this package to check them.
package auth
