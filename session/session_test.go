package session_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/session"
)

// raftish applies proposals to a real FSM in order, as raft would, and can refuse them
// (no leader) until told otherwise.
type raftish struct {
	f       *fsm.FSM
	mu      sync.Mutex
	index   uint64
	down    atomic.Bool
	entries atomic.Int64
}

func newRaftish(t *testing.T, devices ...string) *raftish {
	r := &raftish{f: fsm.New(slog.New(slog.DiscardHandler))}
	r.apply(t, mustCmd(t)(fsm.NewUpsert(resource.Products, &resource.Product{Meta: resource.Meta{ID: "p"}, Name: "p", SecureID: "s"}, true, 0, time.Now())))
	for _, d := range devices {
		r.apply(t, mustCmd(t)(fsm.NewUpsert(resource.Devices, &resource.Device{Meta: resource.Meta{ID: d}, Name: d, ProductID: "p"}, true, 0, time.Now())))
	}
	return r
}

func mustCmd(t *testing.T) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func (r *raftish) apply(t *testing.T, cmd []byte) {
	t.Helper()
	if err := r.propose(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
}

func (r *raftish) propose(_ context.Context, cmd []byte) error {
	if r.down.Load() {
		return errors.New("no cluster leader")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.index++
	r.entries.Add(1)
	if res, ok := r.f.Apply(&raft.Log{Index: r.index, Data: cmd}).(error); ok {
		return res
	}
	return nil
}

func manager(node string, r *raftish) *session.Manager {
	return session.NewManager(session.Config{NodeID: node, Store: r.f.Store(), Propose: r.propose, Log: slog.New(slog.DiscardHandler)})
}

func run(t *testing.T, m *session.Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitPresence(t *testing.T, r *raftish, dev, what string, ok func(*fsm.Presence) bool) *fsm.Presence {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := r.f.Store().Presence(dev)
		if ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became %s: %+v", dev, what, p)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWriterBatchesAndOutlastsNoLeader: a burst of connects is a few raft entries, and
// changes made while raft refuses are written once it accepts again, none lost.
func TestWriterBatchesAndOutlastsNoLeader(t *testing.T) {
	ids := make([]string, 2000)
	for i := range ids {
		ids[i] = "d" + string(rune('a'+i%26)) + time.Duration(i).String()
	}
	r := newRaftish(t, ids...)
	before := r.entries.Load()
	m := manager("node1", r)
	run(t, m)
	sessions := map[string]*session.Session{}
	for _, id := range ids {
		sessions[id] = m.Open(&session.Session{DeviceID: id, GatewayID: "g", Close: func(string) {}})
	}
	for _, id := range ids {
		waitPresence(t, r, id, "online", func(p *fsm.Presence) bool { return p != nil && p.Online && p.ServerID == "node1" })
	}
	if n := r.entries.Load() - before; n > 20 {
		t.Fatalf("2,000 connects took %d raft entries; the writer should batch them", n)
	}

	r.down.Store(true)
	for _, id := range ids[:100] {
		m.Closed(sessions[id], "gone")
	}
	time.Sleep(200 * time.Millisecond) // several refused flushes
	if p := r.f.Store().Presence(ids[0]); !p.Online {
		t.Fatal("a refused write changed the state")
	}
	r.down.Store(false)
	for _, id := range ids[:100] {
		waitPresence(t, r, id, "offline", func(p *fsm.Presence) bool { return p != nil && !p.Online })
	}
	if p := r.f.Store().Presence(ids[100]); !p.Online {
		t.Fatal("a device that stayed connected went offline")
	}
}

// TestFollowerDropsTakenOverSessions: when the table names a later session of a device
// held here, the local copy closes without an offline; a late close of a replaced
// session on one node changes nothing.
func TestFollowerDropsTakenOverSessions(t *testing.T) {
	r := newRaftish(t, "d1")
	m1, m2 := manager("node1", r), manager("node2", r)
	run(t, m1)
	run(t, m2)
	closed := make(chan string, 4)
	m1.Open(&session.Session{DeviceID: "d1", GatewayID: "g", Close: func(reason string) { closed <- reason }})
	waitPresence(t, r, "d1", "online on node1", func(p *fsm.Presence) bool { return p != nil && p.ServerID == "node1" })

	time.Sleep(2 * time.Millisecond) // a later connect on node2's clock
	s2 := m2.Open(&session.Session{DeviceID: "d1", GatewayID: "g", Close: func(string) {}})
	select {
	case reason := <-closed:
		if reason != session.ReasonTakenOver {
			t.Fatalf("node1 closed its session with %q", reason)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("node1 kept a session that node2 took over")
	}
	if m1.Get("d1") != nil {
		t.Fatal("node1 still lists the device")
	}
	time.Sleep(100 * time.Millisecond)
	p := waitPresence(t, r, "d1", "online on node2", func(p *fsm.Presence) bool { return p != nil && p.Online && p.ServerID == "node2" })
	if p.Session != s2.ID() {
		t.Fatalf("presence names session %s, want node2's %s", p.Session, s2.ID())
	}

	// One node: a reconnect replaces the session; the old connection's late close is ignored.
	s3 := m2.Open(&session.Session{DeviceID: "d1", GatewayID: "g", Close: func(string) {}})
	m2.Closed(s2, "late disconnect of the replaced connection")
	waitPresence(t, r, "d1", "on node2's newest session", func(p *fsm.Presence) bool { return p != nil && p.Session == s3.ID() && p.Online })
	time.Sleep(100 * time.Millisecond)
	if p := r.f.Store().Presence("d1"); !p.Online {
		t.Fatalf("a late close made the device offline: %+v", p)
	}
}

// TestRestartReleasesWhatItNoLongerHolds: a node that starts and finds the table naming
// it for a session it does not hold records that session offline.
func TestRestartReleasesWhatItNoLongerHolds(t *testing.T) {
	r := newRaftish(t, "d1")
	r.apply(t, mustCmd(t)(fsm.NewPresence([]fsm.PresenceChange{{DeviceID: "d1", ServerID: "node1", Session: "before-restart", Online: true, At: time.Now()}})))
	run(t, manager("node1", r))
	waitPresence(t, r, "d1", "offline", func(p *fsm.Presence) bool { return p != nil && !p.Online })
}

// TestReaperReleasesDeadNodes: the leader routine records a dead node's sessions offline
// and leaves the others.
func TestReaperReleasesDeadNodes(t *testing.T) {
	r := newRaftish(t, "d1", "d2")
	r.apply(t, mustCmd(t)(fsm.NewPresence([]fsm.PresenceChange{
		{DeviceID: "d1", ServerID: "dead", Session: "a", Online: true, At: time.Now()},
		{DeviceID: "d2", ServerID: "alive", Session: "b", Online: true, At: time.Now()},
	})))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go (&session.Reaper{Store: r.f.Store(), Dead: func() []string { return []string{"dead"} }, Propose: r.propose, Log: slog.New(slog.DiscardHandler)}).Run(ctx)
	waitPresence(t, r, "d1", "offline", func(p *fsm.Presence) bool { return !p.Online })
	if !r.f.Store().Presence("d2").Online {
		t.Fatal("the reaper released a live node's device")
	}
}

// TestDownlinkWaitsForItsReply: a downlink gets the reply with its messageId; a silent
// device times out; a device that goes away ends the wait as offline.
func TestDownlinkWaitsForItsReply(t *testing.T) {
	r := newRaftish(t, "d1")
	m := manager("node1", r)
	var s *session.Session
	s = m.Open(&session.Session{DeviceID: "d1", GatewayID: "g", Close: func(string) {}, Send: func(_ context.Context, msg protocol.Message) error {
		if msg.PropertyNames[0] == "silent" {
			return nil
		}
		go m.Receive(s, "", protocol.Message{Type: protocol.TypeReadPropertyReply, MessageID: "other", Properties: map[string]any{"x": 0}})
		go m.Receive(s, "", protocol.Message{Type: protocol.TypeReadPropertyReply, MessageID: msg.MessageID, Properties: map[string]any{"x": 1}})
		return nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := m.Downlink(ctx, "d1", protocol.Message{Type: protocol.TypeReadProperty, MessageID: "m1", PropertyNames: []string{"x"}})
	if err != nil || reply.MessageID != "m1" || reply.Properties["x"] != 1 {
		t.Fatalf("reply %+v %v", reply, err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := m.Downlink(short, "d1", protocol.Message{Type: protocol.TypeReadProperty, MessageID: "m2", PropertyNames: []string{"silent"}}); !errors.Is(err, session.ErrTimeout) {
		t.Fatalf("silent device: %v, want ErrTimeout", err)
	}
	if _, err := m.Downlink(ctx, "nobody", protocol.Message{Type: protocol.TypeReadProperty, MessageID: "m3"}); !errors.Is(err, session.ErrOffline) {
		t.Fatalf("unknown device: %v, want ErrOffline", err)
	}
}

// TestReceiveSaysWhatItKept: a property report nobody follows is not kept, and the store
// holds its values after the caller cleared the message's map to lend it again (the
// gateway's propsPool); a report on a followed device, and a reply, are kept, and the
// stream sees the values even after the sender's map changed hands.
func TestReceiveSaysWhatItKept(t *testing.T) {
	r := newRaftish(t, "d1")
	m := manager("node1", r)
	s := m.Open(&session.Session{DeviceID: "d1", GatewayID: "g", Close: func(string) {}})
	lent := map[string]any{"t": 21.5, "state": "ok"}
	if kept := m.Receive(s, "/p/d1/properties/report", protocol.Message{Type: protocol.TypeReportProperty, DeviceID: "d1", Properties: lent}); kept {
		t.Fatal("a report nobody follows was kept")
	}
	clear(lent)
	lent["t"] = -1.0 // the next device's report, in the same map
	rec := m.Records([]string{"d1"})["d1"]
	if got := rec.Properties["t"].Value; got != 21.5 {
		t.Fatalf("t = %v after the lent map was reused, want 21.5", got)
	}
	if got := rec.Properties["state"].Value; got != "ok" {
		t.Fatalf("state = %v after the lent map was reused, want ok", got)
	}

	sub := m.SubscribeDevice("d1", 4)
	defer sub.Close()
	followed := map[string]any{"t": 22.0}
	if kept := m.Receive(s, "/p/d1/properties/report", protocol.Message{Type: protocol.TypeReportProperty, DeviceID: "d1", Properties: followed}); !kept {
		t.Fatal("a report on a followed device was not kept")
	}
	if ev := <-sub.C; ev.Message.Properties["t"] != 22.0 {
		t.Fatalf("stream got %+v", ev.Message)
	}
	sub.Close()
	reply := protocol.Message{Type: protocol.TypeReadPropertyReply, DeviceID: "d1", MessageID: "m1", Properties: map[string]any{"t": 1.0}}
	if kept := m.Receive(s, "/p/d1/properties/read/reply", reply); !kept {
		t.Fatal("a reply was not kept (a downlink may be waiting for it)")
	}
}
