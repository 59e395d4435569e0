package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/linkops/linkops/internal/coarse"
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
	// readBufferSize is mochi's bufio.Reader of each connection, bufio's smallest: the
	// bytes reach it from a buffer that only a connection with unread data holds
	// (socketReader), or from tls.Conn's record buffer. A packet is still read whole
	// (mochi reads the remaining length into its own slice).
	readBufferSize = 16
	// writesPending sizes mochi's per-client outbound channel, the queue of its write loop
	// (8 bytes a slot; its default of 8192 slots is 64 KiB per client). Nothing is routed
	// and no write loop runs (see session): a message mochi would queue is dropped.
	writesPending = 0
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
	hook   *hook
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
	s.hook = &hook{s: s}
	if err := s.broker.AddHook(s.hook, nil); err != nil {
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

// serve runs one connection from accept to its end, on this goroutine, which is the only
// one a connection has: TLS handshake, CONNECT and admission (open), then the read loop,
// then the session's Closed (end).
//
// This is mochi's EstablishConnection, driven by us with mochi's parts, for memory (SPEC
// §6 B4): mochi runs a write-loop goroutine per client (its outbound queue carries routed
// messages, and nothing is routed here) and waits for each packet three frames deep in
// attachClient, about 5 KiB of stack that keeps every idle client's goroutine at 16 KiB.
// Here an idle client waits in the loop below, in ReadFixedHeader, with nothing under it
// but this frame: a stack that uses under a quarter of itself is halved at each GC, so
// whatever depth the CONNECT, the handler's Open or a packet reached, an idle connection
// is back to a 4 KiB stack after two or three GCs. That holds while what is on the stack
// at the wait (this frame, bufio, net, the poller: about 1.1 KiB, plus the runtime's
// 800-byte guard) stays under 2 KiB, which leaves a few hundred bytes: anything this loop
// needs besides the fixed header belongs in handlePacket, and TLS (whose Read adds about
// 0.8 KiB) idles at 8 KiB.
//
// What attachClient does that matters here is done the same way: the CONNECT is read,
// parsed and validated with mochi's functions and answered with its SendConnack; every
// later packet goes through mochi's InjectPacket, which is attachClient's processPacket
// (a QoS 0 PUBLISH through publishQoS0, the part of it such a message needs);
// a v5 protocol error gets mochi's DISCONNECT. What is left out is what this broker
// switched off or does itself: wills, kept sessions and their inflight resend, $SYS
// counters, and mochi's client map and session takeover (takeOver replaces them).
func (s *server) serve(c *conn) {
	var cl *mochi.Client
	var err error
	defer func() { s.end(c, cl, err, recover()) }()
	if cl, err = s.open(c); err != nil {
		return
	}
	for !cl.Closed() {
		refreshDeadline(cl, c)
		var fh packets.FixedHeader
		if err = cl.ReadFixedHeader(&fh); err != nil {
			return
		}
		if err = handlePacket(s, cl, &fh); err != nil {
			return
		}
	}
}

// open runs the TLS handshake and the CONNECT with its admission; cl is nil if no client
// was made. The deadline covers both; the read loop replaces the read deadline by the
// client's keepalive.
//
//go:noinline
func (s *server) open(c *conn) (cl *mochi.Client, err error) {
	_ = c.w.raw.SetDeadline(time.Now().Add(s.connectTimeout))
	if s.tls != nil {
		tc := tls.Server(c.w.raw, s.tls)
		if err := tc.HandshakeContext(s.ctx); err != nil {
			s.env.Error("tls_handshake")
			s.env.Log.Debug("mqtt: TLS handshake failed", "component", s.env.ComponentID, "remote", c.w.raw.RemoteAddr(), "error", err)
			return nil, errTLSHandshake
		}
		c.w.Conn = tc
	} else {
		c.w.in = newSocketReader(c.w.raw)
	}
	cl = s.broker.NewClient(&c.w, listenerID, "", false)
	return cl, s.connect(c, cl)
}

// errTLSHandshake ends a connection whose TLS handshake failed (counted and logged then).
var errTLSHandshake = errors.New("mqtt: TLS handshake failed")

// end is the connection's clean-up, whatever ended it: a panic in mochi's decoding of
// one client's bytes ends that client, not the node.
func (s *server) end(c *conn, cl *mochi.Client, err error, panicked any) {
	defer s.untrack(c)
	if panicked != nil {
		s.env.Error("panic")
		s.env.Log.Error("mqtt: panic serving a connection", "component", s.env.ComponentID,
			"remote", c.w.raw.RemoteAddr(), "panic", panicked, "stack", string(debug.Stack()))
		err = fmt.Errorf("internal error: %v", panicked)
	}
	if errors.Is(err, errTLSHandshake) {
		c.w.raw.Close()
		return
	}
	if cl == nil {
		c.w.raw.Close()
	} else {
		cl.Stop(err) // closes the socket; the first cause is kept (a DISCONNECT's, a Close's)
		cl.ClearInflights()
		s.broker.UnsubscribeClient(cl)
	}
	c.finish(err)
}

// connect reads the CONNECT, has the Handler admit it (hook.admit) and sends the
// CONNACK, as mochi's attachClient does up to its read loop.
func (s *server) connect(c *conn, cl *mochi.Client) error {
	var fh packets.FixedHeader
	if err := cl.ReadFixedHeader(&fh); err != nil {
		return fmt.Errorf("read connection: %w", err)
	}
	if fh.Type != packets.Connect {
		return fmt.Errorf("read connection: %w", packets.ErrProtocolViolationRequireFirstConnect) // [MQTT-3.1.0-1]
	}
	pk, err := cl.ReadPacket(&fh)
	if err != nil {
		return fmt.Errorf("read connection: %w", err)
	}
	cl.ParseConnect(listenerID, pk)
	if code := s.validateConnect(cl, pk); code != packets.CodeSuccess {
		if err := s.broker.SendConnack(cl, code, false, nil); err != nil {
			return fmt.Errorf("invalid connection send ack: %w", err)
		}
		return code
	}
	if err := s.hook.admit(c, cl, pk); err != nil {
		return err
	}
	if err := s.broker.SendConnack(cl, packets.CodeSuccess, false, nil); err != nil {
		return fmt.Errorf("ack connection packet: %w", err)
	}
	c.connacked()
	return nil
}

// validateConnect is mochi's (unexported) check of a CONNECT, against our capabilities.
func (s *server) validateConnect(cl *mochi.Client, pk packets.Packet) packets.Code {
	if code := pk.ConnectValidate(); code != packets.CodeSuccess { // [MQTT-3.1.4-1] [MQTT-3.1.4-2]
		return code
	}
	caps := s.broker.Options.Capabilities
	switch {
	case cl.Properties.ProtocolVersion < 5 && !pk.Connect.Clean && pk.Connect.ClientIdentifier == "":
		return packets.ErrUnspecifiedError
	case cl.Properties.ProtocolVersion < caps.MinimumProtocolVersion:
		return packets.ErrUnsupportedProtocolVersion // [MQTT-3.1.2-2]
	case cl.Properties.Will.Qos > caps.MaximumQos:
		return packets.ErrQosNotSupported // [MQTT-3.2.2-12]
	case cl.Properties.Will.Retain && caps.RetainAvailable == 0:
		return packets.ErrRetainNotSupported // [MQTT-3.2.2-13]
	}
	return packets.CodeSuccess
}

// refreshDeadline gives the client one and a half keepalives for its next packet
// [MQTT-3.1.2-22]; keepalive 0 means none. Moving a socket deadline costs more than
// decoding a small PUBLISH, so a client that sends many packets a second has it moved at
// most every sixth of its keepalive (and at least every second): its deadline is then
// between 1.25 and 1.5 keepalives after its last packet.
func refreshDeadline(cl *mochi.Client, c *conn) {
	ka := time.Duration(cl.State.Keepalive) * time.Second
	// The coarse clock: a deadline a few milliseconds late does not matter, a system
	// call per packet does.
	now := coarse.Now().UnixNano()
	if c.deadlineSet != 0 && (ka == 0 || now-c.deadlineSet < int64(min(ka/6, time.Second))) {
		return
	}
	c.deadlineSet = now
	var t time.Time
	if ka > 0 {
		t = time.Unix(0, now).Add(ka * 3 / 2)
	}
	_ = cl.Net.Conn.SetDeadline(t)
}

// handlePacket reads the rest of a packet and has mochi process it (processPacket,
// through InjectPacket), except a QoS 0 PUBLISH (publishQoS0); a v5 client's protocol
// error gets a DISCONNECT with its reason first, as mochi's receivePacket does.
//
//go:noinline
func handlePacket(s *server, cl *mochi.Client, fh *packets.FixedHeader) error {
	pk, err := cl.ReadPacket(fh)
	if err != nil {
		return err
	}
	if fh.Type == packets.Publish && fh.Qos == 0 {
		err = s.publishQoS0(cl, &pk)
	} else {
		err = s.broker.InjectPacket(cl, pk)
	}
	if err != nil {
		if code, ok := err.(packets.Code); ok && cl.Properties.ProtocolVersion == 5 && code.Code >= packets.ErrUnspecifiedError.Code {
			_ = s.broker.DisconnectClient(cl, code)
		}
		return err
	}
	return nil
}

// publishQoS0 is mochi's processPublish for what nearly all device traffic is, a QoS 0
// PUBLISH, without the steps that do nothing for it here: the same validation
// (PublishValidate; a topic that is no valid topic name is dropped), then the Session.
// What it leaves out: the write ACL (ours allows every write), inflight and receive
// quota (QoS 1 and 2 only), topic aliases (TopicAliasMaximum 0, so PublishValidate
// refuses them), and retaining and routing (a device's message goes to its Session
// only). B4 measured mochi's part of a QoS 0 report at about a fifth of the node's CPU
// (its Hooks.OnPublish copies the packet, 800 bytes, in and out of every hook).
func (s *server) publishQoS0(cl *mochi.Client, pk *packets.Packet) error {
	if code := pk.PublishValidate(s.broker.Options.Capabilities.TopicAliasMaximum); code != packets.CodeSuccess {
		return code
	}
	if !mochi.IsValidFilter(pk.TopicName, true) {
		return nil
	}
	s.hook.deliver(cl, pk)
	return nil
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
// mochi's own takeover (inheritClientSession, in the EstablishConnection we do not use)
// was not reliable: it disconnects the old client before marking it taken over, so the
// old client's clean-up could delete the new client from mochi's map, and the next
// connection with that id then left an orphan connected (seen under load with 20 quick
// reconnects). This registry is ours and updated under one lock, so exactly one
// connection per client id survives; mochi's client map is not used at all.
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
