package udp_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/udp"
)

// Each datagram is one message of its sender's Conn, and Send answers the sender.
func TestPlainDatagramsAndReplies(t *testing.T) {
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, plainSpec(), rec)
	a, b := dial(t, run.Addr), dial(t, run.Addr)

	big := bytes.Repeat([]byte{0xA5}, 60_000)
	send(t, a, []byte("a1"))
	rec.WaitFrames(t, 1)
	send(t, b, []byte("b1"))
	rec.WaitFrames(t, 2)
	send(t, a, big)
	send(t, a, nil) // an empty datagram is a message too
	frames := rec.WaitFrames(t, 4)

	want := [][]byte{[]byte("a1"), []byte("b1"), big, {}}
	for i, f := range frames {
		if !bytes.Equal(f.Payload, want[i]) || f.Topic != "" {
			t.Errorf("frame %d: %d bytes, topic %q; want %d bytes", i, len(f.Payload), f.Topic, len(want[i]))
		}
	}
	opened := rec.Opened()
	if len(opened) != 2 {
		t.Fatalf("opened %d conns, want one per sender (2): %+v", len(opened), opened)
	}
	for i, c := range []*net.UDPConn{a, b} {
		if opened[i].Remote != c.LocalAddr().String() || opened[i].Transport != listeners.TransportUDP || opened[i].TLS {
			t.Errorf("conn %d info %+v; want remote %s, transport UDP, no TLS", i, opened[i], c.LocalAddr())
		}
	}

	conns := rec.Conns()
	if err := conns[1].Send(listeners.Frame{Payload: []byte("to b")}); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, b); string(got) != "to b" {
		t.Errorf("b received %q, want %q", got, "to b")
	}
	if err := conns[0].Send(listeners.Frame{Payload: []byte("to a")}); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, a); string(got) != "to a" {
		t.Errorf("a received %q, want %q", got, "to a")
	}
}

// With no gateway, datagrams are dropped and counted, and the debug stream shows them.
func TestPlainNoGateway(t *testing.T) {
	run := listenertest.Serve(t, udp.Listener{}, plainSpec(), listeners.NoGateway{})
	sub := run.Hub.Subscribe("udp-test", 16)
	defer sub.Close()
	c := dial(t, run.Addr)
	send(t, c, []byte{0x01, 0x02})

	var kinds []string
	for len(kinds) < 2 {
		select {
		case e := <-sub.C:
			kinds = append(kinds, e.Kind)
			if e.Remote != c.LocalAddr().String() {
				t.Errorf("event %s remote %q, want %q", e.Kind, e.Remote, c.LocalAddr())
			}
			if e.Kind == listeners.EventMessage && !bytes.Equal(e.Payload, []byte{0x01, 0x02}) {
				t.Errorf("debug message payload %x", e.Payload)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("debug stream saw %v; want connect and message", kinds)
		}
	}
	if kinds[0] != listeners.EventConnect || kinds[1] != listeners.EventMessage {
		t.Errorf("debug events %v; want [connect message]", kinds)
	}
	send(t, c, []byte{0x03})
	run.WaitErrors(t, "no_gateway", 2)
}

// A peer silent for udp.IdleTimeout is forgotten; its next datagram opens a new Conn.
func TestPlainIdlePeerForgotten(t *testing.T) {
	setVar(t, &udp.IdleTimeout, 100*time.Millisecond)
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, plainSpec(), rec)
	c := dial(t, run.Addr)
	send(t, c, []byte("x"))
	if got := rec.WaitClosed(t, 1); got[0] != "idle" {
		t.Errorf("closed %q, want idle", got[0])
	}
	if err := rec.Conns()[0].Send(listeners.Frame{Payload: []byte("late")}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send on a forgotten peer: %v, want net.ErrClosed", err)
	}
	send(t, c, []byte("y"))
	rec.WaitOpened(t, 2)
}

