package ota

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/session"
)

// engineWorld: product p with devices d1–d5 and firmware fw (2.0).
func engineWorld(t *testing.T) *world {
	w := newWorld(t)
	w.init("key")
	w.product("p")
	w.devices("p", "d1", "d2", "d3", "d4", "d5")
	w.putFirmware(fakeFirmware("fw", "p", "2.0", 2))
	return w
}

var all5 = []string{"d1", "d2", "d3", "d4", "d5"}

func newTestEngine(w *world, clk *clock) *Engine {
	return NewEngine(EngineConfig{Store: w.store(), Apply: w.applyCmd, Log: discard, Now: clk.Now})
}

func TestDecideSendsWithinMaxInFlight(t *testing.T) {
	w := engineWorld(t)
	w.task(t0, "T", resource.ModePush, "fw", all5, func(t *resource.UpgradeTask) { t.Rollout.MaxInFlight = 2 })
	w.presence("n1", true, t0, "d1", "d2", "d3")
	w.presence("n2", true, t0, "d4", "d5")
	now := t0.Add(time.Second)
	e := newTestEngine(w, newClock(now))

	p, next := e.decide(w.store().View(), now)
	wantOps(t, p.ops, "send task=T [d1 d2]")
	if want := map[string]string{"d1": "n1", "d2": "n1"}; !reflect.DeepEqual(p.holders, want) {
		t.Fatalf("holders %v, want %v", p.holders, want)
	}
	if !next.Equal(now.Add(idleRound)) {
		t.Fatalf("next round %v, want the idle bound %v", next, now.Add(idleRound))
	}

	// Recorded, the two are in flight: nothing more until one finishes.
	w.ota(now, p.ops...)
	if p, _ := e.decide(w.store().View(), now); len(p.ops) != 0 {
		t.Fatalf("with maxInFlight reached: %q", opStrings(p.ops))
	}
	w.ota(now, fsm.OTAOp{Op: fsm.OpProgress, DeviceID: "d1", Complete: true})
	p, _ = e.decide(w.store().View(), now)
	wantOps(t, p.ops, "send task=T [d3]")
}

func TestDecideSkipsOfflineDevices(t *testing.T) {
	w := engineWorld(t)
	w.task(t0, "T", resource.ModePush, "fw", all5, nil)
	w.presence("n1", true, t0, "d1", "d2")
	w.presence("n2", true, t0, "d4")
	w.presence("n1", false, t0.Add(time.Second), "d1") // d1 left; d3 and d5 never came
	now := t0.Add(2 * time.Second)
	e := newTestEngine(w, newClock(now))
	p, _ := e.decide(w.store().View(), now)
	wantOps(t, p.ops, "send task=T [d2 d4]")
	if want := map[string]string{"d2": "n1", "d4": "n2"}; !reflect.DeepEqual(p.holders, want) {
		t.Fatalf("holders %v, want %v", p.holders, want)
	}

	// Pull tasks are never pushed, however many devices are online.
	w2 := engineWorld(t)
	w2.task(t0, "P", resource.ModePull, "fw", all5, nil)
	w2.presence("n1", true, t0, all5...)
	if p, _ := newTestEngine(w2, newClock(now)).decide(w2.store().View(), now); len(p.ops) != 0 {
		t.Fatalf("pull task: %q", opStrings(p.ops))
	}
}

func TestDecideMaxPerMinute(t *testing.T) {
	w := engineWorld(t)
	w.task(t0, "T", resource.ModePush, "fw", all5, func(t *resource.UpgradeTask) {
		t.Rollout.MaxPerMinute = 3
		// Deadlines far off, so that only the rate limit sets the next round.
		t.ResponseTimeoutSeconds, t.TimeoutSeconds = 3600, 7200
	})
	w.presence("n1", true, t0, all5...)
	sentAt := t0.Add(time.Minute)
	w.ota(sentAt, fsm.OTAOp{Op: fsm.OpSend, TaskID: "T", DeviceIDs: []string{"d1", "d2", "d3"}})
	e := newTestEngine(w, newClock(sentAt))

	// 10 s later: the minute is used up; the window frees at sentAt+60s, which is past the
	// idle bound, so the engine looks again at the idle bound.
	now := sentAt.Add(10 * time.Second)
	p, next := e.decide(w.store().View(), now)
	if len(p.ops) != 0 {
		t.Fatalf("3 pushes in the last minute under maxPerMinute 3: %q", opStrings(p.ops))
	}
	if !next.Equal(now.Add(idleRound)) {
		t.Fatalf("next round %v, want %v", next, now.Add(idleRound))
	}
	left, free := perMinute(w.store().OTARecords("T", ""), now, 3)
	if left != 0 || !free.Equal(sentAt.Add(time.Minute)) {
		t.Fatalf("perMinute = %d, %v; want 0, %v", left, free, sentAt.Add(time.Minute))
	}

	// Within the idle bound of the window's end, the next round is the window's end.
	now = sentAt.Add(58 * time.Second)
	p, next = e.decide(w.store().View(), now)
	if len(p.ops) != 0 || !next.Equal(sentAt.Add(time.Minute)) {
		t.Fatalf("at +58s: ops %q, next %v; want none and %v", opStrings(p.ops), next, sentAt.Add(time.Minute))
	}

	// A minute on, the window is free again.
	p, _ = e.decide(w.store().View(), sentAt.Add(time.Minute))
	wantOps(t, p.ops, "send task=T [d4 d5]")
}

