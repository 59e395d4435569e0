package tcp_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/tcp"
	"github.com/linkops/linkops/resource"
)

// certResource is a certificate resource as the supervisor would load it.
func certResource(c testutil.Cert, index uint64, trust string) *resource.Certificate {
	return c.Resource("c1", index, trust)
}

func tlsSpec(t *testing.T, cert *resource.Certificate) listeners.Spec {
	t.Helper()
	src, err := listeners.NewTLSSource(cert)
	if err != nil {
		t.Fatal(err)
	}
	spec := tcpSpec(parser(resource.ParserDelimited, resource.ParserConfig{Delimited: `\n`}))
	spec.Config.Secure, spec.Config.CertID, spec.TLS = true, cert.ID, src
	return spec
}

func clientConfig(ca *testutil.CA, client *testutil.Cert) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if client != nil {
		pair, err := tls.X509KeyPair([]byte(client.CertPEM), []byte(client.KeyPEM))
		if err != nil {
			panic(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

func dialTLS(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A certificate update: new handshakes present the new certificate, and a connection made
// before it keeps delivering and receiving.
func TestTLSCertificateReloadsInPlace(t *testing.T) {
	ca := testutil.NewCA(t)
	first, second := ca.Issue(t, "first", "localhost"), ca.Issue(t, "second", "localhost")
	spec := tlsSpec(t, certResource(first, 1, ""))
	r, rec := serve(t, spec)

	old := dialTLS(t, r.Addr, clientConfig(ca, nil))
	if got := old.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(first.Leaf.SerialNumber) != 0 {
		t.Fatalf("served serial %v, want the first certificate's", got)
	}
	write(t, old, "one\n")
	rec.WaitFrames(t, 1)
	if info := rec.Opened()[0]; !info.TLS || info.Transport != listeners.TransportTCP {
		t.Fatalf("conn info %+v", info)
	}

	if err := spec.TLS.Update(certResource(second, 2, "")); err != nil {
		t.Fatal(err)
	}
	fresh := dialTLS(t, r.Addr, clientConfig(ca, nil))
	if got := fresh.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(second.Leaf.SerialNumber) != 0 {
		t.Fatalf("after the update, served serial %v, want the second certificate's", got)
	}
	write(t, fresh, "two\n")
	write(t, old, "three\n")
	if got := payloads(rec.WaitFrames(t, 3)); len(got) != 3 {
		t.Fatalf("messages %q", got)
	}
	if err := rec.Conns()[0].Send(listeners.Frame{Payload: []byte("down\n")}); err != nil {
		t.Fatal(err)
	}
	old.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 5)
	if _, err := old.Read(buf); err != nil || string(buf) != "down\n" {
		t.Fatalf("old connection read %q, %v", buf, err)
	}
}

// With a trust bundle, only devices with a certificate it verifies get through; every
// failed handshake is counted and never reaches the handler.
func TestMutualTLS(t *testing.T) {
	ca, stranger := testutil.NewCA(t), testutil.NewCA(t)
	server := ca.Issue(t, "server", "localhost")
	r, rec := serve(t, tlsSpec(t, certResource(server, 1, ca.CertPEM)))

	device := ca.IssueClient(t, "device-1")
	good := dialTLS(t, r.Addr, clientConfig(ca, &device))
	write(t, good, "hello\n")
	if got := rec.WaitFrames(t, 1); string(got[0].Payload) != "hello" {
		t.Fatalf("messages %q", payloads(got))
	}

	intruder := stranger.IssueClient(t, "intruder")
	for i, cfg := range []*tls.Config{clientConfig(ca, nil), clientConfig(ca, &intruder)} {
		// In TLS 1.3 the client finishes its handshake before the server has judged its
		// certificate: the refusal shows on the first read.
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", r.Addr, cfg)
		if err == nil {
			c.Write([]byte("let me in\n"))
			waitClosed(t, c)
			c.Close()
		}
		r.WaitErrors(t, "tls_handshake", float64(i+1))
	}
	plain := dial(t, r.Addr)
	write(t, plain, "not TLS at all\r\n\r\n")
	waitClosed(t, plain)
	r.WaitErrors(t, "tls_handshake", 3)
	if n := len(rec.Opened()); n != 1 {
		t.Fatalf("%d connections admitted, want only the trusted device", n)
	}
	write(t, good, "still here\n")
	rec.WaitFrames(t, 2)
}

// Stopping closes a connection in the middle of its handshake rather than waiting for the
// handshake to time out.
func TestStopDoesNotWaitForAHandshake(t *testing.T) {
	ca := testutil.NewCA(t)
	r := listenertest.Serve(t, tcp.Listener{}, tlsSpec(t, certResource(ca.Issue(t, "s", "localhost"), 1, "")), listenertest.NewRecorder())
	base := runtime.NumGoroutine()
	c := dial(t, r.Addr)
	write(t, c, "\x16") // the first byte of a ClientHello, and no more
	// Wait until a goroutine is in the server's handshake (a goroutine count would also
	// see goroutines of earlier tests ending meanwhile).
	for deadline := time.Now().Add(10 * time.Second); !inHandshake(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the connection was never accepted")
		}
	}
	r.Stop(t)
	waitClosed(t, c)
	listenertest.Goroutines(t, base, 0)
}

// inHandshake reports whether a goroutine is in a TLS server handshake.
func inHandshake() bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "crypto/tls.(*Conn).serverHandshake")
}
