package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/internal/testutil"
)

// TestCLIOperations drives the operations resources with the binary's client commands:
// a network component, a protocol upload and its replacement, a gateway, a product, a
// device batch, enable/disable, list filters, and a refused rule shown with its code.
func TestCLIOperations(t *testing.T) {
	cli, token, addr, dir := loggedInCLI(t, "ops1")

	r := cli("network", "create", "--id", "mqtt", "--name", "MQTT broker", "--type", "MQTT_SERVER",
		"--set", "configuration.port=18830", "--set", "configuration.maxMessageSize=4096", "--state", "enabled", "-o", "json")
	if m := decodeJSON(t, r); m["state"] != "enabled" || m["configuration"].(map[string]any)["port"] != float64(18830) {
		t.Fatalf("network create: %v", m)
	}
	// Another enabled component on the same port is refused with its code.
	r = runCLI(t, token, "", "network", "create", "--name", "clash", "--type", "TCP_SERVER", "--set", "configuration.port=18830", "--state", "enabled", "--addr", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "port_conflict") {
		t.Fatalf("clashing component: exit %d stderr %q; want exit 1 naming port_conflict", r.code, r.stderr)
	}
	r = cli("network", "list", "--filter", "type=MQTT_SERVER")
	if !strings.Contains(r.stdout, "MQTT broker") || !strings.Contains(r.stdout, "enabled") {
		t.Errorf("network list:\n%s", r.stdout)
	}

	zip := filepath.Join(dir, "codec.zip")
	if err := os.WriteFile(zip, testutil.GoodProtocolZip(t, "codec", "MQTT"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = cli("protocol", "upload", zip, "--id", "codec", "-o", "json")
	if m := decodeJSON(t, r); m["type"] != "package" || m["name"] != "codec" {
		t.Fatalf("protocol upload: %v", m)
	}
	if err := os.WriteFile(zip, testutil.GoodProtocolZip(t, "codec", "MQTT", "TCP"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = cli("protocol", "upload", zip, "--replace", "codec", "-o", "json")
	if m := decodeJSON(t, r); len(m["manifest"].(map[string]any)["transports"].([]any)) != 2 {
		t.Fatalf("protocol replace: %v", m)
	}
	if err := os.WriteFile(zip, []byte("not a zip"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, token, "", "protocol", "upload", zip, "--addr", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "invalid_package") {
		t.Fatalf("bad upload: exit %d stderr %q", r.code, r.stderr)
	}

	cli("gateway", "create", "--id", "gw", "--name", "devices", "--provider", "mqtt-server-gateway", "--channel-id", "mqtt", "--protocol", "codec")
	r = cli("gateway", "enable", "gw", "-o", "json")
	if m := decodeJSON(t, r); m["state"] != "enabled" || m["transport"] != "MQTT" {
		t.Fatalf("gateway enable: %v", m)
	}
	r = runCLI(t, token, "", "gateway", "delete", "gw", "--addr", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "gateway_enabled") {
		t.Fatalf("delete of an enabled gateway: exit %d stderr %q", r.code, r.stderr)
	}
	cli("gateway", "disable", "gw")
	cli("gateway", "update", "--id", "gw", "--description", "edited")

	cli("product", "create", "--id", "meter", "--name", "Meter", "--gateway-id", "gw", "--secure-key", "product-secure-key")
	var devices []map[string]string
	for i := range 250 {
		devices = append(devices, map[string]string{"id": fmt.Sprintf("m%03d", i), "name": "meter", "productId": "meter"})
	}
	b, _ := json.Marshal(devices)
	batch := filepath.Join(dir, "devices.json")
	if err := os.WriteFile(batch, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r = cli("device", "batch", batch)
	if !strings.Contains(r.stdout, "Created 250 devices") {
		t.Errorf("device batch: %s", r.stdout)
	}
	r = cli("device", "list", "--filter", "productId=meter", "--page-size", "1", "-o", "json")
	if m := decodeJSON(t, r); m["total"] != float64(250) {
		t.Errorf("device list total = %v, want 250", m["total"])
	}
	r = cli("product", "get", "meter", "-o", "json")
	if strings.Contains(r.stdout, "product-secure-key") {
		t.Errorf("product get printed the secureKey:\n%s", r.stdout)
	}
	cli("media", "create", "--id", "zlm", "--name", "zlm", "--provider", "zlmedia", "--set", "configuration.secret=zlm-secret",
		"--set", "configuration.apiHost=10.0.0.2", "--set", "configuration.apiPort=80", "--set", "configuration.rtpIp=10.0.0.2", "--set", "configuration.rtpPort=10000")
	cli("media", "enable", "zlm")
	cli("media", "disable", "zlm")
	cli("media", "delete", "zlm")
}

// TestCLILogs: `linkops logs access|system` with filters, and --follow printing a request
// made after it started.
func TestCLILogs(t *testing.T) {
	cli, token, addr, _ := loggedInCLI(t, "logs1")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follow := exec.CommandContext(ctx, binPath, "logs", "access", "--follow", "--interval", "200ms", "--path", "/api/v1/products", "--addr", addr)
	follow.Env = childEnv("LINKOPS_TOKEN_FILE=" + token)
	out := &testutil.SyncBuffer{}
	follow.Stdout, follow.Stderr = out, out
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = follow.Process.Kill(); _ = follow.Wait() }()

	cli("product", "create", "--id", "followed", "--name", "followed")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "/api/v1/products") {
		if time.Now().After(deadline) {
			t.Fatalf("--follow printed no record of the product create:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "POST") || !strings.Contains(out.String(), "201") {
		t.Errorf("--follow output lacks the method or status:\n%s", out.String())
	}

	// --to an hour ahead: without it a query ends 200 ms back, and the create may be newer.
	r := cli("logs", "access", "--path", "/api/v1/products", "--method", "POST", "--to", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "-o", "json")
	items, _ := decodeJSON(t, r)["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["status"] != float64(201) {
		t.Errorf("logs access --path --method: %s", r.stdout)
	}
	r = cli("logs", "system", "--level", "info", "--query", "node started")
	if !strings.Contains(r.stdout, "node started") || !strings.Contains(r.stdout, "logs1") {
		t.Errorf("logs system table:\n%s", r.stdout)
	}
}

// loggedInCLI starts an agent, logs the CLI in as admin, and returns a runner of `linkops
// ARGS --addr <agent>` that fails the test on a non-zero exit, with the token file, the
// agent's URL and a scratch directory.
func loggedInCLI(t *testing.T, nodeID string) (cli func(args ...string) cliResult, token, addr, dir string) {
	t.Helper()
	const adminPassword = "cli-admin-password"
	a := startAgentOnFreePorts(t, filepath.Join(t.TempDir(), "data"), "--node-id", nodeID, "--admin-password", adminPassword)
	a.waitHealthy()
	a.login("admin", adminPassword) // waits until the first admin exists
	dir = t.TempDir()
	addr = "http://" + a.httpAddr
	token = filepath.Join(dir, "token.json")
	mustCLI(t, token, adminPassword+"\n", "login", "-u", "admin", "--addr", addr)
	return func(args ...string) cliResult {
		t.Helper()
		return mustCLI(t, token, "", append(args, "--addr", addr)...)
	}, token, addr, dir
}
