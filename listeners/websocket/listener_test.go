package websocket_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	ws "github.com/linkops/linkops/listeners/websocket"
)

// Text, binary and fragmented messages arrive intact, path as topic, with the upgrade
// request's facts in ConnInfo.
func TestMessagesArriveIntact(t *testing.T) {
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, ws.Listener{}, plainSpec(), rec)
	c := dialWS(t, nil, "ws://"+run.Addr+"/p1/d1?token=abc%3D&x", http.Header{"Authorization": {"Bearer key"}})

	text := []byte(`{"topic":"/p1/d1/properties/report","payload":{"t":21.5}}`)
	bin := []byte{0x00, 0xff, 0x01, 0x80}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1024) // over gorilla's write buffer: fragmented
	for _, m := range []struct {
		kind int
		p    []byte
	}{{websocket.TextMessage, text}, {websocket.BinaryMessage, bin}, {websocket.BinaryMessage, big}} {
		if err := c.WriteMessage(m.kind, m.p); err != nil {
			t.Fatal(err)
		}
	}
	frames := rec.WaitFrames(t, 3)
	for i, want := range [][]byte{text, bin, big} {
		if frames[i].Topic != "/p1/d1" || !bytes.Equal(frames[i].Payload, want) {
			t.Fatalf("frame %d: %q (%d bytes), want topic /p1/d1 and the message intact", i, frames[i].Topic, len(frames[i].Payload))
		}
	}
	info := rec.Opened()[0]
	if info.Transport != listeners.TransportWebSocket || info.Path != "/p1/d1" || info.Method != http.MethodGet ||
		info.Remote != c.LocalAddr().String() || info.TLS || info.Header.Get("Authorization") != "Bearer key" ||
		info.Query.Get("token") != "abc=" || !info.Query.Has("x") || len(info.Query) != 2 {
		t.Fatalf("conn info %+v", info)
	}
	if n := run.Env.Connections(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	if got := rec.WaitClosed(t, 1)[0]; got != "closed by the device: 1000 bye" {
		t.Fatalf("closed with %q", got)
	}
	waitFor(t, "0 connections", func() bool { return run.Env.Connections() == 0 })
	run.Stop(t)
	listenertest.Goroutines(t, base, 1)
}

// Downlinks go as text when they are readable text and as binary otherwise; concurrent
// Sends are serialised (the race detector and the client's parser would see interleaving).
func TestDownlinks(t *testing.T) {
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, ws.Listener{}, plainSpec(), rec)
	c := dialWS(t, nil, "ws://"+run.Addr+"/d", nil)
	conn := func() listeners.Conn { rec.WaitOpened(t, 1); return rec.Conns()[0] }()

	for _, m := range []struct {
		p    string
		kind int
	}{
		{`{"topic":"/p/d/function/invoke","payload":{"messageId":"1"}}`, websocket.TextMessage},
		{"temperature 21.5\r\n", websocket.TextMessage},
		{"\x00\x00\x00\x05hello", websocket.BinaryMessage},
		{"caf\xe9", websocket.BinaryMessage}, // Latin-1, not UTF-8
		{"\x1b[1mbold", websocket.BinaryMessage},
	} {
		if err := conn.Send(listeners.Frame{Topic: "/ignored", Payload: []byte(m.p)}); err != nil {
			t.Fatal(err)
		}
		kind, p, err := c.ReadMessage()
		if err != nil || kind != m.kind || string(p) != m.p {
			t.Fatalf("sent %q: got kind %d %q %v, want kind %d", m.p, kind, p, err, m.kind)
		}
	}

	const writers, each = 8, 50
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				if err := conn.Send(listeners.Frame{Payload: []byte(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i))}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	seen := map[string]bool{}
	for range writers * each {
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		seen[string(p)] = true
	}
	wg.Wait()
	if len(seen) != writers*each {
		t.Fatalf("%d distinct messages, want %d", len(seen), writers*each)
	}
}

// Conn.Close sends a normal close frame with the reason (cut to fit, still UTF-8) and
// ends the session with it; a Send afterwards fails.
func TestConnClose(t *testing.T) {
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, ws.Listener{}, plainSpec(), rec)
	for n, reason := range []string{"replaced by a newer session", strings.Repeat("设备", 40)} {
		c := dialWS(t, nil, "ws://"+run.Addr+"/d", nil)
		rec.WaitOpened(t, n+1)
		conn := rec.Conns()[n]
		conn.Close(reason)
		ce := closeError(t, c)
		if ce.Code != websocket.CloseNormalClosure || len(ce.Text) > 123 || !utf8.ValidString(ce.Text) || !strings.HasPrefix(reason, ce.Text) || ce.Text == "" {
			t.Fatalf("close frame %d %q for reason %q", ce.Code, ce.Text, reason)
		}
		if got := rec.WaitClosed(t, n+1)[n]; got != reason {
			t.Fatalf("session closed with %q, want %q", got, reason)
		}
		if err := conn.Send(listeners.Frame{Payload: []byte("late")}); err == nil {
			t.Fatal("Send after Close succeeded")
		}
	}
}

