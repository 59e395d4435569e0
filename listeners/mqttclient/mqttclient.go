package mqttclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/resource"
)

// Listener is the MQTT_CLIENT component type.
type Listener struct{}

const (
	// connectTimeout bounds resolving the host, each dial with its TLS handshake, and the
	// CONNECT/CONNACK exchange.
	connectTimeout = 10 * time.Second
	// ackTimeout bounds the wait for a SUBACK.
	ackTimeout   = 10 * time.Second
	writeTimeout = 10 * time.Second
	keepAlive    = 30 * time.Second
	pingTimeout  = 10 * time.Second
	// quiesce is how long a clean DISCONNECT may take, in milliseconds (paho's unit).
	quiesce = 250
)

var errClosed = errors.New("the connection to the MQTT broker is closed")

// Serve holds one connection to the broker, as the package documentation describes: it
// returns nil once ctx ends, and an error whenever the connection could not be made or
// ended for another reason.
func (Listener) Serve(ctx context.Context, spec listeners.Spec, env *listeners.Env) error {
	cfg := spec.Config
	if cfg.Secure && spec.TLS == nil {
		return errors.New("secure is set but no certificate is loaded")
	}
	addrs, err := allowedAddrs(ctx, cfg.RemoteHost, cfg.RemotePort, spec.AllowRemote)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	c := newConn(ctx, spec, env, addrs)
	defer c.cancel()
	return c.serve(ctx)
}

// conn is one connection to the broker: the Conn the handler holds, and the state of the
// Serve that made it.
type conn struct {
	spec   listeners.Spec
	env    *listeners.Env
	addrs  []netip.AddrPort
	target string // host:port as configured, for messages
	topics map[string]byte
	info   listeners.ConnInfo
	client paho.Client
	// ctx ends with the connection; the handler's Receive calls get it.
	ctx    context.Context
	cancel context.CancelFunc

	dialMu sync.Mutex
	dialed *filteredConn // the connection paho is using, closed if ctx ends while it connects

	mu      sync.Mutex // held while a message is handled, so Closed follows the last Receive
	session listeners.Session

	lostOnce sync.Once
	lost     chan struct{} // closed when paho reports the connection lost
	lostErr  error
	closeReq chan string // the handler's Close
}

func newConn(ctx context.Context, spec listeners.Spec, env *listeners.Env, addrs []netip.AddrPort) *conn {
	cfg := spec.Config
	c := &conn{spec: spec, env: env, addrs: addrs, target: net.JoinHostPort(cfg.RemoteHost, strconv.Itoa(cfg.RemotePort)),
		topics: map[string]byte{}, lost: make(chan struct{}), closeReq: make(chan string, 1)}
	c.ctx, c.cancel = context.WithCancel(ctx)
	for _, t := range cfg.Topics {
		c.topics[cfg.TopicPrefix+t] = 0 // QoS 0: see the package documentation
	}
	c.info = listeners.ConnInfo{Transport: listeners.TransportMQTT, ClientID: clientID(cfg.ClientID, spec.ComponentID, env.NodeID),
		Username: cfg.Username, MQTTVersion: 4, TLS: cfg.Secure, Outbound: true}

	o := paho.NewClientOptions()
	// One placeholder server: dial ignores it and connects to the checked addresses.
	o.Servers = []*url.URL{{Scheme: "tcp", Host: c.target}}
	o.SetClientID(c.info.ClientID).SetUsername(cfg.Username).SetPassword(cfg.Password)
	o.SetProtocolVersion(4).SetCleanSession(true).SetResumeSubs(false)
	o.SetAutoReconnect(false).SetConnectRetry(false)
	// paho's deadline for the MQTT handshake starts before the dials.
	o.SetConnectTimeout(time.Duration(len(addrs)+1) * connectTimeout)
	o.SetKeepAlive(keepAlive).SetPingTimeout(pingTimeout).SetWriteTimeout(writeTimeout)
	o.SetOrderMatters(true)
	o.SetDefaultPublishHandler(c.message)
	o.SetConnectionLostHandler(func(_ paho.Client, err error) {
		if err == nil {
			err = errors.New("closed")
		}
		c.lostOnce.Do(func() { c.lostErr = err; close(c.lost) })
	})
	o.SetCustomOpenConnectionFn(c.dial)
	c.client = paho.NewClient(o)
	return c
}

