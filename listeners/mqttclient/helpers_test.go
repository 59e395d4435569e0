package mqttclient_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/mqttclient"
	"github.com/linkops/linkops/resource"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// broker is a real mosquitto the test runs on 127.0.0.1; it keeps its port across
// restarts and logs every connection, subscription and client id to one file.
type broker struct {
	t    testing.TB
	port int
	conf string
	log  string
	cmd  *exec.Cmd
	logf *os.File
}

// startBroker starts mosquitto with extra lines for its listener (TLS settings, say).
func startBroker(t testing.TB, extra ...string) *broker {
	t.Helper()
	dir := readableDir(t)
	b := &broker{t: t, port: freePort(t), conf: filepath.Join(dir, "mosquitto.conf"), log: filepath.Join(dir, "mosquitto.log")}
	conf := fmt.Sprintf("listener %d 127.0.0.1\n%s\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type all\nconnection_messages true\n",
		b.port, strings.Join(extra, "\n"))
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.stop)
	return b
}

// readableDir is a temporary directory mosquitto can read files from: started as root it
// runs as the user mosquitto, and t.TempDir is private to this user.
func readableDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mqttclient-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeFile writes a file mosquitto can read.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (b *broker) addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// start runs mosquitto and waits until it accepts connections.
func (b *broker) start() {
	b.t.Helper()
	f, err := os.OpenFile(b.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	b.cmd, b.logf = exec.Command("mosquitto", "-c", b.conf), f
	b.cmd.Stdout, b.cmd.Stderr = f, f
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("start mosquitto (Debian package mosquitto): %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.addr(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto does not listen on %s: %v\n%s", b.addr(), err, b.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills mosquitto, as a crash would: its clients see their connection drop.
func (b *broker) stop() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
	b.logf.Close()
	b.cmd = nil
}

func (b *broker) logText() string {
	s, _ := os.ReadFile(b.log)
	return string(s)
}

// waitLog waits until the broker logged a line containing s.
func (b *broker) waitLog(t testing.TB, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.logText(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto never logged %q:\n%s", s, b.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pub publishes one message with mosquitto_pub (the payload goes through stdin, so any
// bytes do; nil sends an empty message).
func (b *broker) pub(t testing.TB, topic string, payload []byte) {
	t.Helper()
	msg := "-s"
	if payload == nil {
		msg = "-n"
	}
	cmd := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", fmt.Sprint(b.port), "-t", topic, msg)
	cmd.Stdin = bytes.NewReader(payload)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}

// sub starts a mosquitto_sub for one message on topic, waits until the broker has its
// subscription, and returns a function that waits for the message: "topic payloadhex".
func (b *broker) sub(t testing.TB, clientID, topic string) func() string {
	t.Helper()
	out := filepath.Join(t.TempDir(), clientID+".out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", fmt.Sprint(b.port), "-i", clientID, "-t", topic,
		"-C", "1", "-W", "20", "-F", "%t %x")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); f.Close() })
	b.waitLog(t, clientID+" 0 "+topic)
	return func() string {
		t.Helper()
		if err := cmd.Wait(); err != nil {
			got, _ := os.ReadFile(out)
			t.Fatalf("mosquitto_sub: %v: %s", err, got)
		}
		got, _ := os.ReadFile(out)
		return strings.TrimSpace(string(got))
	}
}

// spec is an MQTT_CLIENT component pointed at the broker.
func (b *broker) spec(clientID string, topics ...string) listeners.Spec {
	return listeners.Spec{ComponentID: "mqc", Type: resource.TypeMQTTClient, AllowRemote: loopback,
		Config: resource.NetworkConfig{RemoteHost: "127.0.0.1", RemotePort: b.port, ClientID: clientID, Topics: topics,
			MaxMessageSize: resource.DefaultMaxMessageSize}}
}

// node runs the listener as one node's supervisor does: Serve again after every error,
// with backoff doubling from 50 ms to 5 s and reset once connected, until the test ends.
type node struct {
	env    *listeners.Env
	reg    *prometheus.Registry
	events *listeners.Subscription
	bound  chan string
	up     atomic.Bool
	stop   context.CancelFunc
	done   chan error

	mu   sync.Mutex
	errs []error
}

func runNode(t testing.TB, spec listeners.Spec, h listeners.Handler, nodeID string) *node {
	t.Helper()
	hub := listeners.NewHub()
	n := &node{reg: prometheus.NewRegistry(), events: hub.Subscribe(spec.ComponentID, 100), bound: make(chan string, 100), done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n.env = listeners.NewEnv(spec.ComponentID, nodeID, h, hub, listeners.NewMetrics(n.reg), log, func(a string) {
		n.up.Store(true)
		n.bound <- a
	})
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	go func() {
		delay := 50 * time.Millisecond
		for {
			err := mqttclient.Listener{}.Serve(ctx, spec, n.env)
			if ctx.Err() != nil {
				n.done <- err
				return
			}
			if err == nil {
				err = fmt.Errorf("Serve returned nil while its context was live")
			}
			n.mu.Lock()
			n.errs = append(n.errs, err)
			n.mu.Unlock()
			if n.up.Swap(false) {
				delay = 50 * time.Millisecond
			}
			select {
			case <-ctx.Done():
				n.done <- nil
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 5*time.Second)
		}
	}()
	t.Cleanup(func() { n.Stop(t) })
	return n
}

// waitBound waits for the next env.Bound and returns its address.
func (n *node) waitBound(t testing.TB) string {
	t.Helper()
	select {
	case a := <-n.bound:
		return a
	case <-time.After(20 * time.Second):
		t.Fatalf("not connected within 20 s; Serve returned %v", n.errors())
		return ""
	}
}

func (n *node) errors() []error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]error(nil), n.errs...)
}

// waitErr waits until Serve returned an error whose text contains s, and returns it.
func (n *node) waitErr(t testing.TB, s string) error {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, err := range n.errors() {
			if strings.Contains(err.Error(), s) {
				return err
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Serve never returned an error with %q; it returned %v", s, n.errors())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counted is the value of linkops_listener_errors_total{reason}.
func (n *node) counted(reason string) float64 { return listenertest.ErrorCount(n.reg, reason) }

// Stop ends the node and checks that Serve returned nil within 10 s. It is idempotent.
func (n *node) Stop(t testing.TB) {
	t.Helper()
	if n.stop == nil {
		return
	}
	n.stop()
	n.stop = nil
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("Serve returned %v after its context ended; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Serve did not return within 10 s of its context ending")
	}
	n.events.Close()
}
