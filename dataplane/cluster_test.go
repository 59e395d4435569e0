package dataplane_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/node"
)

var allRunning = map[string]string{"node1": listeners.StateRunning, "node2": listeners.StateRunning, "node3": listeners.StateRunning}

// cluster is a 3-node in-process cluster and an admin session on node1.
type cluster struct {
	nodes []*testutil.TestNode
	admin *client.Client
}

func startCluster(t *testing.T, mutate ...func(i int, c *node.Config)) *cluster {
	t.Helper()
	nodes := testutil.StartCluster(t, 3, mutate...)
	return &cluster{nodes: nodes, admin: nodes[0].Admin(t)}
}

// do sends a request through node1; a 503 no_leader (an election on a loaded machine:
// nothing was sent to raft) is retried, any other error fails the test.
func (c *cluster) do(t *testing.T, method, path string, body, out any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.admin.Do(context.Background(), method, path, body, out)
		var p *client.Problem
		if err == nil {
			return
		}
		if !errors.As(err, &p) || p.Code != "no_leader" || time.Now().After(deadline) {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) create(t *testing.T, body map[string]any) {
	t.Helper()
	body["state"] = "enabled"
	c.do(t, http.MethodPost, "/api/v1/network-components", body, nil)
}

// debugVia opens the component's debug stream through node i's API.
func (c *cluster) debugVia(t *testing.T, i int, id string) *testutil.DebugStream {
	t.Helper()
	return testutil.OpenDebug(t, c.nodes[i].HTTPAddr(), c.admin.Token, id, "")
}

func hexOf(s string) string { return hex.EncodeToString([]byte(s)) }

// messageFrom matches a debug message event of node with the payload.
func messageFrom(node, payload string) func(map[string]any) bool {
	return func(d map[string]any) bool { return d["serverId"] == node && d["payloadHex"] == hexOf(payload) }
}

// TestEveryTypeServesOnEveryNode: each of the seven component types, configured per node
// on 127.0.0.1/2/3, accepts a real client on every node, and what it receives shows up
// intact on the debug stream read through another node (acceptance 1).
func TestEveryTypeServesOnEveryNode(t *testing.T) {
	c := startCluster(t)
	dumpLogs(t, c)

	t.Run("TCP_SERVER", func(t *testing.T) {
		port := testutil.FreePort(t, "tcp")
		c.create(t, testutil.PerNodeComponent("tcp1", "TCP_SERVER", port, map[string]any{"parserType": "DELIMITED", "parserConfiguration": map[string]any{"delimited": `\n`}}))
		testutil.WaitComponentStates(t, c.admin, "tcp1", allRunning)
		d := c.debugVia(t, 1, "tcp1")
		for i, host := range testutil.NodeHosts {
			conn, err := net.Dial("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
			if err != nil {
				t.Fatal(err)
			}
			msg := fmt.Sprintf("hello node%d", i+1)
			fmt.Fprintf(conn, "%s\n", msg)
			d.Next(t, "message", messageFrom(fmt.Sprintf("node%d", i+1), msg))
			conn.Close()
		}
	})

	t.Run("UDP", func(t *testing.T) {
		port := testutil.FreePort(t, "udp")
		c.create(t, testutil.PerNodeComponent("udp1", "UDP", port, nil))
		testutil.WaitComponentStates(t, c.admin, "udp1", allRunning)
		d := c.debugVia(t, 2, "udp1")
		for i, host := range testutil.NodeHosts {
			conn, err := net.Dial("udp", net.JoinHostPort(host, fmt.Sprint(port)))
			if err != nil {
				t.Fatal(err)
			}
			msg := fmt.Sprintf("datagram for node%d", i+1)
			_, _ = conn.Write([]byte(msg))
			d.Next(t, "message", messageFrom(fmt.Sprintf("node%d", i+1), msg))
			conn.Close()
		}
	})

	t.Run("HTTP_SERVER", func(t *testing.T) {
		port := testutil.FreePort(t, "tcp")
		c.create(t, testutil.PerNodeComponent("http1", "HTTP_SERVER", port, nil))
		testutil.WaitComponentStates(t, c.admin, "http1", allRunning)
		d := c.debugVia(t, 0, "http1")
		for i, host := range testutil.NodeHosts {
			msg := fmt.Sprintf(`{"to":"node%d"}`, i+1)
			resp, err := http.Post(fmt.Sprintf("http://%s:%d/p/d/properties/report", host, port), "application/json", strings.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			var p map[string]any
			_ = jsonDecode(resp, &p)
			if resp.StatusCode != http.StatusNotFound || p["code"] != "no_gateway" || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("no gateway: %d %s %v, want 404 problem no_gateway", resp.StatusCode, resp.Header.Get("Content-Type"), p)
			}
			e := d.Next(t, "message", messageFrom(fmt.Sprintf("node%d", i+1), msg))
			if e.Data["topic"] != "/p/d/properties/report" {
				t.Fatalf("topic %v, want the request path", e.Data["topic"])
			}
		}
	})

	t.Run("WEB_SOCKET_SERVER", func(t *testing.T) {
		port := testutil.FreePort(t, "tcp")
		c.create(t, testutil.PerNodeComponent("ws1", "WEB_SOCKET_SERVER", port, nil))
		testutil.WaitComponentStates(t, c.admin, "ws1", allRunning)
		d := c.debugVia(t, 1, "ws1")
		for i, host := range testutil.NodeHosts {
			ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://%s:%d/p/d", host, port), nil)
			if err != nil {
				t.Fatal(err)
			}
			msg := fmt.Sprintf(`{"frame":"node%d"}`, i+1)
			if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			e := d.Next(t, "message", messageFrom(fmt.Sprintf("node%d", i+1), msg))
			if e.Data["topic"] != "/p/d" {
				t.Fatalf("topic %v, want the upgrade path", e.Data["topic"])
			}
			ws.Close()
		}
	})

	t.Run("COAP_SERVER", func(t *testing.T) {
		port := testutil.FreePort(t, "udp")
		c.create(t, testutil.PerNodeComponent("coap1", "COAP_SERVER", port, nil))
		testutil.WaitComponentStates(t, c.admin, "coap1", allRunning)
		d := c.debugVia(t, 2, "coap1")
		for i, host := range testutil.NodeHosts {
			msg := fmt.Sprintf("coap to node%d", i+1)
			out, _ := exec.Command("coap-client-notls", "-m", "post", "-e", msg, "-B", "10", fmt.Sprintf("coap://%s:%d/p/d/properties/report", host, port)).CombinedOutput()
			if !strings.Contains(string(out), "4.04") {
				t.Fatalf("coap-client with no gateway said %q, want 4.04", out)
			}
			e := d.Next(t, "message", messageFrom(fmt.Sprintf("node%d", i+1), msg))
			if e.Data["topic"] != "/p/d/properties/report" {
				t.Fatalf("topic %v", e.Data["topic"])
			}
		}
	})

	t.Run("MQTT_SERVER", func(t *testing.T) {
		port := testutil.FreePort(t, "tcp")
		c.create(t, testutil.PerNodeComponent("mqtt1", "MQTT_SERVER", port, nil))
		testutil.WaitComponentStates(t, c.admin, "mqtt1", allRunning)
		d := c.debugVia(t, 0, "mqtt1")
		for i, host := range testutil.NodeHosts {
			for _, v := range []string{"mqttv311", "mqttv5"} {
				id := fmt.Sprintf("dev-%s-node%d", v, i+1)
				out, err := exec.Command("mosquitto_pub", "-h", host, "-p", fmt.Sprint(port), "-V", v, "-i", id, "-t", "/p/d/x", "-m", "hi").CombinedOutput()
				if err == nil || !strings.Contains(strings.ToLower(string(out)), "not authori") {
					t.Fatalf("mosquitto_pub %s with no gateway: %v %q, want refused not authorised", v, err, out)
				}
				d.Next(t, "disconnect", func(m map[string]any) bool {
					return m["clientId"] == id && m["serverId"] == fmt.Sprintf("node%d", i+1) && strings.Contains(fmt.Sprint(m["reason"]), "gateway")
				})
			}
		}
	})

	t.Run("MQTT_CLIENT", func(t *testing.T) {
		broker := startMosquitto(t)
		c.create(t, map[string]any{"id": "mc1", "name": "mc1", "type": "MQTT_CLIENT", "configuration": map[string]any{
			"remoteHost": "127.0.0.1", "remotePort": broker, "clientId": "linkops", "topics": []string{"up/#"}}})
		st := testutil.WaitComponentStates(t, c.admin, "mc1", allRunning)
		if want := fmt.Sprintf("127.0.0.1:%d", broker); st["node2"].Address != want {
			t.Fatalf("status address %q, want the broker %s", st["node2"].Address, want)
		}
		d := c.debugVia(t, 1, "mc1")
		pub(t, broker, "up/all", "to every node")
		got := map[string]bool{}
		for len(got) < 3 { // in any order: each node has its own subscription
			e := d.Next(t, "message", func(m map[string]any) bool { return m["payloadHex"] == hexOf("to every node") })
			got[e.Data["serverId"].(string)] = true
		}
		// A $share/ prefix: each message reaches exactly one node.
		c.create(t, map[string]any{"id": "mc2", "name": "mc2", "type": "MQTT_CLIENT", "configuration": map[string]any{
			"remoteHost": "127.0.0.1", "remotePort": broker, "topicPrefix": "$share/linkops/", "topics": []string{"shared/#"}}})
		testutil.WaitComponentStates(t, c.admin, "mc2", allRunning)
		d2 := c.debugVia(t, 2, "mc2")
		const n = 30
		for i := range n {
			pub(t, broker, "shared/x", fmt.Sprintf("m%02d", i))
		}
		seen := map[string]string{}
		for len(seen) < n {
			e := d2.Next(t, "message", nil)
			p, _ := hex.DecodeString(e.Data["payloadHex"].(string))
			if prev, dup := seen[string(p)]; dup {
				t.Fatalf("%s delivered to %s and %v: a $share subscription must deliver once", p, prev, e.Data["serverId"])
			}
			seen[string(p)] = e.Data["serverId"].(string)
		}
	})
}

func jsonDecode(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// startMosquitto runs a real broker on a free loopback port until the test ends.
func startMosquitto(t *testing.T) int {
	t.Helper()
	port := testutil.FreePort(t, "tcp", "127.0.0.1")
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listener %d 127.0.0.1\nallow_anonymous true\n", port), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mosquitto", "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testutil.WaitFor(t, 10*time.Second, "mosquitto to listen", func() bool {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	return port
}

func pub(t *testing.T, port int, topic, msg string) {
	t.Helper()
	if out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-t", topic, "-m", msg).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, out)
	}
}

// TestPlacementPortsAndFailures: per-node placement, a held port, a port change, a
// disable and a dead node, each as the status and a real connection show them
// (acceptance 3, 4, 5), and a shared 0.0.0.0 component on one host (one node binds it).
func TestPlacementPortsAndFailures(t *testing.T) {
	c := startCluster(t)

	t.Run("PerNodeOnTwoOfThree", func(t *testing.T) {
		port := testutil.FreePort(t, "tcp")
		c.create(t, testutil.PerNodeComponent("two", "TCP_SERVER", port, nil, 0, 2))
		testutil.WaitComponentStates(t, c.admin, "two", map[string]string{"node1": "running", "node2": "not_configured", "node3": "running"})
		mustConnect(t, "127.0.0.1", port)
		mustConnect(t, "127.0.0.3", port)
		mustRefuse(t, "127.0.0.2", port)
	})

	t.Run("HeldPortFailsThenRecovers", func(t *testing.T) {
		port := testutil.FreePort(t, "tcp")
		squat, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		c.create(t, testutil.PerNodeComponent("held", "TCP_SERVER", port, nil))
		st := testutil.WaitComponentStates(t, c.admin, "held", map[string]string{"node1": "running", "node2": "failed", "node3": "running"})
		if !strings.Contains(st["node2"].Error, "address already in use") {
			t.Fatalf("node2 error %q, want the OS's bind error", st["node2"].Error)
		}
		squat.Close()
		testutil.WaitComponentStates(t, c.admin, "held", allRunning)
		mustConnect(t, "127.0.0.2", port)
	})

	t.Run("SharedWildcardOnOneHost", func(t *testing.T) {
		port := testutil.FreePort(t, "tcp", "0.0.0.0")
		c.create(t, map[string]any{"id": "wild", "name": "wild", "type": "TCP_SERVER", "configuration": map[string]any{"port": port}})
		testutil.WaitComponentStatus(t, c.admin, "wild", "one node running, two failed", func(st map[string]listeners.Status) bool {
			running, failed := 0, 0
			for _, s := range st {
				switch {
				case s.State == "running":
					running++
				case s.State == "failed" && strings.Contains(s.Error, "address already in use"):
					failed++
				}
			}
			return running == 1 && failed == 2
		})
		c.do(t, http.MethodPost, "/api/v1/network-components/wild/disable", nil, nil)
	})

	t.Run("PortChangeAndDisable", func(t *testing.T) {
		port := testutil.FreePort(t, "tcp")
		c.create(t, testutil.PerNodeComponent("moving", "TCP_SERVER", port, nil))
		testutil.WaitComponentStates(t, c.admin, "moving", allRunning)
		next := testutil.FreePort(t, "tcp")
		body := testutil.PerNodeComponent("moving", "TCP_SERVER", next, nil)
		c.do(t, http.MethodPut, "/api/v1/network-components/moving", body, nil)
		testutil.WaitComponentStatus(t, c.admin, "moving", "moved to its new port on every node", func(st map[string]listeners.Status) bool {
			for i, h := range testutil.NodeHosts {
				if st[fmt.Sprintf("node%d", i+1)].Address != fmt.Sprintf("%s:%d", h, next) {
					return false
				}
			}
			return true
		})
		for _, h := range testutil.NodeHosts {
			mustConnect(t, h, next)
			mustRefuse(t, h, port)
		}
		c.do(t, http.MethodPost, "/api/v1/network-components/moving/disable", nil, nil)
		testutil.WaitComponentStates(t, c.admin, "moving", map[string]string{"node1": "stopped", "node2": "stopped", "node3": "stopped"})
		for _, h := range testutil.NodeHosts {
			mustRefuse(t, h, next)
		}
	})

	t.Run("KilledNodeIsUnreachable", func(t *testing.T) {
		port := testutil.FreePort(t, "tcp")
		c.create(t, testutil.PerNodeComponent("survivor", "TCP_SERVER", port, nil))
		testutil.WaitComponentStates(t, c.admin, "survivor", allRunning)
		c.nodes[2].Stop(t)
		st := testutil.WaitComponentStates(t, c.admin, "survivor", map[string]string{"node1": "running", "node2": "running", "node3": "unreachable"})
		if st["node3"].Error == "" {
			t.Fatal("an unreachable node's status gives no reason")
		}
		mustRefuse(t, "127.0.0.3", port) // a node that stopped cleanly closed its listeners
	})
}

func mustConnect(t *testing.T, host string, port int) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", host, port), 5*time.Second)
	if err != nil {
		t.Fatalf("connect %s:%d: %v", host, port, err)
	}
	conn.Close()
}

func mustRefuse(t *testing.T, host string, port int) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", host, port), 5*time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("%s:%d accepted a connection; nothing should listen there", host, port)
	}
}

