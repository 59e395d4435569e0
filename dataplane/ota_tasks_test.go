package dataplane_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/resource"
)

// totalPushes is the number of firmware pushes the devices received.
func totalPushes(devices []*testutil.OTADevice) int {
	n := 0
	for _, d := range devices {
		n += len(d.Pushes())
	}
	return n
}

// TestOTATimeoutsAndRetry: a device that never answers fails after responseTimeoutSeconds,
// one that stalls after timeoutSeconds, each with its own reason; retry sends them again and
// they succeed; retry of a pull task is refused.
func TestOTATimeoutsAndRetry(t *testing.T) {
	c, port, p, ids, fw, _ := otaCluster(t, 3)
	silent := connectOTA(t, port, p, ids[0], 0, testutil.OTABehaviour{Silent: true})
	stall := connectOTA(t, port, p, ids[1], 1, testutil.OTABehaviour{Stall: true})
	good := connectOTA(t, port, p, ids[2], 2, testutil.OTABehaviour{})
	devices := []*testutil.OTADevice{silent, stall, good}
	task := testutil.CreateTask(t, c.admin, map[string]any{"name": "timeouts", "firmwareId": fw.ID, "mode": "push",
		"responseTimeoutSeconds": 1, "timeoutSeconds": 3})
	done := testutil.WaitTask(t, c.admin, task.ID, "completed", func(t *testutil.Task) bool { return t.State == resource.TaskCompleted })
	if done.Counts.Success != 1 || done.Counts.Failed != 2 {
		t.Fatalf("counts %+v, want 1 success and 2 failed", done.Counts)
	}
	records := testutil.TaskRecords(t, c.admin, task.ID, "")
	if r := records[silent.ID]; r.State != resource.RecordFailed || !strings.Contains(r.ErrorReason, "response timeout") {
		t.Errorf("silent device: %+v, want failed by the response timeout", r)
	}
	if r := records[stall.ID]; r.State != resource.RecordFailed || !strings.Contains(r.ErrorReason, "upgrade timeout") || r.Progress != 10 {
		t.Errorf("stalled device: %+v, want failed by the upgrade timeout at progress 10", r)
	}
	if records[silent.ID].ErrorReason == records[stall.ID].ErrorReason {
		t.Error("the two timeouts leave the same reason")
	}
	if got := testutil.Metric(t, testutil.Leader(t, c.nodes).Client(c.admin.Token), "linkops_ota_timeouts_total", map[string]string{"kind": "response"}); got < 1 {
		t.Errorf("linkops_ota_timeouts_total{kind=response} = %v on the leader", got)
	}
	// 批量重试: the failed devices are sent again, and now they upgrade.
	silent.SetBehaviour(testutil.OTABehaviour{})
	stall.SetBehaviour(testutil.OTABehaviour{})
	var retried testutil.Task
	testutil.Do(t, c.admin, http.MethodPost, "/api/v1/upgrade-tasks/"+task.ID+"/retry", nil, &retried)
	if retried.State != resource.TaskRunning || retried.Counts.Waiting != 2 {
		t.Errorf("after retry: state %s counts %+v, want running with 2 waiting", retried.State, retried.Counts)
	}
	done = testutil.WaitTask(t, c.admin, task.ID, "completed again", func(t *testutil.Task) bool { return t.State == resource.TaskCompleted })
	if done.Counts.Success != 3 {
		t.Errorf("after retry: counts %+v, want 3 success", done.Counts)
	}
	if n := []int{len(silent.Pushes()), len(stall.Pushes()), len(good.Pushes())}; n[0] != 2 || n[1] != 2 || n[2] != 1 {
		t.Errorf("pushes received %v, want [2 2 1]", n)
	}
	_ = devices
	pull := testutil.CreateTask(t, c.admin, map[string]any{"name": "pull", "firmwareId": fw.ID, "mode": "pull"})
	if _, err := c.admin.Do(context.Background(), http.MethodPost, "/api/v1/upgrade-tasks/"+pull.ID+"/retry", nil, nil); problemCode(err) != "retry_push_only" {
		t.Errorf("retry of a pull task: %v, want retry_push_only", err)
	}
}

