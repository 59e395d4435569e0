package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
)

// TestRacingWritesThroughTwoNodes sends two writes at once through two different nodes
// that together would break a rule; the FSM must let exactly one win, every time.
func TestRacingWritesThroughTwoNodes(t *testing.T) {
	nodes := testutil.StartCluster(t, 3)
	a, b := nodes[1].Admin(t), nodes[2].Admin(t)
	ctx := context.Background()
	const rounds = 50

	race := func(reqA, reqB func() error) (wins int, losers []*client.Problem) {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		start := make(chan struct{})
		for i, req := range []func() error{reqA, reqB} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = req()
			}()
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			if err == nil {
				wins++
				continue
			}
			p, ok := err.(*client.Problem)
			if !ok {
				t.Fatalf("unexpected error: %v", err)
			}
			losers = append(losers, p)
		}
		return wins, losers
	}

	t.Run("two gateways take one TCP server", func(t *testing.T) {
		for r := 0; r < rounds; r++ {
			comp := fmt.Sprintf("tcp-%d", r)
			testutil.MustDo(t, nodes[0], a.Token, http.MethodPost, "/api/v1/network-components",
				obj{"id": comp, "name": comp, "type": "TCP_SERVER", "configuration": obj{"port": 20000 + r}}, nil)
			gw := func(c *client.Client, id string) func() error {
				return func() error {
					_, err := c.Do(ctx, http.MethodPost, "/api/v1/gateways", obj{"id": id, "name": id, "provider": "tcp-server-gateway", "channelId": comp, "protocol": "official"}, nil)
					return err
				}
			}
			wins, losers := race(gw(a, fmt.Sprintf("gw-a-%d", r)), gw(b, fmt.Sprintf("gw-b-%d", r)))
			if wins != 1 || len(losers) != 1 || losers[0].Status != http.StatusConflict || losers[0].Code != "network_in_use" {
				t.Fatalf("round %d: %d won, losers %v; want exactly one win and one 409 network_in_use", r, wins, losers)
			}
			var list struct{ Total int }
			testutil.MustDo(t, nodes[0], a.Token, http.MethodGet, "/api/v1/gateways?channelId="+comp, nil, &list)
			if list.Total != 1 {
				t.Fatalf("round %d: %d gateways use %s, want 1", r, list.Total, comp)
			}
		}
	})

	t.Run("two components take one port", func(t *testing.T) {
		for r := 0; r < rounds; r++ {
			port := 21000 + r
			comp := func(c *client.Client, id, typ string) func() error {
				return func() error {
					_, err := c.Do(ctx, http.MethodPost, "/api/v1/network-components", obj{"id": id, "name": id, "type": typ, "state": "enabled", "configuration": obj{"port": port}}, nil)
					return err
				}
			}
			wins, losers := race(comp(a, fmt.Sprintf("pa-%d", r), "TCP_SERVER"), comp(b, fmt.Sprintf("pb-%d", r), "MQTT_SERVER"))
			if wins != 1 || len(losers) != 1 || losers[0].Status != http.StatusConflict || losers[0].Code != "port_conflict" {
				t.Fatalf("round %d: %d won, losers %v; want exactly one win and one 409 port_conflict", r, wins, losers)
			}
		}
		var list struct{ Total int }
		testutil.MustDo(t, nodes[0], a.Token, http.MethodGet, "/api/v1/network-components?state=enabled&pageSize=1", nil, &list)
		if list.Total != rounds {
			t.Fatalf("%d enabled components, want %d (one per port)", list.Total, rounds)
		}
	})
}