func TestPerMinute(t *testing.T) {
	now := t0.Add(time.Hour)
	recs := func(agos ...time.Duration) []*fsm.OTARecord {
		var out []*fsm.OTARecord
		for _, ago := range agos {
			at := now.Add(-ago)
			out = append(out, &fsm.OTARecord{UpgradeTime: &at})
		}
		out = append(out, &fsm.OTARecord{}) // never sent
		return out
	}
	s := time.Second
	for _, c := range []struct {
		records []*fsm.OTARecord
		limit   int
		left    int
		free    time.Time
	}{
		{recs(), 3, 3, now},
		{recs(10*s, 70*s), 3, 2, now},                    // one is out of the window
		{recs(10*s, 30*s, 50*s), 3, 0, now.Add(10 * s)},  // the oldest leaves in 10 s
		{recs(10*s, 30*s, 50*s), 2, -1, now.Add(30 * s)}, // two must leave
		{recs(60*s, 59*s), 1, 0, now.Add(s)},             // exactly a minute ago no longer counts
	} {
		left, free := perMinute(c.records, now, c.limit)
		if left != c.left || !free.Equal(c.free) {
			t.Errorf("perMinute(limit %d) = %d, %v; want %d, %v", c.limit, left, free.Sub(now), c.left, c.free.Sub(now))
		}
	}
}

// timeoutWorld: push task T (response 30 s, upgrade 600 s, maxInFlight 2) over d1–d5, all
// online. At now: d4 was sent 601 s ago and answered; d1, d2, d3 were sent 31 s ago and only
// d2 answered; d5 waits.
func timeoutWorld(t *testing.T, now time.Time) *world {
	w := engineWorld(t)
	w.task(now.Add(-time.Hour), "T", resource.ModePush, "fw", all5, func(t *resource.UpgradeTask) { t.Rollout.MaxInFlight = 2 })
	w.presence("n1", true, now.Add(-time.Hour), all5...)
	w.ota(now.Add(-601*time.Second), fsm.OTAOp{Op: fsm.OpSend, TaskID: "T", DeviceIDs: []string{"d4"}})
	w.ota(now.Add(-600*time.Second), fsm.OTAOp{Op: fsm.OpProgress, DeviceID: "d4", Progress: 10})
	w.ota(now.Add(-31*time.Second), fsm.OTAOp{Op: fsm.OpSend, TaskID: "T", DeviceIDs: []string{"d1", "d2", "d3"}})
	w.ota(now.Add(-20*time.Second), fsm.OTAOp{Op: fsm.OpProgress, DeviceID: "d2", Progress: 10})
	return w
}