// TestOTAStopResumeAndOffline: stop cancels the waiting devices and nothing more is sent;
// resume sends them; a device offline when the task started is sent to when it connects.
func TestOTAStopResumeAndOffline(t *testing.T) {
	c, port, p, ids, fw, _ := otaCluster(t, 7)
	var devices []*testutil.OTADevice
	for i, id := range ids[:6] {
		devices = append(devices, connectOTA(t, port, p, id, i, testutil.OTABehaviour{Stall: true}))
	}
	late := ids[6] // not connected yet
	task := testutil.CreateTask(t, c.admin, map[string]any{"name": "stop", "firmwareId": fw.ID, "mode": "push",
		"timeoutSeconds": 2, "rollout": map[string]any{"maxInFlight": 2}})
	testutil.WaitTask(t, c.admin, task.ID, "two devices processing", func(t *testutil.Task) bool { return t.Counts.Processing == 2 })
	// A PUT edits the settings of a running campaign and never its devices or state.
	var renamed testutil.Task
	testutil.Do(t, c.admin, http.MethodPut, "/api/v1/upgrade-tasks/"+task.ID, map[string]any{"name": "renamed", "firmwareId": "other",
		"mode": "pull", "timeoutSeconds": 2, "rollout": map[string]any{"maxInFlight": 2}, "state": "completed"}, &renamed)
	if renamed.Name != "renamed" || renamed.Mode != "push" || renamed.FirmwareID != fw.ID || renamed.State != resource.TaskRunning || renamed.Counts.Total() != 7 {
		t.Fatalf("after PUT: %+v", renamed)
	}
	var stopped testutil.Task
	testutil.Do(t, c.admin, http.MethodPost, "/api/v1/upgrade-tasks/"+task.ID+"/stop", nil, &stopped)
	if stopped.State != resource.TaskStopped || stopped.Counts.Canceled != 5 || stopped.Counts.Processing != 2 {
		t.Fatalf("after stop: state %s counts %+v, want stopped, 5 canceled, 2 processing", stopped.State, stopped.Counts)
	}
	// The two processing devices go on (and fail by the upgrade timeout): in-flight room
	// opens, yet nothing more is sent.
	testutil.WaitTask(t, c.admin, task.ID, "the processing devices finished", func(t *testutil.Task) bool { return t.Counts.Failed == 2 })
	time.Sleep(500 * time.Millisecond) // a negative check: nothing is sent meanwhile
	if n := totalPushes(devices); n != 2 {
		t.Fatalf("%d pushes after stop, want the 2 sent before it", n)
	}
	if got := testutil.GetTask(t, c.admin, task.ID); got.State != resource.TaskStopped {
		t.Errorf("state %s after the processing ones finished, want stopped", got.State)
	}
	for _, d := range devices {
		d.SetBehaviour(testutil.OTABehaviour{})
	}
	var resumed testutil.Task
	testutil.Do(t, c.admin, http.MethodPost, "/api/v1/upgrade-tasks/"+task.ID+"/resume", nil, &resumed)
	if resumed.State != resource.TaskRunning || resumed.Counts.Waiting != 5 {
		t.Errorf("after resume: state %s counts %+v, want running with 5 waiting", resumed.State, resumed.Counts)
	}
	testutil.WaitTask(t, c.admin, task.ID, "the 4 online waiting devices upgraded", func(t *testutil.Task) bool { return t.Counts.Success == 4 })
	if r := testutil.TaskRecords(t, c.admin, task.ID, "waiting")[late]; r.State != resource.RecordWaiting {
		t.Fatalf("the offline device's record: %+v, want waiting", r)
	}
	d := connectOTA(t, port, p, late, 6, testutil.OTABehaviour{})
	done := testutil.WaitTask(t, c.admin, task.ID, "completed", func(t *testutil.Task) bool { return t.State == resource.TaskCompleted })
	if done.Counts.Success != 5 || done.Counts.Failed != 2 || len(d.Pushes()) != 1 || d.Version() != "2.0" {
		t.Errorf("final counts %+v; the late device got %d pushes and runs %s", done.Counts, len(d.Pushes()), d.Version())
	}
}