// SPEC §4.3.1: with no gateway the upgrade succeeds, the connection stays up, and its
// messages are dropped and counted; the debug stream shows all of it.
func TestNoGateway(t *testing.T) {
	run := listenertest.Serve(t, ws.Listener{}, plainSpec(), listeners.NoGateway{})
	sub := run.Hub.Subscribe("test", 16)
	defer sub.Close()
	c := dialWS(t, nil, "ws://"+run.Addr+"/p/d", nil)
	for i := range 3 {
		if err := c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	run.WaitErrors(t, "no_gateway", 3)
	if ev := <-sub.C; ev.Kind != listeners.EventConnect || ev.Remote != c.LocalAddr().String() {
		t.Fatalf("first event %+v, want the connect", ev)
	}
	for i := range 3 {
		if ev := <-sub.C; ev.Kind != listeners.EventMessage || ev.Topic != "/p/d" || string(ev.Payload) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("event %+v, want message %d", ev, i)
		}
	}
	if n := run.Env.Connections(); n != 1 {
		t.Fatalf("%d connections: dropping messages must not drop the connection", n)
	}
	c.Close()
	if ev := <-sub.C; ev.Kind != listeners.EventDisconnect {
		t.Fatalf("event %+v, want the disconnect", ev)
	}
}

// A refusal at Open closes the connection with 1008 and the refusal's words; a refusal
// of one message closes it only for ErrNotAuthorized, and a drop costs only the message.
func TestRefusals(t *testing.T) {
	rec := listenertest.NewRecorder()
	rec.Refuse = fmt.Errorf("device d9 is unknown: %w", listeners.ErrNotAuthorized)
	run := listenertest.Serve(t, ws.Listener{}, plainSpec(), rec)
	ce := closeError(t, dialWS(t, nil, "ws://"+run.Addr+"/p/d9", nil))
	if ce.Code != websocket.ClosePolicyViolation || ce.Text != "device d9 is unknown: not authorized" {
		t.Fatalf("close %d %q", ce.Code, ce.Text)
	}
	run.WaitErrors(t, "unauthorized", 1)

	rec = listenertest.NewRecorder()
	rec.Reply = func(f listeners.Frame) (*listeners.Reply, error) {
		switch string(f.Payload) {
		case "drop":
			return nil, listeners.ErrDropped
		case "forbidden":
			return nil, fmt.Errorf("topic of another device: %w", listeners.ErrNotAuthorized)
		}
		return nil, nil
	}
	run = listenertest.Serve(t, ws.Listener{}, plainSpec(), rec)
	c := dialWS(t, nil, "ws://"+run.Addr+"/p/d1", nil)
	for _, m := range []string{"drop", "ok", "forbidden", "after"} {
		c.WriteMessage(websocket.TextMessage, []byte(m))
	}
	ce = closeError(t, c)
	if ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "another device") {
		t.Fatalf("close %d %q", ce.Code, ce.Text)
	}
	rec.WaitClosed(t, 1)
	if f := rec.Frames(); len(f) != 3 || string(f[1].Payload) != "ok" {
		t.Fatalf("frames %q: want drop, ok, forbidden and nothing after the refusal", f)
	}
	if run.Errors("dropped") != 1 || run.Errors("unauthorized") != 1 {
		t.Fatalf("dropped %v, unauthorized %v; want 1 and 1", run.Errors("dropped"), run.Errors("unauthorized"))
	}
}

// Stopping closes every connection with 1001 and leaves no goroutine behind.
func TestStopClosesConnections(t *testing.T) {
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, ws.Listener{}, plainSpec(), rec)
	var clients []*websocket.Conn
	for range 3 {
		clients = append(clients, dialWS(t, nil, "ws://"+run.Addr+"/d", nil))
	}
	rec.WaitOpened(t, 3)
	run.Stop(t)
	for _, c := range clients {
		if ce := closeError(t, c); ce.Code != websocket.CloseGoingAway || ce.Text != "the listener is stopping" {
			t.Fatalf("close %d %q", ce.Code, ce.Text)
		}
		c.Close()
	}
	for _, r := range rec.WaitClosed(t, 3) {
		if r != "the listener is stopping" {
			t.Fatalf("session closed with %q", r)
		}
	}
	if c, err := net.Dial("tcp", run.Addr); err == nil {
		c.Close()
		t.Fatal("the socket still accepts after Stop")
	}
	listenertest.Goroutines(t, base, 1)
}

// slowOpen holds every connection in Open until its context ends.
type slowOpen struct{ entered, cancelled chan struct{} }

func (h slowOpen) Open(ctx context.Context, _ listeners.Conn) (listeners.Session, error) {
	close(h.entered)
	<-ctx.Done()
	close(h.cancelled)
	return nil, ctx.Err()
}

// Stopping cancels the context of a handler still deciding on a connection (the
// connection is hijacked: only the listener can end it).
func TestStopWhileOpening(t *testing.T) {
	base := runtime.NumGoroutine()
	h := slowOpen{entered: make(chan struct{}), cancelled: make(chan struct{})}
	run := listenertest.Serve(t, ws.Listener{}, plainSpec(), h)
	c := dialWS(t, nil, "ws://"+run.Addr+"/d", nil)
	<-h.entered
	run.Stop(t)
	select {
	case <-h.cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context was not cancelled by Stop")
	}
	if ce := closeError(t, c); ce.Code != websocket.CloseGoingAway {
		t.Fatalf("close %d %q, want 1001", ce.Code, ce.Text)
	}
	c.Close()
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
	err = listenertest.ServeErr(t, ws.Listener{}, spec, listenertest.NewRecorder())
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Serve: %v, want the OS's bind error", err)
	}
}
