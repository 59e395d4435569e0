package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/agentproc"
	"github.com/linkops/linkops/internal/testutil"
)

// These tests run real `linkops agent` processes as a 3-node cluster on loopback and check
// what an operator would: the node list, who leads, that writes through any node are kept,
// and that nodes which die, restart or hold the wrong key are handled.

const (
	clusterAdminPassword = "cluster-admin-password"
	// convergeTimeout bounds every wait for the cluster to reach a state; it never judges
	// speed.
	convergeTimeout = 60 * time.Second
	// clusterRequestTimeout bounds one HTTP request.
	clusterRequestTimeout = 30 * time.Second
)

// clusterNode is one node's fixed identity; a restart reuses all of it.
type clusterNode struct {
	id, rack                       string
	dataDir                        string
	httpAddr, raftAddr, gossipAddr string
	args                           []string
	proc                           *agent
	// down is set while the test has stopped or killed the node on purpose.
	down atomic.Bool
}

// testCluster is a set of agent processes sharing a cluster key.
type testCluster struct {
	t     *testing.T
	key   string
	nodes []*clusterNode
	token string
	hc    *http.Client
	t0    time.Time // when the cluster was prepared, for timelines
	// summary is repeated at the very end of a failed test, after the agents' logs.
	mu      sync.Mutex
	summary []string
}

// since is the time since the cluster was prepared, for timelines in messages.
func (tc *testCluster) since() string {
	return fmt.Sprintf("+%.2fs", time.Since(tc.t0).Seconds())
}

// note logs a line and keeps it for the summary a failed test prints last.
func (tc *testCluster) note(format string, args ...any) {
	tc.t.Helper()
	line := fmt.Sprintf(format, args...)
	tc.t.Log(line)
	tc.mu.Lock()
	tc.summary = append(tc.summary, line)
	tc.mu.Unlock()
}

// downNodes names the nodes the test has stopped or is restarting.
func (tc *testCluster) downNodes() []string {
	var down []string
	for _, n := range tc.nodes {
		if n.down.Load() {
			down = append(down, n.id)
		}
	}
	return down
}

// newClusterKey returns a random base64 32-byte --cluster-key.
func newClusterKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// freeAddrs returns n distinct loopback addresses free for both TCP and UDP.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs, err := agentproc.FreeAddrs(n)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

// newCluster prepares (but does not start) n nodes node1…nodeN in racks rack-a, rack-b, …,
// each with --bootstrap-expect 3 and --join listing every node's gossip address. extra
// flags are added to every node.
func newCluster(t *testing.T, n int, extra ...string) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, key: newClusterKey(t), hc: &http.Client{Timeout: clusterRequestTimeout}, t0: time.Now()}
	// Registered before any agent starts, so it runs after their cleanups have dumped
	// their logs: the reason for a failure is then the last thing printed.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		tc.mu.Lock()
		defer tc.mu.Unlock()
		t.Logf("SUMMARY of %s (its errors are above the agents' logs):\n  %s", t.Name(), strings.Join(tc.summary, "\n  "))
	})
	addrs := freeAddrs(t, 3*n)
	var gossip []string
	for i := range n {
		gossip = append(gossip, addrs[3*i+2])
	}
	for i := range n {
		tc.nodes = append(tc.nodes, tc.newNode(fmt.Sprintf("node%d", i+1), fmt.Sprintf("rack-%c", 'a'+i),
			addrs[3*i:3*i+3], tc.key, gossip, extra...))
	}
	return tc
}

// newNode prepares a node with the given key and --join list on the given http, raft and
// gossip addresses, and adds it to the cluster's nodes.
func (tc *testCluster) newNode(id, rack string, addrs []string, key string, join []string, extra ...string) *clusterNode {
	n := &clusterNode{id: id, rack: rack, dataDir: filepath.Join(tc.t.TempDir(), id),
		httpAddr: addrs[0], raftAddr: addrs[1], gossipAddr: addrs[2]}
	n.args = append([]string{"--node-id", id, "--data-dir", n.dataDir,
		"--http-addr", n.httpAddr, "--raft-addr", n.raftAddr, "--gossip-addr", n.gossipAddr,
		"--join", strings.Join(join, ","), "--bootstrap-expect", "3", "--rack", rack,
		"--cluster-key", key, "--admin-password", clusterAdminPassword}, extra...)
	return n
}

