package tcp_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/tcp"
	"github.com/linkops/linkops/resource"
)

// Every parser, through a real socket: the stream is written in odd-sized pieces (several
// frames in one write, frames across writes) and arrives split exactly.
func TestEveryParserSplitsTheStreamExactly(t *testing.T) {
	for _, tt := range tcp.FramingCases() {
		t.Run(tt.Name, func(t *testing.T) {
			patiently(t, func() bool {
				r, rec := serve(t, tcpSpec(tt.Cfg))
				defer r.Stop(t)
				c := dial(t, r.Addr)
				werr := writeChunks(c, tt.Stream, []int{1, 7, 2, 300, 3, 1, 64})
				waitUntil(t, "the messages", func() bool { return len(rec.Frames()) >= len(tt.Want) || len(rec.Closed()) > 0 })
				if closed := rec.Closed(); timedOut(closed) {
					return false
				} else if len(closed) > 0 || werr != nil {
					t.Fatalf("connection closed (%q), write error %v", closed, werr)
				}
				got := payloads(rec.Frames())
				if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.Want) {
					t.Fatalf("messages %q, want %q", got, tt.Want)
				}
				if info := rec.Opened()[0]; info.Transport != listeners.TransportTCP || info.Remote != c.LocalAddr().String() || info.TLS {
					t.Fatalf("conn info %+v", info)
				}
				// The incomplete tail stays buffered: nothing more is delivered.
				stillOpen(t, c)
				if n := len(rec.Frames()); n != len(tt.Want) {
					t.Fatalf("%d messages, want %d", n, len(tt.Want))
				}
				return true
			})
		})
	}
}

func TestDirectDeliversEachRead(t *testing.T) {
	r, rec := serve(t, tcpSpec(resource.NetworkConfig{}))
	c := dial(t, r.Addr)
	for i, msg := range []string{"hello", "\x00\x01", strings.Repeat("z", 5000)} {
		write(t, c, msg)
		if got := rec.WaitFrames(t, i+1)[i]; string(got.Payload) != msg || got.Topic != "" {
			t.Fatalf("message %d = %q", i, got.Payload)
		}
	}
}

