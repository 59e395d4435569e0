package coap_test

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/coap"
	"github.com/linkops/linkops/listeners/listenertest"
)

// A POST from libcoap arrives as one frame, topic "/" + the URI path, and is answered
// 2.04 Changed; the handler sees a CoAP request with its method, path and remote.
func TestPostArrivesIntact(t *testing.T) {
	rec := listenertest.NewRecorder()
	r := serve(t, coap.Listener{}, plainSpec(), rec)
	out, errOut := libcoap(t, notls, "-m", "post", "-e", "temperature=21.5", coapURI(r, "coap", "/p1/d1/properties/report"))
	if !strings.Contains(out, "t:ACK c:2.04") {
		t.Fatalf("want a 2.04 ACK; libcoap printed:\n%s\n%s", out, errOut)
	}
	f := rec.WaitFrames(t, 1)[0]
	if f.Topic != "/p1/d1/properties/report" || string(f.Payload) != "temperature=21.5" {
		t.Errorf("frame = %q %q", f.Topic, f.Payload)
	}
	info := rec.Opened()[0]
	host, _, _ := net.SplitHostPort(info.Remote)
	if info.Transport != listeners.TransportCoAP || info.Method != "POST" || info.Path != f.Topic || host != "127.0.0.1" || info.TLS {
		t.Errorf("conn info = %+v", info)
	}
	if err := rec.Conns()[0].Send(listeners.Frame{Payload: []byte("x")}); err == nil {
		t.Error("Send on a CoAP request succeeded; a request has no downlink")
	}
}

// Each method gets its success code when the Reply gives none; a Reply's code, payload
// and content type become the response (an unknown content type gets no
// Content-Format).
func TestReplies(t *testing.T) {
	rec := listenertest.NewRecorder()
	rec.Reply = func(f listeners.Frame) (*listeners.Reply, error) {
		switch f.Topic {
		case "/json":
			return &listeners.Reply{Code: 69, ContentType: "application/json; charset=utf-8", Payload: []byte(`{"ok":true}`)}, nil
		case "/created":
			return &listeners.Reply{Code: 65}, nil
		case "/odd":
			return &listeners.Reply{ContentType: "application/x-odd", Payload: []byte("odd")}, nil
		case "/badcode":
			return &listeners.Reply{Code: 1}, nil
		}
		return nil, nil
	}
	r := serve(t, coap.Listener{}, plainSpec(), rec)
	for _, c := range []struct{ method, path, want string }{
		{"get", "/x", "c:2.05"},
		{"put", "/x", "c:2.04"},
		{"delete", "/x", "c:2.02"},
		{"post", "/created", "c:2.01"},
		{"get", "/json", "c:2.05 i:"},
		{"fetch", "/x", "c:4.05"},
		{"post", "/badcode", "c:5.00"},
	} {
		out, _ := libcoap(t, notls, "-m", c.method, "-e", "b", coapURI(r, "coap", c.path))
		if !strings.Contains(out, "t:ACK "+c.want) {
			t.Errorf("%s %s: want %s; libcoap printed:\n%s", c.method, c.path, c.want, out)
		}
	}
	out, _ := libcoap(t, notls, "-m", "get", coapURI(r, "coap", "/json"))
	if !strings.Contains(out, "Content-Format:application/json") || !strings.Contains(out, `{"ok":true}`) {
		t.Errorf("GET /json: want the JSON payload with its content format; libcoap printed:\n%s", out)
	}
	out, _ = libcoap(t, notls, "-m", "get", coapURI(r, "coap", "/odd"))
	if strings.Contains(out, "Content-Format") || !strings.Contains(out, ":: 'odd'") {
		t.Errorf("GET /odd: want the payload without a content format; libcoap printed:\n%s", out)
	}
}

