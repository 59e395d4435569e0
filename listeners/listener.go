package listeners

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/linkops/linkops/resource"
)

// Transports as a Handler sees them (the names of protocol manifests, SPEC §4.2).
const (
	TransportMQTT      = "MQTT"
	TransportTCP       = "TCP"
	TransportUDP       = "UDP"
	TransportCoAP      = "CoAP"
	TransportHTTP      = "HTTP"
	TransportWebSocket = "WebSocket"
)

// TransportOf is the transport a component type carries.
func TransportOf(componentType string) string {
	switch componentType {
	case resource.TypeMQTTServer, resource.TypeMQTTClient:
		return TransportMQTT
	case resource.TypeTCPServer:
		return TransportTCP
	case resource.TypeUDP:
		return TransportUDP
	case resource.TypeCoAPServer:
		return TransportCoAP
	case resource.TypeHTTPServer:
		return TransportHTTP
	case resource.TypeWebSocketServer:
		return TransportWebSocket
	}
	return ""
}

// Spec is what one listener must be on this node: the component and the configuration
// that applies here (the shared one, or this node's cluster[] entry).
type Spec struct {
	ComponentID string
	Type        string
	Config      resource.NetworkConfig
	// TLS holds the certificate material when Config.Secure; the supervisor swaps it in
	// place when the certificate changes, so listeners must read it per handshake.
	TLS *TLSSource
	// AllowRemote lists the networks an MQTT_CLIENT may connect to (--allow-remote).
	AllowRemote []netip.Prefix

	// The certificate Config.CertID names, as Desired read it (or why it could not).
	cert    *resource.Certificate
	certErr error
}

// Fingerprint identifies the settings a listener is started with: a listener is restarted
// only when its fingerprint changes. Certificate contents are not part of it (they reload
// in place); the certificate id is.
func (s Spec) Fingerprint() string {
	b, _ := json.Marshal(struct {
		Type        string
		Config      resource.NetworkConfig
		AllowRemote []netip.Prefix
	}{s.Type, s.Config, s.AllowRemote})
	return string(b)
}

// Listener is one component type's implementation. Serve binds the spec's socket, calls
// env.Bound with the bound address once it accepts, and serves until ctx ends; it then
// closes the socket and every connection it accepted, waits for its goroutines and
// returns nil. A socket that cannot be bound is returned at once, with the operating
// system's message (the supervisor shows it as the node's status and retries with
// backoff). Temporary accept errors (EMFILE) must never end Serve: wrap the net.Listener
// with RetryAccept.
//
// Listeners are stateless values: one per type serves every component of that type.
type Listener interface {
	Serve(ctx context.Context, spec Spec, env *Env) error
}

// Frame is one message after framing: for MQTT the PUBLISH topic and payload, for HTTP and
// WebSocket the request path and body or frame, for CoAP "/" + the URI path and payload,
// for TCP and UDP the framed bytes (Topic empty).
type Frame struct {
	Topic   string
	Payload []byte
}

// ConnInfo is what a connection says about itself before its first message.
type ConnInfo struct {
	Transport string
	// Remote is the peer's ip:port.
	Remote string
	// MQTT CONNECT.
	ClientID    string
	Username    string
	Password    string
	MQTTVersion byte
	// HTTP and WebSocket: the request (for WebSocket, the upgrade request). Query is the
	// request's parsed query (devices may authenticate with ?token=); never nil for these
	// transports. CoAP: Method and Path, and in Header the options of the private range
	// (2048 and up) keyed by their number ("2100").
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	// TLS reports whether the connection is encrypted (TLS or DTLS).
	TLS bool
	// Outbound marks a connection this node opened (MQTT_CLIENT's broker connection):
	// there is no device to refuse, only messages to take or drop.
	Outbound bool
}

// Conn is one device connection as a listener holds it. For request/response transports
// (HTTP, CoAP) it is one request and Send is not supported.
type Conn interface {
	Info() ConnInfo
	// Send delivers a downlink to the device.
	Send(Frame) error
	// Close disconnects the device; reason goes to the debug stream and the log.
	Close(reason string)
}

// Reply is the answer of a request/response transport: Code is the HTTP status, or for
// CoAP the response code (codes.Code's value); zero means the transport's success.
type Reply struct {
	Code        int
	ContentType string
	Payload     []byte
}

// Handler decides what connections and messages mean (the gateway mux, or NoGateway).
type Handler interface {
	// Open admits a connection, or refuses it with an error wrapping ErrNoGateway,
	// ErrNotAuthorized or ErrBadCredentials (which each transport turns into its own
	// refusal: an MQTT CONNACK code, an HTTP status, a CoAP code).
	Open(ctx context.Context, c Conn) (Session, error)
}

// Session is an admitted connection.
type Session interface {
	// Receive handles one message. A request/response transport answers with the Reply
	// (nil: plain success); stream transports ignore it (a session answers a stream
	// through Conn.Send). An error wrapping ErrDropped means the message was not
	// handled and is counted; ErrNotAuthorized refuses it (HTTP 401, CoAP 4.01) and, on a
	// stream, closes the connection.
	Receive(ctx context.Context, f Frame) (*Reply, error)
	// Closed is called once when the connection ends, whoever ended it.
	Closed(reason string)
}

// SubscribeAuthorizer is implemented by a Session that limits what its connection may
// subscribe to (SPEC §5.2: a device subscribes only to its own topics). MQTT asks it for
// every SUBSCRIBE filter, on the connection's own goroutine; false answers that filter
// with a failure SUBACK (0x80 on 3.x, 0x87 "not authorized" on 5.0) and keeps the
// connection. A Session that does not implement it may subscribe to anything (except
// what the listener refuses by itself: $-topics, too many filters).
type SubscribeAuthorizer interface {
	AuthorizeSubscribe(filter string) bool
}
