package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/api"
	"github.com/linkops/linkops/internal/testutil"
)

// TestClusterMetricsOfEveryNode: GET /api/v1/cluster/metrics through one node answers
// every node's own Prometheus metrics (the console's cluster charts); ?node= narrows it; a
// viewer may read it; a stopped node is named missing while the others still answer.
func TestClusterMetricsOfEveryNode(t *testing.T) {
	nodes := testutil.StartCluster(t, 3)
	viewer := nodes[0].Viewer(t)
	var all api.ClusterMetrics
	testutil.Do(t, viewer, http.MethodGet, "/api/v1/cluster/metrics", nil, &all)
	if len(all.Items) != 3 || len(all.Missing) != 0 {
		t.Fatalf("items %d, missing %v; want 3 and none", len(all.Items), all.Missing)
	}
	leaders := 0
	for i, it := range all.Items {
		if it.ServerID != nodes[i].Cfg.NodeID {
			t.Errorf("item %d is %s, want %s (sorted by node)", i, it.ServerID, nodes[i].Cfg.NodeID)
		}
		if !strings.Contains(it.Metrics, "# TYPE linkops_raft_applied_index gauge") {
			t.Errorf("%s: not Prometheus text with linkops metrics: %.200q", it.ServerID, it.Metrics)
		}
		// Each text is its own node's: exactly one of them says it leads.
		if strings.Contains(it.Metrics, "\nlinkops_raft_is_leader 1\n") {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d nodes' metrics say they lead, want 1", leaders)
	}
	var one api.ClusterMetrics
	testutil.Do(t, viewer, http.MethodGet, "/api/v1/cluster/metrics?node=node2", nil, &one)
	if len(one.Items) != 1 || one.Items[0].ServerID != "node2" {
		t.Errorf("?node=node2 answered %d items", len(one.Items))
	}

	nodes[2].Stop(t)
	testutil.WaitFor(t, 30*time.Second, "node3 named missing", func() bool {
		var after api.ClusterMetrics
		testutil.Do(t, viewer, http.MethodGet, "/api/v1/cluster/metrics", nil, &after)
		return len(after.Items) == 2 && len(after.Missing) == 1 && after.Missing[0].ServerID == "node3"
	})
}
