package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/agentproc"
)

// Timeouts only bound hangs; they never judge speed.
const (
	buildTimeout = 10 * time.Minute // make, go build, docker build
	toolTimeout  = 2 * time.Minute  // one run of a script or tool
	waitTimeout  = 2 * time.Minute  // a cluster to elect a leader and list its nodes
)

// root is the repository root (the module's directory).
var root string

func TestMain(m *testing.M) {
	var err error
	root, err = agentproc.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// needTools fails the test (never skips it) when a tool is missing.
func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s is not installed: run `make deps` (scripts/test-deps.sh) first", n)
		}
	}
}

// childEnv is this process's environment without LINKOPS_* and COMPOSE_* variables, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LINKOPS_") && !strings.HasPrefix(kv, "COMPOSE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runErr runs a command in the repository root and returns its combined output.
func runErr(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = root
	cmd.Env = env
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within %s: %w", timeout, err)
	}
	return out.String(), err
}

// run is runErr that fails the test when the command fails.
func run(t *testing.T, timeout time.Duration, env []string, name string, args ...string) string {
	t.Helper()
	start := time.Now()
	out, err := runErr(timeout, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s (%s)", name, strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out
}

// eventually retries check every half second until it succeeds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %s for %s: %v", timeout, what, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func newClient(addr string) *client.Client {
	c := client.New(addr, "")
	c.HTTP.Timeout = 5 * time.Second
	return c
}

type health struct {
	Status    string `json:"status"`
	NodeID    string `json:"nodeId"`
	Leader    string `json:"leader"`
	RaftState string `json:"raftState"`
}

func getHealth(addr string) (health, error) {
	var h health
	_, err := newClient(addr).Do(context.Background(), http.MethodGet, "/api/v1/health", nil, &h)
	return h, err
}

type nodeStatus struct {
	ID         string `json:"id"`
	APIAddr    string `json:"apiAddr"`
	RaftAddr   string `json:"raftAddr"`
	GossipAddr string `json:"gossipAddr"`
	Rack       string `json:"rack"`
	Role       string `json:"role"`
	Voter      bool   `json:"voter"`
	Status     string `json:"status"`
}

// checkNodes logs in as admin through addr and checks that /api/v1/cluster/nodes lists
// exactly the nodes of racks (id → rack), all alive voters, one of them the leader.
func checkNodes(addr, password string, racks map[string]string) ([]nodeStatus, error) {
	c := newClient(addr)
	if _, _, err := c.Login(context.Background(), "admin", password); err != nil {
		return nil, fmt.Errorf("log in at %s: %w", addr, err)
	}
	var list struct {
		Items []nodeStatus `json:"items"`
	}
	if _, err := c.Do(context.Background(), http.MethodGet, "/api/v1/cluster/nodes", nil, &list); err != nil {
		return nil, err
	}
	if len(list.Items) != len(racks) {
		return list.Items, fmt.Errorf("%s lists %d nodes, want %d: %+v", addr, len(list.Items), len(racks), list.Items)
	}
	leaders := 0
	for _, n := range list.Items {
		rack, ok := racks[n.ID]
		switch {
		case !ok:
			return list.Items, fmt.Errorf("unexpected node %q in %+v", n.ID, list.Items)
		case n.Rack != rack:
			return list.Items, fmt.Errorf("node %s is in rack %q, want %q", n.ID, n.Rack, rack)
		case !n.Voter || n.Status != "alive":
			return list.Items, fmt.Errorf("node %s is voter=%v status=%q, want an alive voter", n.ID, n.Voter, n.Status)
		}
		if n.Role == "leader" {
			leaders++
		}
	}
	if leaders != 1 {
		return list.Items, fmt.Errorf("%d leaders in %+v", leaders, list.Items)
	}
	return list.Items, nil
}

// ---- scripts/cluster.sh ----

// portsFree reports whether the 9 TCP ports of scripts/cluster.sh at base (and the gossip
// UDP ports) are free on 127.0.0.1.
func portsFree(base int) bool {
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	for n := range 3 {
		for off := range 3 {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+10*n+off)))
			if err != nil {
				return false
			}
			closers = append(closers, l)
		}
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+10*n+2)))
		if err != nil {
			return false
		}
		closers = append(closers, u)
	}
	return true
}

