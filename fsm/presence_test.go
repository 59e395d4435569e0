package fsm_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

// withDevice stores product p and device d1 at indexes 1 and 2.
func withDevice(t *testing.T, f *fsm.FSM) {
	t.Helper()
	mustOK(t, upsert(t, f, 1, resource.Products, &resource.Product{Meta: resource.Meta{ID: "p"}, Name: "p", SecureID: "sid"}, true, 0, t0))
	mustOK(t, upsert(t, f, 2, resource.Devices, &resource.Device{Meta: resource.Meta{ID: "d1"}, Name: "d1", ProductID: "p"}, true, 0, t0))
}

func presence(t *testing.T, f *fsm.FSM, index uint64, changes ...fsm.PresenceChange) fsm.PresenceResult {
	t.Helper()
	cmd, err := fsm.NewPresence(changes)
	if err != nil {
		t.Fatal(err)
	}
	res, ok := apply(t, f, index, cmd).(fsm.PresenceResult)
	if !ok {
		t.Fatalf("presence at %d: %v", index, apply(t, f, index, cmd))
	}
	return res
}

func online(dev, server, session string, at time.Time) fsm.PresenceChange {
	return fsm.PresenceChange{DeviceID: dev, ServerID: server, Session: session, Online: true, At: at}
}

func offline(dev, server, session string, at time.Time) fsm.PresenceChange {
	return fsm.PresenceChange{DeviceID: dev, ServerID: server, Session: session, At: at}
}

// TestPresenceConverges: whatever order two nodes' batches reach raft in, the session
// that connected last holds the device, and a late offline of an older session changes
// nothing (SPEC §5.1).
func TestPresenceConverges(t *testing.T) {
	f := newFSM(t)
	withDevice(t, f)
	devIndex := f.Store().Presence("d1")
	if devIndex != nil {
		t.Fatalf("presence before any connect: %+v", devIndex)
	}

	// node2's newer session reaches raft first, node1's older online second.
	if r := presence(t, f, 12, online("d1", "node2", "s2", t1)); r.Applied != 1 {
		t.Fatalf("first online: %+v", r)
	}
	if r := presence(t, f, 3, online("d1", "node1", "s1", t0)); r.Skipped != 1 {
		t.Fatalf("late older online applied: %+v", r)
	}
	// The old node's late offline names its own session: nothing changes.
	if r := presence(t, f, 4, offline("d1", "node1", "s1", t2)); r.Skipped != 1 {
		t.Fatalf("late offline applied: %+v", r)
	}
	p := f.Store().Presence("d1")
	if p == nil || !p.Online || p.ServerID != "node2" || p.Session != "s2" || p.Index != 12 {
		t.Fatalf("presence %+v, want online on node2 (s2) at index 12", p)
	}
	// The same online again is not a change.
	if r := presence(t, f, 5, online("d1", "node2", "s2", t1)); r.Skipped != 1 {
		t.Fatalf("repeated online applied: %+v", r)
	}
	// The device record was never touched.
	d, _ := f.Store().Get(resource.Devices, "d1")
	if d.Base().Index != 2 {
		t.Fatalf("device index %d after presence changes, want 2", d.Base().Index)
	}

	// Offline of the holding session applies; the reaper's offline for a dead node is the same.
	if r := presence(t, f, 6, offline("d1", "node2", "s2", t2)); r.Applied != 1 {
		t.Fatalf("offline: %+v", r)
	}
	p = f.Store().Presence("d1")
	if p.Online || p.OfflineAt == nil || !p.OfflineAt.Equal(t2) || !p.OnlineAt.Equal(t1) {
		t.Fatalf("after offline: %+v", p)
	}
	// A node that comes back from a partition re-asserts its live session.
	if r := presence(t, f, 7, online("d1", "node2", "s2", t1)); r.Applied != 1 {
		t.Fatalf("re-online: %+v", r)
	}

	// An unknown device gets no presence.
	if r := presence(t, f, 8, online("ghost", "node1", "x", t0)); r.Skipped != 1 || f.Store().Presence("ghost") != nil {
		t.Fatalf("presence for an unknown device: %+v", r)
	}

	// Followers read changes in index order.
	recs, ws := f.Store().PresenceSince(6)
	if len(recs) != 1 || recs[0].Index != 7 {
		t.Fatalf("since 6: %+v", recs)
	}
	fired := make(chan struct{})
	go func() { ws.Watch(nil); close(fired) }()
	presence(t, f, 9, offline("d1", "node2", "s2", t2))
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch set did not fire on a presence change")
	}
	if got := f.Store().PresenceOnServer("node2"); len(got) != 1 {
		t.Fatalf("on node2: %+v", got)
	}

	// Deleting the device deletes its presence.
	del(t, f, 10, resource.Devices, "d1", 0)
	if f.Store().Presence("d1") != nil {
		t.Fatal("presence outlived its device")
	}
}

// TestPresenceSurvivesSnapshot: a restored node knows which sessions it held.
func TestPresenceSurvivesSnapshot(t *testing.T) {
	f := newFSM(t)
	withDevice(t, f)
	presence(t, f, 3, online("d1", "node3", "s", t1))
	b := snapshotBytes(t, f)
	g := newFSM(t)
	if err := restore(t, g, b); err != nil {
		t.Fatal(err)
	}
	if p := g.Store().Presence("d1"); p == nil || p.ServerID != "node3" || !p.Online {
		t.Fatalf("restored presence %+v", p)
	}
	if _, err := fsm.VerifySnapshot(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

// TestBriefSessionIsRecordedOffline: a session whose online was coalesced away (it came
// and went within one batch) still leaves the device offline, not notActive — unless an
// older session's offline arrives, which changes nothing.
func TestBriefSessionIsRecordedOffline(t *testing.T) {
	f := newFSM(t)
	withDevice(t, f)
	brief := offline("d1", "node1", "s1", t1)
	brief.ConnectedAt = t0
	if r := presence(t, f, 3, brief); r.Applied != 1 {
		t.Fatalf("brief session: %+v", r)
	}
	p := f.Store().Presence("d1")
	if p == nil || p.Online || !p.OnlineAt.Equal(t0) || p.OfflineAt == nil || !p.OfflineAt.Equal(t1) {
		t.Fatalf("after a brief session: %+v", p)
	}
	presence(t, f, 4, online("d1", "node2", "s2", t2))
	older := offline("d1", "node1", "s0", t2)
	older.ConnectedAt = t1
	if r := presence(t, f, 5, older); r.Skipped != 1 || !f.Store().Presence("d1").Online {
		t.Fatalf("an older session's offline changed the record: %+v", r)
	}
}
