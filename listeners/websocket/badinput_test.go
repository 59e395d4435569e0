package websocket_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/linkops/linkops/listeners/listenertest"
	ws "github.com/linkops/linkops/listeners/websocket"
)

// clientFrame encodes one client-to-server frame (masked with a zero key unless mask is
// false, so the payload is readable in the test).
func clientFrame(first byte, payload []byte, mask bool) []byte {
	b := []byte{first}
	m := byte(0)
	if mask {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n < 1<<16:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if mask {
		b = append(b, 0, 0, 0, 0)
	}
	return append(b, payload...)
}

// Requests that are not a proper upgrade get a clear HTTP answer and are counted.
func TestBadHandshakes(t *testing.T) {
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, ws.Listener{}, plainSpec(), rec)
	cases := []struct {
		name, req, status, says string
	}{
		{"plain GET", "GET /d HTTP/1.1\r\nHost: a\r\n\r\n", "426 Upgrade Required", "WebSocket endpoint"},
		{"POST", strings.Replace(upgradeRequest("/d"), "GET", "POST", 1), "405 Method Not Allowed", "not GET"},
		{"bad key", strings.Replace(upgradeRequest("/d"), "dGhlIHNhbXBsZSBub25jZQ==", "short", 1), "400 Bad Request", "Sec-WebSocket-Key"},
		{"old version", strings.Replace(upgradeRequest("/d"), "Version: 13", "Version: 8", 1), "400 Bad Request", "unsupported version"},
		{"data before the handshake", upgradeRequest("/d") + string(clientFrame(0x81, []byte("hi"), true)), "", ""},
	}
	for i, c := range cases {
		conn := dial(t, run.Addr)
		conn.Write([]byte(c.req))
		conn.CloseWrite()
		got := readAll(t, conn)
		ok := got == "" // gorilla hangs up on a client that did not wait for the 101
		if c.status != "" {
			ok = strings.HasPrefix(got, "HTTP/1.1 "+c.status) && strings.Contains(got, c.says)
		}
		if !ok {
			t.Errorf("%s: got %q, want %q saying %q", c.name, got, c.status, c.says)
		}
		if c.status == "426 Upgrade Required" && !strings.Contains(got, "Upgrade: websocket\r\n") {
			t.Errorf("426 without an Upgrade header: %q", got)
		}
		run.WaitErrors(t, "bad_handshake", float64(i+1))
	}
	garbage := dial(t, run.Addr)
	garbage.Write([]byte("\x00\x01\x02 not http\r\n\r\n"))
	if got := readAll(t, garbage); !strings.HasPrefix(got, "HTTP/1.1 400 Bad Request") {
		t.Errorf("garbage: got %q", got)
	}
	run.WaitErrors(t, "bad_request", 1)
	if len(rec.Opened()) != 0 {
		t.Fatalf("a bad handshake reached the handler: %+v", rec.Opened())
	}
	run.Stop(t)
	listenertest.Goroutines(t, base, 1)
}

// An upgrade request that never ends is cut by the handshake timeout.
func TestHandshakeTimeout(t *testing.T) {
	run := listenertest.Serve(t, ws.WithTimings(0, 100*time.Millisecond), plainSpec(), listenertest.NewRecorder())
	c := dial(t, run.Addr)
	c.Write([]byte("GET /d HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"))
	readAll(t, c)
	run.WaitErrors(t, "bad_request", 1)
}

// A device that answers pings stays connected however long it is silent; one that does
// not is closed after two ping intervals and counted as a timeout.
func TestKeepalive(t *testing.T) {
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, ws.WithTimings(50*time.Millisecond, 0), plainSpec(), rec)

	live := dialWS(t, nil, "ws://"+run.Addr+"/live", nil)
	var pings atomic.Int32
	live.SetPingHandler(func(d string) error {
		pings.Add(1)
		return live.WriteControl(websocket.PongMessage, []byte(d), time.Now().Add(time.Second))
	})
	readDone := make(chan error, 1)
	go func() {
		_, _, err := live.ReadMessage()
		readDone <- err
	}()
	waitFor(t, "6 pings", func() bool { return pings.Load() >= 6 }) // three times the silence allowed
	if c := rec.Closed(); len(c) != 0 {
		t.Fatalf("a device that answers pings was closed: %q", c)
	}

	dead := dialWS(t, nil, "ws://"+run.Addr+"/dead", nil) // never reads: never pongs
	_ = dead
	if got := rec.WaitClosed(t, 1)[0]; got != "nothing received for 100ms" {
		t.Fatalf("the silent device closed with %q", got)
	}
	run.WaitErrors(t, "timeout", 1)
	if opened := rec.Opened(); len(rec.Closed()) != 1 || opened[1].Path != "/dead" {
		t.Fatalf("closed %q; want only /dead", rec.Closed())
	}
	live.Close()
	<-readDone
	dead.Close()
	run.Stop(t)
	listenertest.Goroutines(t, base, 1)
}

