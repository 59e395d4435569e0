package testutil

import (
	"context"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/linkops/linkops/node"
)

// TestClusterKey is the cluster key of test clusters.
var TestClusterKey = base64.StdEncoding.EncodeToString([]byte("linkops-test-cluster-key-32bytes"))

// StartCluster starts n in-process nodes with --bootstrap-expect n: the first on random
// ports, the others joining it by gossip. It waits until every node answers a logged-in
// read. (Starting in any order is tested on real processes in e2e.)
func StartCluster(t testing.TB, n int, mutate ...func(i int, c *node.Config)) []*TestNode {
	t.Helper()
	nodes := make([]*TestNode, n)
	cfg := func(i int, join []string) func(c *node.Config) {
		return func(c *node.Config) {
			c.NodeID = fmt.Sprintf("node%d", i+1)
			c.BootstrapExpect = n
			c.ClusterKey = TestClusterKey
			c.Join = join
			for _, m := range mutate {
				m(i, c)
			}
		}
	}
	first, err := startNode(t, "", cfg(0, nil))
	if err != nil {
		t.Fatal(err)
	}
	nodes[0] = first
	join := []string{first.Cluster().GossipAddr()}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tn, err := startNode(t, "", cfg(i, join))
			if err != nil {
				errs <- err
				return
			}
			nodes[i] = tn
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, tn := range nodes {
		tn.WaitReady(t)
	}
	return nodes
}

// WaitReady waits until the node has a leader and its admin can log in through it.
func (n *TestNode) WaitReady(t testing.TB) {
	t.Helper()
	WaitFor(t, 30*time.Second, "node "+n.ID()+" to serve logins", func() bool {
		_, _, err := n.Client("").Login(context.Background(), "admin", n.Cfg.AdminPassword)
		return err == nil
	})
}

// Leader returns the node that currently leads, waiting for one.
func Leader(t testing.TB, nodes []*TestNode) *TestNode {
	t.Helper()
	var leader *TestNode
	WaitFor(t, 30*time.Second, "a leader", func() bool {
		for _, n := range nodes {
			if n != nil && !n.Stopped() && n.Cluster().IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// Followers returns the running nodes that are not the given leader.
func Followers(nodes []*TestNode, leader *TestNode) []*TestNode {
	var out []*TestNode
	for _, n := range nodes {
		if n != leader && !n.Stopped() {
			out = append(out, n)
		}
	}
	return out
}

// MustDo sends a request and fails the test on an error answer.
func MustDo(t testing.TB, n *TestNode, token, method, path string, body, out any) {
	t.Helper()
	c := n.Client(token)
	if _, err := c.Do(context.Background(), method, path, body, out); err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, n.ID(), err)
	}
}
