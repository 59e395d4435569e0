package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/node"
)

// rawRequest sends a body exactly as given and returns status, content type and body.
func rawRequest(t *testing.T, n *testutil.TestNode, token, method, path, contentType string, body io.Reader) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.HTTPAddr()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func TestBadInputGetsProblemJSON(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	tok := n.Admin(t).Token
	huge := bytes.Repeat([]byte("a"), 10<<20)
	for _, tc := range []struct {
		name, method, path, ct string
		body                   io.Reader
		status                 int
		code                   string
		field                  string
	}{
		{"malformed JSON", "POST", "/api/v1/certificates", "application/json", strings.NewReader(`{"name": "x",`), 400, "malformed_json", ""},
		{"syntax error", "POST", "/api/v1/certificates", "application/json", strings.NewReader(`{"name": x}`), 400, "malformed_json", ""},
		{"wrong type", "POST", "/api/v1/certificates", "application/json", strings.NewReader(`{"name": 42}`), 400, "validation_failed", "name"},
		{"wrong nested type", "POST", "/api/v1/certificates", "application/json", strings.NewReader(`{"name": "x", "dnsNames": "no"}`), 400, "validation_failed", "dnsNames"},
		{"array instead of object", "POST", "/api/v1/certificates", "application/json", strings.NewReader(`[1,2]`), 400, "malformed_json", ""},
		{"empty body", "POST", "/api/v1/certificates", "application/json", strings.NewReader(``), 400, "malformed_json", ""},
		{"two values", "POST", "/api/v1/certificates", "application/json", strings.NewReader(`{} {}`), 400, "malformed_json", ""},
		{"not JSON", "POST", "/api/v1/certificates", "text/plain", strings.NewReader(`hello`), 415, "unsupported_media_type", ""},
		{"unknown resource", "GET", "/api/v1/widgets", "", nil, 404, "not_found", ""},
		{"unknown id", "GET", "/api/v1/certificates/nope", "", nil, 404, "not_found", ""},
		{"wrong method", "PATCH", "/api/v1/certificates", "", nil, 405, "method_not_allowed", ""},
		{"10 MiB body", "POST", "/api/v1/certificates", "application/json", bytes.NewReader(huge), 413, "body_too_large", ""},
		{"10 MiB chunked body", "POST", "/api/v1/certificates", "application/json", io.MultiReader(bytes.NewReader(huge)), 413, "body_too_large", ""},
	} {
		st, ct, body := rawRequest(t, n, tok, tc.method, tc.path, tc.ct, tc.body)
		var p struct {
			Type, Title, Detail, Code string
			Status                    int
			Errors                    []struct{ Field, Message string }
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("%s: body is not JSON: %q", tc.name, body)
			continue
		}
		if st != tc.status || p.Status != tc.status || p.Code != tc.code || ct != "application/problem+json" || p.Title == "" || p.Detail == "" || p.Type == "" {
			t.Errorf("%s: got %d %s %q %+v, want %d %s", tc.name, st, ct, p.Code, p, tc.status, tc.code)
		}
		if tc.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tc.field) {
			t.Errorf("%s: errors %+v, want field %s", tc.name, p.Errors, tc.field)
		}
	}
	// The node keeps serving and nothing was stored.
	if ids := listIDs(t, n.Admin(t), "/api/v1/certificates"); len(ids) != 0 {
		t.Fatalf("bad input stored %v", ids)
	}
}

