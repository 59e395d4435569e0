package cluster_test

import (
	"context"
	"io"
	"strings"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/node"
)

func TestZZProfile(t *testing.T) {
	nodes := testutil.StartCluster(t, 3, func(_ int, c *node.Config) { c.LogLevel = "warn"; c.HeartbeatTimeout = time.Second; c.ElectionTimeout = time.Second })
	leader := testutil.Leader(t, nodes)
	tok := leader.Admin(t).Token
	ca := testutil.NewCA(t)
	leaf := ca.Issue(t, "x", "x.example")
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for i := range 64 {
		testutil.MustDo(t, leader, tok, http.MethodPost, "/api/v1/certificates", map[string]string{"id": fmt.Sprint("c", i), "name": "x", "cert": leaf.CertPEM, "key": leaf.KeyPEM}, nil)
	}
	var n atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := client.New(nodes[i%3].HTTPAddr(), tok)
			c.HTTP = httpc
			for seq := 0; !stop.Load(); seq++ {
				if _, err := c.Do(context.Background(), http.MethodPut, fmt.Sprint("/api/v1/certificates/c", i), map[string]string{"name": "x", "cert": leaf.CertPEM, "description": fmt.Sprint(seq)}, nil); err == nil {
					n.Add(1)
				}
			}
		}(i)
	}
	time.Sleep(8 * time.Second)
	stop.Store(true)
	wg.Wait()
	t.Logf("%d writes in 8s = %.0f/s", n.Load(), float64(n.Load())/8)
	resp, _ := leader.Client(tok).Raw(context.Background(), "GET", "/metrics", nil, "", nil)
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "linkops_raft_apply_seconds_sum") || strings.HasPrefix(l, "linkops_raft_apply_seconds_count") || strings.HasPrefix(l, "linkops_http_request_seconds_sum") || strings.HasPrefix(l, "linkops_http_request_seconds_count") {
			t.Log(l)
		}
	}
}
