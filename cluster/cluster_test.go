package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/auth"
	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/cluster"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/node"
)

type nodeList struct {
	Items []cluster.NodeStatus `json:"items"`
}

func nodesOf(t *testing.T, n *testutil.TestNode, token string) nodeList {
	t.Helper()
	var out nodeList
	testutil.MustDo(t, n, token, http.MethodGet, "/api/v1/cluster/nodes", nil, &out)
	return out
}

func certBody(t *testing.T, ca *testutil.CA, id string) map[string]string {
	c := ca.Issue(t, id, id+".example")
	return map[string]string{"id": id, "name": id, "cert": c.CertPEM, "key": c.KeyPEM}
}

func TestThreeNodesFormOneClusterAndAFourthJoins(t *testing.T) {
	t.Parallel()
	racks := []string{"rack-a", "rack-b", "rack-c"}
	nodes := testutil.StartCluster(t, 3, func(i int, c *node.Config) { c.Rack = racks[i] })
	leader := testutil.Leader(t, nodes)
	tok := leader.Admin(t).Token
	leaders := 0
	for _, n := range nodes {
		if n.Cluster().IsLeader() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders", leaders)
	}
	// Every node reports the same three voters, one leader, all alive, with their racks.
	for _, n := range nodes {
		testutil.WaitFor(t, 20*time.Second, "a full node list on "+n.ID(), func() bool {
			l := nodesOf(t, n, tok)
			if len(l.Items) != 3 {
				return false
			}
			roles := map[string]int{}
			for i, it := range l.Items {
				if !it.Voter || it.Status != "alive" || it.Rack != racks[i] || it.AppliedIndex == nil || it.APIAddr == "" || it.GossipAddr == "" || it.RaftAddr == "" {
					return false
				}
				roles[it.Role]++
			}
			return roles["leader"] == 1 && roles["follower"] == 2
		})
	}
	ca := testutil.NewCA(t)
	testutil.MustDo(t, leader, tok, http.MethodPost, "/api/v1/certificates", certBody(t, ca, "before-join"), nil)

	// A fourth node with the same --bootstrap-expect finds the running cluster and is added
	// to it; it never bootstraps a cluster of its own.
	fourth := testutil.StartNode(t, "", func(c *node.Config) {
		c.NodeID, c.BootstrapExpect, c.ClusterKey, c.Rack = "node4", 3, testutil.TestClusterKey, "rack-a"
		c.Join = []string{nodes[1].Cluster().GossipAddr()}
	})
	testutil.WaitFor(t, 30*time.Second, "node4 to be a voter", func() bool {
		for _, it := range nodesOf(t, leader, tok).Items {
			if it.ID == "node4" {
				return it.Voter && it.Status == "alive"
			}
		}
		return false
	})
	var got map[string]any
	testutil.MustDo(t, fourth, tok, http.MethodGet, "/api/v1/certificates/before-join", nil, &got)
	if fourth.Cluster().IsLeader() && leader.Cluster().IsLeader() {
		t.Fatal("two leaders: node4 formed its own cluster")
	}
	if _, id := fourth.Cluster().Leader(); id != leaderID(t, nodes) {
		t.Fatalf("node4 follows %q", id)
	}
}

func leaderID(t *testing.T, nodes []*testutil.TestNode) string {
	return testutil.Leader(t, nodes).ID()
}

