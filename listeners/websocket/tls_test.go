package websocket_test

import (
	"crypto/tls"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	ws "github.com/linkops/linkops/listeners/websocket"
	"github.com/linkops/linkops/resource"
)

func certificate(index uint64, c testutil.Cert, trust string) *resource.Certificate {
	return c.Resource("cert1", index, trust)
}

func secureSpec(t *testing.T, cert *resource.Certificate) listeners.Spec {
	t.Helper()
	return listenertest.Secure(t, plainSpec(), cert)
}

func tlsDialer(ca *testutil.CA, certs ...testutil.Cert) *websocket.Dialer {
	cfg := ca.ClientTLS(certs...)
	return &websocket.Dialer{TLSClientConfig: cfg, HandshakeTimeout: 10 * time.Second}
}

func serverCN(c *websocket.Conn) string {
	return c.NetConn().(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName
}

// wss: a certificate update applies to new handshakes while an established connection
// keeps working both ways.
func TestTLSCertificateUpdate(t *testing.T) {
	base := runtime.NumGoroutine()
	ca := testutil.NewCA(t)
	rec := listenertest.NewRecorder()
	spec := secureSpec(t, certificate(1, ca.Issue(t, "old", "localhost"), ""))
	run := listenertest.Serve(t, ws.Listener{}, spec, rec)
	url := "wss://" + run.Addr + "/p/d"

	old := dialWS(t, tlsDialer(ca), url, nil)
	if err := spec.TLS.Update(certificate(2, ca.Issue(t, "new", "localhost"), "")); err != nil {
		t.Fatal(err)
	}
	fresh := dialWS(t, tlsDialer(ca), url, nil)
	if serverCN(old) != "old" || serverCN(fresh) != "new" {
		t.Fatalf("certificates %q then %q, want old then new", serverCN(old), serverCN(fresh))
	}
	if err := old.WriteMessage(websocket.TextMessage, []byte(`{"after":"update"}`)); err != nil {
		t.Fatal(err)
	}
	if f := rec.WaitFrames(t, 1)[0]; string(f.Payload) != `{"after":"update"}` {
		t.Fatalf("frame %q", f.Payload)
	}
	if err := rec.Conns()[0].Send(listeners.Frame{Payload: []byte("down")}); err != nil {
		t.Fatal(err)
	}
	if _, p, err := old.ReadMessage(); err != nil || string(p) != "down" {
		t.Fatalf("downlink on the old connection: %q %v", p, err)
	}
	for _, info := range rec.WaitOpened(t, 2) {
		if !info.TLS {
			t.Fatalf("conn info %+v: TLS not reported", info)
		}
	}
	old.Close()
	fresh.Close()
	run.Stop(t)
	listenertest.Goroutines(t, base, 1)
}

// With a trust bundle only devices with a certificate it verifies get in.
func TestMutualTLS(t *testing.T) {
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, ws.Listener{}, secureSpec(t, certificate(1, ca.Issue(t, "server", "localhost"), ca.CertPEM)), rec)
	url := "wss://" + run.Addr + "/p/d"

	dialWS(t, tlsDialer(ca, ca.IssueClient(t, "device1")), url, nil)
	for name, d := range map[string]*websocket.Dialer{
		"no certificate":    tlsDialer(ca),
		"another authority": tlsDialer(ca, other.IssueClient(t, "intruder")),
	} {
		if c, _, err := d.Dial(url, nil); err == nil {
			c.Close()
			t.Errorf("%s: the upgrade went through", name)
		}
	}
	run.WaitErrors(t, "tls_handshake", 2)
	if n := len(rec.Opened()); n != 1 {
		t.Fatalf("%d connections admitted, want only the trusted device", n)
	}
}

// Plain HTTP on a secure port gets net/http's clear 400.
func TestPlainOnTLSPort(t *testing.T) {
	ca := testutil.NewCA(t)
	run := listenertest.Serve(t, ws.Listener{}, secureSpec(t, certificate(1, ca.Issue(t, "s", "localhost"), "")), listenertest.NewRecorder())
	c := dial(t, run.Addr)
	c.Write([]byte(upgradeRequest("/d")))
	if got := readAll(t, c); !strings.Contains(got, "HTTPS server") {
		t.Fatalf("got %q", got)
	}
	if _, resp, err := websocket.DefaultDialer.Dial("ws://"+run.Addr+"/d", nil); err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("ws:// to a wss port: %v", err)
	}
}