// With no gateway, SPEC §4.3.1: messages are dropped and counted, the debug stream shows
// them, and the connection stays open.
func TestNoGatewayDropsMessagesAndKeepsTheConnection(t *testing.T) {
	spec := tcpSpec(parser(resource.ParserDelimited, resource.ParserConfig{Delimited: `\n`}))
	r := listenertest.Serve(t, tcp.Listener{}, spec, listeners.NoGateway{})
	sub := r.Hub.Subscribe(spec.ComponentID, 16)
	defer sub.Close()
	c := dial(t, r.Addr)
	next := func() listeners.Event {
		t.Helper()
		select {
		case e := <-sub.C:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no debug event within 10 s")
			return listeners.Event{}
		}
	}
	if e := next(); e.Kind != listeners.EventConnect || e.Remote != c.LocalAddr().String() {
		t.Fatalf("first event %+v, want the connect", e)
	}
	for i, msg := range []string{"first", "second"} {
		write(t, c, msg+"\n")
		if e := next(); e.Kind != listeners.EventMessage || string(e.Payload) != msg || e.Size != len(msg) {
			t.Fatalf("event %+v, want the message %q", e, msg)
		}
		r.WaitErrors(t, "no_gateway", float64(i+1))
		stillOpen(t, c)
	}
	if n := r.Env.Connections(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	c.Close()
	if e := next(); e.Kind != listeners.EventDisconnect || e.Reason != "closed by the device" {
		t.Fatalf("event %+v, want the disconnect", e)
	}
}

// A session's refusal closes the connection; a dropped message does not.
func TestSessionRefusalClosesTheConnection(t *testing.T) {
	spec := tcpSpec(parser(resource.ParserDelimited, resource.ParserConfig{Delimited: `\n`}))
	rec := listenertest.NewRecorder()
	rec.Reply = func(f listeners.Frame) (*listeners.Reply, error) {
		switch string(f.Payload) {
		case "drop":
			return nil, listeners.ErrDropped
		case "intruder":
			return nil, fmt.Errorf("device x: %w", listeners.ErrNotAuthorized)
		}
		return nil, nil
	}
	r := listenertest.Serve(t, tcp.Listener{}, spec, rec)
	c := dial(t, r.Addr)
	write(t, c, "drop\nok\n")
	rec.WaitFrames(t, 2)
	stillOpen(t, c)
	write(t, c, "intruder\nnever\n")
	waitClosed(t, c)
	if reasons := rec.WaitClosed(t, 1); !strings.Contains(reasons[0], "not authorized") {
		t.Fatalf("closed because %q", reasons[0])
	}
	if got := payloads(rec.Frames()); len(got) != 3 {
		t.Fatalf("messages %q: the one after the refusal must not be delivered", got)
	}
	r.WaitErrors(t, "unauthorized", 1)

	refuser := listenertest.NewRecorder()
	refuser.Refuse = listeners.ErrNotAuthorized
	r2 := listenertest.Serve(t, tcp.Listener{}, spec, refuser)
	c2 := dial(t, r2.Addr)
	waitClosed(t, c2)
	r2.WaitErrors(t, "unauthorized", 1)
}

// A handler that closes the connection while a read is being framed gets no further
// message from it, and the session is closed once, with the handler's reason.
func TestCloseFromTheHandlerStopsDelivery(t *testing.T) {
	rec := listenertest.NewRecorder()
	rec.Reply = func(f listeners.Frame) (*listeners.Reply, error) {
		if string(f.Payload) == "close" {
			rec.Conns()[0].Close("asked to")
		}
		return nil, nil
	}
	r := listenertest.Serve(t, tcp.Listener{}, tcpSpec(parser(resource.ParserDelimited, resource.ParserConfig{Delimited: `\n`})), rec)
	c := dial(t, r.Addr)
	write(t, c, "a\nclose\nb\nc\n")
	waitClosed(t, c)
	if reasons := rec.WaitClosed(t, 1); len(reasons) != 1 || reasons[0] != "asked to" {
		t.Fatalf("closed because %q", reasons)
	}
	if got := payloads(rec.Frames()); fmt.Sprintf("%q", got) != `["a" "close"]` {
		t.Fatalf("messages %q", got)
	}
}

// A SCRIPT that loops costs the connection that made it loop, nothing else.
func TestScriptLoopClosesOnlyThatConnection(t *testing.T) {
	spec := tcpSpec(parser(resource.ParserScript, resource.ParserConfig{Script: `
function split(bytes) {
  if (bytes[0] === 0xff) { for (;;) {} }
  var i = bytes.indexOf(10);
  return i < 0 ? 0 : i + 1;
}`}))
	patiently(t, func() bool {
		r, rec := serve(t, spec)
		defer r.Stop(t)
		good := dial(t, r.Addr)
		write(t, good, "before\n")
		waitUntil(t, "the first message", func() bool { return len(rec.Frames()) == 1 || len(rec.Closed()) > 0 })
		if timedOut(rec.Closed()) {
			return false
		}
		bad := dial(t, r.Addr)
		write(t, bad, "\xff\n")
		waitClosed(t, bad)
		r.WaitErrors(t, "script_timeout", 1)
		if reasons := rec.WaitClosed(t, 1); len(reasons) != 1 || !timedOut(reasons) {
			t.Fatalf("closed because %q", reasons)
		}
		write(t, good, "after\n")
		later := dial(t, r.Addr)
		write(t, later, "later\n")
		waitUntil(t, "the other messages", func() bool { return len(rec.Frames()) == 3 || len(rec.Closed()) > 1 })
		if closed := rec.Closed(); len(closed) > 1 {
			if timedOut(closed[1:]) {
				return false
			}
			t.Fatalf("closed %q; only the looping connection may be", closed)
		}
		if got := payloads(rec.Frames()); got[0] != "before\n" || len(got) != 3 {
			t.Fatalf("messages %q", got)
		}
		return true
	})
}

// Garbage, truncated and oversized input: the connection is closed and counted, the
// server never buffers what it refused, and every goroutine ends.
func TestBadInputClosesTheConnectionAndLeavesNothingBehind(t *testing.T) {
	base := runtime.NumGoroutine()
	lengthField := tcpSpec(parser(resource.ParserLengthField, resource.ParserConfig{Length: 4}))
	for _, tt := range []struct {
		Name   string
		Spec   listeners.Spec
		Stream []byte
		Reason string
	}{
		{"LENGTH_FIELD announcing 16 MiB", lengthField, []byte{0x01, 0, 0, 0, 'x'}, "oversize"},
		{"DELIMITED without a delimiter", tcpSpec(parser(resource.ParserDelimited, resource.ParserConfig{Delimited: `\r\n`})),
			nil, "oversize"},
		{"SCRIPT calling it garbage", tcpSpec(parser(resource.ParserScript, resource.ParserConfig{Script: "function split(b) { return -1 }"})),
			[]byte("junk"), "garbage"},
		{"SCRIPT returning nonsense", tcpSpec(parser(resource.ParserScript, resource.ParserConfig{Script: "function split(b) { return 'many' }"})),
			[]byte("junk"), "script"},
	} {
		t.Run(tt.Name, func(t *testing.T) {
			patiently(t, func() bool {
				r, rec := serve(t, tt.Spec)
				defer r.Stop(t)
				c := dial(t, r.Addr)
				if tt.Stream != nil {
					write(t, c, string(tt.Stream))
				} else {
					// 16 MiB without a delimiter: the server must close after 1 MiB, so
					// the writes fail long before the end (the kernel buffers a few MiB).
					chunk := bytes.Repeat([]byte{'x'}, 64<<10)
					var err error
					for i := 0; i < 256 && err == nil; i++ {
						c.SetWriteDeadline(time.Now().Add(10 * time.Second))
						_, err = c.Write(chunk)
					}
					if err == nil {
						t.Fatal("16 MiB without a delimiter were all accepted")
					}
				}
				waitClosed(t, c)
				if timedOut(rec.WaitClosed(t, 1)) {
					return false
				}
				r.WaitErrors(t, tt.Reason, 1)
				if n := len(rec.Frames()); n != 0 {
					t.Fatalf("%d messages delivered", n)
				}
				return true
			})
		})
	}
	// A truncated frame, then the device goes away: no message, the session closed.
	r, rec := serve(t, lengthField)
	c := dial(t, r.Addr)
	write(t, c, "\x00\x00\x00\x09trunc")
	c.Close()
	if reasons := rec.WaitClosed(t, 1); reasons[0] != "closed by the device" || len(rec.Frames()) != 0 {
		t.Fatalf("closed because %q, %d messages", reasons[0], len(rec.Frames()))
	}
	r.Stop(t)
	listenertest.Goroutines(t, base, 2)
}

func TestKeepAliveTimeoutClosesSilentConnections(t *testing.T) {
	cfg := parser(resource.ParserDelimited, resource.ParserConfig{Delimited: `\n`})
	cfg.KeepAliveTimeout = 1
	r, rec := serve(t, tcpSpec(cfg))
	silent := dial(t, r.Addr)
	write(t, silent, "hello\n")
	rec.WaitFrames(t, 1)
	talker := dial(t, r.Addr)
	// The talker speaks every 50 ms for 2.5 s, well past the timeout; each read renews it.
	for i := range 50 {
		write(t, talker, fmt.Sprintf("%d\n", i))
		time.Sleep(50 * time.Millisecond)
	}
	waitClosed(t, silent)
	if reasons := rec.WaitClosed(t, 1); reasons[0] != "keepalive timeout: silent for 1s" {
		t.Fatalf("closed because %q", reasons)
	}
	r.WaitErrors(t, "timeout", 1)
	if n := len(rec.WaitFrames(t, 51)); n != 51 {
		t.Fatalf("%d messages", n)
	}
	if reasons := rec.Closed(); len(reasons) != 1 {
		t.Fatalf("closed %q; the talker must stay", reasons)
	}
	stillOpen(t, talker)
}

// Downlinks from several goroutines at once, while the device keeps sending: each frame
// arrives whole.
func TestSendIsSafeAlongsideReads(t *testing.T) {
	r, rec := serve(t, tcpSpec(parser(resource.ParserDelimited, resource.ParserConfig{Delimited: `\n`})))
	c := dial(t, r.Addr)
	write(t, c, "hi\n")
	rec.WaitFrames(t, 1)
	conn := rec.Conns()[0]
	var wg sync.WaitGroup
	want := map[string]bool{}
	for g := range 4 {
		for i := range 50 {
			want[fmt.Sprintf("%d-%d-%s", g, i, strings.Repeat("p", 100))] = true
		}
		wg.Go(func() {
			for i := range 50 {
				if err := conn.Send(listeners.Frame{Payload: fmt.Appendf(nil, "%d-%d-%s\n", g, i, strings.Repeat("p", 100))}); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			if _, err := fmt.Fprintf(c, "up %d\n", i); err != nil {
				t.Errorf("uplink: %v", err)
				return
			}
		}
	})
	got := map[string]bool{}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf []byte
	for len(got) < len(want) {
		b := make([]byte, 4096)
		n, err := c.Read(b)
		if err != nil {
			t.Fatalf("after %d downlinks: %v", len(got), err)
		}
		buf = append(buf, b[:n]...)
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			if line := string(buf[:i]); !want[line] {
				t.Fatalf("downlink %q was not sent", line)
			} else {
				got[line] = true
			}
			buf = buf[i+1:]
		}
	}
	wg.Wait()
	rec.WaitFrames(t, 51)

	conn.Close("test done")
	waitClosed(t, c)
	if err := conn.Send(listeners.Frame{Payload: []byte("late")}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
	if reasons := rec.WaitClosed(t, 1); reasons[0] != "test done" {
		t.Fatalf("closed because %q", reasons[0])
	}
}

func TestStopClosesEveryConnection(t *testing.T) {
	base := runtime.NumGoroutine()
	r, rec := serve(t, tcpSpec(parser(resource.ParserFixedLength, resource.ParserConfig{Size: 4})))
	a, b := dial(t, r.Addr), dial(t, r.Addr)
	write(t, a, "abcd")
	write(t, b, "ab") // mid-frame
	rec.WaitOpened(t, 2)
	rec.WaitFrames(t, 1)
	r.Stop(t)
	waitClosed(t, a)
	waitClosed(t, b)
	if reasons := rec.WaitClosed(t, 2); reasons[0] != "listener stopped" || reasons[1] != "listener stopped" {
		t.Fatalf("closed because %q", reasons)
	}
	listenertest.Goroutines(t, base, 2)
}

func TestBindFailureReturnsTheOSError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	spec := tcpSpec(resource.NetworkConfig{})
	spec.Config.Port = taken.Addr().(*net.TCPAddr).Port
	err = listenertest.ServeErr(t, tcp.Listener{}, spec, listenertest.NewRecorder())
	want := fmt.Sprintf("listen tcp %s: bind: address already in use", taken.Addr())
	if !errors.Is(err, syscall.EADDRINUSE) || err.Error() != want {
		t.Fatalf("Serve = %v, want %q", err, want)
	}
}

func TestServeRefusesABadParser(t *testing.T) {
	spec := tcpSpec(parser(resource.ParserScript, resource.ParserConfig{Script: "function splat() {}"}))
	err := listenertest.ServeErr(t, tcp.Listener{}, spec, listenertest.NewRecorder())
	if err == nil || !strings.Contains(err.Error(), "defines no split function") {
		t.Fatalf("Serve = %v", err)
	}
	spec = tcpSpec(resource.NetworkConfig{Secure: true, CertID: "c1"})
	if err := listenertest.ServeErr(t, tcp.Listener{}, spec, listenertest.NewRecorder()); err == nil {
		t.Fatal("Serve without TLS material = nil")
	}
}
