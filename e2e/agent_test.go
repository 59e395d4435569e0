package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/internal/testutil"
)

// defaultHTTPAddr is where `make run` (`linkops agent` with no flags) serves the API.
const defaultHTTPAddr = "127.0.0.1:8844"

var generatedPassword = regexp.MustCompile(`Generated password for user admin \(shown only once\): (\S+)`)

// TestMakeRunDefaultsSurviveRestart runs the agent exactly as `make run` does — no flags,
// no LINKOPS_* environment, data in ./data, API on 127.0.0.1:8844 — and checks that what
// was written survives a clean stop and start, and that the admin password is generated
// only for the first start.
func TestMakeRunDefaultsSurviveRestart(t *testing.T) {
	for _, addr := range []string{defaultHTTPAddr, "127.0.0.1:8845"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("default port %s is taken (is another linkops running?): %v", addr, err)
		}
		ln.Close()
	}
	wd := t.TempDir()
	ctx := context.Background()

	first := startAgent(t, wd, defaultHTTPAddr)
	first.waitHealthy()
	var password string
	first.waitUntil("the generated admin password on stdout", func() error {
		m := generatedPassword.FindStringSubmatch(first.stdout.String())
		if m == nil {
			return errNotYet
		}
		password = m[1]
		return nil
	})
	if strings.Contains(first.stderr.String(), password) {
		t.Errorf("the generated password appears in the system log (stderr)")
	}

	// make run's output leads to the console, which the node serves at its URL.
	if !strings.Contains(first.stdout.String(), "web console: open http://"+defaultHTTPAddr+"/") {
		t.Errorf("make run does not say where the web console is:\n%s", first.stdout.String())
	}
	page, err := http.Get("http://" + defaultHTTPAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !strings.Contains(string(body), "/console/js/app.js") {
		t.Errorf("GET / = %d: not the console:\n%.300s", page.StatusCode, body)
	}

	admin := first.login("admin", password)
	cert := testutil.NewCA(t).Issue(t, "restart.example.test", "restart.example.test")
	var created map[string]any
	if _, err := admin.Do(ctx, http.MethodPost, "/api/v1/certificates", map[string]any{
		"id": "survivor", "name": "survivor cert", "cert": cert.CertPEM, "key": cert.KeyPEM,
	}, &created); err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	for _, f := range []string{"name", "fingerprintSha256", "index"} {
		if created[f] == nil || created[f] == "" {
			t.Fatalf("created certificate has no %s: %v", f, created)
		}
	}
	first.stop()

	if _, err := os.Stat(filepath.Join(wd, "data", "node-id")); err != nil {
		t.Errorf("./data/node-id after the first run: %v", err)
	}

	second := startAgent(t, wd, defaultHTTPAddr)
	second.waitHealthy()
	admin = second.login("admin", password)
	var got map[string]any
	second.waitUntil("the certificate after restart", func() error {
		got = nil
		_, err := admin.Do(ctx, http.MethodGet, "/api/v1/certificates/survivor", nil, &got)
		return err
	})
	for _, f := range []string{"name", "fingerprintSha256", "index"} {
		if got[f] != created[f] {
			t.Errorf("after restart %s = %v, want %v", f, got[f], created[f])
		}
	}
	if _, ok := got["key"]; ok {
		t.Errorf("GET returned the private key after restart")
	}
	second.stop()
	if out := second.stdout.String(); strings.Contains(out, "Generated password") {
		t.Errorf("the restarted node generated a new admin password:\n%s", out)
	}
}

// TestNodeIDMismatchRefusesToStart checks that a data dir stays bound to the node id that
// created it: a restart under another --node-id is a startup error naming both ids.
func TestNodeIDMismatchRefusesToStart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	httpAddr, raftAddr, gossipAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	args := func(id string) []string {
		return []string{"--node-id", id, "--data-dir", dataDir, "--http-addr", httpAddr,
			"--raft-addr", raftAddr, "--gossip-addr", gossipAddr, "--admin-password", "mismatch-admin-pw"}
	}

	a := startAgent(t, t.TempDir(), httpAddr, args("a")...)
	a.waitHealthy()
	a.stop()

	b := startAgent(t, t.TempDir(), httpAddr, args("b")...)
	// Fail at once, rather than at the timeout, if b comes up instead of refusing.
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(stopTimeout)
	for !b.exited() && time.Now().Before(deadline) {
		if resp, err := hc.Get("http://" + httpAddr + "/api/v1/health"); err == nil {
			resp.Body.Close()
			t.Fatalf("agent started with --node-id b on a's data dir serves the API instead of refusing\n%s", b.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	code := b.waitExit(stopTimeout)
	if code == 0 {
		t.Fatalf("agent started with --node-id b on a's data dir exited 0, want non-zero\n%s", b.output())
	}
	out := b.stdout.String() + b.stderr.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile("different node id"),
		regexp.MustCompile("[\"'`]a[\"'`]"),
		regexp.MustCompile("[\"'`]b[\"'`]"),
	} {
		if !want.MatchString(out) {
			t.Errorf("output of the refused start does not match %s:\n%s", want, out)
		}
	}
	stored, err := os.ReadFile(filepath.Join(dataDir, "node-id"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(stored)) != "a" {
		t.Errorf("data dir node-id = %q after the refused start, want a", stored)
	}
	// The refused node must not have served anything.
	if resp, err := hc.Get("http://" + httpAddr + "/api/v1/health"); err == nil {
		resp.Body.Close()
		t.Errorf("something answers on %s after the refused start", httpAddr)
	}
}
