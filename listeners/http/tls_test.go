package httplistener_test

import (
	"bufio"
	"crypto/tls"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	httplistener "github.com/linkops/linkops/listeners/http"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/resource"
)

func certificate(index uint64, c testutil.Cert, trust string) *resource.Certificate {
	return c.Resource("cert1", index, trust)
}

func secureSpec(t *testing.T, cert *resource.Certificate) listeners.Spec {
	t.Helper()
	return listenertest.Secure(t, plainSpec(), cert)
}

func clientTLS(ca *testutil.CA, certs ...testutil.Cert) *tls.Config {
	return ca.ClientTLS(certs...)
}

// tlsConn is a TLS connection with its response reader.
type tlsConn struct {
	*tls.Conn
	br *bufio.Reader
}

func dialTLS(t *testing.T, addr string, cfg *tls.Config) tlsConn {
	t.Helper()
	raw := dial(t, addr)
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return tlsConn{c, bufio.NewReader(c)}
}

func (c tlsConn) serverCN() string { return c.ConnectionState().PeerCertificates[0].Subject.CommonName }

// A certificate update applies to new handshakes; an established connection keeps
// working with the certificate it was made with.
func TestTLSCertificateUpdate(t *testing.T) {
	base := runtime.NumGoroutine()
	ca := testutil.NewCA(t)
	rec := listenertest.NewRecorder()
	spec := secureSpec(t, certificate(1, ca.Issue(t, "old", "localhost"), ""))
	run := listenertest.Serve(t, httplistener.Listener{}, spec, rec)

	old := dialTLS(t, run.Addr, clientTLS(ca))
	if resp, _ := roundTrip(t, old, old.br, newRequest(t, http.MethodPost, "/a", "1")); resp.StatusCode != http.StatusOK || old.serverCN() != "old" {
		t.Fatalf("status %d, certificate %q", resp.StatusCode, old.serverCN())
	}
	if err := spec.TLS.Update(certificate(2, ca.Issue(t, "new", "localhost"), "")); err != nil {
		t.Fatal(err)
	}
	fresh := dialTLS(t, run.Addr, clientTLS(ca))
	if resp, _ := roundTrip(t, fresh, fresh.br, newRequest(t, http.MethodPost, "/b", "2")); resp.StatusCode != http.StatusOK || fresh.serverCN() != "new" {
		t.Fatalf("after the update: status %d, certificate %q, want the new one", resp.StatusCode, fresh.serverCN())
	}
	if resp, _ := roundTrip(t, old, old.br, newRequest(t, http.MethodPost, "/c", "3")); resp.StatusCode != http.StatusOK {
		t.Fatalf("the old connection after the update: %d", resp.StatusCode)
	}
	for _, info := range rec.WaitOpened(t, 3) {
		if !info.TLS {
			t.Fatalf("conn info %+v: TLS not reported", info)
		}
	}
	old.Close()
	fresh.Close()
	run.Stop(t)
	listenertest.Goroutines(t, base, 1)
}

// With a trust bundle, only clients presenting a certificate it verifies get in; the
// others are counted as failed handshakes.
func TestMutualTLS(t *testing.T) {
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	spec := secureSpec(t, certificate(1, ca.Issue(t, "server", "localhost"), ca.CertPEM))
	run := listenertest.Serve(t, httplistener.Listener{}, spec, listenertest.NewRecorder())

	device := dialTLS(t, run.Addr, clientTLS(ca, ca.IssueClient(t, "device1")))
	if resp, _ := roundTrip(t, device, device.br, newRequest(t, http.MethodPost, "/a", "1")); resp.StatusCode != http.StatusOK {
		t.Fatalf("a trusted device: %d", resp.StatusCode)
	}
	for name, cfg := range map[string]*tls.Config{
		"no certificate":    clientTLS(ca),
		"another authority": clientTLS(ca, other.IssueClient(t, "intruder")),
	} {
		c := tls.Client(dial(t, run.Addr), cfg)
		err := c.Handshake()
		if err == nil {
			// TLS 1.3: the server's verdict arrives after the client's handshake.
			if err = newRequest(t, http.MethodPost, "/a", "1").Write(c); err == nil {
				_, err = http.ReadResponse(bufio.NewReader(c), nil)
			}
		}
		if err == nil {
			t.Errorf("%s: the request went through", name)
		}
	}
	run.WaitErrors(t, "tls_handshake", 2)
	if got := run.Errors("tls_handshake"); got != 2 {
		t.Fatalf("tls_handshake errors %v, want 2", got)
	}
}

// Plain HTTP on a secure port gets net/http's clear 400 and is counted.
func TestPlainHTTPOnTLSPort(t *testing.T) {
	ca := testutil.NewCA(t)
	run := listenertest.Serve(t, httplistener.Listener{}, secureSpec(t, certificate(1, ca.Issue(t, "s", "localhost"), "")), listenertest.NewRecorder())
	c := dial(t, run.Addr)
	c.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	if got := readAll(t, c); !strings.Contains(got, "400 Bad Request") || !strings.Contains(got, "HTTPS server") {
		t.Fatalf("got %q", got)
	}
	run.WaitErrors(t, "tls_handshake", 1)
}

// secure without loaded material is an error, not a panic.
func TestSecureWithoutCertificate(t *testing.T) {
	spec := plainSpec()
	spec.Config.Secure = true
	err := listenertest.ServeErr(t, httplistener.Listener{}, spec, listenertest.NewRecorder())
	if err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Fatalf("Serve: %v", err)
	}
}
