package sip

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/session"
)

func init() {
	// sipgo refuses to write a UDP message over UDPMTUSize-200 bytes (its issue #206);
	// GB/T 28181 messages (Catalog answers, SDP) pass 1300 bytes, and UDP carries up to
	// 64 KiB, fragmented by IP.
	sip.UDPMTUSize = 65507
}

// Backoff of a SIP server that failed to bind.
var (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 5 * time.Second
)

// TCPIdleTimeout closes a SIP TCP connection silent this long (a device sends keepalives
// every 60 s by default).
var TCPIdleTimeout = 10 * time.Minute

// Config assembles a Service.
type Config struct {
	NodeID   string
	Store    *fsm.Store
	Sessions *session.Manager
	Metrics  *Metrics
	Log      *slog.Logger
	Now      func() time.Time
	// CallEnded hears of every video call that ended without Bye being asked: the camera
	// sent BYE, unregistered or went silent, or the gateway stopped here.
	CallEnded func(deviceID, channelID, reason string)
}

// Service keeps this node's SIP servers equal to the replicated state, the way
// listeners.Supervisor keeps components: on every change of the gateways it reads (one
// fsm.View) it starts what is missing, restarts a server only when its sockets changed,
// and stops what is no longer enabled here. It also holds the devices registered on this
// node and their channels.
type Service struct {
	cfg   Config
	log   *slog.Logger
	mu    sync.Mutex
	units map[string]*unit
	wg    sync.WaitGroup

	devMu   sync.Mutex
	devices map[string]*device
	nonces  map[string]nonce
	sn      int
	calls   map[string]*Call // by dialog id
}

// spec is what one gateway runs on this node; its sockets are all a restart depends on
// (the other settings are read from the store on each request).
type spec struct {
	GatewayID string
	Host      string
	Port      int
	Public    string
}

func (s spec) addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// New returns a service that runs nothing until Run.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, log: cfg.Log.With("component", "sip"), units: map[string]*unit{},
		devices: map[string]*device{}, nonces: map[string]nonce{}, calls: map[string]*Call{}}
}

// desired reads which SIP servers this node must run, by gateway id.
func desired(v *fsm.View, nodeID string) map[string]spec {
	out := map[string]spec{}
	for _, o := range v.List(resource.Gateways) {
		g := o.(*resource.Gateway)
		if g.Provider != resource.ProviderGB28181 || g.State != resource.StateEnabled || g.Configuration == nil {
			continue
		}
		c, ok := g.Configuration.SIPPlacement().For(nodeID)
		if !ok {
			continue
		}
		host := c.Host
		if host == "" {
			host = resource.DefaultBindHost
		}
		out[g.ID] = spec{GatewayID: g.ID, Host: host, Port: c.Port, Public: c.PublicHost}
	}
	return out
}

// Run reconciles until ctx ends, then stops every server and waits for them.
func (s *Service) Run(ctx context.Context) {
	defer s.stopAll()
	go s.prune(ctx)
	for {
		v := s.cfg.Store.View()
		s.reconcile(ctx, desired(v, s.cfg.NodeID))
		if err := v.WatchSet().WatchCtx(ctx); err != nil {
			return
		}
	}
}

func (s *Service) reconcile(ctx context.Context, want map[string]spec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, u := range s.units {
		w, ok := want[id]
		if ok && w == u.spec {
			continue
		}
		s.log.Info("stopping SIP server", "gateway", id, "reason", map[bool]string{true: "sockets changed", false: "no longer runs here"}[ok])
		u.stop()
		delete(s.units, id)
		s.forgetGateway(id)
	}
	for id, sp := range want {
		if _, ok := s.units[id]; ok {
			continue
		}
		s.units[id] = s.start(ctx, sp)
	}
}

// liveServer is the gateway's SIP server while it serves on this node.
func (s *Service) liveServer(gatewayID string) *server {
	s.mu.Lock()
	u := s.units[gatewayID]
	s.mu.Unlock()
	if u == nil {
		return nil
	}
	return u.live.Load()
}

// States of a gateway's SIP server on this node (Status), as listeners name a component's.
const (
	StateRunning       = "running"
	StateFailed        = "failed"
	StateStopped       = "stopped"
	StateNotConfigured = "not_configured"
)

// Status is a gateway's SIP server on this node; Registered counts the cameras registered
// through it here.
type Status struct {
	State, Error, Address string
	Registered            int64
	Since                 *time.Time
}

// Status is this node's SIP server of gateway g (GET /api/v1/gateways/{id}/status):
// running with its address, failed with the bind error, stopped when g is disabled,
// not_configured when its per-node configuration has no entry for this node.
func (s *Service) Status(g *resource.Gateway) Status {
	st := Status{State: StateStopped}
	if !g.Enabled() || g.Configuration == nil {
		return st
	}
	if _, ok := g.Configuration.SIPPlacement().For(s.cfg.NodeID); !ok {
		st.State = StateNotConfigured
		return st
	}
	s.mu.Lock()
	u := s.units[g.ID]
	s.mu.Unlock()
	if u == nil {
		return st // not reconciled yet
	}
	u.statusMu.Lock()
	defer u.statusMu.Unlock()
	st.State, st.Error, st.Address = u.state, u.err, u.address
	if st.State == "" {
		st.State = StateStopped
	}
	if !u.since.IsZero() {
		since := u.since
		st.Since = &since
	}
	s.devMu.Lock()
	for _, d := range s.devices {
		if d.gatewayID == g.ID && s.cfg.Sessions.Get(d.id) == d.sess {
			st.Registered++
		}
	}
	s.devMu.Unlock()
	return st
}

