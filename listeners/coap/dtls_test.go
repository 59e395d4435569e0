package coap_test

import (
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/coap"
	"github.com/linkops/linkops/listeners/listenertest"
)

// libcoap's OpenSSL client posts over DTLS, verifying the server against the CA; a
// client that trusts another CA does not get through.
func TestDTLS(t *testing.T) {
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	rec := listenertest.NewRecorder()
	r := serve(t, coap.Listener{}, dtlsSpec(t, ca, "server", ""), rec)
	out, errOut := libcoap(t, openssl, "-m", "post", "-e", "secret", "-R", writeFile(t, "ca.pem", []byte(ca.CertPEM)), coapURI(r, "coaps", "/p/d/event/alarm"))
	if !strings.Contains(out, "t:ACK c:2.04") {
		t.Fatalf("want a 2.04 over DTLS; libcoap printed:\n%s\n%s", out, errOut)
	}
	f := rec.WaitFrames(t, 1)[0]
	if f.Topic != "/p/d/event/alarm" || string(f.Payload) != "secret" {
		t.Errorf("frame %q %q", f.Topic, f.Payload)
	}
	if info := rec.Opened()[0]; !info.TLS || info.Transport != listeners.TransportCoAP || info.Method != "POST" {
		t.Errorf("conn info %+v", info)
	}
	out, _ = libcoap(t, openssl, "-m", "post", "-e", "x", "-R", writeFile(t, "other.pem", []byte(other.CertPEM)), coapURI(r, "coaps", "/x"))
	if strings.Contains(out, "c:2.04") || len(rec.Frames()) != 1 {
		t.Fatalf("a client trusting another CA got through:\n%s", out)
	}
}

// With a trust bundle a client must present a certificate the bundle verifies.
func TestDTLSMutual(t *testing.T) {
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	rec := listenertest.NewRecorder()
	r := serve(t, coap.Listener{}, dtlsSpec(t, ca, "server", ca.CertPEM), rec)
	caFile := writeFile(t, "ca.pem", []byte(ca.CertPEM))
	good, bad := ca.IssueClient(t, "device1"), other.IssueClient(t, "intruder")
	post := func(args ...string) string {
		out, _ := libcoap(t, openssl, append(append([]string{"-m", "post", "-e", "x", "-R", caFile}, args...), coapURI(r, "coaps", "/m"))...)
		return out
	}
	if out := post(); strings.Contains(out, "c:2.04") {
		t.Fatalf("a client without a certificate got through:\n%s", out)
	}
	if out := post("-c", writeFile(t, "bad.pem", []byte(bad.CertPEM)), "-j", writeFile(t, "bad.key", []byte(bad.KeyPEM))); strings.Contains(out, "c:2.04") {
		t.Fatalf("a client certificate of another CA got through:\n%s", out)
	}
	if n := len(rec.Frames()); n != 0 {
		t.Fatalf("%d frames from refused clients", n)
	}
	if out := post("-c", writeFile(t, "good.pem", []byte(good.CertPEM)), "-j", writeFile(t, "good.key", []byte(good.KeyPEM))); !strings.Contains(out, "t:ACK c:2.04") {
		t.Fatalf("a client certificate of the trusted CA was refused:\n%s", out)
	}
	rec.WaitFrames(t, 1)
	r.WaitErrors(t, "tls_handshake", 2)
}

