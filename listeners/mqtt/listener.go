package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/resource"
)

// Timeouts, read once per Serve; tests shorten them.
var (
	// ConnectTimeout bounds the time from accept to a complete CONNECT, TLS handshake
	// included: mochi would otherwise wait for a CONNECT forever.
	ConnectTimeout = 10 * time.Second
	// WriteTimeout bounds each write to a client, so that a device that stops reading
	// cannot hold a downlink (or mochi's lock on that client) for longer.
	WriteTimeout = 10 * time.Second
)

const (
	// listenerID is the listener name mochi files our clients under (one per broker).
	listenerID = "linkops"
	// readBufferSize is each connection's bufio.Reader: the biggest fixed cost of an idle
	// connection we control. A packet larger than it is still read whole (mochi reads the
	// remaining length into its own slice).
	readBufferSize = 1024
	// writesPending sizes mochi's per-client outbound channel (8 bytes a slot; its default
	// of 8192 slots is 64 KiB per client). Nothing is routed, so it stays empty.
	writesPending = 16
	// receiveMaximum bounds the QoS 2 PUBLISHes a client may leave unreleased (each holds
	// a PUBREC in memory); QoS 1 is acknowledged and released at once.
	receiveMaximum = 128
	// maxInflight bounds stored outbound QoS>0 messages (we send QoS 0 only).
	maxInflight = 16
	// maxSubscriptions caps the filters one client may make us store.
	maxSubscriptions = resource.MaxTopics
)

// Listener serves MQTT_SERVER components: one mochi broker per component.
type Listener struct{}

// server is one component's running broker and the connections it accepted.
type server struct {
	ctx    context.Context
	env    *listeners.Env
	broker *mochi.Server
	tls    *tls.Config
	limit  int // maxMessageSize: the largest packet, in bytes

	connectTimeout, writeTimeout time.Duration

	mu       sync.Mutex
	conns    map[*conn]struct{}
	byID     map[string]*conn // the live connection of each client id (see takeOver)
	stopping bool
	wg       sync.WaitGroup // one per tracked connection
}

// Serve binds the component's address and serves MQTT until ctx ends.
func (Listener) Serve(ctx context.Context, spec listeners.Spec, env *listeners.Env) error {
	cfg := spec.Config
	s := &server{ctx: ctx, env: env, limit: packetLimit(cfg.MaxMessageSize), conns: map[*conn]struct{}{}, byID: map[string]*conn{},
		connectTimeout: ConnectTimeout, writeTimeout: WriteTimeout}
	if cfg.Secure {
		if spec.TLS == nil {
			return fmt.Errorf("mqtt: secure, but certificate %q is not loaded", cfg.CertID)
		}
		s.tls = spec.TLS.ServerConfig()
	}
	host := cfg.Host
	if host == "" {
		host = resource.DefaultBindHost
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return err
	}
	if err := s.startBroker(); err != nil {
		ln.Close()
		return err
	}
	env.Bound(ln.Addr().String())

	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		s.accept(listeners.RetryAccept(ln, env))
	}()
	<-ctx.Done()
	ln.Close()
	<-accepted
	s.stop()
	return nil
}

// packetLimit is maxMessageSize as validation leaves it (default 8192, 64 B to 256 MiB),
// clamped so that unvalidated input cannot turn the limit off.
func packetLimit(size int) int {
	if size <= 0 {
		size = resource.DefaultMaxMessageSize
	}
	return min(max(size, 64), resource.MaxMQTTMessageSize)
}

// maxRemaining is the largest remaining length of a packet of at most limit bytes in all
// (1 type byte + 1-4 length bytes + remaining). mochi compares remaining+1 with its
// MaximumPacketSize, so that is what it is given.
func maxRemaining(limit int) int {
	best := 0
	for lb, top := 1, 128; lb <= 4; lb, top = lb+1, top*128 {
		if r := min(limit-1-lb, top-1); r > best {
			best = r
		}
	}
	return best
}

func (s *server) startBroker() error {
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(maxRemaining(s.limit) + 1)
	caps.MaximumClientWritesPending = writesPending
	caps.ReceiveMaximum = receiveMaximum
	caps.MaximumInflight = maxInflight
	// No persistent sessions: nothing is queued for an absent device, and a disconnected
	// client is forgotten at once instead of after mochi's default of 136 years.
	caps.MaximumSessionExpiryInterval = 0
	// mochi never advertises topic aliases; allowing them would let one client store
	// 65535 topics.
	caps.TopicAliasMaximum = 0
	s.broker = mochi.New(&mochi.Options{
		Capabilities:            caps,
		ClientNetReadBufferSize: readBufferSize,
		// $SYS topics are never published again: nobody may subscribe to them, and each
		// publication reads runtime.MemStats, which stops the world.
		SysTopicResendInterval: math.MaxInt32,
		Logger:                 slog.New(errorsOnly{s.env.Log.With("component", s.env.ComponentID).Handler()}),
	})
	if err := s.broker.AddHook(&hook{s: s}, nil); err != nil {
		return fmt.Errorf("mqtt: %w", err)
	}
	if err := s.broker.Serve(); err != nil {
		return fmt.Errorf("mqtt: %w", err)
	}
	return nil
}