func (s *Service) stopAll() {
	s.mu.Lock()
	for id, u := range s.units {
		u.stop()
		delete(s.units, id)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// forgetGateway takes the devices of a gateway whose server stopped offline.
func (s *Service) forgetGateway(id string) {
	if n := s.cfg.Sessions.CloseGateway(id); n > 0 {
		s.log.Info("closed the sessions of a SIP gateway that stopped here", "gateway", id, "sessions", n)
	}
	s.devMu.Lock()
	for did, d := range s.devices {
		if d.gatewayID == id {
			delete(s.devices, did)
		}
	}
	s.devMu.Unlock()
	s.endCalls(func(c *Call) bool { return c.GatewayID == id }, "the gateway stopped on this node")
}

// prune drops the devices whose session ended (silence, a kick) from time to time.
func (s *Service) prune(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.cfg.Now()
		s.devMu.Lock()
		gone := map[string]bool{}
		for id, d := range s.devices {
			if s.cfg.Sessions.Get(id) != d.sess {
				delete(s.devices, id)
				gone[id] = true
			}
		}
		for _, c := range s.calls {
			if s.devices[c.DeviceID] == nil {
				gone[c.DeviceID] = true
			}
		}
		for id, n := range s.nonces {
			if now.After(n.expires) {
				delete(s.nonces, id)
			}
		}
		s.devMu.Unlock()
		if len(gone) > 0 {
			s.endCalls(func(c *Call) bool { return gone[c.DeviceID] }, "the camera went offline")
		}
	}
}

// Channels is the catalog of a device registered on this node, by channel id; false
// when the device is not registered here.
func (s *Service) Channels(deviceID string) ([]Channel, bool) {
	s.devMu.Lock()
	defer s.devMu.Unlock()
	d := s.devices[deviceID]
	if d == nil || s.cfg.Sessions.Get(deviceID) != d.sess {
		return nil, false
	}
	out := make([]Channel, 0, len(d.channels))
	for _, c := range d.channels {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ChannelID < out[j].ChannelID })
	return out, true
}

// unit is one gateway's SIP server on this node.
type unit struct {
	spec   spec
	cancel context.CancelFunc
	done   chan struct{}
	live   atomic.Pointer[server] // while it serves

	statusMu            sync.Mutex
	state, err, address string
	since               time.Time
}

// set records the unit's state; since moves only when the state or error changes.
func (u *unit) set(state string, err error, address string) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	u.statusMu.Lock()
	defer u.statusMu.Unlock()
	if u.state != state || u.err != msg {
		u.since = time.Now().UTC()
	}
	u.state, u.err, u.address = state, msg, address
}

func (u *unit) stop() {
	u.cancel()
	<-u.done
}

func (s *Service) start(parent context.Context, sp spec) *unit {
	ctx, cancel := context.WithCancel(parent)
	u := &unit{spec: sp, cancel: cancel, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(u.done)
		s.run(ctx, u)
	}()
	return u
}

// run serves the unit until ctx ends, retrying a failure to bind with backoff.
func (s *Service) run(ctx context.Context, u *unit) {
	log := s.log.With("gateway", u.spec.GatewayID, "address", u.spec.addr())
	backoff := MinBackoff
	for ctx.Err() == nil {
		err := s.serve(ctx, u, log)
		if ctx.Err() != nil {
			return
		}
		u.set(StateFailed, err, "")
		log.Warn("SIP server failed; retrying", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, MaxBackoff)
	}
}

// gateway reads an enabled GB28181 gateway from the store (nil: gone or disabled).
func (s *Service) gateway(id string) *resource.Gateway {
	o, err := s.cfg.Store.Get(resource.Gateways, id)
	if err != nil {
		return nil
	}
	g := o.(*resource.Gateway)
	if g.State != resource.StateEnabled || g.Configuration == nil {
		return nil
	}
	return g
}

// keepaliveTimeout is how long a device of g stays online without a keepalive.
func keepaliveTimeout(g *resource.Gateway) time.Duration {
	if g.Configuration != nil && g.Configuration.KeepaliveTimeoutSeconds > 0 {
		return time.Duration(g.Configuration.KeepaliveTimeoutSeconds) * time.Second
	}
	return resource.DefaultKeepaliveTimeoutSeconds * time.Second
}

func (s *Service) nextSN() int {
	s.devMu.Lock()
	defer s.devMu.Unlock()
	s.sn++
	return s.sn
}

// errStopped: sipgo returned from serving a socket that was not closed.
var errStopped = errors.New("the SIP server stopped by itself")
