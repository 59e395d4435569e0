package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/session"
)

// Config assembles a Runtime.
type Config struct {
	NodeID   string
	Store    *fsm.Store
	Sessions *session.Manager
	Metrics  *Metrics
	Log      *slog.Logger
	// PoolSize is the number of sandboxes per uploaded codec (0: protocol's default).
	PoolSize int
	Now      func() time.Time
}

// Runtime is this node's gateways: the table that maps components to gateways and codecs,
// kept in step with the replicated state.
type Runtime struct {
	cfg   Config
	log   *slog.Logger
	table atomic.Pointer[table]

	mu       sync.Mutex
	handlers map[string]*handler
	// codecs caches compiled protocols by id and version (raft index, generation).
	codecs map[string]*compiled
}

// compiled is one protocol version's codec, or why it could not be compiled.
type compiled struct {
	version string
	pool    *protocol.Pool
	err     error
}

// table is one immutable reading of the gateways.
type table struct {
	// byComponent lists the enabled gateways using each component.
	byComponent map[string][]*gw
	byID        map[string]*gw
}

// gw is one enabled gateway with what its connections need.
type gw struct {
	g          *resource.Gateway
	transport  string
	codec      codec
	keepOnline time.Duration
}

// New assembles a Runtime; Run keeps its table current.
func New(cfg Config) *Runtime {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Runtime{cfg: cfg, log: cfg.Log, handlers: map[string]*handler{}, codecs: map[string]*compiled{}}
	r.table.Store(&table{byComponent: map[string][]*gw{}, byID: map[string]*gw{}})
	return r
}

// Handler returns the listeners.Handler of a component: stable for the component's life,
// it reads the current table on every connection.
func (r *Runtime) Handler(componentID string) listeners.Handler {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.handlers[componentID]
	if h == nil {
		h = &handler{rt: r, componentID: componentID}
		r.handlers[componentID] = h
	}
	return h
}

// Run rebuilds the table whenever gateways, products, protocols or components change,
// until ctx ends.
func (r *Runtime) Run(ctx context.Context) {
	for {
		v := r.cfg.Store.View()
		next := r.build(v)
		old := r.table.Swap(next)
		for id := range old.byID {
			if _, still := next.byID[id]; !still {
				if n := r.cfg.Sessions.CloseGateway(id); n > 0 {
					r.log.Info("closed the sessions of a gateway that is no longer enabled", "gateway", id, "sessions", n)
				}
			}
		}
		if err := v.WatchSet().WatchCtx(ctx); err != nil {
			return
		}
	}
}

// build reads one table from the view; it compiles the protocols that changed.
func (r *Runtime) build(v *fsm.View) *table {
	t := &table{byComponent: map[string][]*gw{}, byID: map[string]*gw{}}
	v.List(resource.Products) // watched: a product's gatewayId moves devices between gateways
	protocols := map[string]*resource.Protocol{}
	for _, o := range v.List(resource.Protocols) {
		p := o.(*resource.Protocol)
		protocols[p.ID] = p
	}
	components := map[string]*resource.NetworkComponent{}
	for _, o := range v.List(resource.NetworkComponents) {
		c := o.(*resource.NetworkComponent)
		components[c.ID] = c
	}
	used := map[string]bool{}
	for _, o := range v.List(resource.Gateways) {
		g := o.(*resource.Gateway)
		if g.State != resource.StateEnabled || g.Channel != resource.ChannelNetwork || g.ChannelID == "" {
			continue
		}
		c := components[g.ChannelID]
		if c == nil {
			continue
		}
		transport := listeners.TransportOf(c.Type)
		p := protocols[g.Protocol]
		if p == nil {
			r.log.Warn("gateway refuses devices: its protocol does not exist", "gateway", g.ID, "protocol", g.Protocol)
			continue
		}
		cd, err := r.codecFor(p, g, transport, used)
		if err != nil {
			r.log.Error("gateway refuses devices: its protocol cannot be loaded", "gateway", g.ID, "protocol", p.ID, "error", err)
			continue
		}
		entry := &gw{g: g, transport: transport, codec: cd, keepOnline: time.Duration(g.KeepOnline()) * time.Second}
		t.byID[g.ID] = entry
		t.byComponent[g.ChannelID] = append(t.byComponent[g.ChannelID], entry)
	}
	r.mu.Lock()
	for id := range r.codecs {
		if !used[id] {
			delete(r.codecs, id)
		}
	}
	r.mu.Unlock()
	return t
}

// codecFor returns the codec of a protocol on a transport, compiling an uploaded one once
// per version.
func (r *Runtime) codecFor(p *resource.Protocol, g *resource.Gateway, transport string, used map[string]bool) (codec, error) {
	if p.Builtin && p.ID == resource.OfficialProtocolID {
		return officialCodec(transport, g, r.cfg.Now), nil
	}
	version := fmt.Sprintf("%d/%d", p.Index, p.Generation)
	used[p.ID] = true
	r.mu.Lock()
	c := r.codecs[p.ID]
	r.mu.Unlock()
	if c == nil || c.version != version {
		c = &compiled{version: version}
		pkg, err := protocol.Load(p)
		if err == nil {
			c.pool, err = protocol.NewPool(pkg, r.cfg.PoolSize)
		}
		c.err = err
		r.mu.Lock()
		r.codecs[p.ID] = c
		r.mu.Unlock()
		if err == nil {
			r.log.Info("protocol loaded", "protocol", p.ID, "version", version, "sandboxes", c.pool.Size())
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	return &scriptCodec{pool: c.pool, transport: transport, metrics: r.cfg.Metrics, protocolID: p.ID}, nil
}

// current is the table now.
func (r *Runtime) current() *table { return r.table.Load() }

// Gateway returns an enabled gateway served on this node, if any.
func (r *Runtime) Gateway(id string) *resource.Gateway {
	if g := r.current().byID[id]; g != nil {
		return g.g
	}
	return nil
}
