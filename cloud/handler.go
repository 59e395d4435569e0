package cloud

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/session"
)

// Refusals of a callback; the API answers each with its status.
var (
	// ErrNoGateway: no enabled cloud gateway has this id (404 no_gateway).
	ErrNoGateway = errors.New("no enabled cloud gateway with this id")
	// ErrUnauthorized: a missing or wrong token or signature (401).
	ErrUnauthorized = errors.New("the push is not signed for this gateway")
	// ErrBadBody: the body is not the platform's format (400).
	ErrBadBody = errors.New("malformed push")
	// ErrMethod: the platform never sends this method to this gateway (405).
	ErrMethod = errors.New("method not used by this platform")
)

// Outcomes of linkops_callbacks_total.
const (
	OutcomeOK            = "ok"
	OutcomeUnauthorized  = "unauthorized"
	OutcomeBadBody       = "bad_body"
	OutcomeUnknownDevice = "unknown_device"
	OutcomeCodecError    = "codec_error"
)

// ReasonOffline closes a device's session when its platform reports it offline.
const ReasonOffline = "reported offline by its cloud platform"

// Config assembles a Handler.
type Config struct {
	Store    *fsm.Store
	Sessions *session.Manager
	Registry prometheus.Registerer
	Log      *slog.Logger
	// PoolSize is the number of sandboxes per uploaded codec (0: protocol's default).
	PoolSize int
}

// Handler answers the callbacks of this node's copy of the cloud gateways.
type Handler struct {
	cfg      Config
	log      *slog.Logger
	outcomes *prometheus.CounterVec

	mu     sync.Mutex
	codecs map[string]*compiled // by protocol id
}

// compiled is one protocol version's pool, or why it could not be compiled.
type compiled struct {
	version string
	pool    *protocol.Pool
	err     error
}

// New assembles a Handler.
func New(cfg Config) *Handler {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	h := &Handler{cfg: cfg, log: cfg.Log, codecs: map[string]*compiled{},
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_callbacks_total",
			Help: "Cloud platform pushes received, by gateway and outcome (ok, unauthorized, bad_body, unknown_device, codec_error)."},
			[]string{"gateway", "outcome"})}
	cfg.Registry.MustRegister(h.outcomes)
	return h
}

// Callback answers one request at a gateway's callbackUrl: the body of a 200, or an error
// wrapping ErrNoGateway, ErrUnauthorized, ErrBadBody or ErrMethod.
func (h *Handler) Callback(ctx context.Context, gatewayID, method, remote string, query url.Values, body []byte) ([]byte, error) {
	o, err := h.cfg.Store.Get(resource.Gateways, gatewayID)
	if err != nil {
		return nil, fmt.Errorf("%w: %q", ErrNoGateway, gatewayID)
	}
	g := o.(*resource.Gateway)
	if g.State != resource.StateEnabled || (g.Provider != resource.ProviderCtwing && g.Provider != resource.ProviderOneNet) {
		return nil, fmt.Errorf("%w: %q is not an enabled Ctwing or OneNet gateway", ErrNoGateway, gatewayID)
	}
	c := g.Configuration
	if c == nil {
		c = &resource.GatewayConfig{}
	}
	var out []byte
	var outcome string
	if g.Provider == resource.ProviderCtwing {
		outcome, err = h.ctwing(ctx, g, method, remote, query, body)
	} else {
		out, outcome, err = h.onenet(ctx, g, c, method, remote, query, body)
	}
	if outcome != "" {
		h.outcomes.WithLabelValues(g.ID, outcome).Inc()
	}
	return out, err
}

func (h *Handler) ctwing(ctx context.Context, g *resource.Gateway, method, remote string, query url.Values, body []byte) (string, error) {
	token := query.Get("token")
	if g.CallbackToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(g.CallbackToken)) != 1 {
		return OutcomeUnauthorized, fmt.Errorf("%w: the callback token is missing or wrong", ErrUnauthorized)
	}
	if method != http.MethodPost {
		return "", fmt.Errorf("%w: CTWing POSTs its pushes", ErrMethod)
	}
	p, err := ParseCTWing(body)
	if err != nil {
		return OutcomeBadBody, err
	}
	d, prod, err := h.device(g, p.DeviceID)
	if err != nil {
		h.log.Info("cloud push dropped", "gateway", g.ID, "device", p.DeviceID, "reason", err.Error())
		return OutcomeUnknownDevice, nil
	}
	if p.Online != nil {
		s := h.seen(g, d, prod, remote)
		if !*p.Online {
			h.cfg.Sessions.Closed(s, ReasonOffline)
		}
		return OutcomeOK, nil
	}
	return h.decode(ctx, g, p.DeviceID, remote, p.Bytes), nil
}