// clusterPortBase finds a free range from 28844 up, away from the default 8844 that other
// tests and `make run` use.
func clusterPortBase(t *testing.T) int {
	t.Helper()
	for base := 28844; base+22 < 65536; base += 100 {
		if portsFree(base) {
			return base
		}
	}
	t.Fatal("no free port range for scripts/cluster.sh")
	return 0
}

func processRunning(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndex(s, ") "); i >= 0 {
		s = s[i+2:]
	}
	return !strings.HasPrefix(s, "Z")
}

func TestClusterScript(t *testing.T) {
	needTools(t, "bash", "make", "go", "curl", "setsid", "tac")
	run(t, toolTimeout, childEnv(), "bash", "-n", "scripts/cluster.sh")
	run(t, toolTimeout, childEnv(), "bash", "-n", "scripts/test-deps.sh")

	dir := t.TempDir()
	base := clusterPortBase(t)
	const password = "cluster-sh-test-password"
	env := childEnv("LINKOPS_CLUSTER_DIR="+dir, "LINKOPS_CLUSTER_PORT_BASE="+strconv.Itoa(base),
		"LINKOPS_ADMIN_PASSWORD="+password)
	addrs := make([]string, 3)
	racks := map[string]string{}
	for i := range 3 {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", base+10*i)
		racks[fmt.Sprintf("node%d", i+1)] = fmt.Sprintf("rack-%d", i+1)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i := range 3 {
				b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d.log", i+1)))
				t.Logf("--- node%d.log ---\n%s", i+1, b)
			}
		}
		if out, err := runErr(toolTimeout, env, "scripts/cluster.sh", "stop"); err != nil {
			t.Errorf("scripts/cluster.sh stop: %v\n%s", err, out)
		}
	})

	start := func(t *testing.T) string {
		t.Helper()
		out := run(t, buildTimeout, env, "scripts/cluster.sh", "--background")
		for _, a := range addrs {
			if !strings.Contains(out, "http://"+a) {
				t.Errorf("the output does not name the API URL http://%s:\n%s", a, out)
			}
		}
		if !strings.Contains(out, "linkops login --addr http://"+addrs[0]+" --username admin") {
			t.Errorf("the output does not say how to log in:\n%s", out)
		}
		return out
	}
	// up waits until every node reports the same leader and lists the 3 nodes as voters.
	up := func(t *testing.T) {
		t.Helper()
		eventually(t, waitTimeout, "3 nodes with one leader", func() error {
			var leader string
			for _, a := range addrs {
				h, err := getHealth(a)
				if err != nil {
					return err
				}
				if h.Status != "ok" || h.Leader == "" {
					return fmt.Errorf("%s: %+v", a, h)
				}
				if leader != "" && h.Leader != leader {
					return fmt.Errorf("leaders differ: %s and %s", leader, h.Leader)
				}
				leader = h.Leader
			}
			for _, a := range addrs {
				if _, err := checkNodes(a, password, racks); err != nil {
					return err
				}
			}
			return nil
		})
	}
	pids := func(t *testing.T) []int {
		t.Helper()
		var out []int
		for i := range 3 {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d.pid", i+1)))
			if err != nil {
				t.Fatalf("pid file: %v", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || !processRunning(pid) {
				t.Fatalf("node%d.pid holds %q, not a running process", i+1, b)
			}
			out = append(out, pid)
		}
		return out
	}
	stop := func(t *testing.T, pids []int) {
		t.Helper()
		out := run(t, toolTimeout, env, "scripts/cluster.sh", "stop")
		for i := range 3 {
			if !strings.Contains(out, fmt.Sprintf("node%d stopped", i+1)) {
				t.Errorf("stop does not report node%d stopped:\n%s", i+1, out)
			}
		}
		for i, pid := range pids {
			if processRunning(pid) {
				t.Errorf("node%d (pid %d) still runs after stop", i+1, pid)
			}
			if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("node%d.pid", i+1))); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("node%d.pid left behind (%v)", i+1, err)
			}
		}
		for n := range 3 {
			for off := range 3 {
				a := fmt.Sprintf("127.0.0.1:%d", base+10*n+off)
				if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
					c.Close()
					t.Errorf("%s still accepts connections after stop", a)
				}
			}
		}
		for i := range 3 {
			b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d.log", i+1)))
			if bytes.Contains(b, []byte("without a clean shutdown")) {
				t.Errorf("node%d was not shut down cleanly:\n%s", i+1, b)
			}
		}
	}

	out := start(t)
	if strings.Contains(out, password) {
		t.Errorf("the script printed the admin password it was given:\n%s", out)
	}
	key, err := os.ReadFile(filepath.Join(dir, "cluster.key"))
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(key))); err != nil || len(raw) != 32 {
		t.Errorf("cluster.key is not 32 bytes in base64: %q", key)
	}
	if fi, err := os.Stat(filepath.Join(dir, "cluster.key")); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("cluster.key has mode %v, want 0600", fi.Mode().Perm())
	}
	up(t)
	first := pids(t)
	for _, pid := range first {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(b, key[:20]) {
			t.Errorf("the cluster key is on the command line of pid %d", pid)
		}
	}

	// A second start while it runs is refused, and leaves the cluster alone.
	if out, err := runErr(toolTimeout, env, "scripts/cluster.sh", "--background"); err == nil || !strings.Contains(out, "already running") {
		t.Errorf("a second start: err %v, want a refusal naming the running node:\n%s", err, out)
	}
	stop(t, first)

	// A restart reuses the key and the data: the same admin password still works.
	start(t)
	up(t)
	if again, _ := os.ReadFile(filepath.Join(dir, "cluster.key")); !bytes.Equal(again, key) {
		t.Errorf("the restart replaced cluster.key")
	}
	stop(t, pids(t))
}

