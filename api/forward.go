package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/cluster"
)

// ForwardedHeader marks a request one node forwarded to the leader, so that it is never
// forwarded twice (and, later, logged once).
const ForwardedHeader = "X-Linkops-Forwarded-By"

type leaderAddrKey struct{}

// consistency makes any node serve the whole API (SPEC §3):
//   - a write that reaches a follower is forwarded to the leader;
//   - a default or ?consistent read waits until this node has applied everything the
//     leader had committed when the read arrived (read index), so it sees every write
//     acknowledged before it by any node;
//   - ?stale answers from this node's state at once, with X-Last-Contact.
func (s *Server) consistency(r *Route) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if r.Local {
			return next
		}
		if isWrite(r.Method) && !r.ReadOnly {
			return func(c echo.Context) error {
				if s.cfg.Raft.State() == raft.Leader {
					return next(c)
				}
				return s.forward(c, r, next)
			}
		}
		return func(c echo.Context) error {
			if _, stale := c.QueryParams()["stale"]; stale {
				s.setLastContact(c)
				return next(c)
			}
			if err := s.readBarrier(c.Request().Context()); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// readBarrier waits until this node has applied the leader's read index.
func (s *Server) readBarrier(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	idx, err := s.cfg.Raft.ReadIndex(ctx)
	if err != nil {
		return err
	}
	return s.cfg.Raft.WaitApplied(ctx, idx)
}

func (s *Server) setLastContact(c echo.Context) {
	ms := int64(0)
	if s.cfg.Raft.State() != raft.Leader {
		if lc := s.cfg.Raft.LastContact(); !lc.IsZero() {
			ms = time.Since(lc).Milliseconds()
		}
	}
	_, leader := s.cfg.Raft.Leader()
	c.Response().Header().Set("X-Last-Contact", strconv.FormatInt(ms, 10))
	c.Response().Header().Set("X-Known-Leader", strconv.FormatBool(leader != ""))
}

// forward proxies the request, body and all, to the leader's API and relays its answer.
// Finding the leader is bounded by the request timeout; the proxied request by the route's
// own timeout, since some writes (a snapshot restore) take longer than a leader election.
func (s *Server) forward(c echo.Context, r *Route, local echo.HandlerFunc) error {
	req := c.Request()
	if by := req.Header.Get(ForwardedHeader); by != "" {
		return fmt.Errorf("%w: node %s forwarded this request here, but this node no longer leads", cluster.ErrNoLeader, by)
	}
	findCtx, cancelFind := context.WithTimeout(req.Context(), s.cfg.RequestTimeout)
	id, addr, err := s.cfg.Raft.LeaderAPIAddr(findCtx)
	cancelFind()
	if err != nil {
		return err
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 2 * s.cfg.RequestTimeout
	}
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	defer cancel()
	if id == s.cfg.NodeID {
		return local(c) // this node became the leader meanwhile
	}
	req = req.WithContext(context.WithValue(ctx, leaderAddrKey{}, addr))
	req.Header.Set(ForwardedHeader, s.cfg.NodeID)
	// Signed, so the leader knows a node (not a client) forwarded it and does not record
	// the request in its access log a second time.
	s.cfg.Raft.SignRequest(req)
	s.metrics.forwarded.Inc()
	s.proxy.ServeHTTP(c.Response(), req)
	return nil
}

func (s *Server) newLeaderProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			addr := pr.In.Context().Value(leaderAddrKey{}).(string)
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", addr, addr
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
		// Without a pool the proxy allocates a 32 KiB copy buffer per request: at thousands
		// of forwarded writes a second that is most of a follower's garbage.
		BufferPool: proxyBuffers{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p := s.forwardProblem(err)
			s.log.Warn("forwarding to the leader failed", "path", r.URL.Path, "error", err, "code", p.Code)
			writeProblem(w, r, p)
		},
	}
}

// forwardProblem decides what a failed forward means for the client: if the connection to
// the leader was never made, nothing happened (no_leader); once the request may have
// reached it, the outcome is unknown.
func (s *Server) forwardProblem(err error) *Problem {
	var mbe *http.MaxBytesError
	var op *net.OpError
	switch {
	case errors.As(err, &mbe):
		p, _ := toProblem(err)
		return p
	case errors.As(err, &op) && op.Op == "dial":
		p, _ := toProblem(fmt.Errorf("%w: the leader cannot be reached: %v", cluster.ErrNoLeader, err))
		return p
	}
	p, _ := toProblem(fmt.Errorf("%w: %v", cluster.ErrOutcomeUnknown, err))
	return p
}

// proxyBuffers recycles the reverse proxy's copy buffers.
type proxyBuffers struct{}

var proxyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (proxyBuffers) Get() []byte  { return *(proxyBufferPool.Get().(*[]byte)) }
func (proxyBuffers) Put(b []byte) { proxyBufferPool.Put(&b) }