// TestWritesThroughAnyNodeAreReadEverywhere: a write acknowledged by a follower is at once
// visible to a default read on every node.
func TestWritesThroughAnyNodeAreReadEverywhere(t *testing.T) {
	t.Parallel()
	nodes := testutil.StartCluster(t, 3)
	leader := testutil.Leader(t, nodes)
	tok := leader.Admin(t).Token
	ca := testutil.NewCA(t)
	ctx := context.Background()
	for round := range 15 {
		writer := nodes[round%3]
		id := fmt.Sprintf("cert-%d", round)
		testutil.MustDo(t, writer, tok, http.MethodPost, "/api/v1/certificates", certBody(t, ca, id), nil)
		for _, reader := range nodes {
			var got struct{ ID, Name string }
			if _, err := reader.Client(tok).Do(ctx, http.MethodGet, "/api/v1/certificates/"+id, nil, &got); err != nil || got.ID != id {
				t.Fatalf("round %d: written via %s, read via %s: %+v %v", round, writer.ID(), reader.ID(), got, err)
			}
		}
		// An update through another follower, then a delete, are visible just as fast.
		if round%5 == 4 {
			testutil.MustDo(t, nodes[(round+1)%3], tok, http.MethodDelete, "/api/v1/certificates/"+id, nil, nil)
			for _, reader := range nodes {
				_, err := reader.Client(tok).Do(ctx, http.MethodGet, "/api/v1/certificates/"+id, nil, nil)
				if p, ok := err.(*client.Problem); !ok || p.Status != 404 {
					t.Fatalf("deleted via %s, read via %s: %v", nodes[(round+1)%3].ID(), reader.ID(), err)
				}
			}
		}
	}
	// A user created through a follower can log in on every node at once.
	testutil.MustDo(t, nodes[1], tok, http.MethodPost, "/api/v1/users", map[string]string{"username": "ops", "password": "ops-password", "role": "viewer"}, nil)
	for _, n := range nodes {
		if _, _, err := n.Client("").Login(ctx, "ops", "ops-password"); err != nil {
			t.Fatalf("login on %s: %v", n.ID(), err)
		}
	}
	// A stale read is answered locally and says how old its state may be.
	follower := testutil.Followers(nodes, leader)[0]
	resp, err := follower.Client(tok).Raw(ctx, http.MethodGet, "/api/v1/certificates?stale", nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Last-Contact") == "" || resp.Header.Get("X-Known-Leader") != "true" {
		t.Fatalf("stale read headers: %v", resp.Header)
	}
}

