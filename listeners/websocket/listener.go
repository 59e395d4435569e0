package websocket

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/linkops/linkops/listeners"
	httplistener "github.com/linkops/linkops/listeners/http"
)

// Limits and timings (see the package documentation).
const (
	// MaxMessage bounds one message, its fragments together.
	MaxMessage = 1 << 20
	// DefaultPingInterval is how often the server pings; twice it without a word from
	// the device closes the connection.
	DefaultPingInterval = 30 * time.Second
	// DefaultHandshakeTimeout bounds the upgrade request and the 101 answer.
	DefaultHandshakeTimeout = 10 * time.Second

	writeWait = 10 * time.Second // one downlink or control frame
	closeWait = time.Second      // for the device's answer to our close frame
)

// Listener is WEB_SOCKET_SERVER.
type Listener struct {
	// Zero outside tests (the defaults).
	pingEvery, handshake time.Duration
}

// Serve implements listeners.Listener.
func (l Listener) Serve(ctx context.Context, spec listeners.Spec, env *listeners.Env) error {
	hs := l.handshake
	if hs <= 0 {
		hs = DefaultHandshakeTimeout
	}
	every := l.pingEvery
	if every <= 0 {
		every = DefaultPingInterval
	}
	h := &upgrader{
		env:   env,
		every: every,
		conns: &registry{conns: map[*conn]struct{}{}},
		u: websocket.Upgrader{
			HandshakeTimeout: hs,
			// Devices are not browsers and never authenticate with cookies.
			CheckOrigin: func(*http.Request) bool { return true },
			// Idle connections hold no write buffer; most send rarely.
			WriteBufferPool: &sync.Pool{},
			Error:           badHandshake,
		},
	}
	s := &httplistener.Server{
		Handler: h,
		// The upgrade request has no body: the whole exchange gets the handshake's time.
		Timeouts: httplistener.Timeouts{ReadHeader: hs, Read: hs, Write: hs},
		// Upgraded connections are hijacked: net/http no longer closes them.
		OnStop: h.conns.closeAll,
	}
	err := s.Serve(ctx, spec, env)
	h.conns.closers.Wait()
	return err
}

type upgrader struct {
	env   *listeners.Env
	u     websocket.Upgrader
	every time.Duration
	conns *registry
}

func (h *upgrader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		h.env.Error("bad_handshake")
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "426 Upgrade Required: this is a WebSocket endpoint; send an RFC 6455 upgrade "+
			"(GET with Connection: Upgrade, Upgrade: websocket, Sec-WebSocket-Version: 13)", http.StatusUpgradeRequired)
		return
	}
	ws, err := h.u.Upgrade(w, r, nil)
	if err != nil {
		// badHandshake answered, or the connection was already hijacked and is closed.
		h.env.Error("bad_handshake")
		h.env.Log.Debug("websocket upgrade failed", "component", h.env.ComponentID, "remote", r.RemoteAddr, "error", err)
		return
	}
	c := newConn(ws, listeners.ConnInfo{
		Transport: listeners.TransportWebSocket,
		Remote:    r.RemoteAddr,
		Method:    r.Method,
		Path:      r.URL.Path,
		Query:     r.URL.Query(), // a fresh map: the handler may keep it
		Header:    r.Header.Clone(),
		TLS:       r.TLS != nil,
	}, h.every)
	if !h.conns.add(c) {
		c.close(websocket.CloseGoingAway, stopping)
		c.drain()
		c.end()
		return
	}
	defer h.conns.remove(c)
	c.serve(r.Context(), h.env)
}

// badHandshake answers an upgrade request gorilla refuses, in its words.
func badHandshake(w http.ResponseWriter, _ *http.Request, status int, reason error) {
	w.Header().Set("Sec-WebSocket-Version", "13")
	http.Error(w, fmt.Sprintf("%d %s: %v", status, http.StatusText(status), reason), status)
}

const stopping = "the listener is stopping"

// registry holds the upgraded connections, which the listener must close itself.
type registry struct {
	mu       sync.Mutex
	conns    map[*conn]struct{}
	stopping bool
	// closers are the goroutines closing connections at stop: one per connection, so a
	// device that does not read cannot hold up the others.
	closers sync.WaitGroup
}

func (r *registry) add(c *conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *registry) remove(c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
}

func (r *registry) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopping = true
	for c := range r.conns {
		// The reason is set now, so that nothing closing the connection later (a handler
		// whose context the stop cancels) sends another close frame first.
		if !c.setReason(stopping) {
			continue
		}
		r.closers.Add(1)
		go func() {
			defer r.closers.Done()
			c.sendClose(websocket.CloseGoingAway, stopping)
		}()
	}
}