// TestOTAPull: firmware/pull gets the highest versionOrder a running pull task offers the
// device above its current version, or exactly requestVersion; nothing to offer answers
// no_firmware; the record follows the device's progress to success.
func TestOTAPull(t *testing.T) {
	c, port, p, ids, fw2, _ := otaCluster(t, 3)
	fw3content := firmwareBytes("3.0", 10<<10)
	fw3 := testutil.MustUploadFirmware(t, c.admin, testutil.FirmwareForm{ID: "fw3", Name: "fw3", ProductID: p.ID, Version: "3.0",
		VersionOrder: 3, SignMethod: "md5", Sign: md5Hex(fw3content)}, fw3content)
	testutil.MustUploadFirmware(t, c.admin, testutil.FirmwareForm{ID: "fw1", Name: "fw1", ProductID: p.ID, Version: "1.0",
		VersionOrder: 1, SignMethod: "sha256"}, firmwareBytes("1.0", 1000))
	t2 := testutil.CreateTask(t, c.admin, map[string]any{"name": "pull 2", "firmwareId": fw2.ID, "mode": "pull", "deviceIds": ids[:2]})
	t3 := testutil.CreateTask(t, c.admin, map[string]any{"name": "pull 3", "firmwareId": fw3.ID, "mode": "pull", "deviceIds": ids[:2]})
	c.synced(t)
	d0 := connectOTA(t, port, p, ids[0], 0, testutil.OTABehaviour{})
	d1 := connectOTA(t, port, p, ids[1], 1, testutil.OTABehaviour{})
	d2 := connectOTA(t, port, p, ids[2], 2, testutil.OTABehaviour{})

	a0 := d0.Pull(t, "")
	if a0.Success == nil || !*a0.Success || a0.FirmwareID != fw3.ID || a0.Version != "3.0" || a0.Sign != md5Hex(fw3content) || a0.URL == "" {
		t.Fatalf("pull from 1.0: %+v, want firmware fw3 (the highest order offered)", a0)
	}
	a1 := d1.Pull(t, "2.0")
	if a1.FirmwareID != fw2.ID || a1.Version != "2.0" {
		t.Fatalf("pull of requestVersion 2.0: %+v, want fw2", a1)
	}
	if a2 := d2.Pull(t, ""); a2.Success == nil || *a2.Success || a2.Code != "no_firmware" {
		t.Errorf("pull by a device in no task: %+v, want success false, code no_firmware", a2)
	}
	testutil.WaitFor(t, 20*time.Second, "the answered pulls recorded", func() bool {
		return testutil.TaskRecords(t, c.admin, t3.ID, "")[d0.ID].State == resource.RecordProcessing &&
			testutil.TaskRecords(t, c.admin, t2.ID, "")[d1.ID].State == resource.RecordProcessing
	})
	d0.Install(a0)
	d1.Install(a1)
	testutil.WaitFor(t, 20*time.Second, "both records success", func() bool {
		return testutil.TaskRecords(t, c.admin, t3.ID, "")[d0.ID].State == resource.RecordSuccess &&
			testutil.TaskRecords(t, c.admin, t2.ID, "")[d1.ID].State == resource.RecordSuccess
	})
	if r := testutil.TaskRecords(t, c.admin, t3.ID, "")[d0.ID]; r.Progress != 100 || r.UpgradeTime == nil || r.CompleteTime == nil {
		t.Errorf("record of the pulled upgrade: %+v", r)
	}
	testutil.WaitDevice(t, c.admin, d0.ID, "firmwareVersion 3.0", func(d testutil.Device) bool { return d.FirmwareVersion == "3.0" })
	// Now on 3.0, nothing higher is offered.
	if a := d0.Pull(t, ""); a.Success == nil || *a.Success {
		t.Errorf("pull from the highest version: %+v, want no_firmware", a)
	}
}