func TestDecideTimeouts(t *testing.T) {
	now := t0.Add(2 * time.Hour)
	w := timeoutWorld(t, now)
	e := newTestEngine(w, newClock(now))

	// A second before the deadlines: nothing yet, and the next round is at them.
	// (Both deadlines are at now-1s: d1 and d3 sent 31 s ago, d4 601 s ago.)
	p, next := e.decide(w.store().View(), now.Add(-2*time.Second))
	if len(p.ops) != 0 || !next.Equal(now.Add(-time.Second)) {
		t.Fatalf("before the deadlines: ops %q next %v; want none and %v", opStrings(p.ops), next, now.Add(-time.Second))
	}

	p, _ = e.decide(w.store().View(), now)
	// Timed-out records are not in flight: d2 alone is, so one more may go.
	wantOps(t, p.ops, "timeout task=T [d1 d3] kind=response", "timeout task=T [d4] kind=upgrade", "send task=T [d5]")

	res := w.ota(now, p.ops...)
	if want := map[string][]string{"T": {"d5"}}; !reflect.DeepEqual(res.Sent, want) {
		t.Fatalf("sent %v, want %v", res.Sent, want)
	}
	if got, want := w.states("T"), map[string]string{"d1": "failed", "d2": "processing", "d3": "failed", "d4": "failed", "d5": "processing"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	if r := w.record("T", "d1"); !strings.Contains(r.ErrorReason, "response timeout") {
		t.Fatalf("d1 reason %q", r.ErrorReason)
	}
	if r := w.record("T", "d4"); !strings.Contains(r.ErrorReason, "upgrade timeout") {
		t.Fatalf("d4 reason %q", r.ErrorReason)
	}
}

func TestDecideStoppedTask(t *testing.T) {
	now := t0.Add(2 * time.Hour)
	w := timeoutWorld(t, now)
	w.ota(now.Add(-10*time.Second), fsm.OTAOp{Op: fsm.OpStop, TaskID: "T"})
	e := newTestEngine(w, newClock(now))
	p, _ := e.decide(w.store().View(), now)
	// The devices processing go on and time out; nothing is sent.
	wantOps(t, p.ops, "timeout task=T [d1 d3] kind=response", "timeout task=T [d4] kind=upgrade")
}

func TestDecidePullTimeout(t *testing.T) {
	now := t0.Add(2 * time.Hour)
	w := engineWorld(t)
	w.task(now.Add(-time.Hour), "P", resource.ModePull, "fw", []string{"d1", "d2"}, func(t *resource.UpgradeTask) { t.TimeoutSeconds = 60 })
	w.ota(now.Add(-61*time.Second), fsm.OTAOp{Op: fsm.OpPulled, TaskID: "P", DeviceID: "d1"})
	w.ota(now.Add(-30*time.Second), fsm.OTAOp{Op: fsm.OpPulled, TaskID: "P", DeviceID: "d2"})
	p, next := newTestEngine(w, newClock(now)).decide(w.store().View(), now)
	wantOps(t, p.ops, "timeout task=P [d1] kind=upgrade")
	if want := now.Add(30 * time.Second); !next.Equal(now.Add(idleRound)) {
		t.Fatalf("next %v, want the idle bound (d2's deadline %v is later)", next, want)
	}
}

// delivery records the engine's Deliver calls and hands them to each node's Devices.
type delivery struct {
	mu    sync.Mutex
	calls []string // "node: task/device ..."
	nodes map[string]*Devices
}

func (d *delivery) deliver(ctx context.Context, node string, pushes []Push) ([]PushResult, error) {
	var b strings.Builder
	b.WriteString(node + ":")
	for _, p := range pushes {
		b.WriteString(" " + p.TaskID + "/" + p.DeviceID)
	}
	d.mu.Lock()
	d.calls = append(d.calls, b.String())
	d.mu.Unlock()
	devs, ok := d.nodes[node]
	if !ok {
		return nil, errors.New("no such node")
	}
	return devs.Push(ctx, pushes), nil
}

// taken returns the calls so far, sorted (nodes are delivered to concurrently), and forgets
// them.
func (d *delivery) taken() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := append([]string{}, d.calls...)
	d.calls = nil
	sort.Strings(out)
	return out
}

