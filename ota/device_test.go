package ota

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/session"
)

func progress(p int) protocol.Message {
	return protocol.Message{Type: protocol.TypeFirmwareProgress, Progress: p}
}

func wantOps(t testing.TB, got []fsm.OTAOp, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if g := opStrings(got); !reflect.DeepEqual(g, want) {
		t.Fatalf("batch\n got %q\nwant %q", g, want)
	}
}

func TestReportsCoalesce(t *testing.T) {
	t.Run("plain progress of a device coalesces to the last", func(t *testing.T) {
		d := NewDevices(DevicesConfig{Log: discard})
		d.Receive("d1", progress(10))
		d.Receive("d2", progress(5))
		d.Receive("d1", progress(20))
		d.Receive("d1", progress(30))
		wantOps(t, d.take(100), "progress d1 p=30", "progress d2 p=5")
		if got := value(t, d.metrics.reports.WithLabelValues(protocol.TypeFirmwareProgress)); got != 4 {
			t.Fatalf("reports counted %v, want 4", got)
		}
	})
	t.Run("an upgrade reply then a completing progress are one op", func(t *testing.T) {
		d := NewDevices(DevicesConfig{Log: discard})
		d.Receive("d1", protocol.Message{Type: protocol.TypeFirmwareUpgradeAck, FirmwareID: "fw"})
		d.Receive("d1", protocol.Message{Type: protocol.TypeFirmwareProgress, Progress: 100, Complete: true, Success: ptr(true)})
		wantOps(t, d.take(100), "progress d1 p=100 complete success=true")
	})
	t.Run("a successful reply is plain too", func(t *testing.T) {
		d := NewDevices(DevicesConfig{Log: discard})
		d.Receive("d1", protocol.Message{Type: protocol.TypeFirmwareUpgradeAck, Success: ptr(true)})
		d.Receive("d1", progress(40))
		wantOps(t, d.take(100), "progress d1 p=40")
	})
	t.Run("a failed reply supersedes plain progress and carries its reason", func(t *testing.T) {
		d := NewDevices(DevicesConfig{Log: discard})
		d.Receive("d1", progress(10))
		d.Receive("d1", protocol.Message{Type: protocol.TypeFirmwareUpgradeAck, Success: ptr(false), Message: "busy", Code: "E1"})
		d.Receive("d2", protocol.Message{Type: protocol.TypeFirmwareUpgradeAck, Success: ptr(false), Code: "E2"})
		wantOps(t, d.take(100), `progress d1 success=false reason="busy"`, `progress d2 success=false reason="E2"`)
	})
	t.Run("a failure is never overwritten by later plain progress", func(t *testing.T) {
		d := NewDevices(DevicesConfig{Log: discard})
		d.Receive("d1", protocol.Message{Type: protocol.TypeFirmwareProgress, Success: ptr(false), ErrorReason: "flash error"})
		d.Receive("d1", progress(50))
		d.Receive("d1", progress(60))
		wantOps(t, d.take(100), `progress d1 success=false reason="flash error"`, "progress d1 p=60")
	})
	t.Run("a completion is never overwritten by later plain progress", func(t *testing.T) {
		d := NewDevices(DevicesConfig{Log: discard})
		d.Receive("d1", protocol.Message{Type: protocol.TypeFirmwareProgress, Complete: true})
		d.Receive("d1", progress(10))
		wantOps(t, d.take(100), "progress d1 complete", "progress d1 p=10")
	})
	t.Run("version reports", func(t *testing.T) {
		d := NewDevices(DevicesConfig{Log: discard})
		d.Receive("d1", progress(10))
		d.Receive("d1", protocol.Message{Type: protocol.TypeFirmwareReport, Version: "2.0"})
		d.Receive("d2", protocol.Message{Type: protocol.TypeFirmwareReport}) // no version: nothing to record
		d.Receive("d1", progress(20))
		wantOps(t, d.take(100), "report d1 version=2.0", "progress d1 p=20")
	})
	t.Run("order across devices is kept", func(t *testing.T) {
		d := NewDevices(DevicesConfig{Log: discard})
		d.Receive("d3", progress(1))
		d.Receive("d1", protocol.Message{Type: protocol.TypeFirmwareProgress, Complete: true})
		d.Receive("d2", progress(2))
		d.Receive("d3", progress(3))
		d.Receive("d4", protocol.Message{Type: protocol.TypeFirmwareReport, Version: "1"})
		d.Receive("d2", progress(4))
		wantOps(t, d.take(100), "progress d3 p=3", "progress d1 complete", "progress d2 p=4", "report d4 version=1")
	})
}