// TestCertificateUpdateReloadsEverywhere: after a certificate update, new TLS handshakes
// on every node present the new certificate, while a connection opened before stays up
// and keeps delivering (acceptance 6).
func TestCertificateUpdateReloadsEverywhere(t *testing.T) {
	c := startCluster(t)
	ca := testutil.NewCA(t)
	first, second := ca.Issue(t, "first", "localhost"), ca.Issue(t, "second", "localhost")
	c.do(t, http.MethodPost, "/api/v1/certificates", map[string]any{"id": "srv", "name": "srv", "cert": first.CertPEM, "key": first.KeyPEM}, nil)
	port := testutil.FreePort(t, "tcp")
	c.create(t, testutil.PerNodeComponent("tls1", "TCP_SERVER", port, map[string]any{"secure": true, "certId": "srv",
		"parserType": "DELIMITED", "parserConfiguration": map[string]any{"delimited": `\n`}}))
	testutil.WaitComponentStates(t, c.admin, "tls1", allRunning)

	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	dial := func(host string) *tls.Conn {
		conn, err := tls.Dial("tcp", fmt.Sprintf("%s:%d", host, port), &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			t.Fatalf("TLS to %s: %v", host, err)
		}
		return conn
	}
	fingerprint := func(conn *tls.Conn) string {
		sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
		return hex.EncodeToString(sum[:])
	}
	old := dial("127.0.0.2")
	defer old.Close()
	if fingerprint(old) != fp(first) {
		t.Fatal("the first handshake did not present the first certificate")
	}
	c.do(t, http.MethodPut, "/api/v1/certificates/srv", map[string]any{"name": "srv", "cert": second.CertPEM, "key": second.KeyPEM}, nil)
	for _, h := range testutil.NodeHosts {
		testutil.WaitFor(t, 30*time.Second, "the new certificate on "+h, func() bool {
			conn := dial(h)
			defer conn.Close()
			return fingerprint(conn) == fp(second)
		})
	}
	d := c.debugVia(t, 0, "tls1")
	if _, err := fmt.Fprintf(old, "still here\n"); err != nil {
		t.Fatalf("the connection opened before the update broke: %v", err)
	}
	d.Next(t, "message", messageFrom("node2", "still here"))
}

