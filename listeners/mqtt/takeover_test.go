package mqtt_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/linkops/linkops/listeners"
)

// A client id that connects again takes over: the old connection is ended after the
// new one was admitted, and it is the OLD session that is closed, once; the new one
// stays open and gets the downlinks. Over 3.1.1 and 5.0, and for a burst of reconnects.
func TestTakeoverClosesTheOldSession(t *testing.T) {
	for _, level := range []byte{4, 5} {
		h := &tracker{}
		run := serve(t, plainSpec(), h)
		const n = 20
		var clients []*raw
		for i := range n {
			c := dialRaw(t, run.Addr)
			if code := c.connect(t, level, "dev-1", "u", "p"); code != 0 {
				t.Fatalf("level %d, connection %d: CONNACK %#x", level, i, code)
			}
			clients = append(clients, c)
			h.session(t, i)
		}
		for i, c := range clients[:n-1] {
			c.closedByServer(t)
			s := h.session(t, i)
			eventually(t, "old session closed", func() bool { return len(s.closedReasons()) > 0 })
			if r := s.closedReasons(); len(r) != 1 || !strings.Contains(r[0], "taken over") {
				t.Fatalf("level %d: session %d closed with %q, want once, taken over", level, i, r)
			}
			if err := s.conn.Send(listeners.Frame{Topic: "t", Payload: []byte("x")}); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Send to a taken-over connection: %v", err)
			}
		}
		last := h.session(t, n-1)
		if r := last.closedReasons(); len(r) != 0 {
			t.Fatalf("level %d: the newest session was closed: %q", level, r)
		}
		eventually(t, "one connection counted", func() bool { return run.Env.Connections() == 1 })

		if err := last.conn.Send(listeners.Frame{Topic: "/p/dev-1/down", Payload: []byte("hello")}); err != nil {
			t.Fatal(err)
		}
		typ, body := clients[n-1].read(t)
		if typ>>4 != 3 || u16(body) != len("/p/dev-1/down") || !strings.HasSuffix(string(body), "hello") {
			t.Fatalf("level %d: got type %#x % x, want the PUBLISH", level, typ, body)
		}
		clients[n-1].write(t, []byte{0xE0, 0}) // DISCONNECT
		eventually(t, "newest session closed", func() bool { return len(last.closedReasons()) == 1 })
	}
}

// Clients that connect without a client id get one of mochi's and never take each other
// over: all of them stay connected.
func TestEmptyClientIDsDoNotTakeOver(t *testing.T) {
	h := &tracker{}
	run := serve(t, plainSpec(), h)
	const n = 5
	for i := range n {
		c := dialRaw(t, run.Addr)
		if code := c.connect(t, 4, "", "u", "p"); code != 0 {
			t.Fatalf("connection %d: CONNACK %#x", i, code)
		}
		h.session(t, i)
	}
	eventually(t, "every client counted", func() bool { return run.Env.Connections() == n })
	for i := range n {
		if r := h.session(t, i).closedReasons(); len(r) != 0 {
			t.Fatalf("client %d without an id was closed: %q", i, r)
		}
	}
}