func TestTakeAndGiveBack(t *testing.T) {
	d := NewDevices(DevicesConfig{Log: discard})
	if d.take(10) != nil {
		t.Fatal("an empty queue gave a batch")
	}
	for i := 1; i <= 4; i++ {
		d.Receive("d"+strconv.Itoa(i), progress(i))
	}
	batch := d.take(2)
	wantOps(t, batch, "progress d1 p=1", "progress d2 p=2")
	// What stays behind still coalesces.
	d.Receive("d4", progress(40))
	d.Receive("d5", progress(5))
	// A batch that could not be written goes back in front, in order.
	d.giveBack(batch)
	wantOps(t, d.take(100), "progress d1 p=1", "progress d2 p=2", "progress d3 p=3", "progress d4 p=40", "progress d5 p=5")
	if d.take(100) != nil {
		t.Fatal("taken twice")
	}

	// What stays behind keeps its order: a plain report of d1 followed by d1's pull is not
	// replaced by d1's next report, which would then land before the pull (and be lost).
	d.Receive("d0", progress(1))
	d.Receive("d1", progress(10))
	d.queue(fsm.OTAOp{Op: fsm.OpPulled, TaskID: "P", DeviceID: "d1"}, false)
	d.Receive("d2", progress(20))
	wantOps(t, d.take(1), "progress d0 p=1")
	d.Receive("d1", protocol.Message{Type: protocol.TypeFirmwareProgress, Complete: true})
	d.Receive("d2", progress(30))
	wantOps(t, d.take(100), "progress d1 p=10", "pulled task=P d1", "progress d2 p=30", "progress d1 complete")

	// After a give-back nothing coalesces with what was given back.
	d.Receive("d1", progress(10))
	batch = d.take(100)
	d.giveBack(batch)
	d.Receive("d1", progress(20))
	wantOps(t, d.take(100), "progress d1 p=10", "progress d1 p=20")
}

// devicesWorld: product p with devices d1–d5, firmware fw (2.0) and push task T over d1–d3,
// all sent at t0.
func devicesWorld(t *testing.T) *world {
	w := newWorld(t)
	w.init("key")
	w.product("p")
	w.devices("p", "d1", "d2", "d3", "d4", "d5")
	w.putFirmware(fakeFirmware("fw", "p", "2.0", 2))
	w.task(t0, "T", resource.ModePush, "fw", []string{"d1", "d2", "d3"}, nil)
	if res := w.ota(t0, fsm.OTAOp{Op: fsm.OpSend, TaskID: "T", DeviceIDs: []string{"d1", "d2", "d3"}}); len(res.Sent["T"]) != 3 {
		t.Fatalf("sent %v", res.Sent)
	}
	return w
}

