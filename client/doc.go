// Package client is the Go client of the linkops REST API, used by the command line and by
// black-box tests. It turns problem responses into *Problem errors so callers can match
// their status and code.
//
// It must not import the server's packages: it speaks only the wire format, as any third
// party would.
package client