// With no gateway every request is answered 4.04, and the debug stream still shows it.
func TestNoGateway(t *testing.T) {
	r := serve(t, coap.Listener{}, plainSpec(), listeners.NoGateway{})
	sub := r.Hub.Subscribe("coap1", 16)
	defer sub.Close()
	for _, method := range []string{"post", "get", "put", "delete"} {
		_, errOut := libcoap(t, notls, "-m", method, "-e", "hello", coapURI(r, "coap", "/p/d/online"))
		if !strings.HasPrefix(errOut, "4.04 ") {
			t.Errorf("%s: want 4.04; libcoap printed %q", method, errOut)
		}
	}
	select {
	case e := <-sub.C:
		if e.Kind != listeners.EventMessage || e.Topic != "/p/d/online" || string(e.Payload) != "hello" || e.ServerID != "node1" {
			t.Errorf("debug event = %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the debug stream showed no message")
	}
	r.WaitErrors(t, "no_gateway", 4)
}

// Handler refusals become CoAP codes, with a short diagnostic payload; a panicking
// handler costs one 5.00 answer and nothing else.
func TestRefusals(t *testing.T) {
	rec := listenertest.NewRecorder()
	rec.Reply = func(f listeners.Frame) (*listeners.Reply, error) {
		switch f.Topic {
		case "/unknown":
			return nil, fmt.Errorf("device d9: %w", listeners.ErrNotAuthorized)
		case "/stale":
			return nil, listeners.ErrBadCredentials
		case "/big":
			return nil, listeners.ErrTooLarge
		case "/panic":
			panic("codec bug")
		case "/long":
			return nil, errors.New(strings.Repeat("x", 200))
		}
		return nil, errors.New("payload does not decode")
	}
	r := serve(t, coap.Listener{}, plainSpec(), rec)
	for path, want := range map[string]string{
		"/unknown": "4.01 device d9: not authorized",
		"/stale":   "4.01 bad user name or password",
		"/big":     "4.13 request body too large",
		"/garbled": "4.00 payload does not decode",
		"/panic":   "5.00 internal error",
		"/long":    "4.00 " + strings.Repeat("x", coap.MaxDiagnostic),
	} {
		_, errOut := libcoap(t, notls, "-m", "post", "-e", "x", coapURI(r, "coap", path))
		if strings.TrimSpace(errOut) != strings.TrimSpace(want) {
			t.Errorf("POST %s: want %q; libcoap printed %q", path, want, errOut)
		}
	}
	out, _ := libcoap(t, notls, "-m", "post", "-e", "x", coapURI(r, "coap", "/big"))
	if !strings.Contains(out, "Size1:1048576") {
		t.Errorf("4.13 without Size1; libcoap printed:\n%s", out)
	}
	r.WaitErrors(t, "panic", 1)
}

// A socket taken by someone else is reported at once with the operating system's words,
// plain or secure; a secure component without certificate material does not start.
func TestBindError(t *testing.T) {
	taken, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.LocalAddr().(*net.UDPAddr).Port
	for _, spec := range []listeners.Spec{plainSpec(), dtlsSpec(t, testutil.NewCA(t), "server", "")} {
		spec.Config.Port = port
		err = listenertest.ServeErr(t, coap.Listener{}, spec, listenertest.NewRecorder())
		if err == nil || !strings.Contains(err.Error(), "bind: address already in use") {
			t.Errorf("Serve (secure %v) on a taken port: %v", spec.Config.Secure, err)
		}
	}
	spec := plainSpec()
	spec.Config.Secure = true
	if err := listenertest.ServeErr(t, coap.Listener{}, spec, listenertest.NewRecorder()); err == nil {
		t.Error("a secure component without a certificate started")
	}
}

// Stopping closes the socket and every peer and leaves no goroutine behind.
func TestStopLeavesNothing(t *testing.T) {
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	r := serve(t, coap.Listener{}, plainSpec(), rec)
	for i := range 3 {
		libcoap(t, notls, "-m", "post", "-e", fmt.Sprint(i), coapURI(r, "coap", "/x"))
	}
	rec.WaitFrames(t, 3)
	if n := r.Env.Connections(); n != 3 {
		t.Errorf("%d peers kept, want the 3 clients", n)
	}
	r.Stop(t)
	listenertest.Goroutines(t, base, 0)
	if n := r.Env.Connections(); n != 0 {
		t.Errorf("%d peers counted after stop", n)
	}
	c, err := net.ListenUDP("udp", mustUDPAddr(t, r.Addr))
	if err != nil {
		t.Fatalf("the port is still taken after stop: %v", err)
	}
	c.Close()
}

func mustUDPAddr(t *testing.T, addr string) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A diagnostic payload is cut without splitting a UTF-8 character.
func TestDiagnosticPayload(t *testing.T) {
	for in, want := range map[string]string{
		"short":                       "short",
		strings.Repeat("é", 100):      strings.Repeat("é", 64),
		"a" + strings.Repeat("é", 99): "a" + strings.Repeat("é", 63),
	} {
		if got := string(coap.DiagnosticPayload(in)); got != want {
			t.Errorf("coap.DiagnosticPayload(%d bytes) = %d bytes %q", len(in), len(got), got)
		}
	}
}

// A stop that comes the moment the listener is bound still ends Serve.
func TestStopRightAway(t *testing.T) {
	secure := dtlsSpec(t, testutil.NewCA(t), "server", "")
	for i := range 20 {
		spec := plainSpec()
		if i%2 == 1 {
			spec = secure
		}
		r := serve(t, coap.Listener{}, spec, listenertest.NewRecorder())
		r.Stop(t)
	}
}
