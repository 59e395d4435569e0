package listeners

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

// Status states of a component on one node (SPEC §4.3.1).
const (
	StateRunning       = "running"
	StateFailed        = "failed"
	StateStopped       = "stopped"
	StateNotConfigured = "not_configured"
	StateUnreachable   = "unreachable"
)

// Status is one node's answer for one component.
type Status struct {
	ServerID    string     `json:"serverId"`
	State       string     `json:"state"`
	Error       string     `json:"error"`
	Address     string     `json:"address"`
	Connections int64      `json:"connections"`
	Since       *time.Time `json:"since"` // null until the state first changed here
}

// Backoff bounds of a listener that failed (SPEC §4.3.1: capped at 5 s).
var (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 5 * time.Second
)

// SupervisorConfig assembles a Supervisor.
type SupervisorConfig struct {
	NodeID string
	Store  *fsm.Store
	// Types maps each component type to its implementation: one explicit table.
	Types map[string]Listener
	// Handler returns what serves a component's connections (nil: NoGateway for all).
	Handler     func(componentID string) Handler
	Hub         *Hub
	Metrics     *Metrics
	Log         *slog.Logger
	AllowRemote []netip.Prefix
}

// Supervisor keeps this node's listeners equal to the replicated state: on every change of
// the components or certificates it reads (one fsm.View), it starts what is missing,
// restarts what changed, stops what went away, and swaps certificates in place. A listener
// that fails is retried with backoff until it binds or the state changes. It is the
// node-local reconcile loop of DATAPLANE.md (Nomad's client diffAllocs is the model).
type Supervisor struct {
	cfg   SupervisorConfig
	log   *slog.Logger
	mu    sync.Mutex
	units map[string]*unit
	wg    sync.WaitGroup
}

// NewSupervisor returns a supervisor that runs nothing until Run.
func NewSupervisor(cfg SupervisorConfig) *Supervisor {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Handler == nil {
		cfg.Handler = func(string) Handler { return NoGateway{} }
	}
	return &Supervisor{cfg: cfg, log: cfg.Log.With("component", "listeners"), units: map[string]*unit{}}
}

// Run reconciles until ctx ends, then stops every listener and waits for them.
func (s *Supervisor) Run(ctx context.Context) {
	defer s.stopAll()
	for {
		v := s.cfg.Store.View()
		s.reconcile(ctx, Desired(v, s.cfg.NodeID, s.cfg.AllowRemote))
		if err := v.WatchSet().WatchCtx(ctx); err != nil {
			return
		}
	}
}

func (s *Supervisor) reconcile(ctx context.Context, desired map[string]Spec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, u := range s.units {
		want, ok := desired[id]
		if ok && want.Fingerprint() == u.fingerprint && u.reloadCert(want) {
			continue
		}
		s.log.Info("stopping listener", "network", id, "reason", map[bool]string{true: "configuration changed", false: "no longer runs here"}[ok])
		u.stop()
		delete(s.units, id)
		if !ok {
			s.cfg.Metrics.Forget(id)
		}
	}
	for id, spec := range desired {
		if _, ok := s.units[id]; ok {
			continue
		}
		s.units[id] = s.start(ctx, spec)
	}
}

// ComponentStatus is what this node says about component c.
func (s *Supervisor) ComponentStatus(c *resource.NetworkComponent) Status {
	st := Status{ServerID: s.cfg.NodeID, State: StateStopped}
	if _, ok := c.Placement().For(s.cfg.NodeID); !ok {
		st.State = StateNotConfigured
		return st
	}
	if c.State != resource.StateEnabled {
		return st
	}
	s.mu.Lock()
	u := s.units[c.ID]
	s.mu.Unlock()
	if u == nil {
		return st // enabled a moment ago: the supervisor has not seen it yet
	}
	return u.status(s.cfg.NodeID)
}

