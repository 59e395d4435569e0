package api_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/api"
	"github.com/linkops/linkops/auth"
	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/resource"
)

var paramRe = regexp.MustCompile(`:[A-Za-z0-9_]+`)

// concrete fills route parameters so the route can be called.
func concrete(path string) string { return paramRe.ReplaceAllString(path, "x") }

// status sends a request with a token and returns the HTTP status and problem code.
func status(t *testing.T, n *testutil.TestNode, method, path, token string) (int, string) {
	t.Helper()
	c := n.Client(token)
	resp, err := c.Raw(context.Background(), method, path, strings.NewReader("{}"), "application/json", nil)
	if err == nil {
		resp.Body.Close()
		return resp.StatusCode, ""
	}
	p, ok := err.(*client.Problem)
	if !ok {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return p.Status, p.Code
}

// TestEveryProtectedRouteNeedsAToken walks the router itself, so a route added later
// cannot be forgotten.
func TestEveryProtectedRouteNeedsAToken(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	// SPEC §3.1: health, login and the device-facing routes (a signed link is the
	// device's credential) are open.
	public := map[string]bool{"GET /api/v1/health": true, "POST /api/v1/auth/login": true, "GET /api/v1/firmwares/:id/download": true,
		"GET /api/v1/callbacks/:gatewayId": true, "POST /api/v1/callbacks/:gatewayId": true} // cloud pushes: the gateway's token or signature
	access := map[string]api.Access{}
	for _, r := range n.API().Routes() {
		access[r.Method+" "+r.Path] = r.Access
	}
	routes := n.API().Echo().Routes()
	if len(routes) < 10 {
		t.Fatalf("router has only %d routes", len(routes))
	}
	for _, r := range routes {
		key := r.Method + " " + r.Path
		a, known := access[key]
		if !known {
			t.Errorf("%s is routed but not in the route table (no auth middleware)", key)
			continue
		}
		if public[key] {
			if a != api.Public {
				t.Errorf("%s should be public", key)
			}
			continue
		}
		if a == api.Public {
			t.Errorf("%s is public but SPEC §3.1 opens only health, login and device-facing routes", key)
		}
		for _, tok := range []string{"", "not-a-token", "Bearer"} {
			if st, code := status(t, n, r.Method, concrete(r.Path), tok); st != http.StatusUnauthorized || code != "unauthorized" {
				t.Errorf("%s with token %q: got %d %s, want 401 unauthorized", key, tok, st, code)
			}
		}
	}
}

func TestViewerGets403OnEveryWrite(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	viewer := n.Viewer(t)
	writes := 0
	for _, r := range n.API().Routes() {
		if r.Access == api.Public || r.Access == api.Internal {
			continue
		}
		key := r.Method + " " + r.Path
		st, code := status(t, n, r.Method, concrete(r.Path), viewer.Token)
		switch {
		case r.Method != http.MethodGet || r.Access == api.Admin:
			writes++
			if st != http.StatusForbidden || code != "forbidden" {
				t.Errorf("viewer %s: got %d %s, want 403 forbidden", key, st, code)
			}
		default:
			if st == http.StatusUnauthorized || st == http.StatusForbidden {
				t.Errorf("viewer %s: got %d, want a read to be allowed", key, st)
			}
		}
	}
	if writes < 5 {
		t.Fatalf("only %d write routes checked", writes)
	}
}

func TestExpiredForgedAndOrphanedTokensAre401(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	key := n.Store().Meta(fsm.MetaTokenKey)
	if len(key) != 32 {
		t.Fatalf("token key has %d bytes", len(key))
	}
	adminUser, err := n.Store().Get(resource.Users, "admin")
	if err != nil {
		t.Fatal(err)
	}
	pwSet := adminUser.(*resource.User).PasswordSetAt
	expired, _, err := auth.Issue(key, "admin", pwSet, time.Now().Add(-2*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := auth.Issue([]byte("0123456789abcdef0123456789abcdef"), "admin", pwSet, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good, _, err := auth.Issue(key, "admin", pwSet, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A token whose user is deleted stops working.
	admin := n.Admin(t)
	ctx := context.Background()
	if _, err := admin.Do(ctx, http.MethodPost, "/api/v1/users", map[string]string{"id": "temp", "username": "temp", "password": "temp-password", "role": "admin"}, nil); err != nil {
		t.Fatal(err)
	}
	temp := n.Client("")
	if _, _, err := temp.Login(ctx, "temp", "temp-password"); err != nil {
		t.Fatal(err)
	}
	if st, _ := status(t, n, http.MethodGet, "/api/v1/certificates", temp.Token); st != http.StatusOK {
		t.Fatalf("fresh token: %d", st)
	}
	if _, err := admin.Do(ctx, http.MethodDelete, "/api/v1/users/temp", nil, nil); err != nil {
		t.Fatal(err)
	}

	for name, tok := range map[string]string{"expired": expired, "forged": forged, "deleted user": temp.Token, "tampered": good[:len(good)-2] + "xx"} {
		if st, code := status(t, n, http.MethodGet, "/api/v1/certificates", tok); st != http.StatusUnauthorized || code != "unauthorized" {
			t.Errorf("%s token: got %d %s, want 401", name, st, code)
		}
	}
	if st, _ := status(t, n, http.MethodGet, "/api/v1/certificates", good); st != http.StatusOK {
		t.Errorf("valid token: got %d, want 200", st)
	}
}

func TestPasswordChangeVoidsOldTokens(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	viewer := n.Viewer(t)
	admin := n.Admin(t)
	ctx := context.Background()
	if _, err := admin.Do(ctx, http.MethodPut, "/api/v1/users/viewer", map[string]string{"username": "viewer", "password": "a-new-password", "role": "viewer"}, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := status(t, n, http.MethodGet, "/api/v1/certificates", viewer.Token); st != http.StatusUnauthorized {
		t.Errorf("token from before the password change: got %d, want 401", st)
	}
	if _, _, err := n.Client("").Login(ctx, "viewer", "viewer-password"); err == nil {
		t.Error("old password still logs in")
	}
	if _, _, err := n.Client("").Login(ctx, "viewer", "a-new-password"); err != nil {
		t.Errorf("new password: %v", err)
	}
}

func TestLoginErrors(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	ctx := context.Background()
	for _, tc := range []struct {
		user, pw string
		status   int
		code     string
	}{
		{"admin", "wrong-password", 401, "invalid_credentials"},
		{"nobody", "whatever-pw", 401, "invalid_credentials"},
		{"", "", 400, "validation_failed"},
	} {
		_, _, err := n.Client("").Login(ctx, tc.user, tc.pw)
		p, ok := err.(*client.Problem)
		if !ok || p.Status != tc.status || p.Code != tc.code {
			t.Errorf("login %q/%q: got %v, want %d %s", tc.user, tc.pw, err, tc.status, tc.code)
		}
	}
}

func TestLastAdminCannotBeDeletedOrDemoted(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	ctx := context.Background()
	_, err := admin.Do(ctx, http.MethodDelete, "/api/v1/users/admin", nil, nil)
	if p, ok := err.(*client.Problem); !ok || p.Status != 409 || p.Code != "last_admin" {
		t.Fatalf("delete last admin: got %v, want 409 last_admin", err)
	}
	_, err = admin.Do(ctx, http.MethodPut, "/api/v1/users/admin", map[string]string{"username": "admin", "role": "viewer"}, nil)
	if p, ok := err.(*client.Problem); !ok || p.Status != 409 || p.Code != "last_admin" {
		t.Fatalf("demote last admin: got %v, want 409 last_admin", err)
	}
	// The admin still logs in with the unchanged password.
	n.Admin(t)
}
