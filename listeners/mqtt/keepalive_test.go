package mqtt_test

import (
	"testing"

	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/mqtt"
)

// A client is given one and a half keepalives for each packet: one that announced 1 s
// and then says nothing is closed, its session ending with "keepalive timeout" (counted
// as timeout); a PINGREQ is answered with a PINGRESP on the same connection.
func TestKeepalive(t *testing.T) {
	rec := listenertest.NewRecorder()
	run := serve(t, plainSpec(), rec)
	ping := dialRaw(t, run.Addr)
	ping.write(t, mqtt.ConnectPacket("pinger", "u", "p", 600))
	if typ, body := ping.read(t); typ != 0x20 || body[1] != 0 {
		t.Fatalf("CONNACK %#x % x", typ, body)
	}
	ping.write(t, []byte{0xC0, 0}) // PINGREQ
	if typ, body := ping.read(t); typ != 0xD0 || len(body) != 0 {
		t.Fatalf("want a PINGRESP, got %#x % x", typ, body)
	}

	silent := dialRaw(t, run.Addr)
	silent.write(t, mqtt.ConnectPacket("silent", "u", "p", 1))
	if typ, body := silent.read(t); typ != 0x20 || body[1] != 0 {
		t.Fatalf("CONNACK %#x % x", typ, body)
	}
	silent.closedByServer(t)
	if r := rec.WaitClosed(t, 1); r[0] != "keepalive timeout" {
		t.Fatalf("closed with %q, want keepalive timeout", r)
	}
	run.WaitErrors(t, "timeout", 1)
	if n := len(rec.Closed()); n != 1 {
		t.Fatalf("%d sessions closed, want only the silent one", n)
	}
}
