package udp_test

import (
	"context"
	"crypto/rand"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/udp"
)

// perHandshake bounds the goroutines one DTLS handshake in progress may hold: ours and
// pion's handshaker, its reader and the read's context watcher, with room to spare.
const perHandshake = 6

// Garbage and truncated ClientHellos on the DTLS port cost no association and no
// goroutine; a real client still gets through.
func TestDTLSGarbage(t *testing.T) {
	ca := testutil.NewCA(t)
	src, _ := source(t, ca, "server", "")
	hello := clientHello(t)
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), rec)
	c := dial(t, run.Addr)

	var sent float64
	junk := func(b []byte) { send(t, c, b); sent++ }
	for range 20 {
		b := make([]byte, 1+len(hello))
		_, _ = rand.Read(b)
		junk(b)
	}
	junk(nil)
	junk(append([]byte{23, 0xfe, 0xfd, 0, 1}, make([]byte, 40)...)) // application data, epoch 1
	bad := append([]byte(nil), hello...)
	bad[13] = 2 // a ServerHello
	junk(bad)
	for n := 0; n < udp.HelloHeaderLen+8; n++ {
		junk(hello[:n]) // every length that cannot hold a whole header and fragment
	}
	junk(append([]byte(nil), hello[:len(hello)/2]...)) // half a ClientHello
	run.WaitErrors(t, "garbage", sent)
	if n := runtime.NumGoroutine(); n > base+4 {
		t.Errorf("%d goroutines after garbage, base %d", n, base)
	}
	if len(rec.Opened()) != 0 {
		t.Errorf("garbage opened %d conns", len(rec.Opened()))
	}

	oversize := make([]byte, udp.PionReadSize+1)
	copy(oversize, hello)
	send(t, c, oversize)
	run.WaitErrors(t, "oversize", 1)

	d := mustDTLS(t, run.Addr, ca)
	_, _ = d.Write([]byte("ok"))
	rec.WaitFrames(t, 1)
}

// A flood of ClientHellos from many source ports and addresses, none of which goes on
// with its handshake, holds at most udp.MaxHandshakes handshakes (udp.MaxHandshakesPerIP from one
// address), each for at most udp.HandshakeTimeout; then everything is back to baseline.
func TestDTLSHalfOpenFlood(t *testing.T) {
	setVar(t, &udp.MaxHandshakes, 8)
	setVar(t, &udp.MaxHandshakesPerIP, 4)
	setVar(t, &udp.HandshakeTimeout, 500*time.Millisecond)
	ca := testutil.NewCA(t)
	src, _ := source(t, ca, "server", "")
	hello := clientHello(t)
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), rec)
	server := udpAddr(t, run.Addr)

	// 4 addresses × 10 ports: per address only 4 get a handshake, in all only 8.
	var flood []*net.UDPConn
	for ip := 2; ip <= 5; ip++ {
		for range 10 {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(ip))})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.WriteToUDP(hello, server); err != nil {
				t.Fatal(err)
			}
			flood = append(flood, c)
		}
	}
	run.WaitErrors(t, "handshake_limit", float64(len(flood)-8))
	if n := runtime.NumGoroutine(); n > base+8*perHandshake+4 {
		t.Errorf("%d goroutines during the flood, base %d: more than 8 handshakes' worth", n, base)
	}

	// Each handshake times out; the state goes with it, while the listener still runs.
	run.WaitErrors(t, "tls_handshake", 8)
	listenertest.Goroutines(t, base+4, 0) // the listener's own: read loop, sweeper, closer
	if n := run.Env.Connections(); n != 0 {
		t.Errorf("%d connections from a flood that never completed a handshake", n)
	}

	d := mustDTLS(t, run.Addr, ca)
	_, _ = d.Write([]byte("after the flood"))
	rec.WaitFrames(t, 1)
}

// One address's half-open handshakes do not keep another address from handshaking.
func TestDTLSHandshakesPerIP(t *testing.T) {
	setVar(t, &udp.MaxHandshakesPerIP, 3)
	setVar(t, &udp.HandshakeTimeout, time.Minute) // the flood holds its slots for the whole test
	ca := testutil.NewCA(t)
	src, _ := source(t, ca, "server", "")
	hello := clientHello(t)
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), rec)
	for range 10 {
		c := dial(t, run.Addr) // 127.0.0.1, new port each
		send(t, c, hello)
	}
	run.WaitErrors(t, "handshake_limit", 7)
	d, err := dtlsClient(t, run.Addr, udpAddr(t, "127.0.0.9:0"), ca)
	if err != nil {
		t.Fatalf("handshake from another address during the flood: %v", err)
	}
	_, _ = d.Write([]byte("other address"))
	rec.WaitFrames(t, 1)
}

// truncating is a client socket that cuts every datagram after the first in half: a
// handshake that goes wrong midway.
type truncating struct {
	net.PacketConn
	writes int
}

func (c *truncating) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.writes++; c.writes > 1 {
		b = b[:len(b)/2]
	}
	return c.PacketConn.WriteTo(b, addr)
}

// A handshake truncated midway ends at udp.HandshakeTimeout and leaves nothing behind.
func TestDTLSTruncatedHandshake(t *testing.T) {
	setVar(t, &udp.HandshakeTimeout, 300*time.Millisecond)
	ca := testutil.NewCA(t)
	src, _ := source(t, ca, "server", "")
	base := runtime.NumGoroutine()
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), listenertest.NewRecorder())

	pc, err := net.ListenUDP("udp", udpAddr(t, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := dtls.ClientWithOptions(&truncating{PacketConn: pc}, udpAddr(t, run.Addr),
		dtls.WithInsecureSkipVerify(true), dtls.WithLoggerFactory(udp.PionLogs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.HandshakeContext(ctx); err == nil {
		t.Fatal("a truncated handshake succeeded")
	}
	_ = c.Close()
	run.WaitErrors(t, "tls_handshake", 1)
	listenertest.Goroutines(t, base+4, 0)
	if n := run.Env.Connections(); n != 0 {
		t.Errorf("%d connections from a truncated handshake", n)
	}
}
