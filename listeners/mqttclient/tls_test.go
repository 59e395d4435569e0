package mqttclient_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/mqttclient"
	"github.com/linkops/linkops/resource"
)

// tlsBroker is a mosquitto with a second listener, on tlsPort, that speaks TLS with a
// certificate for localhost from ca and requires a client certificate from ca; the
// client certificate's CN becomes the username, so the log shows which certificate each
// connection presented. Its plain listener is for mosquitto_pub.
func tlsBroker(t *testing.T, ca *testutil.CA) (b *broker, tlsPort int) {
	t.Helper()
	dir := readableDir(t)
	srv := ca.Issue(t, "broker", "localhost")
	tlsPort = freePort(t)
	return startBroker(t,
		fmt.Sprintf("listener %d 127.0.0.1", tlsPort),
		"cafile "+writeFile(t, dir, "ca.pem", ca.CertPEM),
		"certfile "+writeFile(t, dir, "server.pem", srv.CertPEM),
		"keyfile "+writeFile(t, dir, "server.key", srv.KeyPEM),
		"require_certificate true",
		"use_identity_as_username true"), tlsPort
}

func certificate(t *testing.T, index uint64, c testutil.Cert, chain, trust string) *resource.Certificate {
	t.Helper()
	return &resource.Certificate{Meta: resource.Meta{ID: "mqc-cert", Index: index}, Cert: c.CertPEM + chain, Key: c.KeyPEM, Trust: trust}
}

func tlsSpec(t *testing.T, b *broker, port int, cert *resource.Certificate) listeners.Spec {
	t.Helper()
	src, err := listeners.NewTLSSource(cert)
	if err != nil {
		t.Fatal(err)
	}
	spec := b.spec("cid", "up/#")
	spec.Config.RemoteHost, spec.Config.RemotePort, spec.Config.Secure, spec.Config.CertID, spec.TLS = "localhost", port, true, cert.ID, src
	return spec
}

// The broker is verified against the trust bundle and the certificate is presented as
// the client's. A certificate update leaves the established connection up, and the next
// connection presents the new certificate.
func TestTLSMutualAndCertificateUpdate(t *testing.T) {
	ca := testutil.NewCA(t)
	b, port := tlsBroker(t, ca)
	spec := tlsSpec(t, b, port, certificate(t, 1, ca.IssueClient(t, "client-a"), "", ca.CertPEM))
	rec := listenertest.NewRecorder()
	n := runNode(t, spec, rec, "node1")
	n.waitBound(t)
	b.waitLog(t, "as cid-node1 (p2, c1, k30, u'client-a')")
	if info := rec.WaitOpened(t, 1)[0]; !info.TLS {
		t.Errorf("conn info %+v: want TLS", info)
	}
	b.pub(t, "up/1", []byte("one"))
	rec.WaitFrames(t, 1)

	if err := spec.TLS.Update(certificate(t, 2, ca.IssueClient(t, "client-b"), "", ca.CertPEM)); err != nil {
		t.Fatal(err)
	}
	b.pub(t, "up/2", []byte("two"))
	if f := rec.WaitFrames(t, 2); string(f[1].Payload) != "two" || len(rec.Opened()) != 1 {
		t.Fatalf("after the update: frames %v, %d connections; want the old connection still delivering", f, len(rec.Opened()))
	}

	rec.Conns()[0].Close("reconnect to pick up the certificate")
	n.waitBound(t)
	b.waitLog(t, "as cid-node1 (p2, c1, k30, u'client-b')")
}

// Without a trust bundle the certificate's own chain is trusted: a chain that carries the
// broker's CA verifies the broker.
func TestTLSOwnChainTrusted(t *testing.T) {
	ca := testutil.NewCA(t)
	b, port := tlsBroker(t, ca)
	spec := tlsSpec(t, b, port, certificate(t, 1, ca.IssueClient(t, "client-a"), ca.CertPEM, ""))
	listenertest.Serve(t, mqttclient.Listener{}, spec, listenertest.NewRecorder())
	b.waitLog(t, "u'client-a'")
}

// A broker whose certificate the trust bundle does not verify is refused: Serve returns
// the handshake error.
func TestTLSUntrustedBroker(t *testing.T) {
	b, port := tlsBroker(t, testutil.NewCA(t))
	other := testutil.NewCA(t)
	spec := tlsSpec(t, b, port, certificate(t, 1, other.IssueClient(t, "client-a"), "", other.CertPEM))
	err := listenertest.ServeErr(t, mqttclient.Listener{}, spec, listenertest.NewRecorder())
	t.Logf("Serve: %v", err)
	want := fmt.Sprintf("TLS handshake with 127.0.0.1:%d", port)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("Serve returned %v, want %q and unknown authority", err, want)
	}
}

// secure without a certificate fails before any connection.
func TestTLSWithoutCertificate(t *testing.T) {
	ln, port := trap(t)
	spec := clientSpec("127.0.0.1", port, loopback)
	spec.Config.Secure = true
	if err := listenertest.ServeErr(t, mqttclient.Listener{}, spec, listenertest.NewRecorder()); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Fatalf("Serve returned %v, want no certificate", err)
	}
	if accepted(ln) {
		t.Fatal("connected without a certificate")
	}
}
