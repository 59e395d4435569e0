package modbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/session"
)

// Failure rule of SPEC §5.3: a device silent for FailuresOffline polls in a row, spanning
// at least OfflineAfter, goes offline.
const (
	FailuresOffline = 3
	OfflineAfter    = 10 * time.Second
	// Transport names the sessions this package opens.
	Transport = "modbus-tcp"
)

// States of a gateway on this node (GET /api/v1/gateways/{id}/status).
const (
	StateRunning = "running"
	StateStandby = "standby"
	StateFailed  = "failed"
)

// Codes of a refused write (writePropertyReply code).
const (
	CodeReadOnly        = "read_only"
	CodeUnknownProperty = "unknown_property"
	CodeInvalidValue    = "invalid_value"
	CodeDeviceError     = "device_error"
)

// Errors of the poller.
var (
	// ErrNoDevice: configuration.deviceId names no device of a product of the gateway yet.
	ErrNoDevice = errors.New("the gateway's device does not exist")
	// ErrNotPolling: this node does not poll the gateway (a downlink raced a leadership move).
	ErrNotPolling = errors.New("this node does not poll the gateway")
)

// Config assembles a Service.
type Config struct {
	NodeID   string
	Store    *fsm.Store
	Sessions *session.Manager
	Metrics  *Metrics
	Log      *slog.Logger
	// Timeout bounds one Modbus request (default 2 s, at most the poll interval).
	Timeout time.Duration
}

// Service is this node's side of the modbus-tcp gateways: the pollers while this node
// leads, and its status of each gateway.
type Service struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	pollers map[string]*poller
}

// New assembles a Service; nothing polls until Run.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	return &Service{cfg: cfg, log: cfg.Log.With("component", "modbus"), pollers: map[string]*poller{}}
}