// clientID is <clientId>-<nodeId>, or <componentId>-<nodeId> without a clientId, so that
// the nodes of a shared component never take over each other's session.
func clientID(configured, componentID, nodeID string) string {
	if configured == "" {
		configured = componentID
	}
	if nodeID == "" {
		return configured
	}
	return configured + "-" + nodeID
}

func (c *conn) serve(ctx context.Context) error {
	if err := c.connect(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("connect to MQTT broker %s: %w", c.target, err)
	}
	remote := c.info.Remote
	s, err := c.env.Open(c.ctx, c)
	if err != nil {
		c.end("")
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("connected to MQTT broker %s, then disconnected: %w", remote, err)
	}
	c.mu.Lock()
	c.session = s
	c.mu.Unlock()
	if err := c.subscribe(ctx); err != nil {
		if ctx.Err() != nil {
			c.end("stopped")
			return nil
		}
		c.end("subscribe failed: " + err.Error())
		return fmt.Errorf("MQTT broker %s: %w", remote, err)
	}
	c.env.Bound(remote)

	select {
	case <-ctx.Done():
		c.end("stopped")
		return nil
	case <-c.lost:
		c.end("connection lost: " + c.lostErr.Error())
		return fmt.Errorf("connection to MQTT broker %s lost: %w", remote, c.lostErr)
	case reason := <-c.closeReq:
		c.end(reason)
		return fmt.Errorf("disconnected from MQTT broker %s by the handler: %s", remote, reason)
	}
}

// connect makes the connection (paho dials through c.dial) and waits for the CONNACK.
func (c *conn) connect(ctx context.Context) error {
	t := c.client.Connect()
	select {
	case <-t.Done():
		return connectError(t.Error())
	case <-ctx.Done():
		// The dial gives up on its own; a CONNACK being waited for needs its socket closed.
		c.dialMu.Lock()
		if c.dialed != nil {
			c.dialed.Close()
		}
		c.dialMu.Unlock()
		<-t.Done()
		c.client.Disconnect(quiesce)
		return ctx.Err()
	}
}

// connectError words paho's answer for the status: "network Error : dial tcp …" becomes
// the dial's own error, a CONNACK refusal says the broker refused.
func connectError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, packets.ErrorNetworkError):
		if u, ok := err.(interface{ Unwrap() []error }); ok && len(u.Unwrap()) == 2 {
			return u.Unwrap()[1]
		}
		return err
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised),
		errors.Is(err, packets.ErrorRefusedIDRejected), errors.Is(err, packets.ErrorRefusedServerUnavailable),
		errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return fmt.Errorf("the broker refused the connection: %w", err)
	}
	return err
}

// dial is paho's way to the network: it connects to an address that allowedAddrs checked,
// never to the name again.
func (c *conn) dial(*url.URL, paho.ClientOptions) (net.Conn, error) {
	var tlsFn func() (*tls.Config, error)
	if c.spec.Config.Secure {
		tlsFn = func() (*tls.Config, error) { return clientTLS(c.spec.TLS, c.spec.Config.RemoteHost) }
	}
	nc, addr, err := dialFirst(c.ctx, c.addrs, tlsFn)
	if err != nil {
		return nil, err
	}
	max := c.spec.Config.MaxMessageSize
	if max <= 0 {
		max = resource.DefaultMaxMessageSize
	}
	f := newPacketFilter(nc, max, c.env.Error)
	f.subacks = len(c.topics)
	fc := &filteredConn{Conn: nc, f: f}
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	if err := c.ctx.Err(); err != nil {
		nc.Close()
		return nil, err
	}
	c.dialed, c.info.Remote = fc, addr.String()
	return fc, nil
}