func TestRunRetriesUntilRecorded(t *testing.T) {
	w := devicesWorld(t)
	var calls atomic.Int32
	var mu sync.Mutex
	var applied [][]byte
	recorded := make(chan struct{}, 10)
	propose := func(ctx context.Context, cmd []byte) error {
		if calls.Add(1) <= 2 {
			return errors.New("no leader")
		}
		if err := w.propose(ctx, cmd); err != nil {
			return err
		}
		mu.Lock()
		applied = append(applied, cmd)
		mu.Unlock()
		recorded <- struct{}{}
		return nil
	}
	m := NewMetrics(nil, nil)
	d := NewDevices(DevicesConfig{Store: w.store(), Propose: propose, Metrics: m, Log: discard, Now: func() time.Time { return t0.Add(time.Minute) },
		FlushInterval: time.Millisecond})
	d.Receive("d1", protocol.Message{Type: protocol.TypeFirmwareUpgradeAck, FirmwareID: "fw"})
	d.Receive("d1", progress(50))
	d.Receive("d2", protocol.Message{Type: protocol.TypeFirmwareProgress, Progress: 100, Complete: true, Success: ptr(true)})
	d.Receive("d3", protocol.Message{Type: protocol.TypeFirmwareProgress, Success: ptr(false), ErrorReason: "flash error"})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	select {
	case <-recorded:
	case <-time.After(10 * time.Second):
		t.Fatal("the reports were not recorded within 10s")
	}
	cancel()
	<-done

	if n := calls.Load(); n != 3 {
		t.Fatalf("Propose called %d times, want 3 (two failures, one success)", n)
	}
	if len(applied) != 1 {
		t.Fatalf("%d commands applied, want 1", len(applied))
	}
	req := decodeOTA(t, applied[0])
	wantOps(t, req.Ops, "progress d1 p=50", "progress d2 p=100 complete success=true", `progress d3 success=false reason="flash error"`)
	if !req.Now.Equal(t0.Add(time.Minute)) {
		t.Fatalf("batch stamped %v", req.Now)
	}
	if got := value(t, m.batchFails); got != 2 {
		t.Fatalf("batch failures = %v, want 2", got)
	}
	r1, r2, r3 := w.record("T", "d1"), w.record("T", "d2"), w.record("T", "d3")
	if r1.State != resource.RecordProcessing || r1.Progress != 50 || !r1.Responded {
		t.Fatalf("d1 = %+v, want processing at 50%%, responded", r1)
	}
	if r2.State != resource.RecordSuccess || r2.Progress != 100 {
		t.Fatalf("d2 = %+v, want success", r2)
	}
	if r3.State != resource.RecordFailed || r3.ErrorReason != "flash error" {
		t.Fatalf("d3 = %+v, want failed with the device's reason", r3)
	}
}