// addNode prepares one more node on fresh ports and adds it to the cluster's nodes.
func (tc *testCluster) addNode(id, rack, key string, join []string, extra ...string) *clusterNode {
	n := tc.newNode(id, rack, freeAddrs(tc.t, 3), key, join, extra...)
	tc.nodes = append(tc.nodes, n)
	return n
}

// start runs the node's process (again, after a stop) with its flags. It leaves n.down
// as it is: the caller says when a restarted node counts as up.
func (tc *testCluster) start(n *clusterNode) {
	tc.t.Helper()
	n.proc = startAgent(tc.t, tc.t.TempDir(), n.httpAddr, n.args...)
}

// startedCluster starts n nodes, waits until each is healthy and answers the leader they
// elected.
func startedCluster(t *testing.T, n int) (*testCluster, *clusterNode) {
	t.Helper()
	tc := newCluster(t, n)
	tc.startAll()
	for _, node := range tc.nodes {
		node.proc.waitHealthy()
	}
	return tc, tc.waitLeader(tc.nodes...)
}

func (tc *testCluster) startAll() {
	tc.t.Helper()
	for _, n := range tc.nodes {
		tc.start(n)
	}
}

// byID returns the node with that id, nil if none.
func (tc *testCluster) byID(id string) *clusterNode {
	for _, n := range tc.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// client talks to one node with the cluster's admin token.
func (tc *testCluster) client(n *clusterNode) *client.Client {
	return &client.Client{Addr: "http://" + n.httpAddr, Token: tc.token, HTTP: tc.hc}
}

// login logs in as admin through n and keeps the token for every node.
func (tc *testCluster) login(n *clusterNode) {
	tc.t.Helper()
	tc.token = n.proc.login("admin", clusterAdminPassword).Token
}

// eventually polls cond until it returns nil; it fails with cond's last error after
// convergeTimeout, or at once if a node the test did not stop has exited.
func (tc *testCluster) eventually(what string, cond func() error) {
	tc.t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		for _, n := range tc.nodes {
			if n.proc != nil && !n.down.Load() && n.proc.exited() {
				tc.t.Fatalf("node %s exited (%v) while waiting for %s (last: %v)\n%s", n.id, n.proc.waitErr, what, err, n.proc.output())
			}
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("timed out after %s waiting for %s: %v", convergeTimeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// healthInfo is GET /api/v1/health.
type healthInfo struct {
	Status    string `json:"status"`
	NodeID    string `json:"nodeId"`
	Leader    string `json:"leader"`
	RaftState string `json:"raftState"`
}

func (tc *testCluster) health(n *clusterNode) (healthInfo, error) {
	var h healthInfo
	ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
	defer cancel()
	_, err := (&client.Client{Addr: "http://" + n.httpAddr, HTTP: tc.hc}).Do(ctx, http.MethodGet, "/api/v1/health", nil, &h)
	return h, err
}

// waitLeader waits until exactly one of among is in raft state Leader and every one of
// them names it as the leader in /api/v1/health, and returns it.
func (tc *testCluster) waitLeader(among ...*clusterNode) *clusterNode {
	tc.t.Helper()
	var leader *clusterNode
	tc.eventually("one leader every node agrees on", func() error {
		named := map[string][]string{}
		var leading []string
		for _, n := range among {
			h, err := tc.health(n)
			if err != nil {
				return fmt.Errorf("health of %s: %w", n.id, err)
			}
			if h.NodeID != n.id {
				return fmt.Errorf("health of %s says nodeId %q", n.id, h.NodeID)
			}
			named[h.Leader] = append(named[h.Leader], n.id)
			if h.RaftState == "Leader" {
				leading = append(leading, n.id)
			}
		}
		if len(leading) != 1 {
			return fmt.Errorf("nodes in raft state Leader: %v, want exactly one (named leaders: %v)", leading, named)
		}
		if len(named) != 1 || len(named[leading[0]]) != len(among) {
			return fmt.Errorf("%s leads but the nodes name these leaders: %v", leading[0], named)
		}
		leader = tc.byID(leading[0])
		return nil
	})
	return leader
}

// currentLeader is the leader node that's up names, "" if none answers.
func (tc *testCluster) currentLeader() string {
	for _, n := range tc.nodes {
		if n.proc != nil && !n.down.Load() {
			if h, err := tc.health(n); err == nil && h.Leader != "" {
				return h.Leader
			}
		}
	}
	return ""
}

// nodeEntry is one item of GET /api/v1/cluster/nodes.
type nodeEntry struct {
	ID           string  `json:"id"`
	APIAddr      string  `json:"apiAddr"`
	RaftAddr     string  `json:"raftAddr"`
	GossipAddr   string  `json:"gossipAddr"`
	Rack         string  `json:"rack"`
	Version      string  `json:"version"`
	Role         string  `json:"role"`
	Voter        bool    `json:"voter"`
	Status       string  `json:"status"`
	AppliedIndex *uint64 `json:"appliedIndex"`
}

func (tc *testCluster) nodeList(n *clusterNode) ([]nodeEntry, error) {
	var out struct {
		Items []nodeEntry `json:"items"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
	defer cancel()
	if _, err := tc.client(n).Do(ctx, http.MethodGet, "/api/v1/cluster/nodes", nil, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// checkNodeList requires the list to hold exactly want, each an alive voter with its
// addresses and rack, and exactly one leader, leaderID.
func checkNodeList(items []nodeEntry, want []*clusterNode, leaderID string) error {
	if len(items) != len(want) {
		ids := make([]string, 0, len(items))
		for _, it := range items {
			ids = append(ids, it.ID+"("+it.Status+")")
		}
		return fmt.Errorf("%d nodes %v, want %d", len(items), ids, len(want))
	}
	byID := map[string]nodeEntry{}
	var leaders []string
	for _, it := range items {
		byID[it.ID] = it
		if it.Role == "leader" {
			leaders = append(leaders, it.ID)
		}
	}
	for _, w := range want {
		it, ok := byID[w.id]
		switch {
		case !ok:
			return fmt.Errorf("node %s is missing from the list %+v", w.id, items)
		case !it.Voter:
			return fmt.Errorf("node %s is not a voter: %+v", w.id, it)
		case it.Status != "alive":
			return fmt.Errorf("node %s has status %q, want alive", w.id, it.Status)
		case it.Rack != w.rack:
			return fmt.Errorf("node %s has rack %q, want %q", w.id, it.Rack, w.rack)
		case it.APIAddr != w.httpAddr || it.RaftAddr != w.raftAddr || it.GossipAddr != w.gossipAddr:
			return fmt.Errorf("node %s has addresses api %s raft %s gossip %s, want %s %s %s", w.id,
				it.APIAddr, it.RaftAddr, it.GossipAddr, w.httpAddr, w.raftAddr, w.gossipAddr)
		case it.Version == "":
			return fmt.Errorf("node %s has no version", w.id)
		case it.AppliedIndex == nil:
			return fmt.Errorf("node %s has no appliedIndex (its status could not be asked)", w.id)
		case it.Role != "leader" && it.Role != "follower":
			return fmt.Errorf("node %s has role %q", w.id, it.Role)
		}
	}
	if len(leaders) != 1 || leaders[0] != leaderID {
		return fmt.Errorf("nodes with role leader: %v, want exactly %s", leaders, leaderID)
	}
	return nil
}

// waitNodeLists waits until every node in ask lists exactly want, with leaderID leading.
func (tc *testCluster) waitNodeLists(ask, want []*clusterNode, leaderID string) {
	tc.t.Helper()
	tc.eventually(fmt.Sprintf("every node to list %d alive voters led by %s", len(want), leaderID), func() error {
		for _, n := range ask {
			items, err := tc.nodeList(n)
			if err != nil {
				return fmt.Errorf("node list of %s: %w", n.id, err)
			}
			if err := checkNodeList(items, want, leaderID); err != nil {
				return fmt.Errorf("node list of %s: %w", n.id, err)
			}
		}
		return nil
	})
}

// certBody is a certificate create request; every certificate may share one key pair.
func certBody(id string, pair testutil.Cert) map[string]any {
	return map[string]any{"id": id, "name": "cert " + id, "cert": pair.CertPEM, "key": pair.KeyPEM}
}

// createCert makes one attempt to create a certificate through n.
func (tc *testCluster) createCert(n *clusterNode, id string, pair testutil.Cert, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
	defer cancel()
	_, err := tc.client(n).Do(ctx, http.MethodPost, "/api/v1/certificates", certBody(id, pair), out)
	return err
}

func isProblem(err error, status int) bool {
	var p *client.Problem
	return errors.As(err, &p) && p.Status == status
}

// mustCreateCert creates a certificate through n, retrying only while the node answers
// 503 (no leader yet). A 409 after an outcome_unknown means the earlier try was applied.
func (tc *testCluster) mustCreateCert(n *clusterNode, id string, pair testutil.Cert) map[string]any {
	tc.t.Helper()
	var created map[string]any
	unknown := false
	tc.eventually("create certificate "+id+" through "+n.id, func() error {
		created = nil
		err := tc.createCert(n, id, pair, &created)
		var p *client.Problem
		switch {
		case err == nil:
			return nil
		case errors.As(err, &p) && p.Status == http.StatusServiceUnavailable:
			unknown = unknown || p.Code == "outcome_unknown"
			return err
		case unknown && isProblem(err, http.StatusConflict):
			ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
			defer cancel()
			_, gerr := tc.client(n).Do(ctx, http.MethodGet, "/api/v1/certificates/"+id, nil, &created)
			if gerr != nil {
				tc.t.Fatalf("certificate %s: 409 after outcome_unknown, then GET: %v", id, gerr)
			}
			return nil
		}
		tc.t.Fatalf("create certificate %s through %s: %v", id, n.id, err)
		return nil
	})
	return created
}

// certPage is one page of GET /api/v1/certificates, items kept as sent.
type certPage struct {
	Items []json.RawMessage `json:"items"`
	Total int               `json:"total"`
}

func (tc *testCluster) certPage(n *clusterNode, query string) (certPage, error) {
	var p certPage
	ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
	defer cancel()
	_, err := tc.client(n).Do(ctx, http.MethodGet, "/api/v1/certificates"+query, nil, &p)
	return p, err
}

// certIDs pages through n's certificates with default reads and returns their ids.
func (tc *testCluster) certIDs(n *clusterNode) ([]string, error) {
	var ids []string
	for page := 1; ; page++ {
		p, err := tc.certPage(n, fmt.Sprintf("?pageSize=500&page=%d", page))
		if err != nil {
			return nil, err
		}
		for _, raw := range p.Items {
			var it struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(raw, &it); err != nil {
				return nil, err
			}
			ids = append(ids, it.ID)
		}
		if len(p.Items) == 0 || len(ids) >= p.Total {
			if len(ids) != p.Total {
				return nil, fmt.Errorf("paged %d certificates, total says %d", len(ids), p.Total)
			}
			return ids, nil
		}
	}
}

// TestClusterFormsInAnyOrder starts three nodes out of order, checks that they form one
// cluster that every node describes the same way, then adds a fourth node that joins
// through one member only.
func TestClusterFormsInAnyOrder(t *testing.T) {
	tc := newCluster(t, 3)
	n1, n2, n3 := tc.nodes[0], tc.nodes[1], tc.nodes[2]
	tc.start(n3)
	time.Sleep(2 * time.Second)
	tc.start(n1)
	time.Sleep(2 * time.Second)
	tc.start(n2)
	three := []*clusterNode{n1, n2, n3}
	for _, n := range three {
		n.proc.waitHealthy()
	}
	leader := tc.waitLeader(three...)
	tc.login(n2)
	tc.waitNodeLists(three, three, leader.id)

	// A write through a follower, before the fourth node exists.
	var follower *clusterNode
	for _, n := range three {
		if n != leader {
			follower = n
			break
		}
	}
	cert := testutil.NewCA(t).Issue(t, "before-join.example.test", "before-join.example.test")
	created := tc.mustCreateCert(follower, "before-join", cert)

	// The fourth node joins through node2 only. Watch what it says about leadership from
	// the moment it starts: it must never lead a cluster of its own.
	n4 := tc.addNode("node4", "rack-d", tc.key, []string{n2.gossipAddr})
	tc.start(n4)
	var (
		mu         sync.Mutex
		violations []string
		samples    int
	)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
			h, err := tc.health(n4)
			if err != nil {
				continue // not listening yet
			}
			mu.Lock()
			samples++
			if h.RaftState == "Leader" || (h.Leader != "" && h.Leader != n1.id && h.Leader != n2.id && h.Leader != n3.id) {
				violations = append(violations, fmt.Sprintf("raftState %s, leader %q", h.RaftState, h.Leader))
			}
			mu.Unlock()
		}
	}()
	n4.proc.waitHealthy()
	four := []*clusterNode{n1, n2, n3, n4}
	tc.waitNodeLists(four, four, leader.id)

	// What was written before node4 joined is readable through it (a default read).
	var got map[string]any
	tc.eventually("certificate before-join through node4", func() error {
		got = nil
		ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
		defer cancel()
		_, err := tc.client(n4).Do(ctx, http.MethodGet, "/api/v1/certificates/before-join", nil, &got)
		if err != nil && !isProblem(err, http.StatusServiceUnavailable) {
			t.Fatalf("GET certificate before-join through node4: %v", err)
		}
		return err
	})
	for _, f := range []string{"fingerprintSha256", "index", "name", "subject"} {
		if fmt.Sprint(got[f]) != fmt.Sprint(created[f]) {
			t.Errorf("certificate before-join through node4: %s = %v, want %v", f, got[f], created[f])
		}
	}

	final := tc.waitLeader(four...)
	close(stopSampling)
	<-sampled
	mu.Lock()
	defer mu.Unlock()
	if samples == 0 {
		t.Errorf("node4's health was never sampled")
	}
	if len(violations) > 0 {
		t.Errorf("node4 reported leadership outside the cluster it joined (%d of %d samples), first: %s",
			len(violations), samples, violations[0])
	}
	if final.id == n4.id {
		t.Errorf("node4 leads after joining; the cluster had a leader (%s) and no reason to elect", leader.id)
	}
	t.Logf("formed in order node3, node1, node2 with leader %s; node4 joined via node2; final leader %s", leader.id, final.id)
}

// snapshotStates lists <data-dir>/raft/snapshots/*/state.bin.
func snapshotStates(n *clusterNode) []string {
	m, _ := filepath.Glob(filepath.Join(n.dataDir, "raft", "snapshots", "*", "state.bin"))
	return m
}

// installedSnapshot is the line hashicorp/raft (raft.go, installSnapshot) logs on a
// follower that replaced its state with a snapshot sent by the leader.
var installedSnapshot = regexp.MustCompile(`Installed remote snapshot`)

// TestKillLeaderFailoverAndCatchUp kills the leader with SIGKILL, checks that the
// survivors elect a new one and take writes through each of them, compacts the log past
// the dead node, and restarts it: it must catch up from a snapshot to exactly the
// leader's state.
func TestKillLeaderFailoverAndCatchUp(t *testing.T) {
	tc := newCluster(t, 3, "--raft-snapshot-threshold", "64", "--raft-trailing-logs", "16")
	tc.startAll()
	for _, n := range tc.nodes {
		n.proc.waitHealthy()
	}
	old := tc.waitLeader(tc.nodes...)
	tc.login(tc.nodes[0])
	tc.waitNodeLists(tc.nodes, tc.nodes, old.id)

	pair := testutil.NewCA(t).Issue(t, "fleet.example.test", "fleet.example.test")
	for i := range 5 {
		tc.mustCreateCert(tc.nodes[i%3], fmt.Sprintf("before-kill-%d", i), pair)
	}

	old.down.Store(true)
	old.proc.kill()
	var survivors []*clusterNode
	for _, n := range tc.nodes {
		if n != old {
			survivors = append(survivors, n)
		}
	}
	leader := tc.waitLeader(survivors...)
	if leader == old {
		t.Fatalf("the killed node %s is still named leader", old.id)
	}
	t.Logf("killed leader %s; new leader %s", old.id, leader.id)
	for _, n := range survivors {
		tc.mustCreateCert(n, "after-kill-via-"+n.id, pair)
	}

	// Enough writes that the leader's log, once compacted, no longer holds the entries the
	// dead node is missing.
	const bulk = 300
	ids := make(chan string, bulk)
	for i := range bulk {
		ids <- fmt.Sprintf("bulk-%03d", i)
	}
	close(ids)
	var wg sync.WaitGroup
	errs := make(chan error, bulk)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				if err := tc.createCert(leader, id, pair, nil); err != nil {
					errs <- fmt.Errorf("create %s through the leader %s: %w", id, leader.id, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// raft checks whether a snapshot is due only every 2-4 minutes (its fixed
	// SnapshotInterval), so ask for one as an operator would (`linkops snapshot save`): the
	// leader snapshots and compacts its log to --raft-trailing-logs entries.
	func() {
		ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
		defer cancel()
		resp, err := tc.client(leader).Raw(ctx, http.MethodGet, "/api/v1/cluster/snapshot", nil, "", nil)
		if err != nil {
			t.Fatalf("GET /api/v1/cluster/snapshot on the leader: %v", err)
		}
		defer resp.Body.Close()
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || n == 0 {
			t.Fatalf("snapshot download: %d bytes, %v", n, err)
		}
	}()
	tc.eventually("a raft snapshot in the leader's data dir", func() error {
		if len(snapshotStates(leader)) == 0 {
			return fmt.Errorf("no %s", filepath.Join(leader.dataDir, "raft", "snapshots", "*", "state.bin"))
		}
		return nil
	})

	var want certPage
	tc.eventually("the leader's certificate list", func() error {
		var err error
		want, err = tc.certPage(leader, "?pageSize=500")
		return err
	})
	if wantTotal := 5 + len(survivors) + bulk; want.Total != wantTotal || len(want.Items) != wantTotal {
		t.Fatalf("the leader lists %d certificates (total %d), want %d", len(want.Items), want.Total, wantTotal)
	}

	// Restart the killed node on its data dir with the same flags.
	tc.start(old)
	old.proc.waitHealthy()
	old.down.Store(false)
	var got certPage
	var lastErr error
	tc.eventually(old.id+"'s local (stale) certificate list to equal the leader's", func() error {
		var err error
		got, err = tc.certPage(old, "?stale&pageSize=500")
		if err != nil {
			lastErr = err
			return err
		}
		if got.Total != want.Total || len(got.Items) != len(want.Items) {
			return fmt.Errorf("%s has %d certificates (total %d), the leader %d", old.id, len(got.Items), got.Total, want.Total)
		}
		for i := range want.Items {
			if !bytes.Equal(got.Items[i], want.Items[i]) {
				return fmt.Errorf("item %d differs:\n%s has %s\nleader  has %s", i, old.id, got.Items[i], want.Items[i])
			}
		}
		return nil
	})
	if lastErr != nil {
		t.Logf("while %s caught up, its stale list answered at least once: %v", old.id, lastErr)
	}
	if !installedSnapshot.MatchString(old.proc.stderr.String()) {
		t.Errorf("the restarted node's log does not mention installing the leader's snapshot (%q)", installedSnapshot)
	}
	if !regexp.MustCompile(`installing snapshot on.*peer=` + old.id).MatchString(leader.proc.stderr.String()) {
		t.Errorf("the leader's log does not mention sending a snapshot to %s", old.id)
	}
	// It rejoined as a voter and the others agree.
	tc.waitNodeLists(tc.nodes, tc.nodes, tc.waitLeader(tc.nodes...).id)
}

// TestWrongClusterKeyCannotJoin starts a node with another --cluster-key that tries to
// join the cluster: it must never become a member, and the members must log why.
func TestWrongClusterKeyCannotJoin(t *testing.T) {
	tc := newCluster(t, 3)
	tc.startAll()
	three := append([]*clusterNode(nil), tc.nodes...)
	for _, n := range three {
		n.proc.waitHealthy()
	}
	leader := tc.waitLeader(three...)
	tc.login(tc.nodes[0])
	tc.waitNodeLists(three, three, leader.id)

	logFrom := map[string]int{}
	for _, n := range three {
		logFrom[n.id] = len(n.proc.stderr.String())
	}
	var gossip []string
	for _, n := range three {
		gossip = append(gossip, n.gossipAddr)
	}
	intruder := tc.addNode("intruder", "rack-x", newClusterKey(t), gossip)
	tc.start(intruder)
	intruder.proc.waitUntil("the intruder's API", func() error {
		_, err := tc.health(intruder)
		return err
	})

	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range three {
			items, err := tc.nodeList(n)
			if err != nil {
				t.Fatalf("node list of %s: %v", n.id, err)
			}
			for _, it := range items {
				if it.ID == intruder.id {
					t.Fatalf("%s lists the node with the wrong cluster key: %+v", n.id, it)
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	tc.waitNodeLists(three, three, leader.id)
	if h, err := tc.health(intruder); err != nil || h.Leader != "" || h.Status == "ok" {
		t.Errorf("the node with the wrong key says status %q, leader %q (err %v); want no leader", h.Status, h.Leader, err)
	}

	// Some member logged that it refused the intruder (memberlist cannot decrypt its
	// gossip, or a raft/internal connection was refused).
	refusal := regexp.MustCompile(`(?i)refused a raft connection|refused an internal call|no installed keys could decrypt|decrypt packet failed|encryption is configured but`)
	var refusedBy []string
	example := ""
	for _, n := range three {
		for _, line := range strings.Split(n.proc.stderr.String()[logFrom[n.id]:], "\n") {
			if refusal.MatchString(line) {
				refusedBy = append(refusedBy, n.id)
				example = line
				break
			}
		}
	}
	if len(refusedBy) == 0 {
		t.Errorf("no member logged refusing the node with the wrong key (want a match of %s)", refusal)
	} else {
		t.Logf("refusal logged by %v, e.g.: %s", refusedBy, example)
	}
	if !strings.Contains(intruder.proc.stderr.String(), "cannot join yet") {
		t.Errorf("the node with the wrong key does not log that it cannot join")
	}

	// The internal API wants proof of the cluster key.
	for name, hdr := range map[string]string{
		"no header":      "",
		"a forged proof": fmt.Sprintf("%d.%s", time.Now().UnixNano(), strings.Repeat("ab", 32)),
	} {
		req, err := http.NewRequest(http.MethodGet, "http://"+leader.httpAddr+"/internal/v1/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		if hdr != "" {
			req.Header.Set("X-Linkops-Internal", hdr)
		}
		resp, err := tc.hc.Do(req)
		if err != nil {
			t.Fatalf("GET /internal/v1/status with %s: %v", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /internal/v1/status with %s: HTTP %d, want 401\n%s", name, resp.StatusCode, body)
		}
		if strings.Contains(string(body), `"hasState"`) {
			t.Errorf("GET /internal/v1/status with %s leaked the status: %s", name, body)
		}
	}
}

// writerStats is what one writer saw.
type writerStats struct {
	acked      []string
	refused    map[string]int // 503s by problem code
	connErrs   int            // transport errors while its node was restarting
	unexpected []string
	// kinds counts unexpected failures by status and code (or "transport error").
	kinds map[string]int
}

// runWriter creates certificates w<node>-<n> through n until ctx ends, classifying each
// answer. restarting is true while the test is restarting n.
func runWriter(ctx context.Context, tc *testCluster, n *clusterNode, idx int, pair testutil.Cert, st *writerStats) {
	c := &client.Client{Addr: "http://" + n.httpAddr, Token: tc.token, HTTP: &http.Client{Timeout: clusterRequestTimeout}}
	st.refused, st.kinds = map[string]int{}, map[string]int{}
	for seq := 1; ctx.Err() == nil; seq++ {
		id := fmt.Sprintf("w%d-%d", idx+1, seq)
		before := n.down.Load()
		rctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
		_, err := c.Do(rctx, http.MethodPost, "/api/v1/certificates", certBody(id, pair), nil)
		cancel()
		after := n.down.Load()
		var p *client.Problem
		switch {
		case err == nil:
			st.acked = append(st.acked, id)
			continue
		case errors.As(err, &p):
			if p.Status == http.StatusServiceUnavailable && (p.Code == "no_leader" || p.Code == "outcome_unknown") {
				st.refused[p.Code]++
			} else {
				st.unexpected = append(st.unexpected, fmt.Sprintf("%s %s through %s (restarting: %v): %v", tc.since(), id, n.id, tc.downNodes(), p))
				st.kinds[fmt.Sprintf("%d %s", p.Status, p.Code)]++
			}
		case before || after:
			st.connErrs++
		default:
			st.unexpected = append(st.unexpected, fmt.Sprintf("%s %s through %s (restarting: %v): %v", tc.since(), id, n.id, tc.downNodes(), err))
			st.kinds["transport error"]++
		}
		time.Sleep(20 * time.Millisecond) // do not spin on a node that is down
	}
}

// TestRollingRestartUnderLoad restarts every node in turn (SIGTERM, start again) while a
// writer per node creates certificates through it: no acknowledged write may be lost, and
// every refusal must be a 503 an operator can act on.
func TestRollingRestartUnderLoad(t *testing.T) {
	tc, leader := startedCluster(t, 3)
	tc.login(tc.nodes[0])
	tc.waitNodeLists(tc.nodes, tc.nodes, leader.id)
	pair := testutil.NewCA(t).Issue(t, "rolling.example.test", "rolling.example.test")

	ctx, stopWriters := context.WithCancel(context.Background())
	defer stopWriters()
	stats := make([]*writerStats, len(tc.nodes))
	var wg sync.WaitGroup
	for i, n := range tc.nodes {
		stats[i] = &writerStats{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runWriter(ctx, tc, n, i, pair, stats[i])
		}()
	}

	time.Sleep(2 * time.Second)
	for _, n := range tc.nodes {
		tc.note("%s restarting %s (leader before: %s)", tc.since(), n.id, tc.currentLeader())
		n.down.Store(true)
		if err := n.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM %s: %v", n.id, err)
		}
		if code := n.proc.waitExit(stopTimeout); code != 0 {
			t.Fatalf("%s exited with code %d after SIGTERM, want 0\n%s", n.id, code, n.proc.output())
		}
		tc.start(n) // still restarting (down) until it is healthy
		n.proc.waitHealthy()
		n.down.Store(false)
		tc.note("%s %s is healthy again", tc.since(), n.id)
		time.Sleep(2 * time.Second)
	}
	stopWriters()
	wg.Wait()

	tc.waitLeader(tc.nodes...)
	var lists [][]string
	for _, n := range tc.nodes {
		var ids []string
		tc.eventually("the certificate list of "+n.id, func() error {
			var err error
			ids, err = tc.certIDs(n)
			if err != nil && !isProblem(err, http.StatusServiceUnavailable) {
				t.Fatalf("list certificates through %s: %v", n.id, err)
			}
			return err
		})
		have := map[string]bool{}
		for _, id := range ids {
			have[id] = true
		}
		var lost []string
		for _, st := range stats {
			for _, id := range st.acked {
				if !have[id] {
					lost = append(lost, id)
				}
			}
		}
		if len(lost) > 0 {
			t.Errorf("%s lacks %d acknowledged certificates, e.g. %v", n.id, len(lost), lost[:min(len(lost), 10)])
		}
		sort.Strings(ids)
		lists = append(lists, ids)
	}
	for i := 1; i < len(lists); i++ {
		if strings.Join(lists[i], ",") != strings.Join(lists[0], ",") {
			t.Errorf("%s lists %d certificates, %s %d: the nodes disagree", tc.nodes[i].id, len(lists[i]), tc.nodes[0].id, len(lists[0]))
		}
	}
	for i, st := range stats {
		n := tc.nodes[i]
		tc.note("writer via %s: %d acknowledged, 503 %v, %d connection errors while restarting, %d unexpected %v",
			n.id, len(st.acked), st.refused, st.connErrs, len(st.unexpected), st.kinds)
		if len(st.acked) == 0 {
			t.Errorf("no write through %s was acknowledged", n.id)
		}
		for j, u := range st.unexpected {
			if j == 10 {
				t.Errorf("… and %d more unexpected failures through %s", len(st.unexpected)-10, n.id)
				break
			}
			t.Errorf("unexpected failure: %s", u)
			if j < 3 {
				tc.mu.Lock()
				tc.summary = append(tc.summary, "unexpected failure: "+u)
				tc.mu.Unlock()
			}
		}
	}
}
