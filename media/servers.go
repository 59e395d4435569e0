package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

// HealthInterval is how often every enabled server's health is checked.
const HealthInterval = 10 * time.Second

// Servers is this node's view of the media servers: their health and the choice of one
// for a play.
type Servers struct {
	store  *fsm.Store
	log    *slog.Logger
	health *prometheus.GaugeVec
	// newClient makes the API client of a server (tests may point it elsewhere).
	newClient func(*resource.MediaServer) *Client

	mu      sync.Mutex
	healthy map[string]error // server id -> nil (healthy) or the last error
	next    map[string]int   // server id -> next port of its dynamic range to try
}

// NewServers follows the media servers of store; reg receives linkops_media_server_up.
func NewServers(store *fsm.Store, reg prometheus.Registerer, log *slog.Logger) *Servers {
	if log == nil {
		log = slog.Default()
	}
	s := &Servers{store: store, log: log, newClient: NewClient, healthy: map[string]error{}, next: map[string]int{},
		health: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "linkops_media_server_up",
			Help: "1 when the media server's API answered its last health check from this node"}, []string{"server"})}
	if reg != nil {
		reg.MustRegister(s.health)
	}
	return s
}

// Run checks every enabled server's health every HealthInterval until ctx ends.
func (s *Servers) Run(ctx context.Context) {
	t := time.NewTicker(HealthInterval)
	defer t.Stop()
	for {
		s.checkAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Servers) checkAll(ctx context.Context) {
	for _, m := range s.enabled() {
		s.check(ctx, m)
	}
}

// check asks one server's health and records it.
func (s *Servers) check(ctx context.Context, m *resource.MediaServer) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := s.newClient(m).Health(cctx)
	s.mu.Lock()
	was, known := s.healthy[m.ID]
	s.healthy[m.ID] = err
	s.mu.Unlock()
	up := 0.0
	if err == nil {
		up = 1
	}
	s.health.WithLabelValues(m.ID).Set(up)
	if !known || (was == nil) != (err == nil) {
		if err != nil {
			s.log.Warn("media server unhealthy", "server", m.ID, "error", err)
		} else {
			s.log.Info("media server healthy", "server", m.ID)
		}
	}
	return err
}

// Health is the last health check of a server (nil: healthy; ErrUnhealthy wrapped; or an
// error saying it was never checked).
func (s *Servers) Health(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err, ok := s.healthy[id]
	if !ok {
		return fmt.Errorf("%w: not checked yet", ErrUnhealthy)
	}
	return err
}

func (s *Servers) enabled() []*resource.MediaServer {
	objs, _ := s.store.List(resource.MediaServers)
	var out []*resource.MediaServer
	for _, o := range objs {
		if m := o.(*resource.MediaServer); m.Enabled() {
			out = append(out, m)
		}
	}
	return out
}

// Pick chooses one enabled server at random among those that answer a health check now
// (the manual: 随机选择一个可用的流媒体服务).
func (s *Servers) Pick(ctx context.Context) (*resource.MediaServer, error) {
	servers := s.enabled()
	rand.Shuffle(len(servers), func(i, j int) { servers[i], servers[j] = servers[j], servers[i] })
	var errs []error
	for _, m := range servers {
		if err := s.check(ctx, m); err != nil {
			errs = append(errs, err)
			continue
		}
		return m, nil
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("%w: none is enabled", ErrNoMediaServer)
	}
	return nil, fmt.Errorf("%w: %w", ErrNoMediaServer, errors.Join(errs...))
}

// Port is the RTP port a stream was given on a server; Opened says whether closing the
// stream must call closeRtpServer.
type Port struct {
	Port   int
	Opened bool
}

// OpenPort gives stream an RTP port on m: a free port of dynamicRtpPortRange through
// openRtpServer; else the single-port proxy on rtpPort, where streams are told apart by
// their SSRC and nothing is opened; else a port the server picks.
func (s *Servers) OpenPort(ctx context.Context, m *resource.MediaServer, stream string) (Port, error) {
	cfg := m.Configuration
	c := s.newClient(m)
	switch {
	case len(cfg.DynamicRTPPortRange) == 2:
		lo, hi := cfg.DynamicRTPPortRange[0], cfg.DynamicRTPPortRange[1]
		n := hi - lo + 1
		s.mu.Lock()
		start := s.next[m.ID]
		s.next[m.ID] = (start + 1) % n
		s.mu.Unlock()
		var last error
		for i := 0; i < n && i < 20; i++ { // a busy port is refused; try the next few
			port := lo + (start+i)%n
			got, err := c.OpenRtpServer(ctx, stream, port)
			if err == nil {
				return Port{Port: got, Opened: true}, nil
			}
			last = err
			if ctx.Err() != nil {
				break
			}
		}
		return Port{}, last
	case cfg.RTPPort != 0:
		return Port{Port: cfg.RTPPort}, nil
	default:
		got, err := c.OpenRtpServer(ctx, stream, 0)
		return Port{Port: got, Opened: err == nil}, err
	}
}

// ClosePort closes what OpenPort opened.
func (s *Servers) ClosePort(ctx context.Context, m *resource.MediaServer, stream string, p Port) error {
	if !p.Opened {
		return nil
	}
	return s.newClient(m).CloseRtpServer(ctx, stream)
}