// TestPrivateKeyNeverLeaves searches every response and the node's own log for the key.
func TestPrivateKeyNeverLeaves(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	tok := n.Admin(t).Token
	ca := testutil.NewCA(t)
	a, b := ca.Issue(t, "a", "a.example"), ca.Issue(t, "b", "b.example")
	// The base64 body of the key is what must not appear, in any framing.
	secretOf := func(pemText string) string {
		lines := strings.Split(strings.TrimSpace(pemText), "\n")
		return strings.Join(lines[1:len(lines)-1], "")
	}
	secrets := []string{secretOf(a.KeyPEM), secretOf(b.KeyPEM), "user-secret-password"}
	var bodies [][]byte
	do := func(method, path string, v any) {
		var rd io.Reader
		if v != nil {
			bb, _ := json.Marshal(v)
			rd = bytes.NewReader(bb)
		}
		_, _, body := rawRequest(t, n, tok, method, path, "application/json", rd)
		bodies = append(bodies, body)
	}
	do("POST", "/api/v1/certificates", certBody{ID: "k", Name: "k", Cert: a.CertPEM, Key: a.KeyPEM})
	do("GET", "/api/v1/certificates/k", nil)
	do("GET", "/api/v1/certificates", nil)
	do("GET", "/api/v1/certificates?q=k&sort=name", nil)
	do("PUT", "/api/v1/certificates/k", certBody{Name: "k2", Cert: a.CertPEM, Key: a.KeyPEM})
	do("PUT", "/api/v1/certificates/k", certBody{Name: "k3", Cert: a.CertPEM})
	// Error paths: a mismatched key, a duplicate, a bad name — with the key in the body.
	do("PUT", "/api/v1/certificates/k", certBody{Name: "k4", Cert: a.CertPEM, Key: b.KeyPEM})
	do("POST", "/api/v1/certificates", certBody{ID: "k", Name: "dup", Cert: a.CertPEM, Key: a.KeyPEM})
	do("POST", "/api/v1/certificates", certBody{Name: strings.Repeat("x", 65), Cert: b.CertPEM, Key: b.KeyPEM})
	do("POST", "/api/v1/certificates", map[string]any{"name": "x", "cert": a.CertPEM, "key": 12})
	do("POST", "/api/v1/users", map[string]string{"username": "u", "password": "user-secret-password", "role": "viewer"})
	do("GET", "/api/v1/users", nil)
	do("POST", "/api/v1/users", map[string]string{"username": "u", "password": "user-secret-password", "role": "nope"})
	do("GET", "/api/v1/openapi.json", nil)
	do("GET", "/metrics", nil)
	do("DELETE", "/api/v1/certificates/k", nil)

	for i, body := range bodies {
		for _, s := range secrets {
			if bytes.Contains(body, []byte(s)) || bytes.Contains(body, []byte(prefix(s))) {
				t.Errorf("response %d carries a secret: %.200s", i, body)
			}
		}
		if bytes.Contains(body, []byte("PRIVATE KEY")) || bytes.Contains(body, []byte("passwordHash")) || bytes.Contains(body, []byte("$2a$")) {
			t.Errorf("response %d carries key material or a hash: %.200s", i, body)
		}
	}
	logText := n.Log.String()
	if !strings.Contains(logText, "created") {
		t.Fatal("the node logged nothing about the writes; the log check would be vacuous")
	}
	for _, s := range secrets {
		if strings.Contains(logText, prefix(s)) {
			t.Errorf("the node's log carries a secret")
		}
	}
	if strings.Contains(logText, "PRIVATE KEY") || strings.Contains(logText, "user-secret-password") || strings.Contains(logText, testutil.AdminPassword) {
		t.Errorf("the node's log carries key material or a password")
	}
}

func TestHealthAndNodes(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "", func(c *node.Config) { c.Rack = "rack-a" })
	ctx := context.Background()
	var h struct{ Status, NodeID, Leader, RaftState string }
	if _, err := n.Client("").Do(ctx, http.MethodGet, "/api/v1/health", nil, &h); err != nil {
		t.Fatal(err)
	}
	if h.Status != "ok" || h.NodeID != "node1" || h.Leader != "node1" || h.RaftState != "Leader" {
		t.Fatalf("health: %+v", h)
	}
	var nodes struct {
		Items []struct {
			ID, APIAddr, RaftAddr, Rack, Version, Role, Status string
			Voter                                              bool
			AppliedIndex                                       uint64
			LastContact                                        *string
		}
	}
	if _, err := n.Admin(t).Do(ctx, http.MethodGet, "/api/v1/cluster/nodes", nil, &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 1 {
		t.Fatalf("nodes: %+v", nodes)
	}
	it := nodes.Items[0]
	if it.ID != "node1" || it.APIAddr != n.HTTPAddr() || it.RaftAddr == "" || strings.HasSuffix(it.RaftAddr, ":0") || it.Rack != "rack-a" ||
		it.Role != "leader" || !it.Voter || it.Status != "alive" || it.AppliedIndex == 0 || it.Version == "" || it.LastContact == nil {
		t.Fatalf("node entry: %+v", it)
	}
}

func TestMetricsExposeRaftAndHTTP(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	tok := n.Admin(t).Token
	rawRequest(t, n, tok, "GET", "/api/v1/certificates", "", nil)
	st, _, body := rawRequest(t, n, tok, "GET", "/metrics", "", nil)
	if st != 200 {
		t.Fatalf("metrics: %d", st)
	}
	for _, m := range []string{"linkops_raft_apply_seconds_bucket", "linkops_raft_is_leader 1", "linkops_raft_applied_index",
		`linkops_http_requests_total{method="GET",route="/api/v1/certificates",status="200"}`, "linkops_http_request_seconds_bucket", "go_goroutines"} {
		if !bytes.Contains(body, []byte(m)) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

// prefix is enough of a secret to recognise it even if it was cut or re-wrapped.
func prefix(s string) string {
	if len(s) > 40 {
		return s[:40]
	}
	return s
}
