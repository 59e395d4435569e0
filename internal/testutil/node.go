package testutil

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/node"
)

// AdminPassword is the admin password of every test node.
const AdminPassword = "test-admin-password"

// SyncBuffer is a bytes.Buffer safe for a node's log goroutines and a test's reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNode is an in-process node plus what a test needs to talk to it.
type TestNode struct {
	*node.Node
	Dir string
	// Log holds everything the node logged and printed.
	Log *SyncBuffer
	Cfg node.Config

	mu      sync.Mutex
	stopped bool
}

// StartNode starts a single-node cluster on random loopback ports in dir (a new temp dir
// when empty), waits until it leads and is initialized, and stops it when the test ends.
func StartNode(t testing.TB, dir string, mutate ...func(*node.Config)) *TestNode {
	t.Helper()
	tn, err := startNode(t, dir, mutate...)
	if err != nil {
		t.Fatal(err)
	}
	tn.WaitReady(t)
	return tn
}

// startNode starts a node without waiting for it to be ready.
func startNode(t testing.TB, dir string, mutate ...func(*node.Config)) (*TestNode, error) {
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := node.Config{
		NodeID:          "node1",
		DataDir:         dir,
		HTTPAddr:        "127.0.0.1:0",
		RaftAddr:        "127.0.0.1:0",
		GossipAddr:      "127.0.0.1:0",
		BootstrapExpect: 1,
		AdminPassword:   AdminPassword,
		LogLevel:        "debug",
		TokenTTL:        time.Hour,
		// Short raft timeouts only make elections quicker; no test judges their speed.
		HeartbeatTimeout: 300 * time.Millisecond,
		ElectionTimeout:  300 * time.Millisecond,
		FastGossip:       true,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	buf := &SyncBuffer{}
	n, err := node.New(cfg, node.Options{Log: buf, Console: buf})
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", cfg.NodeID, err)
	}
	tn := &TestNode{Node: n, Dir: dir, Log: buf, Cfg: cfg}
	t.Cleanup(func() { tn.Stop(t) })
	return tn, nil
}

// Stop shuts the node down (idempotent).
func (n *TestNode) Stop(t testing.TB) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	n.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Logf("shutdown %s: %v", n.ID(), err)
	}
}

// Stopped reports whether Stop was called.
func (n *TestNode) Stopped() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopped
}

// Client returns an API client with the given token.
func (n *TestNode) Client(token string) *client.Client {
	return client.New(n.HTTPAddr(), token)
}

// Admin returns a client logged in as admin.
func (n *TestNode) Admin(t testing.TB) *client.Client {
	t.Helper()
	c := n.Client("")
	// A login is a read behind a barrier: during an election (a loaded machine) it is
	// answered 503 no_leader, and asked again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, err := c.Login(context.Background(), "admin", n.Cfg.AdminPassword)
		if err == nil {
			return c
		}
		if p, ok := err.(*client.Problem); !ok || p.Code != "no_leader" || time.Now().After(deadline) {
			t.Fatalf("admin login: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Viewer creates a viewer user (once) and returns a client logged in as it.
func (n *TestNode) Viewer(t testing.TB) *client.Client {
	t.Helper()
	ctx := context.Background()
	admin := n.Admin(t)
	_, err := admin.Do(ctx, http.MethodPost, "/api/v1/users", map[string]string{"id": "viewer", "username": "viewer", "password": "viewer-password", "role": "viewer"}, nil)
	if p, ok := err.(*client.Problem); err != nil && !(ok && p.Status == http.StatusConflict) {
		t.Fatalf("create viewer: %v", err)
	}
	c := n.Client("")
	if _, _, err := c.Login(ctx, "viewer", "viewer-password"); err != nil {
		t.Fatalf("viewer login: %v", err)
	}
	return c
}

// WaitFor polls cond until it holds or the timeout passes. Timeouts are generous: they
// bound a hang, they never judge speed.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart stops the node (if it runs) and starts it again from its data directory with
// the same configuration, joining the gossip addresses given (a running member's); it
// returns the new node.
func (n *TestNode) Restart(t testing.TB, join ...string) *TestNode {
	t.Helper()
	n.Stop(t)
	cfg := n.Cfg
	cfg.HTTPAddr, cfg.RaftAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if len(join) > 0 {
		cfg.Join = join
	}
	tn, err := startNode(t, n.Dir, func(c *node.Config) { *c = cfg })
	if err != nil {
		t.Fatal(err)
	}
	return tn
}