// Oversized, malformed and truncated frames each end their connection with a clear close
// (1009, 1002) or a plain hang-up, reach no session, and are counted; a message of
// exactly MaxMessage arrives.
func TestBadFrames(t *testing.T) {
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, ws.Listener{}, plainSpec(), rec)
	url := "ws://" + run.Addr + "/d"

	exact := dialWS(t, nil, url, nil)
	exact.WriteMessage(websocket.BinaryMessage, make([]byte, ws.MaxMessage))
	if f := rec.WaitFrames(t, 1); len(f[0].Payload) != ws.MaxMessage {
		t.Fatalf("%d bytes arrived, want %d", len(f[0].Payload), ws.MaxMessage)
	}
	exact.Close()

	huge := make([]byte, 0, 16)
	huge = append(huge, 0x82, 0x80|127)
	huge = binary.BigEndian.AppendUint64(huge, 1<<40) // announced, never sent
	huge = append(huge, 0, 0, 0, 0)
	cases := []struct {
		name   string
		raw    []byte // written to the socket; nil: one message of MaxMessage+1 bytes
		code   int
		reason string
	}{
		{"one byte over", nil, websocket.CloseMessageTooBig, "message over 1048576 bytes"},
		{"announced 1 TiB", huge, websocket.CloseMessageTooBig, "message over 1048576 bytes"},
		{"unknown opcode", clientFrame(0x83, nil, true), websocket.CloseProtocolError, "bad frame: websocket: "},
		{"unmasked", clientFrame(0x81, []byte("hi"), false), websocket.CloseProtocolError, "bad frame: websocket: "},
		{"reserved bits", clientFrame(0xc1, []byte("hi"), true), websocket.CloseProtocolError, "bad frame: websocket: "},
		{"long ping", clientFrame(0x89, bytes.Repeat([]byte("p"), 200), true), websocket.CloseProtocolError, "bad frame: websocket: "},
		{"continuation first", clientFrame(0x80, []byte("hi"), true), websocket.CloseProtocolError, "bad frame: websocket: "},
	}
	for i, c := range cases {
		conn := dialWS(t, nil, url, nil)
		var err error
		if c.raw == nil {
			err = conn.WriteMessage(websocket.BinaryMessage, make([]byte, ws.MaxMessage+1))
		} else {
			_, err = conn.NetConn().Write(c.raw)
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		ce := closeError(t, conn)
		got := rec.WaitClosed(t, i+2)[i+1]
		t.Logf("%s: close %d %q; session closed with %q", c.name, ce.Code, ce.Text, got)
		if ce.Code != c.code || !strings.HasPrefix(got, c.reason) {
			t.Errorf("%s: close %d %q, session closed with %q; want %d and %q", c.name, ce.Code, ce.Text, got, c.code, c.reason)
		}
	}
	if run.Errors("oversize") != 2 || run.Errors("garbage") != 5 {
		t.Errorf("oversize %v, garbage %v; want 2 and 5", run.Errors("oversize"), run.Errors("garbage"))
	}

	// A frame cut short by a hang-up.
	cut := dialWS(t, nil, url, nil)
	cut.NetConn().Write(clientFrame(0x82, make([]byte, 100), true)[:20])
	cut.NetConn().(interface{ CloseWrite() error }).CloseWrite()
	if got := rec.WaitClosed(t, len(cases)+2)[len(cases)+1]; !strings.HasPrefix(got, "connection lost") {
		t.Errorf("truncated frame: session closed with %q", got)
	}
	io.Copy(io.Discard, cut.NetConn())

	if f := rec.Frames(); len(f) != 1 {
		t.Fatalf("%d frames; bad input must not reach the session", len(f))
	}
	run.Stop(t)
	listenertest.Goroutines(t, base, 1)
}

// Plain HTTP clients learn what the port is.
func TestPlainHTTPClient(t *testing.T) {
	run := listenertest.Serve(t, ws.Listener{}, plainSpec(), listenertest.NewRecorder())
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + run.Addr + "/p/d")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Upgrade") != "websocket" || !strings.Contains(string(body), "RFC 6455") {
		t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("Upgrade"), body)
	}
}