func (h *Handler) onenet(ctx context.Context, g *resource.Gateway, c *resource.GatewayConfig, method, remote string, query url.Values, body []byte) ([]byte, string, error) {
	switch method {
	case http.MethodGet:
		// The URL check: answered with msg when signed (SPEC §5.3).
		msg := query.Get("msg")
		if err := VerifyOneNet(c.NotifyToken, query.Get("nonce"), msg, query.Get("signature")); err != nil {
			return nil, OutcomeUnauthorized, err
		}
		return []byte(msg), "", nil
	case http.MethodPost:
	default:
		return nil, "", fmt.Errorf("%w: OneNET checks with GET and pushes with POST", ErrMethod)
	}
	p, err := ParseOneNet(body)
	if err != nil {
		return nil, OutcomeBadBody, err
	}
	if err := VerifyOneNet(c.NotifyToken, p.Nonce, p.Msg, p.Signature); err != nil {
		return nil, OutcomeUnauthorized, err
	}
	msg, err := DecryptOneNet(c.AESKey, p.Msg)
	if err != nil {
		return nil, OutcomeBadBody, err
	}
	return nil, h.decode(ctx, g, oneNetDevice(msg), remote, []byte(msg)), nil
}

// decode runs the gateway's protocol on one push and delivers what it says; it returns the
// outcome to count (the platform gets 200 whatever it is).
func (h *Handler) decode(ctx context.Context, g *resource.Gateway, deviceID, remote string, b []byte) string {
	pool, err := h.pool(g)
	if err != nil {
		h.log.Warn("cloud push not decoded: the gateway's protocol cannot be loaded", "gateway", g.ID, "protocol", g.Protocol, "error", err)
		return OutcomeCodecError
	}
	msgs, errs, err := pool.Decode(ctx, protocol.DecodeInput{Transport: g.Transport, URL: resource.CallbackPath(g.ID),
		Bytes: b, DeviceID: deviceID, Session: map[string]any{}})
	if err != nil {
		h.log.Info("cloud push not decoded", "gateway", g.ID, "device", deviceID, "error", err.Error())
		return OutcomeCodecError
	}
	if len(errs) > 0 {
		h.log.Info("codec reported errors", "gateway", g.ID, "device", deviceID, "errors", strings.Join(errs, "; "))
	}
	outcome := OutcomeOK
	if len(msgs) == 0 && len(errs) > 0 {
		outcome = OutcomeCodecError
	}
	for _, m := range msgs {
		if !protocol.IsUp(m.Type) {
			outcome = OutcomeCodecError
			continue
		}
		if m.DeviceID == "" {
			m.DeviceID = deviceID
		}
		d, p, err := h.device(g, m.DeviceID)
		if err != nil {
			h.log.Info("cloud push dropped", "gateway", g.ID, "device", m.DeviceID, "reason", err.Error())
			outcome = OutcomeUnknownDevice
			continue
		}
		h.cfg.Sessions.Receive(h.seen(g, d, p, remote), "", m)
	}
	return outcome
}

var errUnknownDevice = errors.New("not a registered device of a product of this gateway")

// device is a registered device of a product of gateway g.
func (h *Handler) device(g *resource.Gateway, id string) (*resource.Device, *resource.Product, error) {
	if id == "" {
		return nil, nil, fmt.Errorf("%w: the push names no device", errUnknownDevice)
	}
	o, err := h.cfg.Store.Get(resource.Devices, id)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %q", errUnknownDevice, id)
	}
	d := o.(*resource.Device)
	po, err := h.cfg.Store.Get(resource.Products, d.ProductID)
	if err != nil || po.(*resource.Product).GatewayID != g.ID {
		return nil, nil, fmt.Errorf("%w: %q", errUnknownDevice, id)
	}
	return d, po.(*resource.Product), nil
}

// seen is the device's connectionless session on this node (no downlink: the platforms'
// APIs are not called).
func (h *Handler) seen(g *resource.Gateway, d *resource.Device, p *resource.Product, remote string) *session.Session {
	return h.cfg.Sessions.Seen(d.ID, g.ID, remote, nil, func() *session.Session {
		return &session.Session{DeviceID: d.ID, ProductID: p.ID, GatewayID: g.ID, Transport: g.Transport, Remote: remote,
			KeepOnline: time.Duration(g.KeepOnline()) * time.Second}
	})
}

// pool is the gateway's protocol, compiled once per version (its raft index and
// generation) and shared by the gateways using it.
func (h *Handler) pool(g *resource.Gateway) (*protocol.Pool, error) {
	o, err := h.cfg.Store.Get(resource.Protocols, g.Protocol)
	if err != nil {
		return nil, fmt.Errorf("protocol %q does not exist", g.Protocol)
	}
	p := o.(*resource.Protocol)
	version := fmt.Sprintf("%d/%d", p.Index, p.Generation)
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.codecs[p.ID]
	if c == nil || c.version != version {
		c = &compiled{version: version}
		pkg, err := protocol.Load(p)
		if err == nil {
			c.pool, err = protocol.NewPool(pkg, h.cfg.PoolSize)
		}
		c.err = err
		h.codecs[p.ID] = c
	}
	return c.pool, c.err
}
