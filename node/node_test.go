package node_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/node"
)

// TestRestartRestoresStateAfterCompaction writes enough to force raft snapshots and log
// compaction, restarts the node on the same data dir, and finds every write.
func TestRestartRestoresStateAfterCompaction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	compact := func(c *node.Config) {
		c.SnapshotThreshold = 16
		c.TrailingLogs = 4
		c.SnapshotInterval = 100 * time.Millisecond
	}
	n := testutil.StartNode(t, dir, compact)
	admin := n.Admin(t)
	ctx := context.Background()
	ca := testutil.NewCA(t)
	leaf := ca.Issue(t, "x", "x.example")
	const count = 60
	for i := range count {
		body := map[string]string{"id": fmt.Sprintf("c%02d", i), "name": fmt.Sprintf("cert %d", i), "cert": leaf.CertPEM, "key": leaf.KeyPEM}
		if _, err := admin.Do(ctx, http.MethodPost, "/api/v1/certificates", body, nil); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 20*time.Second, "a raft snapshot on disk", func() bool {
		snaps, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
		return len(snaps) > 0
	})
	n.Stop(t)

	again := testutil.StartNode(t, dir, compact)
	var list struct {
		Total int `json:"total"`
		Items []struct {
			ID, Name string
		} `json:"items"`
	}
	if _, err := again.Admin(t).Do(ctx, http.MethodGet, "/api/v1/certificates?pageSize=500", nil, &list); err != nil {
		t.Fatal(err)
	}
	if list.Total != count || list.Items[count-1].ID != "c59" || list.Items[count-1].Name != "cert 59" {
		t.Fatalf("after restart: %d certificates, last %+v", list.Total, list.Items[len(list.Items)-1])
	}
}

func TestNodeIDMismatchIsAStartupError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := testutil.StartNode(t, dir, func(c *node.Config) { c.NodeID = "alpha" })
	n.Stop(t)
	_, err := node.New(node.Config{
		NodeID: "beta", DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0",
		BootstrapExpect: 1, LogLevel: "info", TokenTTL: time.Hour,
	}, node.Options{Log: &testutil.SyncBuffer{}, Console: &testutil.SyncBuffer{}})
	if !errors.Is(err, node.ErrNodeIDMismatch) {
		t.Fatalf("got %v, want ErrNodeIDMismatch", err)
	}
	for _, want := range []string{`"alpha"`, `"beta"`, "--node-id alpha", "fresh --data-dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %s", err, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "node-id")); strings.TrimSpace(string(b)) != "alpha" {
		t.Fatalf("node-id file changed to %q", b)
	}
	// Without --node-id the stored id is used.
	again := testutil.StartNode(t, dir, func(c *node.Config) { c.NodeID = "" })
	if again.ID() != "alpha" {
		t.Fatalf("restarted as %q", again.ID())
	}
}

func TestInvalidConfigurationIsExplained(t *testing.T) {
	t.Parallel()
	_, err := node.New(node.Config{
		DataDir: t.TempDir(), HTTPAddr: "nohost", RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0",
		BootstrapExpect: 0, ClusterKey: "short", LogLevel: "loud", TokenTTL: time.Hour,
	}, node.Options{})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"--http-addr", "--bootstrap-expect", "--cluster-key", "--log-level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}