// ---- deploy/systemd/linkops.service ----

// unitDirectives parses a systemd unit into "Section/Key" → values.
func unitDirectives(t *testing.T, text string) map[string][]string {
	t.Helper()
	d := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("unit line %q is not KEY=VALUE", line)
			}
			d[section+"/"+strings.TrimSpace(k)] = append(d[section+"/"+strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return d
}

// unitRoot is a file system root for systemd-analyze --root: the host's unit directory,
// a real linkops binary at /usr/local/bin/linkops and the unit under test.
func unitRoot(t *testing.T, unit []byte) string {
	t.Helper()
	r := t.TempDir()
	for _, d := range []string{"usr/lib/systemd", "usr/local/bin", "etc/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, toolTimeout, childEnv(), "cp", "-a", "/usr/lib/systemd/system", filepath.Join(r, "usr/lib/systemd/"))
	if err := os.WriteFile(filepath.Join(r, "etc/systemd/system/linkops.service"), unit, 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSystemdUnit(t *testing.T) {
	needTools(t, "systemd-analyze", "make", "go", "cp")
	unit, err := os.ReadFile(filepath.Join(root, "deploy/systemd/linkops.service"))
	if err != nil {
		t.Fatal(err)
	}
	d := unitDirectives(t, string(unit))
	for k, want := range map[string]string{
		"Service/User":            "linkops",
		"Service/ExecStart":       "/usr/local/bin/linkops agent",
		"Service/EnvironmentFile": "/etc/linkops/linkops.env",
		"Service/Restart":         "on-failure",
		"Service/LimitNOFILE":     "1048576",
		"Service/NoNewPrivileges": "yes",
		"Service/ProtectSystem":   "strict",
		"Service/ReadWritePaths":  "/var/lib/linkops",
		"Service/StateDirectory":  "linkops",
		"Install/WantedBy":        "multi-user.target",
	} {
		if got := d[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want exactly %q", k, got, want)
		}
	}

	// The binary the VMs get (the same build as the image's).
	run(t, buildTimeout, childEnv(), "make", "build-linux")
	r := unitRoot(t, unit)
	run(t, toolTimeout, childEnv(), "cp", "bin/linkops-linux-amd64", filepath.Join(r, "usr/local/bin/linkops"))

	// verify exits 0 on mere warnings ("Unknown key", "Failed to parse"): any output fails.
	verify := func(r string) (string, error) {
		return runErr(toolTimeout, childEnv(), "systemd-analyze", "verify", "--root="+r, "/etc/systemd/system/linkops.service")
	}
	if out, err := verify(r); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: err %v, output:\n%s", err, out)
	}
	// The check can fail: a bad value is reported.
	broken := unitRoot(t, bytes.Replace(unit, []byte("ProtectSystem=strict"), []byte("ProtectSystem=sometimes"), 1))
	if err := os.Link(filepath.Join(r, "usr/local/bin/linkops"), filepath.Join(broken, "usr/local/bin/linkops")); err != nil {
		t.Fatal(err)
	}
	if out, _ := verify(broken); !strings.Contains(out, "sometimes") {
		t.Errorf("systemd-analyze verify says nothing of ProtectSystem=sometimes:\n%s", out)
	}

	// The hardening keeps the exposure score low (systemd's threshold is in tenths).
	out, err := runErr(toolTimeout, childEnv(), "systemd-analyze", "security", "--offline=yes", "--root="+r,
		"--threshold=25", "/etc/systemd/system/linkops.service")
	score := regexp.MustCompile(`Overall exposure level for linkops.service: [0-9.]+ \S+`).FindString(out)
	if err != nil || score == "" {
		t.Errorf("systemd-analyze security --threshold=25: err %v\n%s", err, out)
	}
	t.Log(score)
}

// ---- Vagrantfile ----

// vagrantStub loads a Vagrantfile with a stand-in for Vagrant.configure and prints, per
// machine, its hostname, private IP and provisioners as JSON.
const vagrantStub = `
require "json"
$machines = {}
class Rec
  def initialize(m = nil) @m = m end
  def vm() self end
  def define(name) $machines[name] = { "networks" => [], "provisions" => [] }; yield Rec.new(name) end
  def hostname=(v) $machines[@m]["hostname"] = v end
  def network(type, **opts) $machines[@m]["networks"] << opts.merge("type" => type) end
  def provision(name, **opts) $machines[@m]["provisions"] << opts.merge("name" => name) end
  def method_missing(*) self end
  def respond_to_missing?(*) true end
end
module Vagrant
  def self.configure(_version) yield Rec.new end
end
load ARGV[0]
puts JSON.generate($machines)
`

type vagrantMachine struct {
	Hostname string `json:"hostname"`
	Networks []struct {
		Type string `json:"type"`
		IP   string `json:"ip"`
	} `json:"networks"`
	Provisions []struct {
		Name        string            `json:"name"`
		Type        string            `json:"type"`
		Source      string            `json:"source"`
		Destination string            `json:"destination"`
		Env         map[string]string `json:"env"`
		Inline      string            `json:"inline"`
	} `json:"provisions"`
}

// systemdEnv parses an EnvironmentFile whose values are double-quoted (the escapes
// \\ \" \` \$ of systemd's parser).
func systemdEnv(t *testing.T, text string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			t.Fatalf("env line %q is not KEY=\"VALUE\"", line)
		}
		var b strings.Builder
		v = v[1 : len(v)-1]
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) && strings.ContainsRune("\\\"`$", rune(v[i+1])) {
				i++
			} else if v[i] == '"' {
				t.Fatalf("unescaped quote in %q", line)
			}
			b.WriteByte(v[i])
		}
		env[k] = b.String()
	}
	return env
}

