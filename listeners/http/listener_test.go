package httplistener_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/listeners"
	httplistener "github.com/linkops/linkops/listeners/http"
	"github.com/linkops/linkops/listeners/listenertest"
)

// A request is one message: path as topic, body as payload, the request's facts in
// ConnInfo; the Reply is the response; the debug stream shows the message.
func TestRequestIsOneMessage(t *testing.T) {
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	rec.Reply = func(f listeners.Frame) (*listeners.Reply, error) {
		return &listeners.Reply{Code: http.StatusCreated, ContentType: "application/json", Payload: []byte(`{"success":true}`)}, nil
	}
	run := listenertest.Serve(t, httplistener.Listener{}, plainSpec(), rec)
	sub := run.Hub.Subscribe("test", 16)
	defer sub.Close()

	payload := []byte{0x00, 0xff, '{', '}', 0x0a, 0x80}
	c := dial(t, run.Addr)
	req := newRequest(t, http.MethodPost, "/prod1/dev1/properties/report?token=t%2B1&x=1&x=2", string(payload))
	req.Header.Set("Authorization", "Bearer key")
	resp, body := roundTrip(t, c, bufio.NewReader(c), req)

	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Content-Type") != "application/json" || string(body) != `{"success":true}` {
		t.Fatalf("response %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	f := rec.WaitFrames(t, 1)[0]
	if f.Topic != "/prod1/dev1/properties/report" || !bytes.Equal(f.Payload, payload) {
		t.Fatalf("frame %q %x, want the path and the body intact", f.Topic, f.Payload)
	}
	info := rec.Opened()[0]
	if info.Transport != listeners.TransportHTTP || info.Method != http.MethodPost || info.Path != f.Topic ||
		info.Remote != c.LocalAddr().String() || info.TLS || info.Header.Get("Authorization") != "Bearer key" ||
		info.Query.Get("token") != "t+1" || !slices.Equal(info.Query["x"], []string{"1", "2"}) || len(info.Query) != 2 {
		t.Fatalf("conn info %+v", info)
	}
	if got := rec.WaitClosed(t, 1); got[0] != "request done" {
		t.Fatalf("session closed with %q", got)
	}
	ev := <-sub.C
	if ev.Kind != listeners.EventMessage || ev.Topic != f.Topic || !bytes.Equal(ev.Payload, payload) || ev.Remote != info.Remote {
		t.Fatalf("debug event %+v", ev)
	}

	c.Close()
	run.Stop(t)
	listenertest.Goroutines(t, base, 1)
}

// The Reply's fields, and their defaults.
func TestReplies(t *testing.T) {
	rec := listenertest.NewRecorder()
	rec.Reply = func(f listeners.Frame) (*listeners.Reply, error) {
		switch f.Topic {
		case "/nil":
			return nil, nil
		case "/bytes":
			return &listeners.Reply{Payload: []byte{1, 2, 3}}, nil
		case "/empty":
			return &listeners.Reply{Code: http.StatusNoContent, Payload: []byte("dropped: 204 has no body")}, nil
		case "/bogus":
			return &listeners.Reply{Code: 42}, nil
		case "/refused-in-own-words":
			return &listeners.Reply{ContentType: "application/json", Payload: []byte(`{"success":false,"code":"unauthorized"}`)}, listeners.ErrNotAuthorized
		}
		return nil, fmt.Errorf("unexpected topic %s", f.Topic)
	}
	run := listenertest.Serve(t, httplistener.Listener{}, plainSpec(), rec)
	client := newClient(t, nil)
	url := "http://" + run.Addr

	cases := []struct {
		path, ct, body string
		status         int
	}{
		{"/nil", "", "", http.StatusOK},
		{"/bytes", "application/octet-stream", "\x01\x02\x03", http.StatusOK},
		{"/empty", "", "", http.StatusNoContent},
		{"/refused-in-own-words", "application/json", `{"success":false,"code":"unauthorized"}`, http.StatusUnauthorized},
	}
	for _, c := range cases {
		resp, body := do(t, client, http.MethodPost, url+c.path, "x")
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != c.ct || string(body) != c.body {
			t.Errorf("%s: %d %q %q, want %d %q %q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.status, c.ct, c.body)
		}
	}
	resp, body := do(t, client, http.MethodPost, url+"/bogus", "x")
	checkProblem(t, resp, body, http.StatusInternalServerError, "bad_reply")
}

// refuser refuses at Open with the error its path names, or admits and refuses at
// Receive ("/receive/…").
type refuser map[string]error

func (r refuser) Open(_ context.Context, c listeners.Conn) (listeners.Session, error) {
	if err, ok := r[c.Info().Path]; ok {
		return nil, err
	}
	return r, nil
}

func (r refuser) Receive(_ context.Context, f listeners.Frame) (*listeners.Reply, error) {
	return nil, r["/receive"+f.Topic]
}

func (refuser) Closed(string) {}

// Each refusal becomes its HTTP status and problem JSON, and is counted.
func TestRefusals(t *testing.T) {
	h := refuser{
		"/nogw":                  fmt.Errorf("component c1: %w", listeners.ErrNoGateway),
		"/unauth":                fmt.Errorf("device d1 is unknown: %w", listeners.ErrNotAuthorized),
		"/creds":                 fmt.Errorf("stale signature: %w", listeners.ErrBadCredentials),
		"/receive/big":           fmt.Errorf("firmware chunk over 64 KiB: %w", listeners.ErrTooLarge),
		"/receive/dropped":       fmt.Errorf("no such suffix: %w", listeners.ErrDropped),
		"/receive/undecodable":   errors.New("body is not JSON: invalid character 'x'"),
		"/receive/unauth-in-msg": listeners.ErrNotAuthorized,
	}
	run := listenertest.Serve(t, httplistener.Listener{}, plainSpec(), h)
	client := newClient(t, nil)
	cases := []struct {
		path, code, reason, detail string
		status                     int
	}{
		{"/nogw", "no_gateway", "no_gateway", "component c1: no enabled gateway", http.StatusNotFound},
		{"/unauth", "unauthorized", "unauthorized", "device d1 is unknown", http.StatusUnauthorized},
		{"/creds", "bad_credentials", "unauthorized", "stale signature", http.StatusUnauthorized},
		{"/big", "body_too_large", "oversize", "firmware chunk over 64 KiB", http.StatusRequestEntityTooLarge},
		{"/dropped", "dropped", "dropped", "no such suffix", http.StatusBadRequest},
		{"/undecodable", "rejected", "handler", "body is not JSON", http.StatusBadRequest},
		{"/unauth-in-msg", "unauthorized", "unauthorized", "not authorized", http.StatusUnauthorized},
	}
	counted := map[string]float64{}
	for _, c := range cases {
		resp, body := do(t, client, http.MethodPost, "http://"+run.Addr+c.path, "{}")
		p := checkProblem(t, resp, body, c.status, c.code)
		if !strings.Contains(p.Detail, c.detail) {
			t.Errorf("%s: detail %q, want it to say %q", c.path, p.Detail, c.detail)
		}
		if c.status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.path)
		}
		counted[c.reason]++
	}
	for reason, n := range counted {
		if got := run.Errors(reason); got != n {
			t.Errorf("%s errors %v, want %v", reason, got, n)
		}
	}
}