// A certificate update applies to the next handshakes without a restart; an
// established session keeps working.
func TestDTLSCertificateUpdate(t *testing.T) {
	ca1, ca2 := testutil.NewCA(t), testutil.NewCA(t)
	spec := dtlsSpec(t, ca1, "first", "")
	rec := listenertest.NewRecorder()
	r := serve(t, coap.Listener{}, spec, rec)
	old := dialCoAPS(t, r.Addr, ca1, nil)
	if code, err := old.post("/before", "1", 10*time.Second); err != nil || code != codes.Changed {
		t.Fatalf("before the update: %v %v", code, err)
	}
	if cn := old.serverCN(); cn != "first" {
		t.Fatalf("first handshake presented %q", cn)
	}
	if err := spec.TLS.Update(certResource(ca2.Issue(t, "second", "localhost"), 2, "")); err != nil {
		t.Fatal(err)
	}
	fresh := dialCoAPS(t, r.Addr, ca2, nil)
	if code, err := fresh.post("/after", "2", 10*time.Second); err != nil || code != codes.Changed {
		t.Fatalf("a new session after the update: %v %v", code, err)
	}
	if cn := fresh.serverCN(); cn != "second" {
		t.Errorf("handshake after the update presented %q, want second", cn)
	}
	out, _ := libcoap(t, openssl, "-m", "post", "-e", "3", "-R", writeFile(t, "ca2.pem", []byte(ca2.CertPEM)), coapURI(r, "coaps", "/libcoap"))
	if !strings.Contains(out, "t:ACK c:2.04") {
		t.Errorf("libcoap trusting the new CA:\n%s", out)
	}
	if code, err := old.post("/still", "4", 10*time.Second); err != nil || code != codes.Changed {
		t.Errorf("the session from before the update: %v %v", code, err)
	}
	rec.WaitFrames(t, 4)
}

// Handshakes in flight are limited per IP address and time out: a flood of
// ClientHellos from one address does not pile up, and once they time out the address
// can connect again.
func TestDTLSHandshakeLimits(t *testing.T) {
	base := runtime.NumGoroutine()
	ca := testutil.NewCA(t)
	lim := coap.WithLimits(coap.Limits{HandshakesPerIP: 2, HandshakeTimeout: 2 * time.Second})
	rec := listenertest.NewRecorder()
	r := serve(t, lim, dtlsSpec(t, ca, "server", ""), rec)
	hello := clientHello(t)
	for range 3 {
		p := dialRaw(t, r.Addr) // each from its own port, as separate devices behind one address
		if _, err := p.c.Write(hello); err != nil {
			t.Fatal(err)
		}
	}
	r.WaitErrors(t, "handshake_limit", 1)
	r.WaitErrors(t, "tls_handshake", 2) // the two admitted ones time out
	c := dialCoAPS(t, r.Addr, ca, nil)
	if code, err := c.post("/x", "x", 10*time.Second); err != nil || code != codes.Changed {
		t.Fatalf("after the pending handshakes timed out: %v %v", code, err)
	}
	_ = c.cc.Close()
	r.Stop(t)
	listenertest.Goroutines(t, base, 0)
}

// Every DTLS session counts against MaxPeers: one more completes its handshake but is
// closed before its first request.
func TestDTLSPeerLimit(t *testing.T) {
	ca := testutil.NewCA(t)
	r := serve(t, coap.WithLimits(coap.Limits{Peers: 1}), dtlsSpec(t, ca, "server", ""), listenertest.NewRecorder())
	first := dialCoAPS(t, r.Addr, ca, nil)
	if code, err := first.post("/1", "x", 10*time.Second); err != nil || code != codes.Changed {
		t.Fatalf("first session: %v %v", code, err)
	}
	second := dialCoAPS(t, r.Addr, ca, nil)
	if code, err := second.post("/2", "x", 3*time.Second); err == nil {
		t.Fatalf("a session over the limit was served: %v", code)
	}
	r.WaitErrors(t, "peer_limit", 1)
	if n := r.Env.Connections(); n != 1 {
		t.Errorf("%d sessions counted, want 1", n)
	}
}

// Stopping ends every session and pending handshake, frees the port and leaves no
// goroutine behind.
func TestDTLSStop(t *testing.T) {
	base := runtime.NumGoroutine()
	ca := testutil.NewCA(t)
	r := serve(t, coap.Listener{}, dtlsSpec(t, ca, "server", ""), listenertest.NewRecorder())
	c := dialCoAPS(t, r.Addr, ca, nil)
	if code, err := c.post("/x", "x", 10*time.Second); err != nil || code != codes.Changed {
		t.Fatalf("%v %v", code, err)
	}
	p := dialRaw(t, r.Addr)
	if _, err := p.c.Write(clientHello(t)); err != nil {
		t.Fatal(err)
	}
	r.Stop(t)
	_ = c.cc.Close()
	listenertest.Goroutines(t, base, 0)
	waitUntil(t, "the port is free", func() bool {
		l, err := net.ListenUDP("udp", mustUDPAddr(t, r.Addr))
		if err == nil {
			l.Close()
		}
		return err == nil
	})
}
