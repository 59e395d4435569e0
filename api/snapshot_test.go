package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/node"
)

func listJSON(t *testing.T, c *client.Client, path string) []map[string]any {
	t.Helper()
	var out struct {
		Items []map[string]any `json:"items"`
	}
	if _, err := c.Do(context.Background(), http.MethodGet, path+"?pageSize=500", nil, &out); err != nil {
		t.Fatal(err)
	}
	return out.Items
}

// TestSnapshotRestoresIntoAFreshNode saves a snapshot through the API and restores it into
// a node with a new data dir: the same resources and users, and the same passwords work.
func TestSnapshotRestoresIntoAFreshNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := testutil.StartNode(t, "")
	admin := src.Admin(t)
	ca := testutil.NewCA(t)
	for i, id := range []string{"alpha", "beta", "gamma"} {
		c := ca.Issue(t, id, id+".example")
		if _, err := admin.Do(ctx, http.MethodPost, "/api/v1/certificates", certBody{ID: id, Name: id, Cert: c.CertPEM, Key: c.KeyPEM, Description: string(rune('A' + i))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Do(ctx, http.MethodPost, "/api/v1/users", map[string]string{"id": "ops", "username": "ops", "password": "ops-password", "role": "viewer"}, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := admin.Raw(ctx, http.MethodGet, "/api/v1/cluster/snapshot", nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(snap) == 0 || resp.Header.Get("Content-Disposition") == "" {
		t.Fatalf("snapshot of %d bytes, headers %v", len(snap), resp.Header)
	}
	wantCerts, wantUsers := listJSON(t, admin, "/api/v1/certificates"), listJSON(t, admin, "/api/v1/users")

	// A change after the snapshot must be undone by the restore.
	if _, err := admin.Do(ctx, http.MethodDelete, "/api/v1/certificates/beta", nil, nil); err != nil {
		t.Fatal(err)
	}

	dst := testutil.StartNode(t, "", func(c *node.Config) { c.NodeID = "fresh"; c.AdminPassword = "another-password" })
	dstAdmin := dst.Client("")
	if _, _, err := dstAdmin.Login(ctx, "admin", "another-password"); err != nil {
		t.Fatal(err)
	}
	// A corrupted snapshot is refused and changes nothing.
	bad := append([]byte{}, snap...)
	bad[len(bad)/2] ^= 0xff
	r, err := dstAdmin.Raw(ctx, http.MethodPost, "/api/v1/cluster/snapshot", bytes.NewReader(bad), "application/octet-stream", nil)
	if err == nil {
		r.Body.Close()
		t.Fatal("corrupted snapshot accepted")
	}
	if p := problemOf(t, err); p.Status != 400 || p.Code != "invalid_snapshot" {
		t.Fatalf("corrupted snapshot: %v", err)
	}
	if len(listJSON(t, dstAdmin, "/api/v1/certificates")) != 0 {
		t.Fatal("a refused snapshot changed the state")
	}
	var res struct {
		Restored bool
		Counts   map[string]int
	}
	r, err = dstAdmin.Raw(ctx, http.MethodPost, "/api/v1/cluster/snapshot", bytes.NewReader(snap), "application/octet-stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(r.Body).Decode(&res)
	r.Body.Close()
	if !res.Restored || res.Counts["certificates"] != 3 || res.Counts["users"] != 2 {
		t.Fatalf("restore answer: %+v", res)
	}
	// The restored cluster has the saved users and passwords (and its token key).
	restored := dst.Client("")
	if _, _, err := restored.Login(ctx, "admin", testutil.AdminPassword); err != nil {
		t.Fatalf("saved admin password after restore: %v", err)
	}
	if gotCerts := listJSON(t, restored, "/api/v1/certificates"); !reflect.DeepEqual(gotCerts, wantCerts) {
		t.Errorf("certificates differ after restore:\n got %v\nwant %v", gotCerts, wantCerts)
	}
	if gotUsers := listJSON(t, restored, "/api/v1/users"); !reflect.DeepEqual(gotUsers, wantUsers) {
		t.Errorf("users differ after restore:\n got %v\nwant %v", gotUsers, wantUsers)
	}
	if _, _, err := dst.Client("").Login(ctx, "ops", "ops-password"); err != nil {
		t.Errorf("restored viewer cannot log in: %v", err)
	}
	// The state written after the restore survives a restart of the restored node.
	dst.Stop(t)
	again := testutil.StartNode(t, dst.Dir, func(c *node.Config) { c.NodeID = "fresh" })
	if got := listJSON(t, again.Admin(t), "/api/v1/certificates"); !reflect.DeepEqual(got, wantCerts) {
		t.Errorf("certificates differ after restarting the restored node")
	}
}

func TestSnapshotIsAdminOnly(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	viewer := n.Viewer(t)
	_, err := viewer.Raw(context.Background(), http.MethodGet, "/api/v1/cluster/snapshot", nil, "", nil)
	if p := problemOf(t, err); p.Status != 403 {
		t.Fatalf("viewer snapshot: %v", err)
	}
}
