// Package e2e holds black-box end-to-end tests of the real linkops binary.
//
// TestMain builds ./cmd/linkops once into a temporary directory; the tests then start
// `linkops agent` as a child process (with no flags, as `make run` does, or on random
// loopback ports) and drive it over HTTP and through the binary's own client commands,
// exactly as an operator would. Nothing here calls the server's packages directly.
package e2e
