// Package gateway owns what device access gateways do on one node (SPEC §4.4.1): it maps
// each network component to the enabled gateways that use it, admits connections through
// the gateway of the device's product, decodes every message with the gateway's protocol
// (the built-in official protocol in Go, or an uploaded JavaScript codec from a pool of
// sandboxes), hands decoded messages to the session manager and encodes downlinks. It must
// not bind sockets (listeners do), write the replicated state or import raft and HTTP
// handlers.
//
// # The table
//
// Runtime follows the replicated gateways, products, protocols and components through one
// fsm.View and rebuilds an immutable table whenever any of them changes: component →
// enabled gateways, gateway → compiled codec. Handlers read the current table on every
// connection and message (an atomic pointer), so enabling or disabling a gateway, or a new
// protocol package, takes effect at once without rebinding a socket or dropping a
// connection. A gateway that leaves the table has its sessions closed on this node.
//
// Codecs are compiled once per protocol version (its raft index) and shared by the
// gateways that use it; a compile failure leaves the gateway refusing devices, with the
// reason in the log, rather than the old codec running silently.
//
// # Connections
//
// A connection's gateway is found when it opens: for MQTT, the device is the client id and
// its product names the gateway (several gateways may share one MQTT_SERVER); for the other
// transports a component has one gateway. A connection is bound to one device, learnt at
// connect (MQTT credentials, a WebSocket path) or from the first message the protocol
// decodes (TCP, UDP, HTTP, CoAP); a message for another device is refused. Decoding runs on
// the connection's own goroutine and never waits for raft or another node.
package gateway
