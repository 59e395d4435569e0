package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
)

// nodeAddrs tracks each container's current published API address.
type nodeAddrs struct {
	mu    sync.RWMutex
	addrs []string
}

func (a *nodeAddrs) get(i int) string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.addrs[i]
}

func (a *nodeAddrs) refresh(t *testing.T, c *dockerCluster, i int) {
	t.Helper()
	var addr string
	testutil.WaitFor(t, 60*time.Second, "a published port for "+c.names[i], func() bool {
		var err error
		addr, err = c.apiAddr(i)
		return err == nil
	})
	a.mu.Lock()
	a.addrs[i] = addr
	a.mu.Unlock()
}

func health(addr string) (leader string, err error) {
	var h struct{ Status, Leader string }
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = client.New(addr, "").Do(ctx, http.MethodGet, "/api/v1/health", nil, &h)
	return h.Leader, err
}

// leaderIndex asks the given nodes who leads and returns the index of that node.
func leaderIndex(t *testing.T, addrs *nodeAddrs, among ...int) int {
	t.Helper()
	idx := -1
	testutil.WaitFor(t, 60*time.Second, "an elected leader", func() bool {
		for _, i := range among {
			l, err := health(addrs.get(i))
			if err == nil && l != "" {
				fmt.Sscanf(l, "n%d", &idx)
				idx--
				return idx >= 0
			}
		}
		return false
	})
	return idx
}

type certBody struct {
	ID          string `json:"id,omitempty"`
	Name        string `json:"name"`
	Cert        string `json:"cert"`
	Key         string `json:"key,omitempty"`
	Description string `json:"description"`
}

