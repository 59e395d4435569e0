package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// changingMeta is a raw memberlist peer's delegate whose metadata the test changes.
type changingMeta struct{ meta atomic.Value }

func (d *changingMeta) NodeMeta(int) []byte                 { return d.meta.Load().([]byte) }
func (d *changingMeta) NotifyMsg([]byte)                    {}
func (d *changingMeta) GetBroadcasts(int, int) [][]byte     { return nil }
func (d *changingMeta) LocalState(bool) []byte              { return nil }
func (d *changingMeta) MergeRemoteState(buf []byte, _ bool) {}

func (d *changingMeta) set(t *testing.T, api string) {
	b, err := json.Marshal(memberMeta{API: api, Raft: "127.0.0.1:1", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	d.meta.Store(b)
}

func startMembership(t *testing.T) *membership {
	t.Helper()
	m, err := newMembership(membershipConfig{NodeID: "self", Bind: "127.0.0.1:0", Meta: memberMeta{API: "127.0.0.1:2", Version: "test"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.shutdown)
	return m
}

func startPeer(t *testing.T, d *changingMeta) *memberlist.Memberlist {
	t.Helper()
	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "peer", "127.0.0.1", 0
	mc.GossipInterval, mc.ProbeInterval, mc.ProbeTimeout = 50*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
	mc.Delegate = d
	mc.Logger = log.New(io.Discard, "", 0)
	peer, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peer.Shutdown() })
	return peer
}

func memberByID(m *membership, id string) (Member, bool) {
	for _, mb := range m.Members() {
		if mb.ID == id {
			return mb, true
		}
	}
	return Member{}, false
}

// Reading the members while gossip rewrites them is safe (the race detector, on in make
// test, watches this one): memberlist updates in place the nodes its Members() returns
// whenever a peer's metadata changes (hashicorp/memberlist#306, seen in CI as a race
// between a leader routine and gossip), and the membership must still show the peer's
// latest metadata.
func TestMembersWhileGossipRewritesThem(t *testing.T) {
	m := startMembership(t)
	if got := m.Addr(); got == "" || got == "127.0.0.1:0" {
		t.Fatalf("own gossip address %q, want the bound address", got)
	}
	d := &changingMeta{}
	d.set(t, "127.0.0.1:1000")
	peer := startPeer(t, d)
	if _, err := peer.Join([]string{m.Addr()}); err != nil {
		t.Fatalf("join: %v", err)
	}

	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, mb := range m.Members() {
					_ = mb.APIAddr + mb.GossipAddr + mb.Status
				}
				_ = m.lost()
				_ = m.Addr()
			}
		}()
	}
	last := ""
	for i := range 50 {
		last = fmt.Sprintf("127.0.0.1:%d", 1001+i)
		d.set(t, last)
		if err := peer.UpdateNode(time.Second); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mb, ok := memberByID(m, "peer")
		if ok && mb.APIAddr == last && mb.Status == StatusAlive && mb.GossipAddr == peer.LocalNode().Address() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the peer shows as %+v (found %v), want API %s, alive, gossip %s", mb, ok, last, peer.LocalNode().Address())
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	readers.Wait()
	if self, ok := memberByID(m, "self"); !ok || self.APIAddr != "127.0.0.1:2" || self.Status != StatusAlive {
		t.Fatalf("this node shows as %+v (found %v)", self, ok)
	}
}

// A member that stops answering shows suspect before gossip declares it dead and drops it,
// although memberlist tells no delegate of a suspicion: this node's failed probe is what
// marks it.
func TestSilentMemberShowsSuspectThenGoes(t *testing.T) {
	m := startMembership(t)
	d := &changingMeta{}
	d.set(t, "127.0.0.1:1000")
	peer := startPeer(t, d)
	if _, err := peer.Join([]string{m.Addr()}); err != nil {
		t.Fatalf("join: %v", err)
	}
	waitStatus := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mb, ok := memberByID(m, "peer")
			if ok && mb.Status == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the peer shows as %+v (found %v), want %s", mb, ok, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitStatus(StatusAlive)

	// Gone without a word (no Leave): probes go unanswered.
	if err := peer.Shutdown(); err != nil {
		t.Fatal(err)
	}
	sawSuspect := false
	deadline := time.Now().Add(20 * time.Second)
	for {
		mb, ok := memberByID(m, "peer")
		if !ok {
			break
		}
		sawSuspect = sawSuspect || mb.Status == StatusSuspect
		if time.Now().After(deadline) {
			t.Fatalf("the silent peer still shows as %+v", mb)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !sawSuspect {
		t.Error("the silent peer went from alive to gone without showing suspect")
	}
	if lost := m.lost(); lost["peer"] == "" {
		t.Errorf("the dead peer is not among the members to reconnect to: %v", lost)
	}
}

// The one memberlist log line the suspicion depends on is recognised, and only it.
func TestProbeFailureLineMarksSuspect(t *testing.T) {
	var got []string
	w := &memberlistLogWriter{log: slog.New(slog.NewTextHandler(io.Discard, nil)), suspected: func(name string) { got = append(got, name) }}
	for _, line := range []string{
		"[INFO] memberlist: Suspect node-2 has failed, no acks received\n",
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:1234\n",
		"[INFO] memberlist: Marking node-3 as failed, suspect timeout reached (0 peer confirmations)\n",
	} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 1 || got[0] != "node-2" {
		t.Fatalf("suspected %q, want [node-2]", got)
	}
}
