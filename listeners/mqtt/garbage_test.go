package mqtt_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/mqtt"
)

// wireCases are byte streams real clients never send; connected ones follow a valid
// CONNECT.
var wireCases = []struct {
	name      string
	connected bool
	bytes     []byte
}{
	{"http request", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
	{"publish before connect", false, publish0(4, "t", []byte("x"))},
	{"bad protocol name", false, []byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'X', 'X', 4, 2, 0, 30, 0, 0}},
	{"protocol level 9", false, []byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 9, 2, 0, 30, 0, 0}},
	{"length of five bytes", false, []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}},
	{"connect flags reserved bit", false, []byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 3, 0, 30, 0, 0}},
	{"truncated connect", false, mqtt.ConnectPacket("d", "u", "p", 30)[:9]},
	{"second connect", true, mqtt.ConnectPacket("d", "u", "p", 30)},
	{"reserved packet type", true, []byte{0xf0, 0}},
	{"connack from a client", true, []byte{0x20, 2, 0, 0}},
	{"publish qos 3", true, []byte{0x36, 4, 0, 1, 't', 0}},
	{"publish topic runs past the packet", true, []byte{0x30, 3, 0, 9, 't'}},
	{"publish with wildcard topic", true, publish0(4, "a/#", []byte("x"))},
	{"subscribe bad flags", true, []byte{0x80, 6, 0, 1, 0, 1, 't', 0}},
	{"truncated publish", true, publish0(4, "t", []byte("payload"))[:6]},
	{"random bytes", true, []byte{0x9c, 0x01, 0xfe, 0x33, 0x00, 0x42, 0xde, 0xad}},
}

// Garbage and truncated packets, before and after CONNECT, cost their own connection
// (the server closes it, or sees the client leave) and nothing else: no panic, the
// listener still serves.
func TestGarbageClosesThatConnection(t *testing.T) {
	rec := listenertest.NewRecorder()
	run := serve(t, plainSpec(), rec)
	for _, tc := range wireCases {
		if err := sendAndDrain(run.Addr, tc.connected, tc.bytes); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	if n := run.Errors("panic"); n != 0 {
		t.Fatalf("%v panics", n)
	}
	c := dialRaw(t, run.Addr)
	if code := c.connect(t, 4, "after", "u", "p"); code != 0 {
		t.Fatalf("CONNACK %#x after the garbage", code)
	}
	eventually(t, "sessions closed", func() bool { return int64(len(rec.Closed())) == int64(len(rec.Opened()))-1 })
	if run.Errors("garbage") < 10 {
		t.Fatalf("%v garbage errors counted", run.Errors("garbage"))
	}
}

// sendAndDrain writes b on a fresh connection (after a CONNECT when connected), half
// closes it so that a truncated packet ends, and waits for the server to close its side.
func sendAndDrain(addr string, connected bool, b []byte) error {
	c, err := dialFrom(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if connected {
		if _, err := c.Write(mqtt.ConnectPacket("fuzz", "u", "p", 30)); err != nil {
			return err
		}
	}
	if _, err := c.Write(b); err != nil {
		return err
	}
	_ = c.(*net.TCPConn).CloseWrite()
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return err
			}
			return nil
		}
	}
}

var sources atomic.Uint32

// dialFrom dials from the next of 64516 loopback addresses: a fuzzing run opens more
// connections than one address has ports, and the server's TIME_WAITs keep them.
func dialFrom(addr string) (net.Conn, error) {
	n := sources.Add(1)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 1+byte(n/254%254), 1+byte(n%254), 1)}}
	return d.Dial("tcp", addr)
}

// admitted checks that a valid client still gets an accepting CONNACK.
func admitted(addr string) error {
	c, err := dialFrom(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(mqtt.ConnectPacket("healthy", "u", "p", 30)); err != nil {
		return err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		return err
	}
	if !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		return fmt.Errorf("CONNACK % x", ack)
	}
	return nil
}

// FuzzConnection feeds arbitrary bytes to a live listener, on a fresh connection or after
// a CONNECT: whatever they are, the connection ends, mochi does not panic (a recovered
// panic is counted) and the listener still admits a valid client.
func FuzzConnection(f *testing.F) {
	for _, tc := range wireCases {
		f.Add(tc.connected, tc.bytes)
	}
	f.Add(true, []byte{0xc0, 0}) // PINGREQ
	f.Add(true, []byte{0xe0, 0}) // DISCONNECT
	f.Add(false, connect5("d", "u", "p"))
	run := listenertest.Serve(f, mqtt.Listener{}, plainSpec(), admitAll{})
	f.Fuzz(func(t *testing.T, connected bool, b []byte) {
		if err := sendAndDrain(run.Addr, connected, b); err != nil {
			t.Fatal(err)
		}
		if n := run.Errors("panic"); n != 0 {
			t.Fatalf("mochi panicked (%v)", n)
		}
		if err := admitted(run.Addr); err != nil {
			t.Fatalf("a valid client after the input: %v", err)
		}
	})
}