// TestFaultsLinearizable runs concurrent reads and writes through every node while the
// leader is killed and restarted, the leader and then a follower are partitioned, and the
// leader is paused. The history of acknowledged operations must be linearizable, no
// acknowledged write may be lost, and afterwards every node holds the same state.
func TestFaultsLinearizable(t *testing.T) {
	const n = 3
	dc := startDockerCluster(t, n, "--request-timeout", "3s")
	addrs := &nodeAddrs{addrs: make([]string, n)}
	for i := range n {
		addrs.refresh(t, dc, i)
	}
	all := []int{0, 1, 2}
	leaderIndex(t, addrs, all...)
	var token string
	testutil.WaitFor(t, 60*time.Second, "admin login", func() bool {
		tok, _, err := client.New(addrs.get(0), "").Login(context.Background(), "admin", adminPassword)
		token = tok
		return err == nil
	})
	ca := testutil.NewCA(t)
	leaf := ca.Issue(t, "faults", "faults.example")
	// One register per client: each is written by its client only and read by all, so a
	// stale read or a lost acknowledged write shows, and the check stays fast even with
	// many writes of unknown outcome (each of which may take effect at any later time).
	var keys []string
	for c := range 2 * n {
		keys = append(keys, fmt.Sprintf("k%d", c))
	}
	for _, k := range keys {
		testutil.WaitFor(t, 30*time.Second, "creating "+k, func() bool {
			_, err := client.New(addrs.get(0), token).Do(context.Background(), http.MethodPost, "/api/v1/certificates",
				certBody{ID: k, Name: k, Cert: leaf.CertPEM, Key: leaf.KeyPEM, Description: "initial"}, nil)
			var p *client.Problem
			return err == nil || errors.As(err, &p) && p.Code == "already_exists"
		})
	}

	h := newHistory()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for c := range 2 * n {
		wg.Add(1)
		go func(clientID int) {
			defer wg.Done()
			runClient(h, addrs, clientID, clientID%n, token, leaf.CertPEM, keys, &stop)
		}(c)
	}

	// Phase 1: kill -9 the leader, then bring it back on the same data.
	time.Sleep(2 * time.Second)
	l := leaderIndex(t, addrs, all...)
	t.Logf("phase 1: kill -9 leader n%d", l+1)
	dc.kill(l)
	time.Sleep(4 * time.Second)
	dc.start(l)
	addrs.refresh(t, dc, l)
	time.Sleep(4 * time.Second)

	// Phase 2: isolate the leader. It must refuse writes with 503; the majority goes on.
	l = leaderIndex(t, addrs, all...)
	others := otherThan(l, n)
	t.Logf("phase 2: partition leader n%d", l+1)
	dc.partition(l)
	checkIsolatedRefusesWrites(t, addrs.get(l), token, leaf.CertPEM, leaf.KeyPEM)
	checkMajorityAccepts(t, addrs, others, token, leaf.CertPEM, leaf.KeyPEM, "during-leader-partition")
	dc.heal(l)
	time.Sleep(4 * time.Second)

	// Phase 3: isolate a follower.
	l = leaderIndex(t, addrs, all...)
	f := otherThan(l, n)[0]
	t.Logf("phase 3: partition follower n%d", f+1)
	dc.partition(f)
	time.Sleep(2 * time.Second)
	checkIsolatedRefusesWrites(t, addrs.get(f), token, leaf.CertPEM, leaf.KeyPEM)
	checkMajorityAccepts(t, addrs, otherThan(f, n), token, leaf.CertPEM, leaf.KeyPEM, "during-follower-partition")
	dc.heal(f)
	time.Sleep(3 * time.Second)

	// Phase 4: pause the leader (a long GC pause or a frozen VM), then let it go on.
	l = leaderIndex(t, addrs, all...)
	t.Logf("phase 4: pause leader n%d", l+1)
	dc.pause(l)
	time.Sleep(4 * time.Second)
	dc.unpause(l)
	time.Sleep(4 * time.Second)

	stop.Store(true)
	wg.Wait()

	// Every node converges to the same state.
	var lists [n][]map[string]any
	testutil.WaitFor(t, 60*time.Second, "every node to hold the same certificates", func() bool {
		for i := range n {
			lists[i] = nil
			var out struct{ Items []map[string]any }
			if _, err := client.New(addrs.get(i), token).Do(context.Background(), http.MethodGet, "/api/v1/certificates?stale&pageSize=500", nil, &out); err != nil {
				return false
			}
			lists[i] = out.Items
		}
		return reflect.DeepEqual(lists[0], lists[1]) && reflect.DeepEqual(lists[1], lists[2])
	})

	// A final read of every key through every node closes the history, so a lost
	// acknowledged write shows up as a non-linearizable read.
	for i := range n {
		for _, k := range keys {
			readOnce(h, addrs.get(i), 1000+i, token, k)
		}
	}
	t.Logf("history: %d operations; writes acknowledged %d, refused (503 no_leader) %d, outcome unknown %d; reads %d",
		len(h.ops), h.acked, h.refused, h.unknown, h.reads)
	if h.acked < 20 || h.reads < 20 {
		t.Fatalf("too few operations to mean anything: %d acknowledged writes, %d reads", h.acked, h.reads)
	}
	checkStart := time.Now()
	res, info := porcupine.CheckOperationsVerbose(registerModel, h.ops, 5*time.Minute)
	t.Logf("linearizability checked in %s", time.Since(checkStart).Round(time.Millisecond))
	if res != porcupine.Ok {
		if f, err := os.CreateTemp("", "linkops-faults-history-*.json"); err == nil {
			_ = json.NewEncoder(f).Encode(h.ops)
			f.Close()
			t.Logf("history written to %s", f.Name())
		}
	}
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		path := t.TempDir() + "/linearizability.html"
		_ = porcupine.VisualizePath(registerModel, info, path)
		t.Fatalf("history is NOT linearizable (visualization: %s)", path)
	default:
		t.Fatalf("linearizability check timed out")
	}
}