// SPEC §4.3.1: with no gateway, a request gets 404 problem JSON with code no_gateway, is
// counted, and the debug stream still shows it.
func TestNoGateway(t *testing.T) {
	run := listenertest.Serve(t, httplistener.Listener{}, plainSpec(), listeners.NoGateway{})
	sub := run.Hub.Subscribe("test", 16)
	defer sub.Close()
	client := newClient(t, nil)

	resp, body := do(t, client, http.MethodPost, "http://"+run.Addr+"/p/d/event/alarm", `{"data":1}`)
	p := checkProblem(t, resp, body, http.StatusNotFound, "no_gateway")
	if !strings.Contains(p.Detail, "no enabled gateway") {
		t.Errorf("detail %q", p.Detail)
	}
	resp, body = do(t, client, http.MethodGet, "http://"+run.Addr+"/", "")
	checkProblem(t, resp, body, http.StatusNotFound, "no_gateway")
	if got := run.Errors("no_gateway"); got != 2 {
		t.Errorf("no_gateway errors %v, want 2", got)
	}
	ev := <-sub.C
	if ev.Kind != listeners.EventMessage || ev.Topic != "/p/d/event/alarm" || string(ev.Payload) != `{"data":1}` {
		t.Errorf("debug event %+v", ev)
	}
}

