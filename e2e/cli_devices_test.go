package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/internal/testutil"
)

// TestCLIDevices drives device access with the binary's client commands, as an operator
// would, against a real MQTT device on one node: device get|list show the session and
// the reported properties, read|write|invoke reach the device and show its answers
// (k=v values typed as JSON when they are JSON), watch follows its messages up and down
// until Ctrl-C, gateway sessions lists the session, disconnect closes it, and a
// downlink to a silent, an offline or a never-connected device fails naming the API's
// code (SPEC §4.6, issue 10).
func TestCLIDevices(t *testing.T) {
	cli, fails, token, addr, _, port, p := officialCLI(t, "dev1")
	cli("device", "create", "--id", "meter-1", "--name", "kitchen", "--product-id", p.ID)
	cli("device", "create", "--id", "meter-2", "--name", "cellar", "--product-id", p.ID)
	waitCLI(t, "the MQTT component running", func() error {
		items, _ := decodeJSON(t, cli("network", "status", "mqtt", "-o", "json"))["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["state"] != "running" {
			return fmt.Errorf("status %v", items)
		}
		return nil
	})

	broker := fmt.Sprintf("127.0.0.1:%d", port)
	var d *testutil.MQTTDevice
	// The gateway table follows the state in the background: the first attempts may come
	// before it knows the gateway.
	waitCLI(t, "meter-1 connected", func() error {
		var err error
		d, err = testutil.DialMQTTDevice(broker, "meter-1", p, testutil.MQTTOptions(broker, "meter-1", p, false))
		return err
	})
	t.Cleanup(d.Close)
	d.Report(t, map[string]any{"temp": 36.5, "mode": "eco"})
	waitCLI(t, "meter-1 online with its report", func() error {
		m := decodeJSON(t, cli("device", "get", "meter-1", "-o", "json"))
		if props, _ := m["properties"].(map[string]any); m["state"] != "online" || m["serverId"] != "dev1" || props["temp"] != 36.5 {
			return fmt.Errorf("device %v", m)
		}
		return nil
	})

	t.Run("get and list", func(t *testing.T) {
		r := cli("device", "get", "meter-1")
		row := tableRow(t, r.stdout, "meter-1")
		for _, want := range []string{"kitchen", "meter", "online", "dev1", "mode=eco temp=36.5"} {
			if !strings.Contains(row, want) {
				t.Errorf("device get row lacks %q:\n%s", want, r.stdout)
			}
		}
		if !regexp.MustCompile(`(?m)^ID\s+NAME\s+PRODUCT\s+STATE\s+NODE\s+FIRMWARE\s+PROPERTIES$`).MatchString(r.stdout) {
			t.Errorf("device get header:\n%s", r.stdout)
		}
		r = cli("device", "list", "--sort", "id")
		if row := tableRow(t, r.stdout, "meter-1"); !strings.Contains(row, "online") || !strings.Contains(row, "dev1") || !strings.Contains(row, "temp=36.5") {
			t.Errorf("device list row of meter-1: %q\n%s", row, r.stdout)
		}
		if row := tableRow(t, r.stdout, "meter-2"); !strings.Contains(row, "notActive") {
			t.Errorf("device list row of the never-connected meter-2: %q\n%s", row, r.stdout)
		}
		if !strings.Contains(r.stdout, "(2 in all, page 1)") || r.stderr != "" {
			t.Errorf("device list footer or warnings:\n%s\nstderr: %s", r.stdout, r.stderr)
		}
	})

	t.Run("write and read", func(t *testing.T) {
		r := cli("device", "write", "meter-1", "setpoint=21.5", "mode=boost", `label="007"`, "code=007", "on=true", `limits={"max":30,"min":1}`)
		for _, want := range []string{`setpoint\s+21.5`, `mode\s+boost`, `label\s+007`, `on\s+true`, `limits\s+\{"max":30,"min":1\}`} {
			if !regexp.MustCompile(`(?m)^` + want + `\s*$`).MatchString(r.stdout) {
				t.Errorf("device write output lacks a line %s:\n%s", want, r.stdout)
			}
		}
		r = cli("device", "read", "meter-1", "setpoint", "mode", "label", "code", "on", "limits", "--timeout", "5s", "-o", "json")
		m := decodeJSON(t, r)
		props, _ := m["properties"].(map[string]any)
		limits, _ := props["limits"].(map[string]any)
		if m["success"] != true || m["messageId"] == "" || props["setpoint"] != 21.5 || props["mode"] != "boost" ||
			props["label"] != "007" || props["code"] != "007" || props["on"] != true || limits["min"] != float64(1) {
			t.Errorf("device read -o json: the device did not get the typed values written:\n%s", r.stdout)
		}
		r = cli("device", "read", "meter-1", "mode", "setpoint", "nothing")
		if !regexp.MustCompile(`(?s)^PROPERTY\s+VALUE\s*\nmode\s+boost\s*\nsetpoint\s+21.5\s*\nnothing\s+null\s*\n$`).MatchString(r.stdout) {
			t.Errorf("device read table (in the order asked):\n%s", r.stdout)
		}
		if r := fails("device", "write", "meter-1", "novalue"); !strings.Contains(r.stderr, "NAME=VALUE") {
			t.Errorf("write without a value: stderr %q", r.stderr)
		}
		if r := fails("device", "read", "meter-1", "temp", "--timeout", "2m"); !strings.Contains(r.stderr, "400") || !strings.Contains(r.stderr, "timeout") {
			t.Errorf("read with a timeout above 60s: stderr %q", r.stderr)
		}
	})

	t.Run("invoke", func(t *testing.T) {
		r := cli("device", "invoke", "meter-1", "reboot", "delay=5", "mode=soft")
		var out struct {
			Function string         `json:"function"`
			Inputs   map[string]any `json:"inputs"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Function != "reboot" || out.Inputs["delay"] != float64(5) || out.Inputs["mode"] != "soft" {
			t.Errorf("device invoke did not print the function's output (%v):\n%s", err, r.stdout)
		}
	})

	t.Run("silent device", func(t *testing.T) {
		d.SetSilent(true)
		defer d.SetSilent(false)
		r := fails("device", "read", "meter-1", "temp", "--timeout", "1s")
		if !strings.Contains(r.stderr, "504") || !strings.Contains(r.stderr, "device_timeout") {
			t.Errorf("read of a silent device: stderr %q, want 504 device_timeout", r.stderr)
		}
	})

	t.Run("watch", func(t *testing.T) {
		w := exec.Command(binPath, "device", "watch", "meter-1", "--addr", addr)
		w.Env = childEnv("LINKOPS_TOKEN_FILE=" + token)
		out, errOut := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
		w.Stdout, w.Stderr = out, errOut
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- w.Wait() }()
		stopped := false
		defer func() {
			if !stopped {
				_ = w.Process.Kill()
				<-done
			}
		}()
		waitOutput(t, "the watch to start", out, errOut, regexp.MustCompile(`(?m)^watching on dev1$`))

		d.Report(t, map[string]any{"temp": 38})
		cli("device", "read", "meter-1", "setpoint")
		for what, re := range map[string]*regexp.Regexp{
			"the report":     regexp.MustCompile(`(?m)^\S+ dev1 up reportProperty /meter/meter-1/properties/report .*properties=\{"temp":38\}`),
			"the read":       regexp.MustCompile(`(?m)^\S+ dev1 down readProperty .*properties=\["setpoint"\]`),
			"the read reply": regexp.MustCompile(`(?m)^\S+ dev1 up readPropertyReply .*properties=\{"setpoint":21.5\}.* success=true`),
		} {
			waitOutput(t, what, out, errOut, re)
		}

		if err := w.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			stopped = true
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			if code := w.ProcessState.ExitCode(); code != 0 {
				t.Errorf("device watch exited %d after Ctrl-C, want 0\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
			}
		case <-time.After(cliTimeout):
			t.Fatalf("device watch still running %s after Ctrl-C", cliTimeout)
		}
	})

	t.Run("gateway sessions", func(t *testing.T) {
		r := cli("gateway", "sessions", "gw")
		if !regexp.MustCompile(`(?m)^DEVICE\s+PRODUCT\s+NODE\s+TRANSPORT\s+REMOTE\s+ONLINE-AT\s+LAST-MESSAGE$`).MatchString(r.stdout) {
			t.Errorf("gateway sessions header:\n%s", r.stdout)
		}
		row := tableRow(t, r.stdout, "meter-1")
		if !regexp.MustCompile(`^meter-1\s+meter\s+dev1\s+MQTT\s+127\.0\.0\.1:\d+\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s*$`).MatchString(row) {
			t.Errorf("gateway sessions row: %q\n%s", row, r.stdout)
		}
		if !strings.Contains(r.stdout, "(1 in all, page 1)") || r.stderr != "" {
			t.Errorf("gateway sessions footer or warnings:\n%s\nstderr: %s", r.stdout, r.stderr)
		}
		m := decodeJSON(t, cli("gateway", "sessions", "gw", "-o", "json"))
		if items, _ := m["items"].([]any); len(items) != 1 || items[0].(map[string]any)["deviceId"] != "meter-1" || m["missing"] == nil {
			t.Errorf("gateway sessions -o json: %v", m)
		}
	})

	t.Run("disconnect and offline", func(t *testing.T) {
		if r := cli("device", "disconnect", "meter-1"); !strings.Contains(r.stdout, "Disconnected device meter-1") {
			t.Errorf("device disconnect: %q", r.stdout)
		}
		waitCLI(t, "meter-1 offline", func() error {
			if m := decodeJSON(t, cli("device", "get", "meter-1", "-o", "json")); m["state"] != "offline" {
				return fmt.Errorf("state %v", m["state"])
			}
			return nil
		})
		row := tableRow(t, cli("device", "get", "meter-1").stdout, "meter-1")
		if !strings.Contains(row, "offline") || strings.Contains(row, "dev1") {
			t.Errorf("device get of the disconnected meter-1: %q", row)
		}
		// The last report stays, though no node holds the device.
		if m := decodeJSON(t, cli("device", "get", "meter-1", "-o", "json")); m["properties"].(map[string]any)["temp"] != float64(38) {
			t.Errorf("the disconnected meter-1 lost its last report: %v", m)
		}
		for _, id := range []string{"meter-1", "meter-2"} {
			r := fails("device", "read", id, "temp")
			if !strings.Contains(r.stderr, "409") || !strings.Contains(r.stderr, "device_offline") {
				t.Errorf("read of offline %s: stderr %q, want 409 device_offline", id, r.stderr)
			}
		}
		if r := fails("device", "disconnect", "meter-2"); !strings.Contains(r.stderr, "device_offline") {
			t.Errorf("disconnect of a device never connected: stderr %q", r.stderr)
		}
		if r := fails("device", "invoke", "nope", "reboot"); !strings.Contains(r.stderr, "404") {
			t.Errorf("invoke on an unknown device: stderr %q", r.stderr)
		}
		if r := cli("gateway", "sessions", "gw"); !strings.Contains(r.stdout, "(0 in all, page 1)") {
			t.Errorf("gateway sessions after the disconnect:\n%s", r.stdout)
		}
	})
}

// waitCLI polls cond until it returns nil, failing with its last error after a deadline
// that only bounds a hang.
func waitCLI(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", startTimeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitOutput waits until a running command's output matches re.
func waitOutput(t *testing.T, what string, out, errOut *testutil.SyncBuffer, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for !re.MatchString(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no line for %s (%s) within %s\nstdout:\n%s\nstderr:\n%s", what, re, startTimeout, out.String(), errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tableRow returns the line of a table that starts with the given first cell.
func tableRow(t *testing.T, table, first string) string {
	t.Helper()
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == first {
			return line
		}
	}
	t.Fatalf("no row %s in:\n%s", first, table)
	return ""
}

// officialCLI logs the binary's client into a fresh agent and creates through it an
// enabled MQTT_SERVER on a free port, an official gateway on it and the product "meter";
// fails runs a command that must fail.
func officialCLI(t *testing.T, nodeID string) (cli, fails func(args ...string) cliResult, token, addr, dir string, port int, p testutil.Product) {
	t.Helper()
	cli, token, addr, dir = loggedInCLI(t, nodeID)
	fails = func(args ...string) cliResult {
		t.Helper()
		r := runCLI(t, token, "", append(args, "--addr", addr)...)
		if r.code == 0 {
			t.Fatalf("linkops %v: exit code 0, want a failure\nstdout:\n%s", args, r.stdout)
		}
		return r
	}
	port = testutil.FreePort(t, "tcp", "127.0.0.1")
	cli("network", "create", "--id", "mqtt", "--name", "devices", "--type", "MQTT_SERVER", "--state", "enabled",
		"--set", "configuration.host=127.0.0.1", "--set", fmt.Sprintf("configuration.port=%d", port))
	cli("gateway", "create", "--id", "gw", "--name", "devices", "--provider", "mqtt-server-gateway",
		"--channel-id", "mqtt", "--protocol", "official", "--state", "enabled")
	p = testutil.Product{ID: "meter", SecureID: "meter-sid", SecureKey: "meter-secure-key-0123", GatewayID: "gw"}
	cli("product", "create", "--id", p.ID, "--name", "Meter", "--gateway-id", p.GatewayID, "--secure-id", p.SecureID, "--secure-key", p.SecureKey)
	return cli, fails, token, addr, dir, port, p
}