// Run is the leader routine: it polls every enabled modbus-tcp gateway until ctx ends
// (leadership lost or the node stopping), then stops every poller and closes their
// sessions.
func (s *Service) Run(ctx context.Context) {
	type running struct {
		p      *poller
		key    string
		cancel context.CancelFunc
		done   chan struct{}
	}
	active := map[string]*running{}
	stop := func(id string) {
		r := active[id]
		r.cancel()
		<-r.done
		delete(active, id)
		s.mu.Lock()
		if s.pollers[id] == r.p {
			delete(s.pollers, id)
		}
		s.mu.Unlock()
	}
	defer func() {
		for id := range active {
			stop(id)
		}
	}()
	for {
		objs, ws := s.cfg.Store.List(resource.Gateways)
		want := map[string]bool{}
		for _, o := range objs {
			g := o.(*resource.Gateway)
			if g.Provider != resource.ProviderModbusTCP || !g.Enabled() || g.Configuration == nil {
				continue
			}
			want[g.ID] = true
			b, _ := json.Marshal(g.Configuration)
			key := string(b)
			if r := active[g.ID]; r != nil {
				if r.key == key {
					continue
				}
				stop(g.ID) // a new configuration: a new poller, a new session
			}
			p := s.newPoller(g)
			pctx, cancel := context.WithCancel(ctx)
			r := &running{p: p, key: key, cancel: cancel, done: make(chan struct{})}
			active[g.ID] = r
			s.mu.Lock()
			s.pollers[g.ID] = p
			s.mu.Unlock()
			go func() { defer close(r.done); p.run(pctx) }()
			s.log.Info("polling a Modbus TCP device", "gateway", g.ID, "address", p.addr, "device", p.cfg.DeviceID, "points", len(p.cfg.Points))
		}
		for id := range active {
			if !want[id] {
				stop(id)
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = ws.WatchCtx(wctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// Status is this node's state of a modbus-tcp gateway: running or failed where it polls,
// standby elsewhere.
func (s *Service) Status(g *resource.Gateway) listeners.Status {
	s.mu.Lock()
	p := s.pollers[g.ID]
	s.mu.Unlock()
	if p == nil {
		return listeners.Status{ServerID: s.cfg.NodeID, State: StateStandby}
	}
	return p.status()
}

// poller polls one gateway's device.
type poller struct {
	svc  *Service
	g    *resource.Gateway
	cfg  resource.GatewayConfig
	addr string

	// io serializes the connection: polls and writes take turns.
	io     sync.Mutex
	client *mb.ModbusClient
	open   bool

	mu       sync.Mutex
	state    string
	err      string
	since    time.Time
	sess     *session.Session
	failures int
	firstErr time.Time
}

func (s *Service) newPoller(g *resource.Gateway) *poller {
	c := *g.Configuration
	if c.PollIntervalMs <= 0 {
		c.PollIntervalMs = resource.DefaultPollIntervalMs
	}
	port := c.Port
	if port == 0 {
		port = 502
	}
	return &poller{svc: s, g: g, cfg: c, addr: net.JoinHostPort(c.Host, strconv.Itoa(port)), state: StateRunning, since: time.Now().UTC()}
}

func (p *poller) status() listeners.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	since := p.since
	return listeners.Status{ServerID: p.svc.cfg.NodeID, State: p.state, Error: p.err, Address: p.addr, Since: &since}
}

func (p *poller) setState(state, errText string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != state || p.err != errText {
		if p.state != state {
			p.since = time.Now().UTC()
		}
		p.state, p.err = state, errText
	}
}

func (p *poller) interval() time.Duration {
	return time.Duration(p.cfg.PollIntervalMs) * time.Millisecond
}

func (p *poller) run(ctx context.Context) {
	t := time.NewTicker(p.interval())
	defer t.Stop()
	defer p.shutdown()
	for {
		p.pollOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// shutdown closes the connection and the device's session here.
func (p *poller) shutdown() {
	p.io.Lock()
	p.closeClient()
	p.io.Unlock()
	p.mu.Lock()
	s := p.sess
	p.sess = nil
	p.mu.Unlock()
	if s != nil {
		p.svc.cfg.Sessions.Closed(s, "this node no longer polls the gateway")
	}
}

// device is the gateway's device and its product, when registered on this gateway.
func (p *poller) device() (*resource.Device, *resource.Product, error) {
	if p.cfg.DeviceID == "" {
		return nil, nil, fmt.Errorf("%w: configuration.deviceId is not set", ErrNoDevice)
	}
	o, err := p.svc.cfg.Store.Get(resource.Devices, p.cfg.DeviceID)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: device %q is not registered yet", ErrNoDevice, p.cfg.DeviceID)
	}
	d := o.(*resource.Device)
	po, err := p.svc.cfg.Store.Get(resource.Products, d.ProductID)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: the product %q of device %q is gone", ErrNoDevice, d.ProductID, d.ID)
	}
	pr := po.(*resource.Product)
	if pr.GatewayID != p.g.ID {
		return nil, nil, fmt.Errorf("%w: device %q is of product %q, which uses gateway %q", ErrNoDevice, d.ID, pr.ID, pr.GatewayID)
	}
	return d, pr, nil
}

func (p *poller) pollOnce(ctx context.Context) {
	start := time.Now()
	d, pr, err := p.device()
	if err != nil {
		p.svc.cfg.Metrics.poll(p.g.ID, OutcomeNoDevice, start)
		p.setState(StateFailed, err.Error())
		p.offline(err.Error())
		return
	}
	values, err := p.readAll(ctx)
	if err != nil {
		p.svc.cfg.Metrics.poll(p.g.ID, OutcomeError, start)
		p.failed(err)
		return
	}
	p.svc.cfg.Metrics.poll(p.g.ID, OutcomeOK, start)
	p.mu.Lock()
	p.failures = 0
	p.mu.Unlock()
	p.setState(StateRunning, "")
	s := p.session(d, pr)
	p.svc.cfg.Sessions.Receive(s, "", protocol.Message{Type: protocol.TypeReportProperty, DeviceID: d.ID,
		Timestamp: time.Now().UnixMilli(), Properties: values})
}

// failed counts an unanswered poll; the third in a row, at least OfflineAfter after the
// first, turns the device offline.
func (p *poller) failed(err error) {
	now := time.Now()
	p.mu.Lock()
	if p.failures == 0 {
		p.firstErr = now
	}
	p.failures++
	down := p.failures >= FailuresOffline && now.Sub(p.firstErr) >= OfflineAfter
	p.mu.Unlock()
	if down {
		p.setState(StateFailed, err.Error())
		p.offline(err.Error())
	}
	p.svc.log.Debug("Modbus poll failed", "gateway", p.g.ID, "address", p.addr, "error", err)
}

// offline closes the device's session, if open.
func (p *poller) offline(reason string) {
	p.mu.Lock()
	s := p.sess
	p.sess = nil
	p.mu.Unlock()
	if s != nil {
		p.svc.cfg.Sessions.Closed(s, reason)
		p.svc.log.Info("Modbus device offline", "gateway", p.g.ID, "device", s.DeviceID, "reason", reason)
	}
}

// session is the device's live session here, opened on the first answered poll (and again
// after a kick or an offline).
func (p *poller) session(d *resource.Device, pr *resource.Product) *session.Session {
	s := p.svc.cfg.Sessions.Seen(d.ID, p.g.ID, p.addr, p.send, func() *session.Session {
		return &session.Session{DeviceID: d.ID, ProductID: pr.ID, GatewayID: p.g.ID, Transport: Transport,
			Remote: p.addr, Send: p.send}
	})
	p.mu.Lock()
	p.sess = s
	p.mu.Unlock()
	return s
}

// connect opens the client if needed; the caller holds p.io.
func (p *poller) connect() error {
	if p.client == nil {
		timeout := min(p.svc.cfg.Timeout, p.interval())
		c, err := mb.NewClient(&mb.ClientConfiguration{URL: "tcp://" + p.addr, Timeout: timeout,
			Logger: log.New(io.Discard, "", 0)})
		if err != nil {
			return err
		}
		if err := c.SetUnitId(uint8(p.cfg.UnitID)); err != nil {
			return err
		}
		p.client = c
	}
	if !p.open {
		if err := p.client.Open(); err != nil {
			return err
		}
		p.open = true
	}
	return nil
}

// closeClient drops the connection (the next request opens a new one); p.io held.
func (p *poller) closeClient() {
	if p.client != nil && p.open {
		_ = p.client.Close()
	}
	p.open = false
}

// readAll reads every point.
func (p *poller) readAll(ctx context.Context) (map[string]any, error) {
	p.io.Lock()
	defer p.io.Unlock()
	if err := p.connect(); err != nil {
		return nil, err
	}
	out := make(map[string]any, len(p.cfg.Points))
	for _, pt := range p.cfg.Points {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		v, err := p.read(pt)
		if err != nil {
			p.closeClient()
			return nil, fmt.Errorf("reading %s (%s %d): %w", pt.Property, pt.Area, pt.Address, err)
		}
		out[pt.Property] = v
	}
	return out, nil
}

// read reads one point; p.io held.
func (p *poller) read(pt resource.ModbusPoint) (any, error) {
	addr := uint16(pt.Address)
	switch pt.Area {
	case AreaCoil:
		return p.client.ReadCoil(addr)
	case AreaDiscrete:
		return p.client.ReadDiscreteInput(addr)
	case AreaHolding, AreaInput:
		rt := mb.HOLDING_REGISTER
		if pt.Area == AreaInput {
			rt = mb.INPUT_REGISTER
		}
		regs, err := p.client.ReadRegisters(addr, uint16(Registers(pt.DataType)), rt)
		if err != nil {
			return nil, err
		}
		return DecodeRegisters(pt, regs)
	}
	return nil, fmt.Errorf("%w: unknown area %q", ErrBadValue, pt.Area)
}

func (p *poller) point(property string) (resource.ModbusPoint, bool) {
	for _, pt := range p.cfg.Points {
		if pt.Property == property {
			return pt, true
		}
	}
	return resource.ModbusPoint{}, false
}

// send answers the downlinks of the device's session: writes go to the device, reads
// are read from it, both answered as the device's reply.
func (p *poller) send(ctx context.Context, m protocol.Message) error {
	p.mu.Lock()
	s := p.sess
	p.mu.Unlock()
	if s == nil {
		return session.ErrOffline
	}
	var reply protocol.Message
	switch m.Type {
	case protocol.TypeWriteProperty:
		reply = p.write(m)
	case protocol.TypeReadProperty:
		reply = p.readNamed(ctx, m)
	default:
		return fmt.Errorf("%w (a Modbus channel takes property reads and writes, not %s)", session.ErrNoDownlink, m.Type)
	}
	reply.DeviceID, reply.MessageID, reply.Timestamp = m.DeviceID, m.MessageID, time.Now().UnixMilli()
	p.svc.cfg.Sessions.Receive(s, "", reply)
	return nil
}

func refused(typ, code string, err error) protocol.Message {
	no := false
	return protocol.Message{Type: typ, Success: &no, Code: code, Message: err.Error()}
}

// write stores every written property in its register or coil, in the order given.
func (p *poller) write(m protocol.Message) protocol.Message {
	typ := protocol.TypeWritePropertyReply
	// Check everything before writing anything.
	type op struct {
		pt   resource.ModbusPoint
		coil bool
		regs []uint16
	}
	ops := make([]op, 0, len(m.Properties))
	for name, v := range m.Properties {
		pt, ok := p.point(name)
		if !ok {
			return refused(typ, CodeUnknownProperty, fmt.Errorf("%q is not a point of gateway %s", name, p.g.ID))
		}
		o := op{pt: pt}
		var err error
		if pt.Area == AreaCoil {
			o.coil, err = EncodeCoil(pt, v)
		} else {
			o.regs, err = EncodeRegisters(pt, v)
		}
		switch {
		case errors.Is(err, ErrReadOnly):
			return refused(typ, CodeReadOnly, fmt.Errorf("%s is a %s point: %w", name, pt.Area, err))
		case err != nil:
			return refused(typ, CodeInvalidValue, fmt.Errorf("%s: %w", name, err))
		}
		ops = append(ops, o)
	}
	p.io.Lock()
	defer p.io.Unlock()
	if err := p.connect(); err != nil {
		return refused(typ, CodeDeviceError, err)
	}
	written := make(map[string]any, len(ops))
	for _, o := range ops {
		var err error
		if o.pt.Area == AreaCoil {
			err = p.client.WriteCoil(uint16(o.pt.Address), o.coil)
		} else {
			err = p.client.WriteRegisters(uint16(o.pt.Address), o.regs)
		}
		if err != nil {
			p.closeClient()
			return refused(typ, CodeDeviceError, fmt.Errorf("writing %s: %w", o.pt.Property, err))
		}
		// What the device now holds, as a poll would read it.
		if o.pt.Area == AreaCoil {
			written[o.pt.Property] = o.coil
		} else if v, err := DecodeRegisters(o.pt, o.regs); err == nil {
			written[o.pt.Property] = v
		}
	}
	yes := true
	return protocol.Message{Type: typ, Success: &yes, Properties: written}
}

// readNamed reads the named points (every point when none is named).
func (p *poller) readNamed(ctx context.Context, m protocol.Message) protocol.Message {
	typ := protocol.TypeReadPropertyReply
	if len(m.PropertyNames) == 0 {
		values, err := p.readAll(ctx)
		if err != nil {
			return refused(typ, CodeDeviceError, err)
		}
		yes := true
		return protocol.Message{Type: typ, Success: &yes, Properties: values}
	}
	p.io.Lock()
	defer p.io.Unlock()
	if err := p.connect(); err != nil {
		return refused(typ, CodeDeviceError, err)
	}
	out := map[string]any{}
	for _, name := range m.PropertyNames {
		pt, ok := p.point(name)
		if !ok {
			return refused(typ, CodeUnknownProperty, fmt.Errorf("%q is not a point of gateway %s", name, p.g.ID))
		}
		v, err := p.read(pt)
		if err != nil {
			p.closeClient()
			return refused(typ, CodeDeviceError, fmt.Errorf("reading %s: %w", name, err))
		}
		out[name] = v
	}
	yes := true
	return protocol.Message{Type: typ, Success: &yes, Properties: out}
}
