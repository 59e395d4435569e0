package mqtt_test

import (
	"crypto/tls"
	"testing"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/resource"
)

// presented is the CommonName of the certificate a new TLS handshake gets.
func presented(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// A certificate update reaches new handshakes without a restart, while a connection made
// before it keeps working.
func TestCertificateUpdateAppliesToNewHandshakes(t *testing.T) {
	p := newPKI(t, false)
	spec := p.spec(t)
	rec := listenertest.NewRecorder()
	run := serve(t, spec, rec)
	cfg := p.clientTLS(t, false)
	old, err := pahoClient(t, run.Addr, "before-update", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cn := presented(t, run.Addr, cfg); cn != "linkops mqtt" {
		t.Fatalf("presented %q", cn)
	}

	renewed := p.ca.Issue(t, "linkops mqtt renewed", "localhost")
	c := &resource.Certificate{Cert: renewed.CertPEM, Key: renewed.KeyPEM}
	c.ID, c.Index = "cert1", 2
	if err := spec.TLS.Update(c); err != nil {
		t.Fatal(err)
	}
	if cn := presented(t, run.Addr, cfg); cn != "linkops mqtt renewed" {
		t.Fatalf("after the update, new handshakes get %q", cn)
	}
	wait(t, old.Publish("still/up", 1, false, []byte("old connection")))
	if f := rec.WaitFrames(t, 1)[0]; string(f.Payload) != "old connection" {
		t.Fatalf("frame %q", f.Payload)
	}
	if len(rec.Closed()) != 0 {
		t.Fatal("the update closed a connection")
	}
}

// With a trust bundle, only clients with a certificate it verifies get in: paho and
// mosquitto_pub with the device certificate; not without one, nor with another CA's.
func TestMutualTLS(t *testing.T) {
	p := newPKI(t, true)
	rec := listenertest.NewRecorder()
	run := serve(t, p.spec(t), rec)

	if _, err := pahoClient(t, run.Addr, "no-cert", p.clientTLS(t, false)); err == nil {
		t.Fatal("a client without a certificate got in")
	}
	stranger := p.clientTLS(t, false)
	other := testutil.NewCA(t).IssueClient(t, "stranger")
	pair, err := tls.X509KeyPair([]byte(other.CertPEM), []byte(other.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	stranger.Certificates = []tls.Certificate{pair}
	if _, err := pahoClient(t, run.Addr, "stranger", stranger); err == nil {
		t.Fatal("a client with another CA's certificate got in")
	}
	run.WaitErrors(t, "tls_handshake", 2)
	if n := len(rec.Opened()); n != 0 {
		t.Fatalf("%d connections reached the handler", n)
	}

	c, err := pahoClient(t, run.Addr, "device-1", p.clientTLS(t, true))
	if err != nil {
		t.Fatal(err)
	}
	wait(t, c.Publish("/p/device-1/event/e", 0, false, []byte("paho")))
	args := append(hostPort(t, run.Addr), "-V", "mqttv5", "-i", "device-2", "-t", "/p/device-2/event/e", "-m", "mosquitto",
		"--cafile", p.caFile, "--insecure", "--cert", p.certFile, "--key", p.keyFile)
	if out, err := mosquitto(t, "mosquitto_pub", args...); err != nil {
		t.Fatalf("mosquitto_pub with the device certificate: %v\n%s", err, out)
	}
	frames := rec.WaitFrames(t, 2)
	if string(frames[0].Payload) != "paho" || string(frames[1].Payload) != "mosquitto" || !rec.Opened()[1].TLS {
		t.Fatalf("frames %q %q", frames[0].Payload, frames[1].Payload)
	}
}