// The connection count is the open TCP connections, keep-alive ones included.
func TestConnectionsCounted(t *testing.T) {
	run := listenertest.Serve(t, httplistener.Listener{}, plainSpec(), listenertest.NewRecorder())
	a, b := dial(t, run.Addr), dial(t, run.Addr)
	for _, c := range []net.Conn{a, b} {
		resp, _ := roundTrip(t, c, bufio.NewReader(c), newRequest(t, http.MethodPost, "/x", "1"))
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("status %d, close %v: want a kept-alive 200", resp.StatusCode, resp.Close)
		}
	}
	waitFor(t, "2 connections", func() bool { return run.Env.Connections() == 2 })
	a.Close()
	waitFor(t, "1 connection", func() bool { return run.Env.Connections() == 1 })
	b.Close()
	waitFor(t, "0 connections", func() bool { return run.Env.Connections() == 0 })
	if n := run.Errors("bad_request"); n != 0 {
		t.Fatalf("good requests counted as %v bad ones", n)
	}
}

// Conn.Close ends the TCP connection after the response; Conn.Send is unsupported.
func TestConnCloseAndSend(t *testing.T) {
	rec := listenertest.NewRecorder()
	var sendErr error
	rec.Reply = func(listeners.Frame) (*listeners.Reply, error) {
		conns := rec.Conns()
		c := conns[len(conns)-1]
		sendErr = c.Send(listeners.Frame{Payload: []byte("downlink")})
		c.Close("takeover")
		return nil, nil
	}
	run := listenertest.Serve(t, httplistener.Listener{}, plainSpec(), rec)
	c := dial(t, run.Addr)
	br := bufio.NewReader(c)
	resp, _ := roundTrip(t, c, br, newRequest(t, http.MethodPost, "/x", "1"))
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Fatalf("status %d, close %v: want 200 with Connection: close", resp.StatusCode, resp.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the response: %v, want EOF", err)
	}
	if !errors.Is(sendErr, errors.ErrUnsupported) {
		t.Fatalf("Send: %v, want errors.ErrUnsupported", sendErr)
	}
}

// blocker holds every request until its context ends.
type blocker struct{ entered, cancelled chan struct{} }

func (b blocker) Open(context.Context, listeners.Conn) (listeners.Session, error) { return b, nil }
func (b blocker) Closed(string)                                                   {}
func (b blocker) Receive(ctx context.Context, _ listeners.Frame) (*listeners.Reply, error) {
	close(b.entered)
	<-ctx.Done()
	close(b.cancelled)
	return nil, ctx.Err()
}

// Stopping closes the socket and every connection (idle, half-sent, or waiting on a
// handler, whose context is cancelled), and leaves no goroutine behind.
func TestStopClosesEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	h := blocker{entered: make(chan struct{}), cancelled: make(chan struct{})}
	run := listenertest.Serve(t, httplistener.WithTimeouts(httplistener.Timeouts{Grace: 100 * time.Millisecond}), plainSpec(), h)

	idle := dial(t, run.Addr)
	half := dial(t, run.Addr)
	if _, err := half.Write([]byte("POST /x HTTP/1.1\r\nHost: a\r\n")); err != nil {
		t.Fatal(err)
	}
	busy := dial(t, run.Addr)
	if err := newRequest(t, http.MethodPost, "/x", "1").Write(busy); err != nil {
		t.Fatal(err)
	}
	<-h.entered
	waitFor(t, "3 connections", func() bool { return run.Env.Connections() == 3 })

	run.Stop(t)
	select {
	case <-h.cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context was not cancelled by Stop")
	}
	for name, c := range map[string]net.Conn{"idle": idle, "half-sent": half} {
		if got := readAll(t, c); got != "" {
			t.Errorf("%s connection got %q, want a plain close", name, got)
		}
	}
	readAll(t, busy) // a 503 or nothing: the grace period is over either way
	if c, err := net.Dial("tcp", run.Addr); err == nil {
		c.Close()
		t.Fatal("the socket still accepts after Stop")
	}
	if n := run.Env.Connections(); n != 0 {
		t.Fatalf("%d connections counted after Stop", n)
	}
	listenertest.Goroutines(t, base, 1)
}

// A socket that cannot be bound is returned at once, with the operating system's words.
func TestBindFailure(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	spec := plainSpec()
	spec.Config.Port = taken.Addr().(*net.TCPAddr).Port
	err = listenertest.ServeErr(t, httplistener.Listener{}, spec, listenertest.NewRecorder())
	var op *net.OpError
	if !errors.As(err, &op) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Serve: %v, want the OS's bind error", err)
	}
}
