package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkops/linkops/internal/testutil"
)

// TestCLI drives a running agent with the binary's own client commands, as an operator
// would: login, certificate create/list/get/update/delete, members, snapshot save and
// restore, and a viewer being refused a write.
func TestCLI(t *testing.T) {
	const adminPassword = "cli-admin-password"
	a := startAgentOnFreePorts(t, filepath.Join(t.TempDir(), "data"),
		"--node-id", "cli1", "--admin-password", adminPassword)
	a.waitHealthy()
	a.login("admin", adminPassword) // the first admin exists

	dir := t.TempDir()
	addr := "http://" + a.httpAddr
	token := filepath.Join(dir, "token.json")
	cli := func(args ...string) cliResult {
		t.Helper()
		return mustCLI(t, token, "", append(args, "--addr", addr)...)
	}

	r := mustCLI(t, token, adminPassword+"\n", "login", "-u", "admin", "--addr", addr)
	if strings.Contains(r.stdout+r.stderr, adminPassword) {
		t.Errorf("login printed the password:\n%s%s", r.stdout, r.stderr)
	}
	if fi, err := os.Stat(token); err != nil || fi.Size() == 0 {
		t.Fatalf("login wrote no token file %s: %v", token, err)
	}

	cert := testutil.NewCA(t).Issue(t, "web.example.test", "web.example.test")
	certFile := writeFile(t, dir, "c.pem", cert.CertPEM)
	keyFile := writeFile(t, dir, "k.pem", cert.KeyPEM)
	r = cli("certificate", "create", "--id", "web", "--name", "web", "--cert", certFile, "--key", keyFile)
	if strings.Contains(r.stdout, "PRIVATE KEY") {
		t.Errorf("create printed the private key:\n%s", r.stdout)
	}

	r = cli("certificate", "list", "-o", "json")
	if strings.Contains(r.stdout, "PRIVATE KEY") {
		t.Errorf("list printed the private key:\n%s", r.stdout)
	}
	var web map[string]any
	items, _ := decodeJSON(t, r)["items"].([]any)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok && m["id"] == "web" {
			web = m
		}
	}
	if web == nil {
		t.Fatalf("certificate list has no item web:\n%s", r.stdout)
	}
	fingerprint, _ := web["fingerprintSha256"].(string)
	if fingerprint == "" {
		t.Fatalf("listed certificate has no fingerprintSha256: %v", web)
	}

	r = cli("certificate", "get", "web")
	if !strings.Contains(r.stdout, "CN=web.example.test") {
		t.Errorf("certificate get table lacks the subject CN=web.example.test:\n%s", r.stdout)
	}

	r = cli("certificate", "update", "--id", "web", "--description", "changed", "-o", "json")
	updated := decodeJSON(t, r)
	if updated["description"] != "changed" {
		t.Errorf("updated description = %v, want changed\n%s", updated["description"], r.stdout)
	}
	if updated["fingerprintSha256"] != fingerprint {
		t.Errorf("update changed the fingerprint: %v, want %s", updated["fingerprintSha256"], fingerprint)
	}
	if strings.Contains(r.stdout, "PRIVATE KEY") {
		t.Errorf("update printed the private key:\n%s", r.stdout)
	}

	r = cli("members", "-o", "json")
	members, _ := decodeJSON(t, r)["items"].([]any)
	if len(members) != 1 {
		t.Fatalf("members: %d nodes, want 1:\n%s", len(members), r.stdout)
	}
	if m, _ := members[0].(map[string]any); m["role"] != "leader" || m["id"] != "cli1" {
		t.Errorf("members[0] = %v, want id cli1 with role leader", m)
	}

	snap := filepath.Join(dir, "s.snap")
	cli("snapshot", "save", snap)
	if fi, err := os.Stat(snap); err != nil || fi.Size() == 0 {
		t.Fatalf("snapshot save left no non-empty %s: %v", snap, err)
	}

	cli("certificate", "delete", "web")
	r = runCLI(t, token, "", "certificate", "get", "web", "--addr", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Fatalf("get of a deleted certificate: exit %d, stderr %q; want exit 1 and 404", r.code, r.stderr)
	}

	cli("snapshot", "restore", snap)
	r = cli("certificate", "get", "web", "-o", "json")
	if got := decodeJSON(t, r); got["fingerprintSha256"] != fingerprint || got["description"] != "changed" {
		t.Errorf("restored certificate = %v, want fingerprint %s and description changed", got, fingerprint)
	}

	cli("user", "create", "--username", "v", "--password", "viewer-pass", "--role", "viewer")
	viewerToken := filepath.Join(dir, "viewer-token.json")
	mustCLI(t, viewerToken, "viewer-pass\n", "login", "-u", "v", "--addr", addr)
	mustCLI(t, viewerToken, "", "certificate", "get", "web", "--addr", addr) // viewers may read
	r = runCLI(t, viewerToken, "", "certificate", "delete", "web", "--addr", addr)
	if r.code != 1 {
		t.Errorf("viewer certificate delete: exit code %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "403") {
		t.Errorf("viewer certificate delete: stderr does not mention 403:\n%s", r.stderr)
	}
	cli("certificate", "get", "web") // the refused delete left it in place
}
