package listeners

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Env is what a running listener is given besides its Spec: the handler to hand
// connections to (already wrapped so the debug stream and metrics see everything), a
// logger, and the callbacks that make its status honest.
type Env struct {
	ComponentID string
	NodeID      string
	Log         *slog.Logger

	handler Handler
	hub     *Hub
	m       *componentMetrics
	bound   func(addr string)
	conns   atomic.Int64
}

// NewEnv assembles an Env; the supervisor makes one per run, tests make their own (nil
// hub and metrics are allowed: nothing is published then).
func NewEnv(componentID, nodeID string, h Handler, hub *Hub, m *Metrics, log *slog.Logger, bound func(addr string)) *Env {
	if log == nil {
		log = slog.Default()
	}
	if bound == nil {
		bound = func(string) {}
	}
	return &Env{ComponentID: componentID, NodeID: nodeID, Log: log, handler: h, hub: hub, m: m.component(componentID), bound: bound}
}

// Bound reports that the socket listens (or, for MQTT_CLIENT, that it is connected) at
// addr; the status says running from now on.
func (e *Env) Bound(addr string) {
	e.m.up(true)
	e.bound(addr)
}

// Connections is the number of connections open now.
func (e *Env) Connections() int64 { return e.conns.Load() }

// Track counts a connection that is not a session: +1 when it opens, -1 when it closes.
// HTTP_SERVER's keep-alive TCP connections carry requests, not sessions, yet they are what
// an operator means by "connections"; the status and linkops_listener_connections include
// them. Listeners whose connections are sessions (Open counts those) do not call it.
func (e *Env) Track(delta int) {
	e.conns.Add(int64(delta))
	e.m.connections(delta)
}

// Error counts a problem that cost one connection or message (reason is a short
// snake_case word: accept, tls_handshake, oversize, garbage, timeout, …).
func (e *Env) Error(reason string) { e.m.error(reason) }

// Open hands a new connection to the handler: the debug stream sees the connect (and, on
// a refusal, the disconnect with its reason) and the connection is counted until the
// returned session is closed. The listener must call Closed on the session exactly once.
func (e *Env) Open(ctx context.Context, c Conn) (Session, error) {
	info := c.Info()
	e.conns.Add(1)
	e.m.connections(1)
	e.hub.publish(e.ComponentID, Event{Kind: EventConnect, ServerID: e.NodeID, Remote: info.Remote, ClientID: info.ClientID, Time: time.Now().UTC()})
	s, err := e.handler.Open(ctx, &countedConn{Conn: c, env: e})
	if err != nil {
		e.closed(info, "refused: "+err.Error())
		e.countRefusal(err)
		return nil, err
	}
	return &tappedSession{s: s, env: e, info: info}, nil
}

// Request handles one message of a request/response transport (an HTTP or CoAP request):
// the debug stream shows the message whether or not a gateway takes it.
func (e *Env) Request(ctx context.Context, c Conn, f Frame) (*Reply, error) {
	info := c.Info()
	e.message(info, f)
	s, err := e.handler.Open(ctx, &countedConn{Conn: c, env: e})
	if err != nil {
		e.countRefusal(err)
		return nil, err
	}
	defer s.Closed("request done")
	r, err := s.Receive(ctx, f)
	if err != nil {
		e.countRefusal(err)
	}
	return r, err
}

func (e *Env) message(info ConnInfo, f Frame) {
	e.m.messages("in", len(f.Payload))
	if e.hub == nil || !e.hub.subs.Watched(e.ComponentID) {
		return // every message passes here: no event (nor clock read) for nobody
	}
	e.hub.publish(e.ComponentID, Event{Kind: EventMessage, ServerID: e.NodeID, Remote: info.Remote, ClientID: info.ClientID,
		Topic: f.Topic, Payload: f.Payload, Time: time.Now().UTC()})
}

func (e *Env) closed(info ConnInfo, reason string) {
	e.conns.Add(-1)
	e.m.connections(-1)
	e.hub.publish(e.ComponentID, Event{Kind: EventDisconnect, ServerID: e.NodeID, Remote: info.Remote, ClientID: info.ClientID, Reason: reason, Time: time.Now().UTC()})
}

func (e *Env) countRefusal(err error) {
	switch {
	case errors.Is(err, ErrNoGateway):
		e.m.error("no_gateway")
	case errors.Is(err, ErrNotAuthorized), errors.Is(err, ErrBadCredentials):
		e.m.error("unauthorized")
	case errors.Is(err, ErrTooLarge):
		e.m.error("oversize")
	case errors.Is(err, ErrDropped):
		e.m.error("dropped")
	default:
		e.m.error("handler")
	}
}

// tappedSession shows every message on the debug stream and in the metrics.
type tappedSession struct {
	s    Session
	env  *Env
	info ConnInfo
	once sync.Once
}

func (t *tappedSession) Receive(ctx context.Context, f Frame) (*Reply, error) {
	t.env.message(t.info, f)
	r, err := t.s.Receive(ctx, f)
	if err != nil {
		t.env.countRefusal(err)
	}
	return r, err
}

// AuthorizeSubscribe asks the inner session, if it has a say (SubscribeAuthorizer);
// a refusal is counted as unauthorized.
func (t *tappedSession) AuthorizeSubscribe(filter string) bool {
	a, ok := t.s.(SubscribeAuthorizer)
	if !ok || a.AuthorizeSubscribe(filter) {
		return true
	}
	t.env.m.error("unauthorized")
	return false
}

func (t *tappedSession) Closed(reason string) {
	t.once.Do(func() {
		t.env.closed(t.info, reason)
		t.s.Closed(reason)
	})
}

// countedConn counts what the handler sends.
type countedConn struct {
	Conn
	env *Env
}

func (c *countedConn) Send(f Frame) error {
	if err := c.Conn.Send(f); err != nil {
		return err
	}
	c.env.m.messages("out", len(f.Payload))
	return nil
}
