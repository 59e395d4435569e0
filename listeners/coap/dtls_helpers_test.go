package coap_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/resource"
)

// certResource is a certificate resource as the supervisor loads it.
func certResource(c testutil.Cert, index uint64, trust string) *resource.Certificate {
	return c.Resource("cert1", index, trust)
}

// dtlsSpec is a secure component whose server certificate, named cn, is issued by ca;
// trust, when set, is the bundle client certificates must chain to.
func dtlsSpec(t *testing.T, ca *testutil.CA, cn, trust string) listeners.Spec {
	t.Helper()
	src, err := listeners.NewTLSSource(certResource(ca.Issue(t, cn, "localhost"), 1, trust))
	if err != nil {
		t.Fatal(err)
	}
	spec := plainSpec()
	spec.Config.Secure, spec.Config.CertID, spec.TLS = true, "cert1", src
	return spec
}

// coaps is a go-coap DTLS client and the server certificate its handshake saw.
type coaps struct {
	cc   *udpClient.Conn
	mu   sync.Mutex
	leaf *x509.Certificate
}

// dialCoAPS connects to addr trusting ca, presenting client when it is not nil.
func dialCoAPS(t *testing.T, addr string, ca *testutil.CA, client *testutil.Cert) *coaps {
	t.Helper()
	c := &coaps{}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	cfg := &piondtls.Config{RootCAs: roots, ServerName: "localhost",
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			c.mu.Lock()
			c.leaf = leaf
			c.mu.Unlock()
			return err
		}}
	if client != nil {
		pair, err := tls.X509KeyPair([]byte(client.CertPEM), []byte(client.KeyPEM))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	cc, err := dtls.Dial(addr, cfg)
	if err != nil {
		t.Fatalf("DTLS dial %s: %v", addr, err)
	}
	c.cc = cc
	t.Cleanup(func() { _ = cc.Close() })
	return c
}

func (c *coaps) serverCN() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leaf == nil {
		return ""
	}
	return c.leaf.Subject.CommonName
}

// post sends a POST and returns the answer's code, or the error after wait.
func (c *coaps) post(path, payload string, wait time.Duration) (codes.Code, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := c.cc.Post(ctx, path, message.TextPlain, bytes.NewReader([]byte(payload)))
	if err != nil {
		return 0, err
	}
	return resp.Code(), nil
}

// clientHello is the first flight of a pion DTLS client: a ClientHello without a
// cookie, as a device (or anyone spoofing one) sends it.
func clientHello(t *testing.T) []byte {
	t.Helper()
	pc := &capture{first: make(chan []byte, 1), done: make(chan struct{})}
	conn, err := piondtls.ClientWithOptions(pc, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}, piondtls.WithInsecureSkipVerify(true))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	handshake := make(chan struct{})
	go func() {
		defer close(handshake)
		_ = conn.HandshakeContext(ctx)
	}()
	defer func() { // in this order: pion's Close waits for its reader, blocked in ReadFrom
		cancel()
		close(pc.done)
		<-handshake
		_ = conn.Close()
	}()
	select {
	case b := <-pc.first:
		return b
	case <-ctx.Done():
		t.Fatal("pion wrote no ClientHello")
		return nil
	}
}

// capture is a PacketConn that keeps the first datagram written and never reads one.
type capture struct {
	first chan []byte
	done  chan struct{}
	once  sync.Once
}

func (c *capture) ReadFrom([]byte) (int, net.Addr, error) {
	<-c.done
	return 0, nil, net.ErrClosed
}

func (c *capture) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.once.Do(func() { c.first <- append([]byte(nil), b...) })
	return len(b), nil
}

func (c *capture) Close() error                     { return nil }
func (c *capture) LocalAddr() net.Addr              { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8} }
func (c *capture) SetDeadline(time.Time) error      { return nil }
func (c *capture) SetReadDeadline(time.Time) error  { return nil }
func (c *capture) SetWriteDeadline(time.Time) error { return nil }
