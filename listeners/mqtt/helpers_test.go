package mqtt_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/mqtt"
	"github.com/linkops/linkops/resource"
)

func plainSpec() listeners.Spec {
	return listeners.Spec{Type: resource.TypeMQTTServer, Config: resource.NetworkConfig{Host: "127.0.0.1"}}
}

func serve(t *testing.T, spec listeners.Spec, h listeners.Handler) *listenertest.Running {
	t.Helper()
	return listenertest.Serve(t, mqtt.Listener{}, spec, h)
}

// pki is a test CA, a server certificate and a device certificate, also written as PEM
// files for the mosquitto clients.
type pki struct {
	ca                 *testutil.CA
	server, device     testutil.Cert
	caFile             string
	certFile, keyFile  string // the device's
	serverCertResource *resource.Certificate
}

func newPKI(t *testing.T, mutual bool) *pki {
	t.Helper()
	p := &pki{ca: testutil.NewCA(t)}
	p.server = p.ca.Issue(t, "linkops mqtt", "localhost")
	p.device = p.ca.IssueClient(t, "device-1")
	dir := t.TempDir()
	write := func(name, s string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	p.caFile = write("ca.pem", p.ca.CertPEM)
	p.certFile, p.keyFile = write("device.pem", p.device.CertPEM), write("device.key", p.device.KeyPEM)
	p.serverCertResource = &resource.Certificate{Cert: p.server.CertPEM, Key: p.server.KeyPEM}
	p.serverCertResource.ID, p.serverCertResource.Index = "cert1", 1
	if mutual {
		p.serverCertResource.Trust = p.ca.CertPEM
	}
	return p
}

func (p *pki) spec(t *testing.T) listeners.Spec {
	t.Helper()
	src, err := listeners.NewTLSSource(p.serverCertResource)
	if err != nil {
		t.Fatal(err)
	}
	s := plainSpec()
	s.Config.Secure, s.Config.CertID, s.TLS = true, "cert1", src
	return s
}

// clientTLS trusts the test CA (and presents the device certificate when withCert).
func (p *pki) clientTLS(t *testing.T, withCert bool) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Leaf)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if withCert {
		pair, err := tls.X509KeyPair([]byte(p.device.CertPEM), []byte(p.device.KeyPEM))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// mosquitto runs one of the mosquitto command-line clients (at most 30 s) and returns
// its output.
func mosquitto(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func hostPort(t *testing.T, addr string) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"-h", host, "-p", port}
}

// pahoClient connects an MQTT 3.1.1 paho client (TLS when cfg is set).
func pahoClient(t *testing.T, addr, id string, cfg *tls.Config) (paho.Client, error) {
	t.Helper()
	url := "tcp://" + addr
	if cfg != nil {
		url = "ssl://" + addr
	}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername("user-" + id).SetPassword("pass-" + id).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).SetTLSConfig(cfg).
		SetKeepAlive(30 * time.Second).SetCleanSession(true)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, errors.New("paho: connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func wait(t *testing.T, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatal("paho: timed out")
	}
	if tok.Error() != nil {
		t.Fatal(tok.Error())
	}
}

// raw is a hand-driven MQTT client for what real clients never send.
type raw struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &raw{Conn: c, r: bufio.NewReader(c)}
}

// connect sends a CONNECT of the given protocol level (4: 3.1.1, 5: 5.0) and returns
// the CONNACK's return or reason code.
func (c *raw) connect(t *testing.T, level byte, id, user, pass string) byte {
	t.Helper()
	pk := mqtt.ConnectPacket(id, user, pass, 30)
	if level == 5 {
		pk = connect5(id, user, pass)
	}
	c.write(t, pk)
	typ, body := c.read(t)
	if typ != 0x20 || len(body) < 2 {
		t.Fatalf("want a CONNACK, got type %#x % x", typ, body)
	}
	return body[1]
}

// connect5 is an MQTT 5 CONNECT with no properties.
func connect5(id, user, pass string) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02 | 0x80 | 0x40, 0, 30, 0}
	body = mqtt.AppendString(mqtt.AppendString(mqtt.AppendString(body, id), user), pass)
	return append(mqtt.AppendLength([]byte{0x10}, len(body)), body...)
}

// publish0 encodes a QoS 0 PUBLISH (level 5 adds an empty property list).
func publish0(level byte, topic string, payload []byte) []byte {
	body := mqtt.AppendString(nil, topic)
	if level == 5 {
		body = append(body, 0)
	}
	body = append(body, payload...)
	return append(mqtt.AppendLength([]byte{0x30}, len(body)), body...)
}

func (c *raw) write(t *testing.T, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// read returns the next packet's type byte and body.
func (c *raw) read(t *testing.T) (byte, []byte) {
	t.Helper()
	typ, body, err := c.next()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, body
}

func (c *raw) next() (byte, []byte, error) {
	typ, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	var n, shift int
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n |= int(b&127) << shift
		if b&128 == 0 {
			break
		}
		if shift += 7; shift > 21 {
			return 0, nil, errors.New("bad remaining length")
		}
	}
	body := make([]byte, n)
	_, err = io.ReadFull(c.r, body)
	return typ, body, err
}

// closedByServer waits (up to 20 s) for the server to end the connection, skipping any
// packets it sends first (a DISCONNECT).
func (c *raw) closedByServer(t *testing.T) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, _, err := c.next()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server did not close the connection")
		}
		return
	}
}

// tracker is a Handler that keeps each session apart, to tell which one was closed.
type tracker struct {
	mu       sync.Mutex
	sessions []*tracked
	refuse   error
}

type tracked struct {
	t      *tracker
	info   listeners.ConnInfo
	conn   listeners.Conn
	frames []listeners.Frame
	closed []string
}

func (h *tracker) Open(_ context.Context, c listeners.Conn) (listeners.Session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refuse != nil {
		return nil, h.refuse
	}
	s := &tracked{t: h, info: c.Info(), conn: c}
	h.sessions = append(h.sessions, s)
	return s, nil
}

func (s *tracked) Receive(_ context.Context, f listeners.Frame) (*listeners.Reply, error) {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	s.frames = append(s.frames, f)
	return nil, nil
}

func (s *tracked) Closed(reason string) {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	s.closed = append(s.closed, reason)
}

// session returns the i-th session opened, waiting for it.
func (h *tracker) session(t *testing.T, i int) *tracked {
	t.Helper()
	var s *tracked
	eventually(t, fmt.Sprintf("session %d opened", i), func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.sessions) > i {
			s = h.sessions[i]
		}
		return s != nil
	})
	return s
}

// closedReasons returns a copy of the reasons the session was closed with.
func (s *tracked) closedReasons() []string {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	return append([]string(nil), s.closed...)
}

// eventually waits up to 20 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// u16 is a big-endian uint16, for reading packet fields.
func u16(b []byte) int { return int(binary.BigEndian.Uint16(b)) }

// admitAll admits every client and keeps nothing (a fuzzing run has millions).
type admitAll struct{}

func (admitAll) Open(context.Context, listeners.Conn) (listeners.Session, error) {
	return admitAll{}, nil
}
func (admitAll) Receive(context.Context, listeners.Frame) (*listeners.Reply, error) {
	return nil, nil
}
func (admitAll) Closed(string) {}