func (s *Supervisor) stopAll() {
	s.mu.Lock()
	for id, u := range s.units {
		u.stop()
		delete(s.units, id)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// unit is one component's listener on this node and its honest state.
type unit struct {
	spec        Spec
	fingerprint string
	cancel      context.CancelFunc
	done        chan struct{}

	mu      sync.Mutex
	state   string
	err     string
	addr    string
	since   time.Time
	env     *Env
	running time.Time
}

func (u *unit) set(state, err, addr string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.state != state || u.err != err {
		u.since = time.Now().UTC()
	}
	u.state, u.err, u.addr = state, err, addr
	if state == StateRunning {
		u.running = time.Now()
	}
}

func (u *unit) status(node string) Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	st := Status{ServerID: node, State: u.state, Error: u.err, Address: u.addr}
	if u.state == "" {
		st.State = StateStopped // starting: not listening yet
	}
	if !u.since.IsZero() {
		since := u.since
		st.Since = &since
	}
	if u.env != nil {
		st.Connections = u.env.Connections()
	}
	return st
}

func (u *unit) stop() {
	u.cancel()
	<-u.done
}

// reloadCert swaps in the certificate of an unchanged spec, so new handshakes use it. It
// reports false when the unit must be restarted instead: its certificate never loaded.
func (u *unit) reloadCert(want Spec) bool {
	if want.cert == nil {
		return u.spec.cert == nil
	}
	if u.spec.TLS == nil {
		return false
	}
	if err := u.spec.TLS.Update(want.cert); err != nil {
		u.mu.Lock()
		u.err = fmt.Sprintf("certificate %s does not load; still serving the previous one: %v", want.cert.ID, err)
		u.mu.Unlock()
	}
	return true
}

func (s *Supervisor) start(parent context.Context, spec Spec) *unit {
	if spec.cert != nil {
		spec.TLS, spec.certErr = NewTLSSource(spec.cert)
	}
	ctx, cancel := context.WithCancel(parent)
	u := &unit{spec: spec, fingerprint: spec.Fingerprint(), cancel: cancel, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(u.done)
		s.run(ctx, u)
	}()
	return u
}

// run serves the unit's listener until ctx ends, retrying failures with backoff.
func (s *Supervisor) run(ctx context.Context, u *unit) {
	id := u.spec.ComponentID
	log := s.log.With("network", id, "type", u.spec.Type)
	impl := s.cfg.Types[u.spec.Type]
	backoff := MinBackoff
	m := s.cfg.Metrics.component(id)
	defer m.up(false)
	for ctx.Err() == nil {
		err := prepare(u.spec, impl)
		if err == nil {
			env := NewEnv(id, s.cfg.NodeID, s.cfg.Handler(id), s.cfg.Hub, s.cfg.Metrics, log, func(addr string) {
				u.set(StateRunning, "", addr)
				log.Info("listener running", "address", addr)
			})
			u.mu.Lock()
			u.env = env
			u.mu.Unlock()
			err = impl.Serve(ctx, u.spec, env)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				err = errors.New("the listener stopped by itself")
			}
		}
		m.up(false)
		m.error("serve")
		u.mu.Lock()
		ran := !u.running.IsZero() && time.Since(u.running) > 10*MaxBackoff
		u.running = time.Time{}
		u.mu.Unlock()
		if ran {
			backoff = MinBackoff // it served a good while: a new failure, not the same one again
		}
		u.set(StateFailed, err.Error(), "")
		log.Warn("listener failed; retrying", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, MaxBackoff)
	}
}

// prepare checks what a listener needs before it can start: an implementation, and for a
// secure component its certificate loaded.
func prepare(spec Spec, impl Listener) error {
	switch {
	case impl == nil:
		return fmt.Errorf("this node has no listener for type %s", spec.Type)
	case spec.certErr != nil:
		return spec.certErr
	case spec.Config.Secure && spec.TLS == nil:
		return errors.New("secure is set but no certificate is named")
	}
	return nil
}