func TestRound(t *testing.T) {
	w := engineWorld(t)
	w.task(t0, "T", resource.ModePush, "fw", []string{"d1", "d2", "d3", "d4"}, nil)
	w.presence("n1", true, t0, "d1", "d2")
	w.presence("n2", true, t0, "d3", "d4")
	clk := newClock(t0.Add(time.Second))
	fw := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: newBlobs(t), PublicURL: "http://n", Now: clk.Now, Log: discard})
	s1, s2 := newSender(), newSender()
	s2.setFail("d3", session.ErrOffline) // n2's presence entry for d3 is stale
	dl := &delivery{nodes: map[string]*Devices{
		"n1": NewDevices(DevicesConfig{Store: w.store(), Send: s1.send, Firmware: fw, Log: discard}),
		"n2": NewDevices(DevicesConfig{Store: w.store(), Send: s2.send, Firmware: fw, Log: discard}),
	}}
	m := NewMetrics(nil, nil)
	e := NewEngine(EngineConfig{Store: w.store(), Apply: w.applyCmd, Deliver: dl.deliver, Metrics: m, Log: discard, Now: clk.Now})
	ctx := context.Background()

	round1 := clk.Now()
	next, _, err := e.round(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !next.Equal(round1) {
		t.Fatalf("after a round that changed the state, next = %v, want at once (%v)", next, round1)
	}
	if got, want := dl.taken(), []string{"n1: T/d1 T/d2", "n2: T/d3 T/d4"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("deliveries %q, want %q", got, want)
	}
	if got, want := w.states("T"), map[string]string{"d1": "processing", "d2": "processing", "d3": "waiting", "d4": "processing"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("records %v, want %v (d3 requeued)", got, want)
	}
	if r := w.record("T", "d3"); r.UpgradeTime != nil || r.Attempts != 0 {
		t.Fatalf("requeued d3 %+v: want no upgrade time and no attempt", r)
	}
	if r := w.record("T", "d1"); r.Attempts != 1 || r.UpgradeTime == nil || !r.UpgradeTime.Equal(round1) {
		t.Fatalf("d1 %+v: want one attempt at %v", r, round1)
	}
	if got := value(t, m.pushes); got != 3 {
		t.Fatalf("pushes = %v, want 3", got)
	}
	if got := value(t, m.pushFailures.WithLabelValues(PushOffline)); got != 1 {
		t.Fatalf("offline push failures = %v, want 1", got)
	}
	// The messages carry links that expire timeoutSeconds + 1 h after the round.
	msg := s1.next(t)
	id, exp, sig := linkParts(t, msg.m.URL)
	if err := fw.CheckSignature(id, exp, sig); err != nil {
		t.Fatal(err)
	}
	if want := round1.Add(resource.DefaultTimeoutSeconds*time.Second + time.Hour).Unix(); exp != strconv.FormatInt(want, 10) {
		t.Fatalf("link expires %s, want %d", exp, want)
	}

	// A second later d3 still looks online but sits out its cooldown: nothing is done, and
	// the next round is when the cooldown ends.
	clk.Set(round1.Add(time.Second))
	next, ws, err := e.round(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := dl.taken(); len(got) != 0 {
		t.Fatalf("during d3's cooldown: deliveries %q", got)
	}
	if !next.Equal(round1.Add(2 * time.Second)) {
		t.Fatalf("next round %v, want the end of the cooldown %v", next, round1.Add(2*time.Second))
	}
	// The round watches presence: a device coming online wakes it.
	w.presence("n2", true, round1.Add(time.Second), "d5")
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := ws.WatchCtx(wctx); err != nil {
		t.Fatalf("the round's watch did not fire on a presence change: %v", err)
	}
	cancel()

	// After the cooldown d3, back for real, is sent to.
	s2.setFail("d3", nil)
	clk.Set(round1.Add(2*time.Second + time.Millisecond))
	if _, _, err := e.round(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := dl.taken(), []string{"n2: T/d3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("deliveries %q, want %q", got, want)
	}
	if r := w.record("T", "d3"); r.State != resource.RecordProcessing || r.Attempts != 1 {
		t.Fatalf("d3 %+v: want processing after one attempt", r)
	}
}

// A round whose entry committed although Apply said it failed (leadership lost while
// committing) delivers the pushes that entry recorded: no later leader will.
func TestRoundOutcomeUnknown(t *testing.T) {
	w := engineWorld(t)
	w.task(t0, "T", resource.ModePush, "fw", []string{"d1", "d2"}, nil)
	w.presence("n1", true, t0, "d1", "d2")
	clk := newClock(t0.Add(time.Second))
	fw := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: newBlobs(t), Now: clk.Now, Log: discard})
	s := newSender()
	dl := &delivery{nodes: map[string]*Devices{"n1": NewDevices(DevicesConfig{Store: w.store(), Send: s.send, Firmware: fw, Log: discard})}}
	lost := errors.New("leadership lost")
	apply := func(ctx context.Context, cmd []byte) (any, error) {
		w.apply(cmd)
		return nil, lost
	}
	e := NewEngine(EngineConfig{Store: w.store(), Apply: apply, Deliver: dl.deliver, Log: discard, Now: clk.Now})
	if _, _, err := e.round(context.Background()); !errors.Is(err, lost) {
		t.Fatalf("round = %v, want the Apply error", err)
	}
	if got, want := dl.taken(), []string{"n1: T/d1 T/d2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("deliveries %q, want %q", got, want)
	}
}

