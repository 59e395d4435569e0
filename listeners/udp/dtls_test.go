package udp_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/udp"
)

// readRecord reads one DTLS record, failing the test after 10 s.
func readRecord(t *testing.T, c *dtls.Conn) []byte {
	t.Helper()
	return receive(t, c)
}

// Each DTLS association is one Conn: its records are the messages, Send writes a record.
func TestDTLSMessagesAndDownlink(t *testing.T) {
	ca := testutil.NewCA(t)
	src, _ := source(t, ca, "server", "")
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), rec)

	// Written the moment the client's handshake is done: pion's server would drop all
	// but the first if they were not held until its own handshake is marked done.
	c := mustDTLS(t, run.Addr, ca)
	for i := range 10 {
		if _, err := c.Write(fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range rec.WaitFrames(t, 10) {
		if want := fmt.Sprintf("m%d", i); string(f.Payload) != want {
			t.Errorf("frame %d is %q, want %q", i, f.Payload, want)
		}
	}
	info := rec.Opened()[0]
	if !info.TLS || info.Transport != listeners.TransportUDP || info.Remote != c.LocalAddr().String() {
		t.Errorf("info %+v; want TLS over UDP from %s", info, c.LocalAddr())
	}
	if err := rec.Conns()[0].Send(listeners.Frame{Payload: []byte("down")}); err != nil {
		t.Fatal(err)
	}
	if got := readRecord(t, c); string(got) != "down" {
		t.Errorf("client read %q, want down", got)
	}

	_ = c.Close() // close_notify
	if got := rec.WaitClosed(t, 1); got[0] != "closed by peer" {
		t.Errorf("closed %q, want closed by peer", got[0])
	}
}

// A certificate update applies to new handshakes; an established association keeps
// working with the certificate it had.
func TestDTLSCertificateUpdate(t *testing.T) {
	ca := testutil.NewCA(t)
	src, _ := source(t, ca, "first", "")
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), rec)

	old := mustDTLS(t, run.Addr, ca)
	if cn := peerCert(t, old).Subject.CommonName; cn != "first" {
		t.Fatalf("first handshake presented %q", cn)
	}
	if err := src.Update(certResource(ca.Issue(t, "second", "localhost"), 2, "")); err != nil {
		t.Fatal(err)
	}
	fresh := mustDTLS(t, run.Addr, ca)
	if cn := peerCert(t, fresh).Subject.CommonName; cn != "second" {
		t.Errorf("handshake after the update presented %q, want second", cn)
	}

	if _, err := old.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	frames := rec.WaitFrames(t, 1)
	if string(frames[0].Payload) != "still here" {
		t.Errorf("frame %q", frames[0].Payload)
	}
	rec.WaitOpened(t, 2)
	if err := rec.Conns()[0].Send(listeners.Frame{Payload: []byte("to old")}); err != nil {
		t.Fatal(err)
	}
	if got := readRecord(t, old); string(got) != "to old" {
		t.Errorf("old association read %q", got)
	}
	if len(rec.Closed()) != 0 {
		t.Errorf("sessions closed by the update: %v", rec.Closed())
	}
}

// With a trust bundle, only clients whose certificate it verifies (for client auth) get
// a Conn.
func TestDTLSClientCertificates(t *testing.T) {
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	src, serverCert := source(t, ca, "server", ca.CertPEM)
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), rec)

	refused := map[string][]dtls.ClientOption{
		"no certificate":          nil,
		"another CA":              {dtls.WithCertificates(keyPair(t, other.IssueClient(t, "stranger")))},
		"not for client auth":     {dtls.WithCertificates(keyPair(t, serverCert))},
		"self-signed (CA itself)": {dtls.WithCertificates(keyPair(t, other.Cert))},
	}
	for name, opts := range refused {
		if c, err := dtlsClient(t, run.Addr, nil, ca, opts...); err == nil {
			// pion's client may finish before the server's verdict arrives: then the
			// server must still never admit it.
			_, _ = c.Write([]byte("let me in"))
		} else {
			t.Logf("%s: refused: %v", name, err)
		}
	}
	run.WaitErrors(t, "tls_handshake", float64(len(refused)))

	good := mustDTLS(t, run.Addr, ca, dtls.WithCertificates(keyPair(t, ca.IssueClient(t, "device-1"))))
	if _, err := good.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	frames := rec.WaitFrames(t, 1)
	if string(frames[0].Payload) != "hello" || len(rec.Opened()) != 1 {
		t.Errorf("frames %q, opened %d; want only the good client's hello", frames[0].Payload, len(rec.Opened()))
	}
}