func TestVagrantfile(t *testing.T) {
	needTools(t, "vagrant", "ruby", "make", "go")
	run(t, toolTimeout, childEnv(), "ruby", "-c", "Vagrantfile")
	// The file provisioner wants its source to exist.
	run(t, buildTimeout, childEnv(), "make", "build-linux")

	tmp := t.TempDir()
	secrets := filepath.Join(tmp, "secrets")
	env := childEnv("LINKOPS_VAGRANT_DIR="+secrets, "VAGRANT_DOTFILE_PATH="+filepath.Join(tmp, "dot"),
		"VAGRANT_HOME="+filepath.Join(tmp, "home"), "VAGRANT_CHECKPOINT_DISABLE=1", "VAGRANT_NO_COLOR=1")
	// No provider (VirtualBox, libvirt) is installed here: validate everything else.
	out := run(t, toolTimeout, env, "vagrant", "validate", "--ignore-provider")
	if !strings.Contains(out, "validated successfully") {
		t.Errorf("vagrant validate:\n%s", out)
	}
	key, err := os.ReadFile(filepath.Join(secrets, "cluster.key"))
	if err != nil {
		t.Fatalf("the Vagrantfile generated no cluster key: %v", err)
	}
	if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(key))); err != nil || len(raw) != 32 {
		t.Errorf("cluster.key is not 32 bytes in base64: %q", key)
	}
	for _, f := range []string{"cluster.key", "admin-password"} {
		if fi, err := os.Stat(filepath.Join(secrets, f)); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}

	// What each VM gets, with a password that needs quoting in an EnvironmentFile.
	stub := filepath.Join(tmp, "stub.rb")
	if err := os.WriteFile(stub, []byte(vagrantStub), 0o644); err != nil {
		t.Fatal(err)
	}
	const password = `pa$$ "w'o\rd` + "`x`"
	out = run(t, toolTimeout, append(env, "LINKOPS_ADMIN_PASSWORD="+password), "ruby", stub, filepath.Join(root, "Vagrantfile"))
	var machines map[string]vagrantMachine
	if err := json.Unmarshal([]byte(out), &machines); err != nil {
		t.Fatalf("stub output: %v\n%s", err, out)
	}
	if again, _ := os.ReadFile(filepath.Join(secrets, "cluster.key")); !bytes.Equal(again, key) {
		t.Errorf("loading the Vagrantfile again changed the cluster key")
	}
	want := []struct{ name, rack, ip string }{
		{"node1", "rack-a", "192.168.56.11"}, {"node2", "rack-b", "192.168.56.12"}, {"node3", "rack-c", "192.168.56.13"},
	}
	if len(machines) != len(want) {
		t.Fatalf("machines %v, want node1..3", slices.Sorted(maps.Keys(machines)))
	}
	join := "192.168.56.11:8846,192.168.56.12:8846,192.168.56.13:8846"
	for _, w := range want {
		m, ok := machines[w.name]
		if !ok {
			t.Errorf("no machine %s", w.name)
			continue
		}
		if m.Hostname != w.name || len(m.Networks) != 1 || m.Networks[0].Type != "private_network" || m.Networks[0].IP != w.ip {
			t.Errorf("%s: hostname %q networks %+v, want %s on a private network at %s", w.name, m.Hostname, m.Networks, w.name, w.ip)
		}
		uploads := map[string]string{}
		var envB64 string
		for _, p := range m.Provisions {
			switch p.Type {
			case "file":
				uploads[p.Destination] = p.Source
			case "shell":
				envB64 = p.Env["LINKOPS_ENV_B64"]
				script := filepath.Join(tmp, w.name+"-provision.sh")
				if err := os.WriteFile(script, []byte(p.Inline), 0o644); err != nil {
					t.Fatal(err)
				}
				run(t, toolTimeout, childEnv(), "bash", "-n", script)
			}
		}
		if uploads["/tmp/linkops"] != filepath.Join(root, "bin/linkops-linux-amd64") ||
			uploads["/tmp/linkops.service"] != filepath.Join(root, "deploy/systemd/linkops.service") {
			t.Errorf("%s uploads %v, want the linux binary and the unit", w.name, uploads)
		}
		raw, err := base64.StdEncoding.DecodeString(envB64)
		if err != nil || len(raw) == 0 {
			t.Errorf("%s: no env file in the shell provisioner (%v)", w.name, err)
			continue
		}
		got := systemdEnv(t, string(raw))
		for k, v := range map[string]string{
			"LINKOPS_NODE_ID":          w.name,
			"LINKOPS_RACK":             w.rack,
			"LINKOPS_DATA_DIR":         "/var/lib/linkops",
			"LINKOPS_HTTP_ADDR":        w.ip + ":8844",
			"LINKOPS_RAFT_ADDR":        w.ip + ":8845",
			"LINKOPS_GOSSIP_ADDR":      w.ip + ":8846",
			"LINKOPS_JOIN":             join,
			"LINKOPS_BOOTSTRAP_EXPECT": "3",
			"LINKOPS_CLUSTER_KEY":      strings.TrimSpace(string(key)),
			"LINKOPS_ADMIN_PASSWORD":   password,
		} {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q\n%s", w.name, k, got[k], v, raw)
			}
		}
	}
}