// Run, on the real clock, sends to online devices and ends with its context.
func TestEngineRun(t *testing.T) {
	w := engineWorld(t)
	w.task(time.Now(), "T", resource.ModePush, "fw", []string{"d1", "d2", "d3"}, nil)
	w.presence("n1", true, time.Now(), "d1", "d2")
	fw := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: newBlobs(t), Log: discard})
	s := newSender()
	dl := &delivery{nodes: map[string]*Devices{"n1": NewDevices(DevicesConfig{Store: w.store(), Send: s.send, Firmware: fw, Log: discard})}}
	e := NewEngine(EngineConfig{Store: w.store(), Apply: w.applyCmd, Deliver: dl.deliver, Log: discard, MinRound: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	got := map[string]bool{s.next(t).device: true, s.next(t).device: true}
	if !got["d1"] || !got["d2"] {
		t.Fatalf("pushed to %v, want d1 and d2", got)
	}
	// d3 coming online wakes the engine, which sends to it at once.
	w.presence("n1", true, time.Now(), "d3")
	if m := s.next(t); m.device != "d3" {
		t.Fatalf("pushed to %q, want d3", m.device)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end with its context")
	}
	if got := len(s.all()); got != 3 {
		t.Fatalf("%d pushes, want 3 (never twice)", got)
	}
}

func TestDecideMaxSends(t *testing.T) {
	w := engineWorld(t)
	w.task(t0, "T1", resource.ModePush, "fw", []string{"d1", "d2", "d3"}, nil)
	w.task(t0, "T2", resource.ModePush, "fw", []string{"d4", "d5"}, nil)
	w.presence("n1", true, t0, all5...)
	for _, c := range []struct {
		max  int
		want []string
	}{
		{3, []string{"send task=T1 [d1 d2 d3]"}},
		{4, []string{"send task=T1 [d1 d2 d3]", "send task=T2 [d4]"}},
		{2, []string{"send task=T1 [d1 d2]"}},
	} {
		e := NewEngine(EngineConfig{Store: w.store(), Apply: w.applyCmd, Log: discard, MaxSends: c.max})
		p, _ := e.decide(w.store().View(), t0)
		wantOps(t, p.ops, c.want...)
	}
}

// A node that cannot be reached may have taken the pushes: they stay processing and are
// left to the response timeout.
func TestRoundNodeUnreachable(t *testing.T) {
	w := engineWorld(t)
	w.task(t0, "T", resource.ModePush, "fw", []string{"d1", "d2"}, nil)
	w.presence("n1", true, t0, "d1")
	w.presence("n9", true, t0, "d2")
	clk := newClock(t0.Add(time.Second))
	fw := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: newBlobs(t), Now: clk.Now, Log: discard})
	s := newSender()
	dl := &delivery{nodes: map[string]*Devices{"n1": NewDevices(DevicesConfig{Store: w.store(), Send: s.send, Firmware: fw, Log: discard})}}
	m := NewMetrics(nil, nil)
	e := NewEngine(EngineConfig{Store: w.store(), Apply: w.applyCmd, Deliver: dl.deliver, Metrics: m, Log: discard, Now: clk.Now})
	if _, _, err := e.round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := dl.taken(), []string{"n1: T/d1", "n9: T/d2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("deliveries %q, want %q", got, want)
	}
	if got := value(t, m.pushFailures.WithLabelValues("node_unreachable")); got != 1 {
		t.Fatalf("node_unreachable = %v, want 1", got)
	}
	if got, want := w.states("T"), map[string]string{"d1": "processing", "d2": "processing"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
}

// A round whose entry is refused is retried; the timeouts it decided are counted once
// recorded.
func TestEngineRunRetriesAfterApplyFails(t *testing.T) {
	w := engineWorld(t)
	start := time.Now()
	w.task(start.Add(-time.Hour), "P", resource.ModePull, "fw", []string{"d1"}, func(t *resource.UpgradeTask) { t.TimeoutSeconds = 1 })
	w.ota(start.Add(-2*time.Second), fsm.OTAOp{Op: fsm.OpPulled, TaskID: "P", DeviceID: "d1"})
	var mu sync.Mutex
	calls := 0
	apply := func(ctx context.Context, cmd []byte) (any, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			return nil, errors.New("not the leader")
		}
		return w.applyCmd(ctx, cmd)
	}
	m := NewMetrics(nil, nil)
	e := NewEngine(EngineConfig{Store: w.store(), Apply: apply, Metrics: m, Log: discard, MinRound: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	eventually(t, "d1 timed out", func() bool { return w.record("P", "d1").State == resource.RecordFailed })
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if calls < 2 {
		t.Fatalf("Apply called %d times", calls)
	}
	if got := value(t, m.timeouts.WithLabelValues(fsm.TimeoutUpgrade)); got != 1 {
		t.Fatalf("upgrade timeouts = %v, want 1", got)
	}
}
