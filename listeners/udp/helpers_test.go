package udp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/udp"
	"github.com/linkops/linkops/resource"
)

// Tests in this package change the package tunables, so none runs in parallel.

// setVar sets a tunable for the test and restores it afterwards.
func setVar[T any](t *testing.T, v *T, to T) {
	old := *v
	*v = to
	t.Cleanup(func() { *v = old })
}

func plainSpec() listeners.Spec {
	return listeners.Spec{ComponentID: "udp-test", Type: resource.TypeUDP,
		Config: resource.NetworkConfig{Host: "127.0.0.1", Port: 0}}
}

func dtlsSpec(src *listeners.TLSSource) listeners.Spec {
	s := plainSpec()
	s.Config.Secure, s.Config.CertID, s.TLS = true, "cert-1", src
	return s
}

// source loads a server certificate for "localhost" from ca, with trust as its bundle.
func source(t *testing.T, ca *testutil.CA, cn string, trust string) (*listeners.TLSSource, testutil.Cert) {
	t.Helper()
	c := ca.Issue(t, cn, "localhost")
	src, err := listeners.NewTLSSource(certResource(c, 1, trust))
	if err != nil {
		t.Fatal(err)
	}
	return src, c
}

func certResource(c testutil.Cert, index uint64, trust string) *resource.Certificate {
	return c.Resource("cert-1", index, trust)
}

func keyPair(t *testing.T, c testutil.Cert) tls.Certificate {
	t.Helper()
	kp, err := tls.X509KeyPair([]byte(c.CertPEM), []byte(c.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func udpAddr(t testing.TB, addr string) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// dial opens a plain UDP client socket to addr.
func dial(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, udpAddr(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func send(t *testing.T, c *net.UDPConn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// receive reads one datagram, failing the test after 10 s.
func receive(t *testing.T, c net.Conn) []byte {
	t.Helper()
	buf := make([]byte, 64<<10)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return buf[:n]
}

// dtlsClient handshakes with the server at addr from local (nil: 127.0.0.1, any port) and trusts
// ca; it returns the handshake's error.
func dtlsClient(t *testing.T, addr string, local *net.UDPAddr, ca *testutil.CA, opts ...dtls.ClientOption) (*dtls.Conn, error) {
	t.Helper()
	if local == nil {
		local = udpAddr(t, "127.0.0.1:0")
	}
	pc, err := net.ListenUDP("udp", local)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	opts = append([]dtls.ClientOption{dtls.WithRootCAs(pool), dtls.WithServerName("localhost"),
		dtls.WithLoggerFactory(udp.PionLogs)}, opts...)
	c, err := dtls.ClientWithOptions(pc, udpAddr(t, addr), opts...)
	if err != nil {
		_ = pc.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		_ = pc.Close()
		return nil, err
	}
	t.Cleanup(func() { _ = c.Close(); _ = pc.Close() })
	return c, nil
}

// mustDTLS is dtlsClient for a handshake that must succeed.
func mustDTLS(t *testing.T, addr string, ca *testutil.CA, opts ...dtls.ClientOption) *dtls.Conn {
	t.Helper()
	c, err := dtlsClient(t, addr, nil, ca, opts...)
	if err != nil {
		t.Fatalf("dtls handshake: %v", err)
	}
	return c
}

// peerCert is the leaf certificate the server presented.
func peerCert(t *testing.T, c *dtls.Conn) *x509.Certificate {
	t.Helper()
	st, ok := c.ConnectionState()
	if !ok || len(st.PeerCertificates) == 0 {
		t.Fatal("no server certificate")
	}
	leaf, err := x509.ParseCertificate(st.PeerCertificates[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// clientHello is a real ClientHello datagram, as pion/dtls's client sends it first.
func clientHello(t testing.TB) []byte {
	t.Helper()
	sink, err := net.ListenUDP("udp", udpAddr(t, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	pc, err := net.ListenUDP("udp", udpAddr(t, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := dtls.ClientWithOptions(pc, sink.LocalAddr(), dtls.WithInsecureSkipVerify(true), dtls.WithLoggerFactory(udp.PionLogs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.HandshakeContext(ctx) }()
	defer func() { cancel(); <-done; _ = c.Close(); _ = pc.Close() }()
	buf := make([]byte, 64<<10)
	_ = sink.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := sink.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no ClientHello: %v", err)
	}
	return buf[:n]
}