// accept hands each connection to its own goroutine until the listener is closed
// (RetryAccept never gives up for any other reason).
func (s *server) accept(ln net.Listener) {
	for {
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		c := s.track(raw)
		if c == nil {
			raw.Close()
			return
		}
		go s.serve(c)
	}
}

// track registers a connection, or returns nil once stopping; the WaitGroup is added to
// under the lock that stop takes, so stop's Wait never races an Add.
func (s *server) track(raw net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil
	}
	c := newConn(s, raw)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c
}

func (s *server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.id != "" && s.byID[c.id] == c {
		delete(s.byID, c.id)
	}
	s.mu.Unlock()
	s.wg.Done()
}

// serve runs one connection from accept to its end, on this goroutine: TLS handshake,
// then mochi's CONNECT, hooks and read loop, then the session's Closed.
func (s *server) serve(c *conn) {
	defer s.untrack(c)
	// Covers the TLS handshake and the CONNECT; mochi replaces the read deadline by the
	// client's keepalive once the CONNECT is read.
	_ = c.w.raw.SetDeadline(time.Now().Add(s.connectTimeout))
	if s.tls != nil {
		tc := tls.Server(c.w.raw, s.tls)
		if err := tc.HandshakeContext(s.ctx); err != nil {
			s.env.Error("tls_handshake")
			s.env.Log.Debug("mqtt: TLS handshake failed", "component", s.env.ComponentID, "remote", c.w.raw.RemoteAddr(), "error", err)
			c.w.raw.Close()
			return
		}
		c.w.Conn = tc
	}
	c.finish(s.establish(c))
}

// establish runs mochi on the connection. A panic in mochi's decoding of one client's
// bytes ends that client, not the node.
func (s *server) establish(c *conn) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.env.Error("panic")
			s.env.Log.Error("mqtt: panic serving a connection", "component", s.env.ComponentID,
				"remote", c.w.raw.RemoteAddr(), "panic", r, "stack", string(debug.Stack()))
			c.w.raw.Close()
			if cl := c.client(); cl != nil {
				if cur, ok := s.broker.Clients.Get(cl.ID); ok && cur == cl {
					s.broker.Clients.Delete(cl.ID)
				}
			}
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return s.broker.EstablishConnection(listenerID, &c.w)
}

// stop closes every connection, waits until each has ended (and its session was
// closed), then stops the broker's own goroutines. Sockets are closed without a
// DISCONNECT: writing one to a stalled client could hold the stop for WriteTimeout each.
func (s *server) stop() {
	s.mu.Lock()
	s.stopping = true
	for c := range s.conns {
		c.Close("listener stopped")
	}
	s.mu.Unlock()
	s.wg.Wait()
	_ = s.broker.Close()
}

// errorsOnly passes on mochi's errors and drops the rest: it logs a warning for every
// connection with a short keepalive and for every bad packet, which devices would turn
// into a flood; what matters is counted with env.Error instead.
type errorsOnly struct{ slog.Handler }

func (h errorsOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError && h.Handler.Enabled(ctx, l)
}

func (h errorsOnly) WithAttrs(a []slog.Attr) slog.Handler { return errorsOnly{h.Handler.WithAttrs(a)} }
func (h errorsOnly) WithGroup(n string) slog.Handler      { return errorsOnly{h.Handler.WithGroup(n)} }

// takeOver records c as its client id's connection and closes the one it replaces.
// mochi takes sessions over itself, but not reliably: inheritClientSession disconnects the
// old client before marking it taken over, so the old client's clean-up can delete the
// new client from mochi's map, and the next connection with that id then leaves an
// orphan connected (seen under load with 20 quick reconnects). This registry is ours
// and updated under one lock, so exactly one connection per client id survives.
//
// The key is mochi's client id, which it assigns itself when a CONNECT has an empty one:
// clients without an id never take each other over.
func (s *server) takeOver(c *conn, id string) {
	s.mu.Lock()
	c.id = id
	old := s.byID[id]
	s.byID[id] = c
	s.mu.Unlock()
	if old != nil && old != c {
		old.Close(takenOverReason)
	}
}