func fp(c testutil.Cert) string {
	sum := sha256.Sum256(c.Leaf.Raw)
	return hex.EncodeToString(sum[:])
}

// TestMQTTClientOutsideAllowRemote: a broker address outside --allow-remote is refused
// with an error naming it and the flag, and nothing is dialled (acceptance 7).
func TestMQTTClientOutsideAllowRemote(t *testing.T) {
	c := startCluster(t, func(_ int, cfg *node.Config) { cfg.AllowRemote = []string{"10.0.0.0/8"} })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if conn, err := ln.Accept(); err == nil {
			conn.Close()
			accepted <- struct{}{}
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	c.create(t, map[string]any{"id": "scan", "name": "scan", "type": "MQTT_CLIENT", "configuration": map[string]any{
		"remoteHost": "127.0.0.1", "remotePort": port, "topics": []string{"x"}}})
	st := testutil.WaitComponentStates(t, c.admin, "scan", map[string]string{"node1": "failed", "node2": "failed", "node3": "failed"})
	for node, s := range st {
		if !strings.Contains(s.Error, "127.0.0.1") || !strings.Contains(s.Error, "--allow-remote") {
			t.Fatalf("%s error %q: want it to name the refused address and --allow-remote", node, s.Error)
		}
	}
	select {
	case <-accepted:
		t.Fatal("a refused MQTT_CLIENT connected anyway")
	case <-time.After(time.Second):
	}
}
