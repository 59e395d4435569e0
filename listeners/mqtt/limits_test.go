package mqtt_test

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/mqtt"
)

// publishOfSize is a QoS 0 PUBLISH to "t" exactly size bytes long in all.
func publishOfSize(level byte, size int) []byte {
	for n := size; n > 0; n-- {
		if pk := publish0(level, "t", bytes.Repeat([]byte{'x'}, n)); len(pk) <= size {
			if len(pk) == size {
				return pk
			}
			break
		}
	}
	panic("no PUBLISH of that size")
}

// maxMessageSize is the MQTT packet limit: a packet of exactly that size is a message, a
// larger one disconnects its client (3.1.1 and 5.0 alike) while the others stay; MQTT 5
// clients are told the limit in the CONNACK.
func TestOversizePacketDisconnectsThatClientOnly(t *testing.T) {
	h := &tracker{}
	spec := plainSpec()
	spec.Config.MaxMessageSize = 1024
	run := serve(t, spec, h)
	bystander, err := pahoClient(t, run.Addr, "bystander", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.session(t, 0)
	for i, level := range []byte{4, 5} {
		c := dialRaw(t, run.Addr)
		c.write(t, map[byte][]byte{4: mqtt.ConnectPacket("big", "u", "p", 30), 5: connect5("big", "u", "p")}[level])
		_, ack := c.read(t)
		// MQTT 5: properties after flags and code; Maximum Packet Size is 0x27 + uint32.
		if level == 5 && !bytes.Contains(ack, []byte{0x27, 0, 0, 4, 0}) {
			t.Fatalf("MQTT 5 CONNACK % x does not advertise a 1024-byte maximum packet size", ack)
		}
		s := h.session(t, 1+i)
		c.write(t, publishOfSize(level, 1024))
		eventually(t, "the 1024-byte message", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(s.frames) == 1 })
		c.write(t, publishOfSize(level, 1025))
		c.closedByServer(t)
		eventually(t, "session closed", func() bool { return len(s.closedReasons()) == 1 })
		if r := s.closedReasons()[0]; !strings.Contains(r, "maxMessageSize") {
			t.Fatalf("closed with %q", r)
		}
	}
	run.WaitErrors(t, "oversize", 2)
	wait(t, bystander.Publish("still/here", 1, false, []byte("ok")))
	if !bystander.IsConnectionOpen() || len(h.session(t, 0).closedReasons()) != 0 {
		t.Fatal("the bystander lost its connection")
	}
	// An oversize CONNECT is refused the same way, before any handler sees it.
	c := dialRaw(t, run.Addr)
	c.write(t, mqtt.ConnectPacket("big", strings.Repeat("u", 1100), "p", 30))
	c.closedByServer(t)
	run.WaitErrors(t, "oversize", 3)
}

// A fixed header that claims a 256 MiB packet (5 bytes on the wire), before or after
// CONNECT, costs its sender the connection and the broker no memory.
func TestHugeLengthClaimsAllocateNothing(t *testing.T) {
	rec := listenertest.NewRecorder()
	run := serve(t, plainSpec(), rec)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 50
	var conns []*raw
	for i := range n {
		c := dialRaw(t, run.Addr)
		if i%2 == 1 {
			if code := c.connect(t, 4, "", "u", "p"); code != 0 {
				t.Fatalf("CONNACK %#x", code)
			}
			c.write(t, []byte{0x30, 0xff, 0xff, 0xff, 0x7f})
		} else {
			c.write(t, []byte{0x10, 0xff, 0xff, 0xff, 0x7f})
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.closedByServer(t)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("%d MiB allocated for %d connections claiming 256 MiB packets", grew>>20, n)
	}
	run.WaitErrors(t, "oversize", n)
}

// Nothing waits for a CONNECT longer than ConnectTimeout: not a silent connection, not a
// CONNECT cut short, not a TLS client that never says hello.
func TestConnectDeadline(t *testing.T) {
	defer func(d time.Duration) { mqtt.ConnectTimeout = d }(mqtt.ConnectTimeout)
	mqtt.ConnectTimeout = 300 * time.Millisecond

	run := serve(t, plainSpec(), listeners.NoGateway{})
	silent := dialRaw(t, run.Addr)
	cut := dialRaw(t, run.Addr)
	pk := mqtt.ConnectPacket("d", "u", "p", 30)
	cut.write(t, pk[:len(pk)-3])
	silent.closedByServer(t)
	cut.closedByServer(t)
	run.WaitErrors(t, "timeout", 2)

	secure := serve(t, newPKI(t, false).spec(t), listeners.NoGateway{})
	dialRaw(t, secure.Addr).closedByServer(t)
	secure.WaitErrors(t, "tls_handshake", 1)
}

// The subscriptions a client can make us keep are capped, and $-topics are refused.
func TestSubscriptionCap(t *testing.T) {
	run := serve(t, plainSpec(), &tracker{})
	c, err := pahoClient(t, run.Addr, "subscriber", nil)
	if err != nil {
		t.Fatal(err)
	}
	filters := map[string]byte{"$SYS/#": 0}
	for i := range 101 {
		filters["/p/d/"+strings.Repeat("x", i)] = 1
	}
	tok := c.SubscribeMultiple(filters, nil)
	wait(t, tok)
	granted := 0
	for f, code := range tok.(*paho.SubscribeToken).Result() {
		switch {
		case code == 0x80:
		case f == "$SYS/#":
			t.Fatalf("$SYS/# granted %#x", code)
		default:
			granted++
		}
	}
	if granted != 100 {
		t.Fatalf("%d subscriptions granted, want 100", granted)
	}
}