// ---- deploy/Dockerfile and docker-compose.yml ----

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestDockerImageAndCompose(t *testing.T) {
	needTools(t, "docker", "docker-compose", "make", "go", "tar")
	if out, err := runErr(toolTimeout, childEnv(), "docker", "version"); err != nil {
		t.Fatalf("the Docker daemon does not answer: %v\n%s", err, out)
	}
	if !t.Run("image", testImage) {
		t.FailNow()
	}
	t.Run("compose", testCompose)
}

func testImage(t *testing.T) {
	run(t, buildTimeout, childEnv(), "make", "image")

	// ENTRYPOINT is ["/linkops","agent"]: --help is the agent's help.
	out := run(t, toolTimeout, childEnv(), "docker", "run", "--rm", "linkops:dev", "--help")
	for _, s := range []string{"Run a linkops node", "linkops agent [flags]", "--bootstrap-expect", "--cluster-key"} {
		if !strings.Contains(out, s) {
			t.Errorf("docker run linkops:dev --help lacks %q:\n%s", s, out)
		}
	}

	var cfg struct {
		User         string
		Entrypoint   []string
		Env          []string
		ExposedPorts map[string]struct{}
		Volumes      map[string]struct{}
	}
	out = run(t, toolTimeout, childEnv(), "docker", "image", "inspect", "--format", "{{json .Config}}", "linkops:dev")
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("image config: %v\n%s", err, out)
	}
	if cfg.User == "" || strings.HasPrefix(cfg.User, "0") || cfg.User == "root" {
		t.Errorf("the image runs as %q, want a non-root user", cfg.User)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/linkops", "agent"}) {
		t.Errorf("entrypoint %q", cfg.Entrypoint)
	}
	for _, e := range []string{"LINKOPS_DATA_DIR=/data", "LINKOPS_HTTP_ADDR=0.0.0.0:8844", "LINKOPS_RAFT_ADDR=0.0.0.0:8845", "LINKOPS_GOSSIP_ADDR=0.0.0.0:8846"} {
		if !slices.Contains(cfg.Env, e) {
			t.Errorf("image env %q lacks %s", cfg.Env, e)
		}
	}
	for _, p := range []string{"8844/tcp", "8845/tcp", "8846/tcp", "8846/udp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("image does not expose %s: %v", p, cfg.ExposedPorts)
		}
	}
	if _, ok := cfg.Volumes["/data"]; !ok {
		t.Errorf("/data is not a volume: %v", cfg.Volumes)
	}

	// FROM scratch: the file system is the binary, passwd, group, /tmp and /data, nothing
	// else (docker create adds its mount points and /etc/hosts & co.).
	cid := strings.TrimSpace(run(t, toolTimeout, childEnv(), "docker", "create", "linkops:dev"))
	t.Cleanup(func() { _, _ = runErr(toolTimeout, childEnv(), "docker", "rm", "-v", cid) })
	export := filepath.Join(t.TempDir(), "fs.tar")
	run(t, toolTimeout, childEnv(), "docker", "export", "-o", export, cid)
	listing := run(t, toolTimeout, childEnv(), "tar", "-tvf", export)
	added := map[string]bool{".dockerenv": true, "dev/": true, "dev/console": true, "dev/pts/": true, "dev/shm/": true,
		"etc/hostname": true, "etc/hosts": true, "etc/mtab": true, "etc/resolv.conf": true, "proc/": true, "sys/": true}
	files := map[string]string{} // name → mode and owner
	for _, line := range strings.Split(strings.TrimSpace(listing), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("tar line %q", line)
		}
		name := f[5]
		if !added[name] {
			files[name] = f[0] + " " + f[1]
		}
	}
	want := map[string]*regexp.Regexp{
		"linkops":    regexp.MustCompile(`^-rwxr-xr-x 0/0$|^-rwxr-xr-x root/root$`),
		"etc/":       regexp.MustCompile(`^d`),
		"etc/passwd": regexp.MustCompile(`^-rw-r--r--`),
		"etc/group":  regexp.MustCompile(`^-rw-r--r--`),
		"tmp/":       regexp.MustCompile(`^drwxrwxrwt`),
		"data/":      regexp.MustCompile(`^drwx------ (10001/10001|linkops/linkops)$`),
	}
	for name, re := range want {
		if got, ok := files[name]; !ok || !re.MatchString(got) {
			t.Errorf("image file %s is %q, want %v", name, got, re)
		}
		delete(files, name)
	}
	if len(files) > 0 {
		t.Errorf("the image holds more than it needs: %v\n%s", files, listing)
	}
}

