package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/linkops/linkops/cluster"
	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/logs"
)

// Raft is what the API needs from the cluster package.
type Raft interface {
	Apply(ctx context.Context, cmd []byte) (any, error)
	Leader() (addr, id string)
	State() raft.RaftState
	LastContact() time.Time
	Snapshot() (io.ReadCloser, error)
	Restore(r io.Reader, size int64) error

	// Consistency and forwarding.
	LeaderAPIAddr(ctx context.Context) (id, addr string, err error)
	ReadIndex(ctx context.Context) (uint64, error)
	LeaderReadIndex(ctx context.Context) (uint64, error)
	WaitApplied(ctx context.Context, index uint64) error

	// Membership.
	Nodes(ctx context.Context) ([]cluster.NodeStatus, error)
	RemoveNode(id string) error
	Status() cluster.PeerStatus
	VerifyRequest(r *http.Request) error
	SignRequest(r *http.Request)
	Authenticated() bool

	// Fan-out of node-local data (cluster.FanOut) and calls to one node.
	Peers() []cluster.Member
	LocalID() string
	CallNode(ctx context.Context, id string, call cluster.Call, out any) error
	StreamNode(ctx context.Context, id string, call cluster.Call) (*http.Response, error)
}

// Config assembles a Server.
type Config struct {
	// NodeID is this node's id.
	NodeID string
	Raft   Raft
	Store  *fsm.Store
	// Logs is this node's access and system log store.
	Logs *logs.Store
	// Listeners is this node's data plane: listener status and debug events.
	Listeners Listeners
	// Sessions is this node's device sessions: downlinks, reports, message streams.
	Sessions Sessions
	Logger   *slog.Logger
	Registry *prometheus.Registry
	// TokenTTL is how long login tokens last.
	TokenTTL time.Duration
	// TempDir receives uploaded snapshots while they are verified.
	TempDir string
	// MaxSnapshotBytes bounds an uploaded snapshot.
	MaxSnapshotBytes int64
	// RequestTimeout bounds waiting for a leader, forwarding, and read barriers.
	RequestTimeout time.Duration
	// Now is the clock (tests move it); time.Now when nil.
	Now func() time.Time
	// Video is this node's GB/T 28181 side (channels of the cameras registered here).
	Video Video
	// OTA is this node's firmware side; without it the firmware routes answer 503.
	OTA OTA
	// FirmwareMaxBytes bounds an uploaded firmware file (DefaultFirmwareMaxBytes when 0).
	FirmwareMaxBytes int64
	// PublicURL is the base URL devices and browsers reach this node at; "" means the
	// scheme and host of each request.
	PublicURL string
	// Callbacks is this node's cloud side; without it the callback routes answer 503.
	Callbacks Callbacks
	// Gateways is this node's side of gateway status; without it the route is absent.
	Gateways Gateways
}

// Limits on request bodies (SPEC §3).
const (
	DefaultBodyLimit        = 1 << 20
	DefaultMaxSnapshotBytes = 4 << 30
	DefaultRequestTimeout   = 7 * time.Second
)

// Access is the least a caller needs to use a route.
type Access int

const (
	// Public routes need no token.
	Public Access = iota
	// Viewer routes need any valid token.
	Viewer
	// Admin routes need an admin's token.
	Admin
	// Internal routes are node-to-node calls signed with the cluster key.
	Internal
)

// Route describes one endpoint: the router, the auth middleware and the OpenAPI document
// are all built from this one table, so they cannot disagree.
type Route struct {
	Method  string
	Path    string // echo syntax: /api/v1/certificates/:id
	Access  Access
	Summary string
	Tag     string
	// Request and Response are sample values whose types describe the bodies (nil: none).
	Request  any
	Response any
	// RequestContentTypes lists the request media types when they are not just JSON.
	RequestContentTypes []string
	// Status is the success status (200 when zero).
	Status int
	// Timeout bounds a forwarded request (2 × RequestTimeout when zero).
	Timeout time.Duration
	// BodyLimit overrides DefaultBodyLimit.
	BodyLimit int64
	// Raw marks bodies that are not JSON (snapshots, metrics).
	Raw bool
	// Local routes are answered by the node that receives them from its own state, never
	// forwarded nor held for a read barrier (health, metrics, internal calls).
	Local bool
	// ReadOnly marks a POST that only reads (login): it gets a read barrier, not forwarding.
	ReadOnly bool
	handler  echo.HandlerFunc
}

// Server is the HTTP API of one node.
type Server struct {
	cfg     Config
	log     *slog.Logger
	echo    *echo.Echo
	routes  []*Route
	metrics *httpMetrics
	proxy   *httputil.ReverseProxy
	tokens  tokenCache

	routeIndexOnce sync.Once
	routeIndex     map[string]*Route
}

// New builds the API server and its routes.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxSnapshotBytes == 0 {
		cfg.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.FirmwareMaxBytes == 0 {
		cfg.FirmwareMaxBytes = DefaultFirmwareMaxBytes
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "api")}
	s.proxy = s.newLeaderProxy()
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The client's address is the connection's: X-Forwarded-For and X-Real-IP are the
	// client's own words, and the access log must not record a forged address.
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = s.errorHandler
	s.echo = e
	s.metrics = newHTTPMetrics(cfg.Registry)
	e.Use(s.recoverMiddleware, s.metrics.middleware, s.accessLog)

	s.registerAuthRoutes()
	s.registerClusterRoutes()
	s.registerUserRoutes()
	s.registerCertificateRoutes()
	s.registerOperationRoutes()
	s.registerLogRoutes()
	s.registerListenerRoutes()
	s.registerDeviceRoutes()
	s.registerVideoRoutes()
	s.registerFirmwareRoutes()
	s.registerTaskRoutes()
	s.registerCallbackRoutes()
	s.registerGatewayStatusRoutes()
	s.registerOpenAPIRoute()
	s.registerInternalRoutes()
	s.registerOTAInternalRoutes()
	return s
}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Routes returns the route table, for tests and the OpenAPI document.
func (s *Server) Routes() []*Route { return s.routes }

// Echo exposes the router so tests can compare it with the route table.
func (s *Server) Echo() *echo.Echo { return s.echo }

// add registers a route with its auth and body-limit middleware.
func (s *Server) add(r *Route, h echo.HandlerFunc) {
	r.handler = h
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	limit := r.BodyLimit
	if limit == 0 {
		limit = DefaultBodyLimit
	}
	s.routes = append(s.routes, r)
	s.echo.Add(r.Method, r.Path, h, s.bodyLimit(limit), s.authenticate(r.Access), s.consistency(r))
}

func (s *Server) now() time.Time { return s.cfg.Now().UTC() }

// recoverMiddleware turns a panic in a handler into a 500 and a log line, not a dead node.
func (s *Server) recoverMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.Error("handler panicked", "method", c.Request().Method, "path", c.Path(), "panic", r)
				err = problem(http.StatusInternalServerError, "internal_error", "internal error; see the node's system log")
			}
		}()
		return next(c)
	}
}

// bodyLimit refuses bodies over limit with 413, both when Content-Length says so up front
// and when a streamed body grows past it.
func (s *Server) bodyLimit(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.ContentLength > limit {
				return problem(http.StatusRequestEntityTooLarge, "body_too_large", "request body of %d bytes exceeds the limit of %d bytes", req.ContentLength, limit)
			}
			req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
			return next(c)
		}
	}
}

// isWrite reports whether a method changes state.
func isWrite(method string) bool {
	switch strings.ToUpper(method) {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}
