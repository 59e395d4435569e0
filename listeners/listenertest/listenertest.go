// Package listenertest runs one listener against a recording handler, for the tests of
// every listener type: it owns no listener and must not import one.
package listenertest

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/resource"
)

// Recorder is a Handler that admits every connection (unless Refuse is set) and records
// what it sees.
type Recorder struct {
	mu     sync.Mutex
	opened []listeners.ConnInfo
	frames []listeners.Frame
	closed []string
	conns  []listeners.Conn
	// Refuse, when set, is returned by Open.
	Refuse error
	// Reply, when set, answers request/response transports.
	Reply  func(listeners.Frame) (*listeners.Reply, error)
	notify chan struct{}
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder { return &Recorder{notify: make(chan struct{}, 1)} }

func (r *Recorder) Open(_ context.Context, c listeners.Conn) (listeners.Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Refuse != nil {
		return nil, r.Refuse
	}
	r.opened = append(r.opened, c.Info())
	r.conns = append(r.conns, c)
	r.poke()
	return &recSession{r: r}, nil
}

func (r *Recorder) poke() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

type recSession struct{ r *Recorder }

func (s *recSession) Receive(_ context.Context, f listeners.Frame) (*listeners.Reply, error) {
	s.r.mu.Lock()
	f.Payload = append([]byte(nil), f.Payload...)
	s.r.frames = append(s.r.frames, f)
	reply := s.r.Reply
	s.r.poke()
	s.r.mu.Unlock()
	if reply != nil {
		return reply(f)
	}
	return nil, nil
}

func (s *recSession) Closed(reason string) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.closed = append(s.r.closed, reason)
	s.r.poke()
}

// Frames returns a copy of the frames received so far.
func (r *Recorder) Frames() []listeners.Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]listeners.Frame(nil), r.frames...)
}

// Opened returns the infos of the connections admitted so far.
func (r *Recorder) Opened() []listeners.ConnInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]listeners.ConnInfo(nil), r.opened...)
}

// Conns returns the connections admitted so far (for downlinks).
func (r *Recorder) Conns() []listeners.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]listeners.Conn(nil), r.conns...)
}

// Closed returns the reasons of the sessions closed so far.
func (r *Recorder) Closed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.closed...)
}

// WaitFrames waits until n frames arrived and returns them, failing the test after 10 s.
func (r *Recorder) WaitFrames(t testing.TB, n int) []listeners.Frame {
	t.Helper()
	return waitFor(t, r, "frames", func() ([]listeners.Frame, bool) { f := r.Frames(); return f, len(f) >= n })
}

// WaitClosed waits until n sessions were closed.
func (r *Recorder) WaitClosed(t testing.TB, n int) []string {
	t.Helper()
	return waitFor(t, r, "closed sessions", func() ([]string, bool) { c := r.Closed(); return c, len(c) >= n })
}

// WaitOpened waits until n connections were admitted.
func (r *Recorder) WaitOpened(t testing.TB, n int) []listeners.ConnInfo {
	t.Helper()
	return waitFor(t, r, "opened connections", func() ([]listeners.ConnInfo, bool) { o := r.Opened(); return o, len(o) >= n })
}

func waitFor[T any](t testing.TB, r *Recorder, what string, cond func() (T, bool)) T {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if v, ok := cond(); ok {
			return v
		}
		select {
		case <-r.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			v, _ := cond()
			t.Fatalf("timed out waiting for %s; have %v", what, v)
			return v
		}
	}
}

// Running is a listener serving in the background.
type Running struct {
	// Addr is the address it bound.
	Addr string
	Env  *listeners.Env
	Hub  *listeners.Hub
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan error
}

// Serve starts l with spec and handler h and waits until it is bound; it stops the
// listener (and checks that Serve returned nil) when the test ends. A Serve error before
// binding fails the test; use ServeErr to expect one.
func Serve(t testing.TB, l listeners.Listener, spec listeners.Spec, h listeners.Handler) *Running {
	t.Helper()
	r, err := start(t, l, spec, h)
	if err != nil {
		t.Fatalf("listener did not bind: %v", err)
	}
	return r
}

// ServeErr starts l and returns the error Serve gives before binding (nil if it bound).
func ServeErr(t testing.TB, l listeners.Listener, spec listeners.Spec, h listeners.Handler) error {
	t.Helper()
	_, err := start(t, l, spec, h)
	return err
}

func start(t testing.TB, l listeners.Listener, spec listeners.Spec, h listeners.Handler) (*Running, error) {
	t.Helper()
	if spec.ComponentID == "" {
		spec.ComponentID = "test"
	}
	bound := make(chan string, 1)
	hub := listeners.NewHub()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	env := listeners.NewEnv(spec.ComponentID, "node1", h, hub, listeners.NewMetrics(reg), log, func(a string) {
		select {
		case bound <- a:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{Env: env, Hub: hub, reg: reg, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- l.Serve(ctx, spec, env) }()
	select {
	case r.Addr = <-bound:
	case err := <-r.done:
		cancel()
		return nil, err
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("listener neither bound nor failed within 10 s")
	}
	t.Cleanup(func() { r.Stop(t) })
	return r, nil
}

// Errors is how many problems the listener counted for reason (env.Error, or a handler
// refusal: no_gateway, unauthorized, …), as linkops_listener_errors_total shows them.
func (r *Running) Errors(reason string) float64 { return ErrorCount(r.reg, reason) }

// ErrorCount is the value of linkops_listener_errors_total{reason} in a registry.
func ErrorCount(reg prometheus.Gatherer, reason string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != "linkops_listener_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// WaitErrors waits until at least n problems were counted for reason, failing the test
// after 10 s.
func (r *Running) WaitErrors(t testing.TB, reason string, n float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.Errors(reason) < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %v %q errors; have %v", n, reason, r.Errors(reason))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the listener and waits for Serve to return (nil expected). It is idempotent.
func (r *Running) Stop(t testing.TB) {
	t.Helper()
	if r.stop == nil {
		return
	}
	r.stop()
	r.stop = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Serve returned %v after its context ended; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Serve did not return within 10 s of its context ending")
	}
}

// Goroutines waits until the number of goroutines is at most base (plus slack), failing
// the test after 10 s: a listener that was stopped, or whose clients went away, must not
// leave goroutines behind.
func Goroutines(t testing.TB, base, slack int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base+slack {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want at most %d + %d:\n%s", n, base, slack, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Secure returns spec made secure with cert loaded as its TLS material, as the
// supervisor would.
func Secure(t testing.TB, spec listeners.Spec, cert *resource.Certificate) listeners.Spec {
	t.Helper()
	src, err := listeners.NewTLSSource(cert)
	if err != nil {
		t.Fatal(err)
	}
	spec.Config.Secure, spec.Config.CertID, spec.TLS = true, cert.ID, src
	return spec
}