func testCompose(t *testing.T) {
	project := "linkops-test-" + randomHex(4)
	port := freePort(t)
	const password = "compose-test-password"
	env := childEnv("LINKOPS_CLUSTER_KEY="+randomKey(), "LINKOPS_ADMIN_PASSWORD="+password,
		"LINKOPS_PUBLISH_PORT="+strconv.Itoa(port))
	compose := func(args ...string) []string {
		return append([]string{"-p", project, "-f", filepath.Join(root, "docker-compose.yml")}, args...)
	}

	// The key is required.
	out, err := runErr(toolTimeout, childEnv(), "docker-compose", compose("config")...)
	if err == nil || !strings.Contains(out, "LINKOPS_CLUSTER_KEY") {
		t.Errorf("docker-compose config without LINKOPS_CLUSTER_KEY: err %v, want a failure naming it:\n%s", err, out)
	}
	out = run(t, toolTimeout, env, "docker-compose", compose("config")...)
	for _, s := range []string{"linkops1:", "linkops2:", "linkops3:", "image: linkops:dev", fmt.Sprintf("127.0.0.1:%d:8844", port)} {
		if !strings.Contains(out, s) {
			t.Errorf("docker-compose config lacks %q:\n%s", s, out)
		}
	}

	down := func() (string, error) {
		return runErr(toolTimeout, env, "docker-compose", compose("down", "-v", "--remove-orphans", "--timeout", "30")...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := runErr(toolTimeout, env, "docker-compose", compose("logs", "--no-color", "--tail", "40")...)
			t.Logf("docker-compose logs:\n%s", logs)
		}
		if out, err := down(); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	run(t, toolTimeout, env, "docker-compose", compose("up", "-d")...)

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	racks := map[string]string{"linkops1": "rack-1", "linkops2": "rack-2", "linkops3": "rack-3"}
	var nodes []nodeStatus
	eventually(t, waitTimeout, "the compose cluster to elect a leader and list 3 voters", func() error {
		h, err := getHealth(addr)
		if err != nil {
			return err
		}
		if h.Status != "ok" || h.Leader == "" {
			return fmt.Errorf("health %+v", h)
		}
		nodes, err = checkNodes(addr, password, racks)
		return err
	})
	for _, n := range nodes {
		// Each node advertises its address on the compose network, not loopback.
		if host, _, _ := net.SplitHostPort(n.RaftAddr); net.ParseIP(host) == nil || net.ParseIP(host).IsLoopback() {
			t.Errorf("node %s advertises raft address %q, want its container address", n.ID, n.RaftAddr)
		}
	}
	t.Logf("compose cluster: %+v", nodes)

	if out, err := down(); err != nil {
		t.Fatalf("docker-compose down -v: %v\n%s", err, out)
	}
	for _, what := range [][]string{{"ps", "-aq"}, {"volume", "ls", "-q"}, {"network", "ls", "-q"}} {
		args := append(what, "--filter", "label=com.docker.compose.project="+project)
		if left := strings.TrimSpace(run(t, toolTimeout, childEnv(), "docker", args...)); left != "" {
			t.Errorf("docker %s: left after down -v: %s", strings.Join(what, " "), left)
		}
	}
}
