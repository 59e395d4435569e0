package mqttclient_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/mqttclient"
	"github.com/linkops/linkops/resource"
)

// The agent's default --allow-remote (SPEC §4.3.1).
var defaultAllow = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fc00::/7"),
}

// trap is a TCP listener that must never be connected to.
func trap(t *testing.T) (*net.TCPListener, int) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// accepted reports whether anyone connected to ln. Serve has returned by then, so a
// connection it made would already wait in the accept queue.
func accepted(ln *net.TCPListener) bool {
	_ = ln.SetDeadline(time.Now().Add(200 * time.Millisecond))
	c, err := ln.Accept()
	if err == nil {
		c.Close()
	}
	return err == nil
}

func clientSpec(host string, port int, allow []netip.Prefix) listeners.Spec {
	return listeners.Spec{ComponentID: "mqc", Type: resource.TypeMQTTClient, AllowRemote: allow,
		Config: resource.NetworkConfig{RemoteHost: host, RemotePort: port, Topics: []string{"up/#"}}}
}

// An address outside --allow-remote is refused before any connection, with an error
// naming it and the flag; a host name is checked after it is resolved.
func TestRefusesAddressOutsideAllowRemote(t *testing.T) {
	ln, port := trap(t)
	only10 := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name, host string
		port       int
		allow      []netip.Prefix
		want       string
	}{
		{"TEST-NET", "192.0.2.1", 1883, defaultAllow,
			"connecting to 192.0.2.1:1883 is not allowed: 192.0.2.1 is outside --allow-remote (127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7)"},
		{"public", "8.8.8.8", 1883, defaultAllow, "connecting to 8.8.8.8:1883 is not allowed: 8.8.8.8 is outside --allow-remote"},
		{"loopback not allowed", "127.0.0.1", port, only10,
			fmt.Sprintf("connecting to 127.0.0.1:%d is not allowed: 127.0.0.1 is outside --allow-remote (10.0.0.0/8)", port)},
		{"name resolving to loopback", "localhost", port, only10, fmt.Sprintf("connecting to localhost:%d is not allowed: 127.0.0.1", port)},
		{"nothing allowed", "127.0.0.1", port, nil, "127.0.0.1 is outside --allow-remote (empty)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := listenertest.ServeErr(t, mqttclient.Listener{}, clientSpec(tc.host, tc.port, tc.allow), listenertest.NewRecorder())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Serve returned %v, want %q", err, tc.want)
			}
			if accepted(ln) {
				t.Fatal("a connection was attempted to a refused address")
			}
		})
	}
}

// A name whose every address is allowed is connected to by the address that was checked:
// the status shows the broker's IP, not the name.
func TestNameResolvedAndDialedByAddress(t *testing.T) {
	b := startBroker(t)
	spec := b.spec("cid", "up/#")
	spec.Config.RemoteHost = "localhost"
	rec := listenertest.NewRecorder()
	r := listenertest.Serve(t, mqttclient.Listener{}, spec, rec)
	if r.Addr != b.addr() {
		t.Errorf("bound %q, want the address localhost resolved to, %q", r.Addr, b.addr())
	}
	b.pub(t, "up/x", []byte("via name"))
	rec.WaitFrames(t, 1)
}

// A broker that is not there: Serve returns the dial error at once (status failed).
func TestConnectErrorReturned(t *testing.T) {
	port := freePort(t)
	err := listenertest.ServeErr(t, mqttclient.Listener{}, clientSpec("127.0.0.1", port, loopback), listenertest.NewRecorder())
	t.Logf("Serve: %v", err)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("connect to MQTT broker 127.0.0.1:%d", port)) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Serve returned %v, want the connection refused by 127.0.0.1:%d", err, port)
	}
}

// Username and password reach the broker: wrong ones are refused with the broker's
// answer, right ones connect.
func TestCredentials(t *testing.T) {
	pw := filepath.Join(readableDir(t), "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-c", "-b", pw, "ops", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	if err := os.Chmod(pw, 0o644); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, "password_file "+pw, "allow_anonymous false")
	spec := b.spec("cid", "up/#")
	spec.Config.Username, spec.Config.Password = "ops", "wrong"
	err := listenertest.ServeErr(t, mqttclient.Listener{}, spec, listenertest.NewRecorder())
	t.Logf("Serve: %v", err)
	if err == nil || !strings.Contains(err.Error(), "connect to MQTT broker") || !strings.Contains(err.Error(), "the broker refused the connection") {
		t.Errorf("wrong password: Serve returned %v, want the broker's refusal", err)
	}
	spec.Config.Password = "s3cret"
	rec := listenertest.NewRecorder()
	listenertest.Serve(t, mqttclient.Listener{}, spec, rec)
	if info := rec.WaitOpened(t, 1)[0]; info.Username != "ops" || info.Password != "" {
		t.Errorf("conn info %+v: want the username and no password", info)
	}
}

// A broker that accepts the TCP connection and never answers the CONNECT: stopping
// returns nil at once, leaving no goroutine.
func TestStopWhileConnecting(t *testing.T) {
	base := runtime.NumGoroutine()
	ln, port := trap(t)
	n := runNode(t, clientSpec("127.0.0.1", port, loopback), listenertest.NewRecorder(), "node1")
	_ = ln.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept() // held open and silent: no CONNACK ever comes
	if err != nil {
		t.Fatalf("Serve never dialed the broker: %v", err)
	}
	defer c.Close()
	n.Stop(t)
	if errs := n.errors(); len(errs) != 0 {
		t.Errorf("Serve returned %v before it was stopped", errs)
	}
	listenertest.Goroutines(t, base, 0)
}
