package e2e

import (
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
)

// TestKilledNodeShowsUnreachable: on real agent processes, a per-node component runs on
// all three nodes (127.0.0.1/2/3 standing for three machines); after kill -9 of one node
// its listener is gone, the status through a survivor lists it as unreachable with a
// reason, and the other two still accept connections (SPEC §4.3.1, issue 9 acceptance 5).
func TestKilledNodeShowsUnreachable(t *testing.T) {
	tc, _ := startedCluster(t, 3)
	tc.login(tc.nodes[0])
	c := tc.client(tc.nodes[0])

	port := testutil.FreePort(t, "tcp")
	body := testutil.PerNodeComponent("edge", "TCP_SERVER", port, nil)
	body["state"] = "enabled"
	var out map[string]any
	tc.eventually("the component created", func() error {
		_, err := c.Do(t.Context(), http.MethodPost, "/api/v1/network-components", body, &out)
		return err
	})
	running := func(want map[string]string) func() error {
		return func() error {
			var st struct {
				Items []listeners.Status `json:"items"`
			}
			if _, err := c.Do(t.Context(), http.MethodGet, "/api/v1/network-components/edge/status", nil, &st); err != nil {
				return err
			}
			got := map[string]listeners.Status{}
			for _, s := range st.Items {
				got[s.ServerID] = s
			}
			for node, state := range want {
				if got[node].State != state {
					return fmt.Errorf("%s is %q (%s), want %s", node, got[node].State, got[node].Error, state)
				}
				if state == listeners.StateUnreachable && got[node].Error == "" {
					return fmt.Errorf("%s is unreachable with no reason", node)
				}
			}
			return nil
		}
	}
	tc.eventually("running on every node", running(map[string]string{"node1": "running", "node2": "running", "node3": "running"}))

	victim := tc.byID("node3")
	victim.down.Store(true)
	victim.proc.kill()
	tc.eventually("node3 unreachable, the others running", running(map[string]string{"node1": "running", "node2": "running", "node3": "unreachable"}))
	for i, host := range testutil.NodeHosts {
		conn, err := net.Dial("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
		if i == 2 {
			if err == nil {
				conn.Close()
				t.Fatal("the killed node's address still accepts connections")
			}
			continue
		}
		if err != nil {
			t.Fatalf("node%d stopped accepting after node3 was killed: %v", i+1, err)
		}
		conn.Close()
	}
}
