package udp_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/udp"
)

// nat forwards datagrams between its latest client and the server from one fixed
// address, as a NAT keeps a device's mapping across the device's restart: what an
// earlier client sends once a newer one spoke is dropped.
type nat struct {
	in, out *net.UDPConn
	mu      sync.Mutex
	client  *net.UDPAddr
}

func startNAT(t *testing.T, server string) *nat {
	t.Helper()
	n := &nat{}
	var err error
	if n.in, err = net.ListenUDP("udp", udpAddr(t, "127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	if n.out, err = net.DialUDP("udp", udpAddr(t, "127.0.0.1:0"), udpAddr(t, server)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			k, from, err := n.in.ReadFromUDP(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.client = from // the newest client takes the mapping over
			n.mu.Unlock()
			_, _ = n.out.Write(buf[:k])
		}
	})
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			k, err := n.out.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			to := n.client
			n.mu.Unlock()
			_, _ = n.in.WriteToUDP(buf[:k], to)
		}
	})
	t.Cleanup(func() { _ = n.in.Close(); _ = n.out.Close(); wg.Wait() })
	return n
}

// A device that restarts behind the same ip:port handshakes again: the new association
// replaces the old one.
func TestDTLSRestartFromSameAddress(t *testing.T) {
	ca := testutil.NewCA(t)
	src, _ := source(t, ca, "server", "")
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), rec)
	n := startNAT(t, run.Addr)

	before := mustDTLS(t, n.in.LocalAddr().String(), ca)
	_, _ = before.Write([]byte("before"))
	rec.WaitFrames(t, 1)

	after := mustDTLS(t, n.in.LocalAddr().String(), ca) // no close_notify from before
	_, _ = after.Write([]byte("after"))
	frames := rec.WaitFrames(t, 2)
	if string(frames[1].Payload) != "after" {
		t.Errorf("frame %q, want after", frames[1].Payload)
	}
	if got := rec.WaitClosed(t, 1); !strings.HasPrefix(got[0], "replaced") {
		t.Errorf("old association closed %q, want replaced", got[0])
	}
	opened := rec.Opened()
	if opened[0].Remote != n.out.LocalAddr().String() || opened[1].Remote != opened[0].Remote {
		t.Errorf("remotes %s, %s; want both %s", opened[0].Remote, opened[1].Remote, n.out.LocalAddr())
	}
	if err := rec.Conns()[1].Send(listeners.Frame{Payload: []byte("to the new one")}); err != nil {
		t.Fatal(err)
	}
	if got := readRecord(t, after); string(got) != "to the new one" {
		t.Errorf("read %q", got)
	}
}

// A stale or spoofed ClientHello from an established association's address starts a
// handshake that goes nowhere; the association keeps every record meanwhile.
func TestDTLSStaleClientHello(t *testing.T) {
	setVar(t, &udp.HandshakeTimeout, 300*time.Millisecond)
	ca := testutil.NewCA(t)
	src, _ := source(t, ca, "server", "")
	hello := clientHello(t)
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), rec)

	pc, err := net.ListenUDP("udp", udpAddr(t, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := dtls.ClientWithOptions(pc, udpAddr(t, run.Addr), dtls.WithInsecureSkipVerify(true), dtls.WithLoggerFactory(udp.PionLogs))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}

	_, _ = c.Write([]byte("before"))
	rec.WaitFrames(t, 1) // the server has its handshake done too

	if _, err := pc.WriteTo(hello, udpAddr(t, run.Addr)); err != nil { // from the same address
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("during"))
	rec.WaitFrames(t, 2)
	run.WaitErrors(t, "tls_handshake", 1) // the stale handshake timed out
	_, _ = c.Write([]byte("after"))
	if f := rec.WaitFrames(t, 3); string(f[1].Payload) != "during" || string(f[2].Payload) != "after" {
		t.Errorf("frames %q %q, want during, after", f[1].Payload, f[2].Payload)
	}
	if len(rec.Opened()) != 1 || len(rec.Closed()) != 0 {
		t.Errorf("opened %d, closed %v: the stale ClientHello touched the association", len(rec.Opened()), rec.Closed())
	}
}