// TestOTARolloutAndAbort: maxInFlight and maxPerMinute hold (never more devices processing
// or pushed than allowed); a failing rollout aborts itself, cancels the rest and names the
// figures; resume continues it.
func TestOTARolloutAndAbort(t *testing.T) {
	c, port, p, ids, fw, _ := otaCluster(t, 20)
	var devices []*testutil.OTADevice
	for i, id := range ids {
		devices = append(devices, connectOTA(t, port, p, id, i, testutil.OTABehaviour{Stall: true}))
	}
	// maxInFlight 3 over 9 stalling devices: each wave fails by the upgrade timeout, and the
	// next is sent; never more than 3 at once.
	inflight := devices[:9]
	task := testutil.CreateTask(t, c.admin, map[string]any{"name": "in-flight", "firmwareId": fw.ID, "mode": "push",
		"deviceIds": ids[:9], "timeoutSeconds": 1, "rollout": map[string]any{"maxInFlight": 3}})
	for {
		// The pushes are counted before the task is read: the engine records a round (the
		// devices it fails and the ones it sends to) before it sends, so every push seen
		// here is matched by a record the later read shows. Counted after the read, a push
		// of the next round could be seen without the failures that freed its slots.
		pushed := totalPushes(inflight)
		got := testutil.GetTask(t, c.admin, task.ID)
		if got.Counts.Processing > 3 {
			t.Fatalf("%d devices processing with maxInFlight 3", got.Counts.Processing)
		}
		if finished := got.Counts.Failed + got.Counts.Success; pushed > finished+3 {
			t.Fatalf("%d pushes received with %d finished: more than 3 in flight", pushed, finished)
		}
		if got.State == resource.TaskCompleted {
			if got.Counts.Failed != 9 {
				t.Fatalf("in-flight task ended with %+v", got.Counts)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	// maxPerMinute 3 over 6 devices that upgrade at once: 3 pushes, then none this minute.
	for _, d := range devices[9:15] {
		d.SetBehaviour(testutil.OTABehaviour{})
	}
	limited := testutil.CreateTask(t, c.admin, map[string]any{"name": "per-minute", "firmwareId": fw.ID, "mode": "push",
		"deviceIds": ids[9:15], "rollout": map[string]any{"maxPerMinute": 3}})
	testutil.WaitTask(t, c.admin, limited.ID, "3 upgraded", func(t *testutil.Task) bool { return t.Counts.Success == 3 })
	time.Sleep(time.Second) // a negative check: nothing more this minute
	if got := testutil.GetTask(t, c.admin, limited.ID); got.Counts.Waiting != 3 || totalPushes(devices[9:15]) != 3 {
		t.Errorf("maxPerMinute 3: counts %+v, %d pushes", got.Counts, totalPushes(devices[9:15]))
	}
	testutil.Do(t, c.admin, http.MethodPost, "/api/v1/upgrade-tasks/"+limited.ID+"/stop", nil, nil)

	// Abort: failing devices, abort at 50% after 3 finished.
	failing := devices[15:20]
	for _, d := range failing {
		d.SetBehaviour(testutil.OTABehaviour{Fail: "flash write error"})
	}
	bad := testutil.CreateTask(t, c.admin, map[string]any{"name": "abort", "firmwareId": fw.ID, "mode": "push",
		"deviceIds": ids[15:20], "rollout": map[string]any{"maxInFlight": 1}, "abort": map[string]any{"failurePercent": 50, "minFinished": 3}})
	aborted := testutil.WaitTask(t, c.admin, bad.ID, "aborted", func(t *testutil.Task) bool { return t.State == resource.TaskAborted })
	if aborted.Counts.Failed != 3 || aborted.Counts.Canceled != 2 || !strings.Contains(aborted.AbortReason, "3 of 3") || !strings.Contains(aborted.AbortReason, "50%") {
		t.Fatalf("aborted: counts %+v, reason %q", aborted.Counts, aborted.AbortReason)
	}
	if r := testutil.TaskRecords(t, c.admin, bad.ID, "failed"); len(r) != 3 || !strings.Contains(fmt.Sprint(r), "flash write error") {
		t.Errorf("failed records: %+v, want the device's reason", r)
	}
	if n := totalPushes(failing); n != 3 {
		t.Errorf("%d pushes in the aborted task, want 3", n)
	}
	for _, d := range failing {
		d.SetBehaviour(testutil.OTABehaviour{})
	}
	var resumed testutil.Task
	testutil.Do(t, c.admin, http.MethodPost, "/api/v1/upgrade-tasks/"+bad.ID+"/resume", nil, &resumed)
	if resumed.State != resource.TaskRunning || resumed.AbortReason != "" {
		t.Errorf("after resume: state %s reason %q", resumed.State, resumed.AbortReason)
	}
	done := testutil.WaitTask(t, c.admin, bad.ID, "completed", func(t *testutil.Task) bool { return t.State == resource.TaskCompleted })
	if done.Counts.Success != 2 || done.Counts.Failed != 3 {
		t.Errorf("resumed task ended with %+v, want 2 success 3 failed", done.Counts)
	}
}