func TestWrongClusterKeyIsRefused(t *testing.T) {
	t.Parallel()
	nodes := testutil.StartCluster(t, 3)
	leader := testutil.Leader(t, nodes)
	tok := leader.Admin(t).Token
	intruderKey := "aW50cnVkZXItaW50cnVkZXItaW50cnVkZXItMzJieXQ="
	intruder, err := node.New(node.Config{
		NodeID: "intruder", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0",
		BootstrapExpect: 3, ClusterKey: intruderKey, Join: []string{nodes[0].Cluster().GossipAddr()},
		LogLevel: "info", TokenTTL: time.Hour, AdminPassword: "intruder-password", FastGossip: true,
	}, node.Options{Log: &testutil.SyncBuffer{}, Console: &testutil.SyncBuffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Shutdown(context.Background())
	time.Sleep(3 * time.Second) // give gossip every chance to (wrongly) let it in
	for _, n := range nodes {
		for _, it := range nodesOf(t, n, tok).Items {
			if it.ID == "intruder" {
				t.Fatalf("%s lists the intruder: %+v", n.ID(), it)
			}
		}
	}
	// Its raft connections are refused too: a vote request from it never reaches raft.
	if intruder.Cluster().IsLeader() {
		t.Fatal("intruder leads something")
	}

	// Internal endpoints refuse callers without the key, or with another key.
	ctx := context.Background()
	for name, header := range map[string]string{
		"no key":     "",
		"wrong key":  auth.SignInternal([]byte("another-key-another-key-another!!"), http.MethodGet, cluster.StatusPath, time.Now()),
		"replayed":   auth.SignInternal([]byte("linkops-test-cluster-key-32bytes"), http.MethodGet, cluster.StatusPath, time.Now().Add(-time.Hour)),
		"user token": "",
	} {
		hdr := http.Header{}
		if header != "" {
			hdr.Set(auth.InternalHeader, header)
		}
		c := leader.Client("")
		if name == "user token" {
			c = leader.Client(tok)
		}
		resp, err := c.Raw(ctx, http.MethodGet, cluster.StatusPath, nil, "", hdr)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: internal endpoint answered %d", name, resp.StatusCode)
			continue
		}
		if p, ok := err.(*client.Problem); !ok || p.Status != 401 {
			t.Errorf("%s: %v, want 401", name, err)
		}
	}
	// With the key it answers.
	req, _ := http.NewRequest(http.MethodGet, "http://"+leader.HTTPAddr()+cluster.StatusPath, nil)
	leader.Cluster().SignRequest(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("signed internal call: %v %v", resp, err)
	}
	resp.Body.Close()
	if !strings.Contains(leader.Log.String(), "refused") {
		t.Error("refusals were not logged")
	}
}

func TestDeadNodeCanBeRemovedAliveNodeCannot(t *testing.T) {
	t.Parallel()
	nodes := testutil.StartCluster(t, 3)
	leader := testutil.Leader(t, nodes)
	tok := leader.Admin(t).Token
	followers := testutil.Followers(nodes, leader)
	victim, other := followers[0], followers[1]
	ctx := context.Background()

	_, err := other.Client(tok).Do(ctx, http.MethodDelete, "/api/v1/cluster/nodes/"+victim.ID(), nil, nil)
	if p, ok := err.(*client.Problem); !ok || p.Status != 409 || p.Code != "node_alive" {
		t.Fatalf("removing an alive node: %v", err)
	}
	victim.Stop(t)
	testutil.WaitFor(t, 30*time.Second, victim.ID()+" to be seen dead by the survivors", func() bool {
		for _, n := range []*testutil.TestNode{leader, other} {
			for _, it := range nodesOf(t, n, tok).Items {
				if it.ID == victim.ID() && it.Status != "dead" {
					return false
				}
			}
		}
		return true
	})
	// Through a follower: the delete is forwarded to the leader.
	testutil.MustDo(t, other, tok, http.MethodDelete, "/api/v1/cluster/nodes/"+victim.ID(), nil, nil)
	testutil.WaitFor(t, 10*time.Second, "the raft configuration without "+victim.ID(), func() bool {
		servers, err := leader.Cluster().Servers()
		return err == nil && len(servers) == 2
	})
	_, err = other.Client(tok).Do(ctx, http.MethodDelete, "/api/v1/cluster/nodes/nope", nil, nil)
	if p, ok := err.(*client.Problem); !ok || p.Status != 404 {
		t.Fatalf("removing an unknown node: %v", err)
	}
	// The two remaining voters still make progress.
	testutil.MustDo(t, other, tok, http.MethodPost, "/api/v1/certificates", certBody(t, testutil.NewCA(t), "after-removal"), nil)
}

// TestLeaderLossAndNoQuorum: the survivors elect a new leader and keep accepting writes;
// without a quorum a node answers 503 within the request timeout, and ?stale still reads.
func TestLeaderLossAndNoQuorum(t *testing.T) {
	t.Parallel()
	nodes := testutil.StartCluster(t, 3, func(_ int, c *node.Config) { c.RequestTimeout = 2 * time.Second })
	leader := testutil.Leader(t, nodes)
	tok := leader.Admin(t).Token
	ca := testutil.NewCA(t)
	testutil.MustDo(t, leader, tok, http.MethodPost, "/api/v1/certificates", certBody(t, ca, "one"), nil)
	leader.Stop(t)

	next := testutil.Leader(t, nodes)
	if next == leader {
		t.Fatal("stopped leader still leads")
	}
	for _, n := range testutil.Followers(nodes, nil) {
		id := "via-" + n.ID()
		testutil.WaitFor(t, 20*time.Second, "a write through "+n.ID(), func() bool {
			_, err := n.Client(tok).Do(context.Background(), http.MethodPost, "/api/v1/certificates", certBody(t, ca, id), nil)
			return err == nil
		})
	}
	// Lose the quorum: the last node cannot accept writes nor default reads.
	last := testutil.Followers(nodes, next)[0]
	next.Stop(t)
	ctx := context.Background()
	start := time.Now()
	_, err := last.Client(tok).Do(ctx, http.MethodPost, "/api/v1/certificates", certBody(t, ca, "no-quorum"), nil)
	p, ok := err.(*client.Problem)
	if !ok || p.Status != 503 || (p.Code != "no_leader" && p.Code != "outcome_unknown") {
		t.Fatalf("write without quorum: %v", err)
	}
	if waited := time.Since(start); waited > 30*time.Second {
		t.Fatalf("the write hung for %s", waited) // bounds a hang, not a speed
	}
	_, err = last.Client(tok).Do(ctx, http.MethodGet, "/api/v1/certificates/one", nil, nil)
	if p, ok := err.(*client.Problem); !ok || p.Status != 503 || p.Code != "no_leader" {
		t.Fatalf("default read without quorum: %v", err)
	}
	var got struct{ ID string }
	if _, err := last.Client(tok).Do(ctx, http.MethodGet, "/api/v1/certificates/one?stale", nil, &got); err != nil || got.ID != "one" {
		t.Fatalf("stale read without quorum: %+v %v", got, err)
	}
}