// subscribe subscribes to every topic at once and checks the broker granted each.
func (c *conn) subscribe(ctx context.Context) error {
	if len(c.topics) == 0 {
		return nil
	}
	t := c.client.SubscribeMultiple(c.topics, nil)
	timer := time.NewTimer(ackTimeout)
	defer timer.Stop()
	select {
	case <-t.Done():
	case <-ctx.Done():
		return ctx.Err()
	case <-c.lost:
		return fmt.Errorf("subscribe: connection lost: %w", c.lostErr)
	case <-timer.C:
		return fmt.Errorf("subscribe: no SUBACK within %s", ackTimeout)
	}
	if err := t.Error(); err != nil {
		// paho says "connection lost before Subscribe completed"; the filter may know why.
		c.dialMu.Lock()
		if why := c.dialed.refused(); why != nil {
			err = why
		}
		c.dialMu.Unlock()
		return fmt.Errorf("subscribe: %w", err)
	}
	granted := t.(*paho.SubscribeToken).Result()
	var refused []string
	for topic := range c.topics {
		if code, ok := granted[topic]; !ok || code > 2 {
			refused = append(refused, strconv.Quote(topic))
		}
	}
	if len(refused) > 0 {
		slices.Sort(refused)
		return fmt.Errorf("the broker refused the subscription to %s", strings.Join(refused, ", "))
	}
	return nil
}

// message hands one PUBLISH to the session. paho calls it from one goroutine, in order;
// while it runs paho reads nothing more from the broker. A refused message is counted by
// the Env and costs nothing else: the connection carries every device behind the broker,
// so one bad message must not disconnect them all.
func (c *conn) message(_ paho.Client, m paho.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session == nil || c.ctx.Err() != nil {
		return
	}
	_, _ = c.session.Receive(c.ctx, listeners.Frame{Topic: m.Topic(), Payload: m.Payload()})
}

// end disconnects (cleanly if the connection is still up: paho sends DISCONNECT), then
// closes the session with reason once no message is being handled any more.
func (c *conn) end(reason string) {
	c.cancel()
	c.client.Disconnect(quiesce)
	c.mu.Lock()
	s := c.session
	c.session = nil
	c.mu.Unlock()
	if s != nil {
		s.Closed(reason)
	}
}

func (c *conn) Info() listeners.ConnInfo { return c.info }

// Send publishes a downlink to the broker, QoS 0, and returns once it is written.
func (c *conn) Send(f listeners.Frame) error {
	if err := downlinkTopic(f.Topic); err != nil {
		return err
	}
	if c.ctx.Err() != nil {
		return errClosed
	}
	// Copied: on a timeout paho may still write it after Send returned.
	t := c.client.Publish(f.Topic, 0, false, slices.Clone(f.Payload))
	if !t.WaitTimeout(writeTimeout + time.Second) {
		return fmt.Errorf("publish to %q: not written within %s", f.Topic, writeTimeout)
	}
	if err := t.Error(); err != nil {
		if errors.Is(err, paho.ErrNotConnected) {
			return errClosed
		}
		return fmt.Errorf("publish to %q: %w", f.Topic, err)
	}
	return nil
}

// Close disconnects from the broker; Serve returns with an error naming reason, and the
// supervisor connects again after its backoff.
func (c *conn) Close(reason string) {
	select {
	case c.closeReq <- reason:
	default:
	}
}

// downlinkTopic checks a PUBLISH topic: a broker disconnects a client that publishes to
// an empty topic or a wildcard.
func downlinkTopic(t string) error {
	switch {
	case t == "":
		return errors.New("a downlink needs a topic")
	case len(t) > 65535:
		return errors.New("the downlink topic is longer than MQTT allows")
	case !utf8.ValidString(t) || strings.ContainsAny(t, "+#\x00"):
		return fmt.Errorf("the downlink topic %q is not plain UTF-8 text without wildcards", t)
	}
	return nil
}