// A trust bundle added by a certificate update applies to the next handshake; an
// association made before it keeps working.
func TestDTLSTrustUpdate(t *testing.T) {
	ca := testutil.NewCA(t)
	src, server := source(t, ca, "server", "")
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), rec)
	anonymous := mustDTLS(t, run.Addr, ca)

	if err := src.Update(certResource(server, 2, ca.CertPEM)); err != nil {
		t.Fatal(err)
	}
	if c, err := dtlsClient(t, run.Addr, nil, ca); err == nil {
		_, _ = c.Write([]byte("no certificate"))
	}
	run.WaitErrors(t, "tls_handshake", 1)
	mustDTLS(t, run.Addr, ca, dtls.WithCertificates(keyPair(t, ca.IssueClient(t, "device-1"))))
	rec.WaitOpened(t, 2)

	_, _ = anonymous.Write([]byte("from before"))
	if f := rec.WaitFrames(t, 1); string(f[0].Payload) != "from before" || len(rec.Opened()) != 2 {
		t.Errorf("frame %q, %d opened; want the old association's record and 2 conns", f[0].Payload, len(rec.Opened()))
	}
}

// With no gateway, records are dropped and counted, and the debug stream shows them.
func TestDTLSNoGateway(t *testing.T) {
	ca := testutil.NewCA(t)
	src, _ := source(t, ca, "server", "")
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), listeners.NoGateway{})
	sub := run.Hub.Subscribe("udp-test", 16)
	defer sub.Close()
	c := mustDTLS(t, run.Addr, ca)
	if _, err := c.Write([]byte("dropped")); err != nil {
		t.Fatal(err)
	}
	run.WaitErrors(t, "no_gateway", 1)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-sub.C:
			if e.Kind == listeners.EventMessage {
				if string(e.Payload) != "dropped" {
					t.Errorf("debug message %q", e.Payload)
				}
				return
			}
		case <-deadline:
			t.Fatal("the debug stream showed no message")
		}
	}
}

// An association silent for udp.IdleTimeout is closed.
func TestDTLSIdle(t *testing.T) {
	setVar(t, &udp.IdleTimeout, 200*time.Millisecond)
	ca := testutil.NewCA(t)
	src, _ := source(t, ca, "server", "")
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), rec)
	mustDTLS(t, run.Addr, ca)
	if got := rec.WaitClosed(t, 1); got[0] != "idle" {
		t.Errorf("closed %q, want idle", got[0])
	}
}

// The handler's Close ends the association with a close_notify; a refused message too.
func TestDTLSHandlerClose(t *testing.T) {
	ca := testutil.NewCA(t)
	src, _ := source(t, ca, "server", "")
	rec := listenertest.NewRecorder()
	rec.Reply = func(f listeners.Frame) (*listeners.Reply, error) {
		if bytes.Equal(f.Payload, []byte("bad")) {
			return nil, listeners.ErrTooLarge
		}
		return nil, nil
	}
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), rec)

	a := mustDTLS(t, run.Addr, ca)
	_, _ = a.Write([]byte("hi"))
	rec.WaitFrames(t, 1)
	rec.Conns()[0].Close("kicked")
	if got := rec.WaitClosed(t, 1); got[0] != "kicked" {
		t.Errorf("closed %q, want kicked", got[0])
	}
	_ = a.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := a.Read(make([]byte, 100)); err == nil {
		t.Error("client still reads after the server closed the association")
	}
	if err := rec.Conns()[0].Send(listeners.Frame{Payload: []byte("x")}); err == nil {
		t.Error("Send on a closed association succeeded")
	}

	b := mustDTLS(t, run.Addr, ca)
	_, _ = b.Write([]byte("bad"))
	if got := rec.WaitClosed(t, 2); !strings.Contains(got[1], "too large") {
		t.Errorf("closed %q, want the refusal", got[1])
	}
}

// Stop closes every association, established or handshaking, and leaves no goroutine.
func TestDTLSStop(t *testing.T) {
	ca := testutil.NewCA(t)
	src, _ := source(t, ca, "server", "")
	hello := clientHello(t)
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), rec)

	c := mustDTLS(t, run.Addr, ca)
	_, _ = c.Write([]byte("x"))
	rec.WaitFrames(t, 1)
	half := dial(t, run.Addr) // a handshake that never goes on
	send(t, half, hello)
	receive(t, half) // HelloVerifyRequest: the association exists

	run.Stop(t)
	if got := rec.WaitClosed(t, 1); got[0] != "listener stopped" {
		t.Errorf("closed %q, want listener stopped", got[0])
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 100)); err == nil {
		t.Error("client still reads after Stop")
	}
	if n := run.Env.Connections(); n != 0 {
		t.Errorf("%d connections counted after Stop", n)
	}
	_ = c.Close()
	listenertest.Goroutines(t, base, 0)
}