// The peer table is capped: the peer idle longest is evicted and counted.
func TestPlainPeerTableCapped(t *testing.T) {
	setVar(t, &udp.MaxPeers, 3)
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, plainSpec(), rec)
	var cs []*net.UDPConn
	for i := range 5 {
		c := dial(t, run.Addr)
		cs = append(cs, c)
		send(t, c, fmt.Appendf(nil, "%d", i))
		rec.WaitFrames(t, i+1)
	}
	for _, r := range rec.WaitClosed(t, 2) {
		if !strings.HasPrefix(r, "evicted") {
			t.Errorf("closed %q, want evicted", r)
		}
	}
	if n := run.Errors("peers_full"); n != 2 {
		t.Errorf("peers_full = %v, want 2", n)
	}
	send(t, cs[4], []byte("again")) // still known: no new Conn
	rec.WaitFrames(t, 6)
	if n := len(rec.Opened()); n != 5 {
		t.Errorf("opened %d, want 5", n)
	}
	send(t, cs[0], []byte("back")) // evicted earlier: a new Conn, evicting the longest idle
	rec.WaitOpened(t, 6)
	rec.WaitClosed(t, 3)
}

// The handler's Close forgets the peer; a refused message ends it; a refused Open is
// counted and nothing is remembered.
func TestPlainCloseAndRefusals(t *testing.T) {
	var refuse atomic.Bool
	rec := listenertest.NewRecorder()
	rec.Reply = func(listeners.Frame) (*listeners.Reply, error) {
		if refuse.Load() {
			return nil, listeners.ErrNotAuthorized
		}
		return nil, nil
	}
	run := listenertest.Serve(t, udp.Listener{}, plainSpec(), rec)
	c := dial(t, run.Addr)
	send(t, c, []byte("1"))
	rec.WaitFrames(t, 1)
	rec.Conns()[0].Close("bye")
	if got := rec.WaitClosed(t, 1); got[0] != "bye" {
		t.Errorf("closed %q, want bye", got[0])
	}
	send(t, c, []byte("2"))
	rec.WaitOpened(t, 2)

	refuse.Store(true)
	send(t, c, []byte("3"))
	if got := rec.WaitClosed(t, 2); !strings.Contains(got[1], "not authorized") {
		t.Errorf("closed %q, want a refusal", got[1])
	}

	refusing := listenertest.NewRecorder()
	refusing.Refuse = listeners.ErrNotAuthorized
	run2 := listenertest.Serve(t, udp.Listener{}, plainSpec(), refusing)
	d := dial(t, run2.Addr)
	send(t, d, []byte("a"))
	send(t, d, []byte("b"))
	run2.WaitErrors(t, "unauthorized", 2)
	if run2.Env.Connections() != 0 {
		t.Errorf("%d connections open after refusals", run2.Env.Connections())
	}
}

// A taken port is reported at once, with the operating system's message; nothing panics
// without a certificate.
func TestBindErrors(t *testing.T) {
	taken, err := net.ListenUDP("udp", udpAddr(t, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	spec := plainSpec()
	spec.Config.Port = taken.LocalAddr().(*net.UDPAddr).Port
	err = listenertest.ServeErr(t, udp.Listener{}, spec, listenertest.NewRecorder())
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Serve on a taken port: %v", err)
	}

	err = listenertest.ServeErr(t, udp.Listener{}, dtlsSpec(nil), listenertest.NewRecorder())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("secure Serve without a certificate: %v", err)
	}
}

// Stop closes every peer and leaves no goroutine behind.
func TestPlainStop(t *testing.T) {
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, plainSpec(), rec)
	for i := range 3 {
		send(t, dial(t, run.Addr), []byte{byte(i)})
	}
	rec.WaitFrames(t, 3)
	run.Stop(t)
	for _, r := range rec.WaitClosed(t, 3) {
		if r != "listener stopped" {
			t.Errorf("closed %q, want listener stopped", r)
		}
	}
	if n := run.Env.Connections(); n != 0 {
		t.Errorf("%d connections counted after stop", n)
	}
	listenertest.Goroutines(t, base, 0)
}
