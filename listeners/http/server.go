package httplistener

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linkops/linkops/listeners"
)

// MaxHeaderBytes bounds a request's header block. Devices send a few short headers; the
// net/http default (1 MiB) would let every connection make the server buffer a megabyte.
const MaxHeaderBytes = 64 << 10

// Timeouts bound how long a connection may hold the server; zero fields take the default.
type Timeouts struct {
	// ReadHeader bounds the request line and header (and, for WebSocket, the handshake
	// request): slowloris. Default 10 s.
	ReadHeader time.Duration
	// Read bounds the whole request, body included (1 MiB over a slow cellular link).
	// Default 30 s.
	Read time.Duration
	// Write bounds the handler plus the response, from the end of the header. Default 30 s.
	Write time.Duration
	// Idle closes a keep-alive connection with no request for this long. Default 120 s.
	Idle time.Duration
	// Grace is how long in-flight requests may finish once the listener stops, before
	// every connection is closed. Default 1 s.
	Grace time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.ReadHeader, 10*time.Second)
	def(&t.Read, 30*time.Second)
	def(&t.Write, 30*time.Second)
	def(&t.Idle, 120*time.Second)
	def(&t.Grace, time.Second)
	return t
}

// Server serves an http.Handler on a component's socket the way every HTTP-based
// listener must: it binds spec.Config.Host:Port (a failure is returned at once, with the
// operating system's message), retries temporary accept errors, speaks TLS from spec.TLS
// (read per handshake, so a certificate update applies to new connections only) when
// secure, bounds headers and time, and on stop closes every connection and waits for
// every goroutine it started, handlers included.
type Server struct {
	Handler  http.Handler
	Timeouts Timeouts
	// TrackConns counts open TCP connections with env.Track. HTTP_SERVER sets it; a
	// WebSocket listener counts its sessions (env.Open) instead.
	TrackConns bool
	// OnStop, if set, is called once the context ends, before the grace period: a
	// listener that hijacks connections closes them here (net/http no longer can).
	OnStop func()
}

// Serve runs until ctx ends, then returns nil; see Server.
func (s *Server) Serve(ctx context.Context, spec listeners.Spec, env *listeners.Env) error {
	var tlsConf *tls.Config
	if spec.Config.Secure {
		if spec.TLS == nil {
			return fmt.Errorf("component %s is secure but no certificate was loaded", spec.ComponentID)
		}
		tlsConf = spec.TLS.ServerConfig()
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(spec.Config.Host, strconv.Itoa(spec.Config.Port)))
	if err != nil {
		return err // "listen tcp 127.0.0.1:80: bind: address already in use", as the OS says
	}
	addr := ln.Addr().String()
	ln = listeners.RetryAccept(ln, env)
	if tlsConf != nil {
		// The handshake runs in each connection's goroutine (net/http starts it, bounded
		// by the read and write timeouts), never in the accept loop.
		ln = tls.NewListener(ln, tlsConf)
	}

	to := s.Timeouts.withDefaults()
	// Requests see base, not ctx: in-flight requests get the grace period to finish
	// before their context is cancelled.
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	t := &tracker{env: env, count: s.TrackConns, conns: map[net.Conn]*connState{}}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	srv := &http.Server{
		Handler:           t.wrap(s.Handler),
		ReadHeaderTimeout: to.ReadHeader,
		ReadTimeout:       to.Read,
		WriteTimeout:      to.Write,
		IdleTimeout:       to.Idle,
		MaxHeaderBytes:    MaxHeaderBytes,
		Protocols:         protocols,
		// Handshake failures from scanners are noise in the log; they are counted.
		ErrorLog:    slog.NewLogLogger(env.Log.With("component", env.ComponentID).Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return base },
		ConnContext: t.connContext,
		ConnState:   t.connState,
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	env.Bound(addr)

	var failed error
	select {
	case <-ctx.Done():
	case err := <-served:
		// Only a permanent accept failure gets here (RetryAccept absorbs the rest).
		failed = fmt.Errorf("serve %s: %w", addr, err)
		served <- err // for the <-served below
	}
	if s.OnStop != nil {
		s.OnStop()
	}
	grace, cancel := context.WithTimeout(context.Background(), to.Grace)
	_ = srv.Shutdown(grace) // closes the socket and idle connections, waits for the rest
	cancel()
	cancelBase()
	_ = srv.Close() // whatever did not finish in time
	<-served
	t.wg.Wait()
	return failed
}

// tracker follows each connection's life through net/http's ConnState hook: it counts
// connections, waits for their goroutines, and counts the problems net/http answers by
// itself without telling anyone (a malformed request gets a plain 400, then a close).
type tracker struct {
	env   *listeners.Env
	count bool
	// wg covers every connection's goroutine and every handler call. A hijacked
	// connection leaves net/http's books but its handler goroutine keeps running.
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]*connState
}

type connState struct {
	// pending: bytes of a request were read but no handler has been called for it yet.
	pending atomic.Bool
}

type stateKey struct{}

// connContext runs in the accept loop, just before StateNew, with the same net.Conn.
func (t *tracker) connContext(ctx context.Context, c net.Conn) context.Context {
	st := &connState{}
	t.mu.Lock()
	t.conns[c] = st
	t.mu.Unlock()
	return context.WithValue(ctx, stateKey{}, st)
}

func (t *tracker) connState(c net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		// The accept loop: before Serve returns, so before anyone waits.
		t.wg.Add(1)
		if t.count {
			t.env.Track(1)
		}
	case http.StateActive:
		t.mu.Lock()
		st := t.conns[c]
		t.mu.Unlock()
		if st != nil {
			st.pending.Store(true)
		}
	case http.StateClosed, http.StateHijacked:
		t.mu.Lock()
		st := t.conns[c]
		delete(t.conns, c)
		t.mu.Unlock()
		if s == http.StateClosed {
			t.countProblem(c, st)
		}
		if t.count {
			t.env.Track(-1)
		}
		t.wg.Done()
	}
}

func (t *tracker) countProblem(c net.Conn, st *connState) {
	if tc, ok := c.(*tls.Conn); ok && !tc.ConnectionState().HandshakeComplete {
		t.env.Error("tls_handshake")
		return
	}
	if st != nil && st.pending.Load() {
		t.env.Error("bad_request")
	}
}

// wrap marks the request as having reached the handler and keeps the handler's
// goroutine in the wait group (after a hijack it is the only trace of the connection).
func (t *tracker) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The connection's own Add is still held here, so the counter is not zero.
		t.wg.Add(1)
		defer t.wg.Done()
		defer func() {
			// A panicking handler costs its connection, not the node: net/http would
			// recover too, but silently for the metrics.
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				t.env.Error("panic")
				t.env.Log.Error("listener handler panicked", "component", t.env.ComponentID, "panic", p, "stack", string(debug.Stack()))
				panic(http.ErrAbortHandler) // net/http closes the connection without a word
			}
		}()
		if st, ok := r.Context().Value(stateKey{}).(*connState); ok {
			st.pending.Store(false)
		}
		h.ServeHTTP(w, r)
	})
}