func otherThan(i, n int) []int {
	var out []int
	for j := range n {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}

// runClient does random reads and writes through one node until stopped, recording every
// operation whose effect is known or possible.
func runClient(h *history, addrs *nodeAddrs, id, nodeIdx int, token, certPEM string, keys []string, stop *atomic.Bool) {
	seq := 0
	for !stop.Load() {
		if rand.IntN(2) == 0 {
			readOnce(h, addrs.get(nodeIdx), id, token, keys[rand.IntN(len(keys))])
			continue
		}
		k := keys[id]
		seq++
		v := fmt.Sprintf("c%d-%d", id, seq)
		c := client.New(addrs.get(nodeIdx), token)
		c.HTTP.Timeout = 15 * time.Second
		call := h.now()
		_, err := c.Do(context.Background(), http.MethodPut, "/api/v1/certificates/"+k, certBody{Name: k, Cert: certPEM, Description: v}, nil)
		ret := h.now()
		var p *client.Problem
		switch {
		case err == nil:
			h.add(porcupine.Operation{ClientId: id, Input: registerInput{Key: k, Write: true, Value: v}, Call: call, Output: registerOutput{}, Return: ret})
			h.mu.Lock()
			h.acked++
			h.mu.Unlock()
		case errors.As(err, &p) && p.Status == http.StatusServiceUnavailable && p.Code == "no_leader", neverSent(err):
			// Definitely not applied: not part of the history.
			h.mu.Lock()
			h.refused++
			h.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		default:
			// outcome_unknown, a timeout or a dropped connection: it may have happened.
			h.add(porcupine.Operation{ClientId: id, Input: registerInput{Key: k, Write: true, Value: v}, Call: call, Output: registerOutput{}, Return: ambiguousReturn})
			h.mu.Lock()
			h.unknown++
			h.mu.Unlock()
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func readOnce(h *history, addr string, id int, token, key string) {
	c := client.New(addr, token)
	c.HTTP.Timeout = 15 * time.Second
	var got struct{ Description string }
	call := h.now()
	_, err := c.Do(context.Background(), http.MethodGet, "/api/v1/certificates/"+key, nil, &got)
	ret := h.now()
	if err != nil {
		time.Sleep(50 * time.Millisecond)
		return // a failed read has no effect
	}
	h.add(porcupine.Operation{ClientId: id, Input: registerInput{Key: key}, Call: call, Output: registerOutput{Value: got.Description}, Return: ret})
	h.mu.Lock()
	h.reads++
	h.mu.Unlock()
}

// checkIsolatedRefusesWrites: a node cut off from the majority answers a write with 503
// (never a hang, never a success).
func checkIsolatedRefusesWrites(t *testing.T, addr, token, certPEM, keyPEM string) {
	t.Helper()
	c := client.New(addr, token)
	c.HTTP.Timeout = 60 * time.Second // bounds a hang; the node's own request timeout is 3 s
	start := time.Now()
	body := certBody{ID: "isolated-" + randomSuffix(), Name: "isolated", Cert: certPEM, Key: keyPEM, Description: "x"}
	_, err := c.Do(context.Background(), http.MethodPost, "/api/v1/certificates", body, nil)
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != http.StatusServiceUnavailable {
		t.Fatalf("isolated node answered a write with %v, want 503", err)
	}
	t.Logf("isolated node answered %d %s after %s", p.Status, p.Code, time.Since(start).Round(time.Millisecond))
}

// checkMajorityAccepts: the majority side elects or keeps a leader and acknowledges writes.
func checkMajorityAccepts(t *testing.T, addrs *nodeAddrs, majority []int, token, certPEM, keyPEM, id string) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, "the majority to accept a write", func() bool {
		for _, i := range majority {
			c := client.New(addrs.get(i), token)
			c.HTTP.Timeout = 10 * time.Second
			body := certBody{ID: fmt.Sprintf("%s-%d", id, i), Name: id, Cert: certPEM, Key: keyPEM, Description: "x"}
			if _, err := c.Do(context.Background(), http.MethodPost, "/api/v1/certificates", body, nil); err == nil {
				return true
			}
		}
		return false
	})
}

// neverSent reports a request that could not even connect to its node (it was killed or
// is restarting): nothing was sent, so nothing can have happened.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
