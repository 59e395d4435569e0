// Package api owns linkops' REST API (echo/v4): routing, authentication and roles, request
// decoding and validation, RFC 9457 problem responses, the OpenAPI document, and the HTTP
// metrics.
//
// Data flows one way: a handler validates a request with the resource package, encodes a
// command with the fsm package and proposes it through the small Raft interface declared
// here; reads come from the fsm.Store. The api package never changes state any other way,
// and it never lets a secret field reach a response: every resource leaves through
// resource.Redacted.
package api