func TestRunFlushesWhenStopping(t *testing.T) {
	w := devicesWorld(t)
	// A flush interval no test waits for: only stopping flushes.
	d := NewDevices(DevicesConfig{Store: w.store(), Propose: w.propose, Log: discard, FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	d.Receive("d1", protocol.Message{Type: protocol.TypeFirmwareProgress, Complete: true})
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
	if r := w.record("T", "d1"); r.State != resource.RecordSuccess {
		t.Fatalf("d1 = %s after stopping, want success", r.State)
	}
}

// pullWorld: product p with devices d1–d5; firmwares fw1 (1.0, order 1), fw2 (2.0, order
// 2), fw3 (3.0, order 3); running pull tasks A (fw2) and B (fw3) over d1, d2; pull task C
// (fw3) over d3, stopped.
func pullWorld(t *testing.T) *world {
	w := newWorld(t)
	w.init("key")
	w.product("p")
	w.devices("p", "d1", "d2", "d3", "d4", "d5")
	w.putFirmware(fakeFirmware("fw1", "p", "1.0", 1))
	fw2 := fakeFirmware("fw2", "p", "2.0", 2)
	fw2.Properties = []resource.FirmwareProperty{{ID: "channel", Value: "beta"}}
	w.putFirmware(fw2)
	w.putFirmware(fakeFirmware("fw3", "p", "3.0", 3))
	w.task(t0, "A", resource.ModePull, "fw2", []string{"d1", "d2"}, nil)
	w.task(t0, "B", resource.ModePull, "fw3", []string{"d1", "d2"}, func(t *resource.UpgradeTask) { t.TimeoutSeconds = 900 })
	w.task(t0, "C", resource.ModePull, "fw3", []string{"d3"}, nil)
	w.ota(t0, fsm.OTAOp{Op: fsm.OpStop, TaskID: "C"})
	return w
}

func TestAnswerPull(t *testing.T) {
	w := pullWorld(t)
	now := t0.Add(time.Minute)
	fw := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: newBlobs(t), PublicURL: "http://n1", Now: func() time.Time { return now }, Log: discard})
	s := newSender()
	d := NewDevices(DevicesConfig{Store: w.store(), Propose: w.propose, Send: s.send, Firmware: fw, Log: discard, Now: func() time.Time { return now }})

	ask := func(device string, m protocol.Message) protocol.Message {
		t.Helper()
		m.Type = protocol.TypeFirmwarePull
		d.answerPull(device, m)
		got := s.next(t)
		if got.device != device {
			t.Fatalf("the answer went to %q, want %q", got.device, device)
		}
		if got.m.Type != protocol.TypeFirmwarePullReply || got.m.MessageID != m.MessageID {
			t.Fatalf("answer %+v: want a %s with messageId %q", got.m, protocol.TypeFirmwarePullReply, m.MessageID)
		}
		return got.m
	}
	offered := func(r protocol.Message, fwID, version string, timeout int) {
		t.Helper()
		if r.Success == nil || !*r.Success || r.FirmwareID != fwID || r.Version != version {
			t.Fatalf("answer %+v, want success with %s (%s)", r, fwID, version)
		}
		if r.Sign != strings.Repeat("b", 64) || r.SignMethod != resource.SignSHA256 || r.Size != 1024 {
			t.Fatalf("answer %+v: sign, method or size not the firmware's", r)
		}
		id, exp, sig := linkParts(t, r.URL)
		if id != fwID {
			t.Fatalf("link %q names firmware %q", r.URL, id)
		}
		if err := fw.CheckSignature(id, exp, sig); err != nil {
			t.Fatalf("the link in the answer is refused: %v", err)
		}
		if want := now.Add(time.Duration(timeout)*time.Second + time.Hour).Unix(); exp != strconv.FormatInt(want, 10) {
			t.Fatalf("link expires %s, want %d (timeoutSeconds + 1h)", exp, want)
		}
	}
	refused := func(r protocol.Message) {
		t.Helper()
		if r.Success == nil || *r.Success || r.Code != "no_firmware" || r.FirmwareID != "" || r.URL != "" {
			t.Fatalf("answer %+v, want success:false code no_firmware and no firmware", r)
		}
	}

	offered(ask("d1", protocol.Message{MessageID: "m1", CurrentVersion: "1.0"}), "fw3", "3.0", 900)
	r := ask("d1", protocol.Message{MessageID: "m2", CurrentVersion: "1.0", RequestVersion: "2.0"})
	offered(r, "fw2", "2.0", resource.DefaultTimeoutSeconds)
	if r.Parameters["channel"] != "beta" {
		t.Fatalf("parameters %v, want the firmware's properties", r.Parameters)
	}
	refused(ask("d1", protocol.Message{MessageID: "m3", RequestVersion: "9.9"})) // not offered
	refused(ask("d1", protocol.Message{MessageID: "m4", CurrentVersion: "3.0"})) // nothing newer
	refused(ask("d3", protocol.Message{MessageID: "m5", CurrentVersion: "1.0"})) // its task is stopped
	refused(ask("d3", protocol.Message{MessageID: "m6", RequestVersion: "3.0"})) // even asked by version
	refused(ask("d4", protocol.Message{MessageID: "m7", CurrentVersion: "1.0"})) // in no task
	offered(ask("d2", protocol.Message{MessageID: "m8", CurrentVersion: "0.1-unknown"}), "fw3", "3.0", 900)

	// Through Receive, off the caller's goroutine.
	d.Receive("d2", protocol.Message{Type: protocol.TypeFirmwarePull, MessageID: "m9", CurrentVersion: "2.0"})
	if got := s.next(t); got.m.MessageID != "m9" || got.m.FirmwareID != "fw3" {
		t.Fatalf("answer through Receive: %+v", got.m)
	}

	// An answer that does not reach the device records nothing.
	s.setFail("d1", session.ErrOffline)
	d.answerPull("d1", protocol.Message{Type: protocol.TypeFirmwarePull, MessageID: "lost", CurrentVersion: "1.0"})

	// Receive's answer queues its op after the send returns.
	eventually(t, "four pulls queued", func() bool { d.mu.Lock(); defer d.mu.Unlock(); return len(d.pending) == 4 })
	batch := d.take(100)
	wantOps(t, batch, "pulled task=B d1", "pulled task=A d1", "pulled task=B d2", "pulled task=B d2")
	if err := d.propose(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A/d1": "processing", "A/d2": "waiting", "B/d1": "processing", "B/d2": "processing", "C/d3": "canceled"}
	got := map[string]string{}
	for _, task := range []string{"A", "B", "C"} {
		for dev, st := range w.states(task) {
			got[task+"/"+dev] = st
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records after the flush %v, want %v", got, want)
	}
	if r := w.record("B", "d1"); r.UpgradeTime == nil || !r.UpgradeTime.Equal(now) || !r.Responded {
		t.Fatalf("pulled record %+v: want upgradeTime %v and responded", r, now)
	}
}

func TestPush(t *testing.T) {
	w := newWorld(t)
	w.init("key")
	w.product("p")
	fwRec := fakeFirmware("fw", "p", "2.0", 2)
	fwRec.Properties = []resource.FirmwareProperty{{ID: "mode", Value: "safe"}}
	w.putFirmware(fwRec)
	fw := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: newBlobs(t), PublicURL: "http://n1", Now: func() time.Time { return t0 }, Log: discard})
	s := newSender()
	s.setFail("d2", fmt.Errorf("downlink: %w", session.ErrOffline))
	s.setFail("d4", errors.New("write: broken pipe"))
	d := NewDevices(DevicesConfig{Store: w.store(), Send: s.send, Firmware: fw, Log: discard})
	expires := t0.Add(2 * time.Hour)
	out := d.Push(context.Background(), []Push{
		{TaskID: "T", DeviceID: "d1", FirmwareID: "fw", Expires: expires},
		{TaskID: "T", DeviceID: "d2", FirmwareID: "fw", Expires: expires},
		{TaskID: "T", DeviceID: "d3", FirmwareID: "nope", Expires: expires},
		{TaskID: "T", DeviceID: "d4", FirmwareID: "fw", Expires: expires},
	})
	outcomes := map[string]string{}
	for i, r := range out {
		outcomes[r.DeviceID] = r.Outcome
		if (r.Outcome == PushSent) != (r.Error == "") {
			t.Errorf("result %d %+v: an error exactly when not sent", i, r)
		}
	}
	if want := map[string]string{"d1": PushSent, "d2": PushOffline, "d3": PushFailed, "d4": PushFailed}; !reflect.DeepEqual(outcomes, want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
	if out[2].DeviceID != "d3" || !strings.Contains(out[2].Error, "nope") {
		t.Fatalf("unknown firmware result %+v", out[2])
	}
	msgs := s.all()
	if len(msgs) != 1 || msgs[0].device != "d1" {
		t.Fatalf("messages delivered %+v, want one to d1", msgs)
	}
	m := msgs[0].m
	if m.Type != protocol.TypeFirmwareUpgrade || m.MessageID != "ota-T-d1" || m.FirmwareID != "fw" || m.Version != "2.0" ||
		m.Size != 1024 || m.SignMethod != resource.SignSHA256 || m.Parameters["mode"] != "safe" {
		t.Fatalf("upgrade message %+v", m)
	}
	id, exp, sig := linkParts(t, m.URL)
	if err := fw.CheckSignature(id, exp, sig); err != nil || exp != strconv.FormatInt(expires.Unix(), 10) {
		t.Fatalf("link %q (expires %s): %v", m.URL, exp, err)
	}
}
