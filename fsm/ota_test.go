package fsm_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

// otaWorld is an FSM fed commands at increasing raft indexes, as raft would, with the
// products, devices and firmware an OTA campaign needs.
type otaWorld struct {
	t   *testing.T
	f   *fsm.FSM
	idx uint64
}

func newOTAWorld(t *testing.T) *otaWorld { return &otaWorld{t: t, f: newFSM(t)} }

func (w *otaWorld) apply(data []byte) any {
	w.t.Helper()
	w.idx++
	return apply(w.t, w.f, w.idx, data)
}

func (w *otaWorld) upsert(kind *resource.Kind, obj resource.Object, create bool) any {
	w.t.Helper()
	data, err := fsm.NewUpsert(kind, obj, create, 0, t0)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.apply(data)
}

func (w *otaWorld) product(id string) {
	w.t.Helper()
	mustOK(w.t, w.upsert(resource.Products, &resource.Product{Meta: resource.Meta{ID: id}, Name: id, SecureID: "sid-" + id}, true))
}

func (w *otaWorld) devices(product string, ids ...string) {
	w.t.Helper()
	for _, id := range ids {
		mustOK(w.t, w.upsert(resource.Devices, &resource.Device{Meta: resource.Meta{ID: id}, Name: id, ProductID: product}, true))
	}
}

// firmware builds a firmware as an upload leaves it: file size, hashes and blob key set.
func firmware(id, product, version string, order int) *resource.Firmware {
	return &resource.Firmware{Meta: resource.Meta{ID: id}, Name: "fw " + id, ProductID: product, Version: version, VersionOrder: order,
		SignMethod: resource.SignMD5, Sign: strings.Repeat("a", 32), Size: 1024, MD5: strings.Repeat("a", 32), SHA256: strings.Repeat("b", 64),
		BlobKey: "blob-" + id}
}

func (w *otaWorld) firmware(id, product, version string, order int) {
	w.t.Helper()
	mustOK(w.t, w.upsert(resource.Firmwares, firmware(id, product, version, order), true))
}

// ota applies one OTA batch stamped now.
func (w *otaWorld) ota(now time.Time, ops ...fsm.OTAOp) any {
	w.t.Helper()
	data, err := fsm.NewOTA(now, ops...)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.apply(data)
}

// do applies an OTA batch that must be accepted.
func (w *otaWorld) do(now time.Time, ops ...fsm.OTAOp) *fsm.OTAResult {
	w.t.Helper()
	res := w.ota(now, ops...)
	out, ok := res.(*fsm.OTAResult)
	if !ok {
		w.t.Fatalf("OTA %+v returned %T (%v), want *fsm.OTAResult", ops, res, res)
	}
	return out
}

func (w *otaWorld) create(now time.Time, task *resource.UpgradeTask) *resource.UpgradeTask {
	w.t.Helper()
	res := w.do(now, fsm.OTAOp{Op: fsm.OpCreate, Task: task})
	if res.Task == nil || res.Task.ID != task.ID {
		w.t.Fatalf("create %q answered task %+v", task.ID, res.Task)
	}
	return res.Task
}

func (w *otaWorld) send(now time.Time, task string, devices ...string) []string {
	w.t.Helper()
	return w.do(now, fsm.OTAOp{Op: fsm.OpSend, TaskID: task, DeviceIDs: devices}).Sent[task]
}

func (w *otaWorld) action(now time.Time, op, task string) *resource.UpgradeTask {
	w.t.Helper()
	res := w.do(now, fsm.OTAOp{Op: op, TaskID: task})
	if res.Task == nil || res.Task.ID != task {
		w.t.Fatalf("%s %q answered task %+v", op, task, res.Task)
	}
	return res.Task
}

func (w *otaWorld) progress(now time.Time, op fsm.OTAOp) *fsm.OTAResult {
	w.t.Helper()
	op.Op = fsm.OpProgress
	return w.do(now, op)
}

func (w *otaWorld) fail(now time.Time, device, reason string) {
	w.t.Helper()
	w.progress(now, fsm.OTAOp{DeviceID: device, Success: ptr(false), ErrorReason: reason})
}

func (w *otaWorld) succeed(now time.Time, device string) {
	w.t.Helper()
	w.progress(now, fsm.OTAOp{DeviceID: device, Complete: true, Success: ptr(true)})
}

func (w *otaWorld) task(id string) *resource.UpgradeTask {
	w.t.Helper()
	obj, err := w.f.Store().Get(resource.UpgradeTasks, id)
	if err != nil {
		w.t.Fatalf("Get task %q: %v", id, err)
	}
	return obj.(*resource.UpgradeTask)
}

func (w *otaWorld) rec(task, device string) *fsm.OTARecord {
	w.t.Helper()
	r := w.f.Store().OTARecord(task, device)
	if r == nil {
		w.t.Fatalf("task %q has no record of device %q", task, device)
	}
	return r
}

// states is each device's record state in the task.
func (w *otaWorld) states(task string) map[string]string {
	out := map[string]string{}
	for _, r := range w.f.Store().OTARecords(task, "") {
		out[r.DeviceID] = r.State
	}
	return out
}

// deleteDevice deletes a device with the delete stamped now (NewDelete reads the clock).
func (w *otaWorld) deleteDevice(id string, now time.Time) any {
	w.t.Helper()
	data, err := fsm.Encode(fsm.DeleteType, fsm.DeleteRequest{Kind: resource.Devices.Name, ID: id, Now: now})
	if err != nil {
		w.t.Fatal(err)
	}
	return w.apply(data)
}

func (w *otaWorld) del(kind *resource.Kind, id string) any {
	w.t.Helper()
	data, err := fsm.NewDelete(kind, id, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.apply(data)
}

// dump is the JSON of the firmware, the tasks and every task's records: what the firmware
// and upgrade-task answers show.
func (w *otaWorld) dump() string {
	w.t.Helper()
	return otaDump(w.t, w.f)
}

func otaDump(t testing.TB, f *fsm.FSM) string {
	t.Helper()
	fws, _ := f.Store().List(resource.Firmwares)
	tasks, _ := f.Store().List(resource.UpgradeTasks)
	records := map[string][]*fsm.OTARecord{}
	for _, o := range tasks {
		records[o.Base().ID] = f.Store().OTARecords(o.Base().ID, "")
	}
	b, err := json.Marshal(map[string]any{"firmwares": fws, "tasks": tasks, "records": records})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// otaTask is a task as the API hands it to the FSM: validated, defaults filled.
func otaTask(t testing.TB, id, mode, fw string, devices ...string) *resource.UpgradeTask {
	t.Helper()
	task := &resource.UpgradeTask{Meta: resource.Meta{ID: id}, Name: "task " + id, FirmwareID: fw, Mode: mode, DeviceIDs: devices}
	if errs := task.Validate(); len(errs) > 0 {
		t.Fatalf("task %q does not validate: %v", id, errs)
	}
	return task
}

func ptr[T any](v T) *T { return &v }

// status is the HTTP status a rule error answers with.
func status(re *fsm.RuleError) int {
	if re.Status == 0 {
		return 409
	}
	return re.Status
}

func wantRule(t testing.TB, res any, code string, httpStatus int, field string) *fsm.RuleError {
	t.Helper()
	re := mustRule(t, res, code)
	if status(re) != httpStatus || re.Field != field {
		t.Fatalf("%s: status %d field %q, want %d %q (%v)", code, status(re), re.Field, httpStatus, field, re)
	}
	return re
}

func wantCounts(t testing.TB, task *resource.UpgradeTask, want resource.TaskCounts) {
	t.Helper()
	if task.Counts != want {
		t.Fatalf("task %q counts = %+v, want %+v", task.ID, task.Counts, want)
	}
}

func wantStates(t testing.TB, w *otaWorld, task string, want map[string]string) {
	t.Helper()
	if got := w.states(task); !reflect.DeepEqual(got, want) {
		t.Fatalf("task %q records = %v, want %v", task, got, want)
	}
}

func at(d time.Duration) time.Time { return t0.Add(d) }

// standardWorld: product p with devices d1–d3 and firmware fw (1.1.0), product q with
// device e1 and firmware fq.
func standardWorld(t *testing.T) *otaWorld {
	w := newOTAWorld(t)
	w.product("p")
	w.product("q")
	w.devices("p", "d1", "d2", "d3")
	w.devices("q", "e1")
	w.firmware("fw", "p", "1.1.0", 2)
	w.firmware("fq", "q", "9.0", 1)
	return w
}

func TestFirmwareRules(t *testing.T) {
	w := newOTAWorld(t)
	w.product("p")
	w.product("q")

	// The product must exist.
	wantRule(t, w.upsert(resource.Firmwares, firmware("f0", "nope", "1.0", 1), true), "validation_failed", 400, "productId")

	// versionOrder is unique per product, and only per product.
	w.firmware("f1", "p", "1.0", 7)
	re := wantRule(t, w.upsert(resource.Firmwares, firmware("f2", "p", "1.1", 7), true), "version_order_exists", 409, "versionOrder")
	if !strings.Contains(re.Message, `"f1"`) {
		t.Errorf("version_order_exists does not name the firmware holding the order: %q", re.Message)
	}
	if _, err := w.f.Store().Get(resource.Firmwares, "f2"); !errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("refused firmware stored: %v", err)
	}
	w.firmware("f3", "q", "1.1", 7)
	w.firmware("f2", "p", "1.1", 8)

	// An edit keeps the file, its hashes, its blob and what it was checked against.
	edit := firmware("f1", "p", "1.0.1", 7)
	edit.Name, edit.Description = "renamed", "edited"
	edit.Size, edit.MD5, edit.SHA256, edit.BlobKey, edit.Sign, edit.SignMethod = 1, "forged", "forged", "other-blob", strings.Repeat("c", 64), resource.SignSHA256
	mustOK(t, w.upsert(resource.Firmwares, edit, false))
	obj, err := w.f.Store().Get(resource.Firmwares, "f1")
	if err != nil {
		t.Fatal(err)
	}
	got, want := obj.(*resource.Firmware), firmware("f1", "p", "1.0", 7)
	if got.Name != "renamed" || got.Version != "1.0.1" || got.Description != "edited" {
		t.Errorf("edit did not change the editable fields: %+v", got)
	}
	if got.Size != want.Size || got.MD5 != want.MD5 || got.SHA256 != want.SHA256 || got.BlobKey != want.BlobKey || got.Sign != want.Sign || got.SignMethod != want.SignMethod {
		t.Errorf("edit changed the upload's fields: %+v, want size/md5/sha256/blobKey/sign/signMethod of %+v", got, want)
	}
	// An edit to another firmware's order is refused too.
	wantRule(t, w.upsert(resource.Firmwares, firmware("f2", "p", "1.1", 7), false), "version_order_exists", 409, "versionOrder")

	// A product with firmware stays.
	mustRule(t, w.del(resource.Products, "q"), "product_has_firmware")

	// Firmware used by a task stays (and keeps its product); without tasks it goes.
	w.devices("p", "d1")
	w.create(t0, otaTask(t, "task1", resource.ModePull, "f1"))
	mustRule(t, w.del(resource.Firmwares, "f1"), "firmware_has_tasks")
	mustRule(t, w.upsert(resource.Firmwares, firmware("f1", "q", "1.0", 99), false), "firmware_has_tasks")
	if res := w.del(resource.Firmwares, "f3"); res != nil {
		t.Fatalf("delete firmware without tasks: %v", res)
	}
	if _, err := w.f.Store().Get(resource.Firmwares, "f3"); !errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("deleted firmware still there: %v", err)
	}
	if res := w.del(resource.Products, "q"); res != nil {
		t.Errorf("product without firmware or devices not deleted: %v", res)
	}
}

func TestCreateTask(t *testing.T) {
	w := standardWorld(t)

	// No device ids: every device of the firmware's product, none of another.
	task := w.create(at(time.Second), otaTask(t, "all", resource.ModePull, "fw"))
	stored := w.task("all")
	for name, got := range map[string]*resource.UpgradeTask{"answered": task, "stored": stored} {
		if got.State != resource.TaskRunning || got.ProductID != "p" || got.Progress != 0 || !got.CreatedAt.Equal(at(time.Second)) {
			t.Errorf("%s task = %+v, want running, product p, progress 0, created at now", name, got)
		}
		wantCounts(t, got, resource.TaskCounts{Waiting: 3})
	}
	wantStates(t, w, "all", map[string]string{"d1": "waiting", "d2": "waiting", "d3": "waiting"})
	for _, r := range w.f.Store().OTARecords("all", "") {
		if !r.CreatedAt.Equal(at(time.Second)) || r.UpgradeTime != nil || r.CompleteTime != nil || r.Progress != 0 || r.Attempts != 0 {
			t.Errorf("new record %+v", r)
		}
	}

	// Explicit ids must be devices of the firmware's product.
	before := w.dump()
	re := wantRule(t, w.ota(t0, fsm.OTAOp{Op: fsm.OpCreate, Task: otaTask(t, "bad", resource.ModePush, "fw", "d1", "ghost")}), "validation_failed", 400, "deviceIds[1]")
	if !strings.Contains(re.Message, `"ghost"`) {
		t.Errorf("unknown device message %q does not name it", re.Message)
	}
	re = wantRule(t, w.ota(t0, fsm.OTAOp{Op: fsm.OpCreate, Task: otaTask(t, "bad", resource.ModePush, "fw", "e1")}), "validation_failed", 400, "deviceIds[0]")
	if !strings.Contains(re.Message, `"q"`) {
		t.Errorf("other product's device message %q does not name its product", re.Message)
	}
	mustErr(t, w.ota(t0, fsm.OTAOp{Op: fsm.OpCreate, Task: otaTask(t, "all", resource.ModePull, "fw")}), fsm.ErrExists)
	wantRule(t, w.ota(t0, fsm.OTAOp{Op: fsm.OpCreate, Task: otaTask(t, "bad", resource.ModePush, "nofw")}), "validation_failed", 400, "firmwareId")
	if after := w.dump(); after != before {
		t.Errorf("refused creates changed the state:\nbefore %s\nafter  %s", before, after)
	}

	// A product without devices has nothing to upgrade.
	w.product("empty")
	w.firmware("fe", "empty", "1", 1)
	wantRule(t, w.ota(t0, fsm.OTAOp{Op: fsm.OpCreate, Task: otaTask(t, "none", resource.ModePush, "fe")}), "validation_failed", 400, "deviceIds")

	// One running push task per device.
	push := w.create(t0, otaTask(t, "push1", resource.ModePush, "fw", "d1", "d2"))
	wantCounts(t, push, resource.TaskCounts{Waiting: 2})
	w.send(t0, "push1", "d2")
	before = w.dump()
	for _, dev := range []string{"d1", "d2"} { // waiting, processing
		re = mustRule(t, w.ota(t0, fsm.OTAOp{Op: fsm.OpCreate, Task: otaTask(t, "push2", resource.ModePush, "fw", "d3", dev)}), "device_in_task")
		if status(re) != 409 || !strings.Contains(re.Message, `"push1"`) || !strings.Contains(re.Message, `"`+dev+`"`) {
			t.Errorf("device_in_task for %s: %d %q", dev, status(re), re.Message)
		}
	}
	// Empty ids mean d1–d3, so d1 and d2 are in push1 again.
	mustRule(t, w.ota(t0, fsm.OTAOp{Op: fsm.OpCreate, Task: otaTask(t, "push2", resource.ModePush, "fw")}), "device_in_task")
	if after := w.dump(); after != before {
		t.Errorf("refused push create changed the state:\nbefore %s\nafter  %s", before, after)
	}
	// Pull tasks only offer firmware: a device may be in several, and beside a push.
	w.create(t0, otaTask(t, "pull1", resource.ModePull, "fw", "d1"))
	w.create(t0, otaTask(t, "pull2", resource.ModePull, "fw", "d1"))
	// A stopped push task does not block.
	w.action(t0, fsm.OpStop, "push1")
	w.create(t0, otaTask(t, "push3", resource.ModePush, "fw", "d1", "d2", "d3"))
	wantStates(t, w, "push3", map[string]string{"d1": "waiting", "d2": "waiting", "d3": "waiting"})
	// A device whose push finished is free again.
	w.succeed(t1, "d3") // d3 is processing nowhere: nothing
	w.send(t1, "push3", "d3")
	w.succeed(t1, "d3")
	w.action(t1, fsm.OpStop, "push3")
	w.create(t1, otaTask(t, "push4", resource.ModePush, "fw", "d3"))

	// Tasks are created with their records by an OTA create only.
	before = w.dump()
	res := w.upsert(resource.UpgradeTasks, otaTask(t, "plain", resource.ModePush, "fw", "d1"), true)
	if err, ok := res.(error); !ok || err == nil {
		t.Fatalf("plain upsert create of an upgrade task = %v, want refused", res)
	}
	if after := w.dump(); after != before {
		t.Errorf("refused plain create changed the state:\nbefore %s\nafter  %s", before, after)
	}

	// An edit (PUT) changes the settings, never the campaign.
	edit := otaTask(t, "all", resource.ModePush, "fq", "e1")
	edit.Name, edit.TimeoutSeconds = "renamed", 60
	edit.State, edit.Counts, edit.ProductID = resource.TaskCompleted, resource.TaskCounts{Success: 9}, "q"
	mustOK(t, w.upsert(resource.UpgradeTasks, edit, false))
	got := w.task("all")
	if got.Name != "renamed" || got.TimeoutSeconds != 60 {
		t.Errorf("edit did not change the settings: %+v", got)
	}
	if got.FirmwareID != "fw" || got.Mode != resource.ModePull || got.ProductID != "p" || got.State != resource.TaskRunning || len(got.DeviceIDs) != 0 {
		t.Errorf("edit changed the campaign: %+v", got)
	}
	wantCounts(t, got, resource.TaskCounts{Waiting: 3})
}

// TestSendMovesOnce: the leader sends only what a send moved, so a push is never sent twice,
// whoever proposes the send again.
func TestSendMovesOnce(t *testing.T) {
	w := standardWorld(t)
	w.create(t0, otaTask(t, "push", resource.ModePush, "fw"))

	if sent := w.send(t1, "push", "d1", "d2"); !reflect.DeepEqual(sent, []string{"d1", "d2"}) {
		t.Fatalf("first send moved %v, want [d1 d2]", sent)
	}
	for _, d := range []string{"d1", "d2"} {
		r := w.rec("push", d)
		if r.State != resource.RecordProcessing || r.UpgradeTime == nil || !r.UpgradeTime.Equal(t1) || r.Attempts != 1 || r.Responded || r.CompleteTime != nil {
			t.Errorf("sent record %+v, want processing since %v, attempt 1", r, t1)
		}
	}
	wantCounts(t, w.task("push"), resource.TaskCounts{Waiting: 1, Processing: 2})

	// Sending again (a new leader repeating its predecessor's decision) moves only d3.
	if sent := w.send(t2, "push", "d1", "d2", "d3", "d3", "e1", "ghost"); !reflect.DeepEqual(sent, []string{"d3"}) {
		t.Fatalf("second send moved %v, want [d3]", sent)
	}
	if r := w.rec("push", "d1"); !r.UpgradeTime.Equal(t1) || r.Attempts != 1 {
		t.Errorf("d1 was sent twice: %+v", r)
	}
	if r := w.rec("push", "d3"); r.Attempts != 1 || !r.UpgradeTime.Equal(t2) {
		t.Errorf("d3 after one send: %+v", r)
	}
	if sent := w.send(t2, "push", "d1", "d2", "d3"); len(sent) != 0 {
		t.Errorf("send of processing devices moved %v", sent)
	}
	wantCounts(t, w.task("push"), resource.TaskCounts{Processing: 3})

	// Nothing is sent for a stopped task, a pull task or a task that does not exist.
	w.devices("p", "d4", "d5")
	w.create(t0, otaTask(t, "stopped", resource.ModePush, "fw", "d4"))
	w.action(t0, fsm.OpStop, "stopped")
	w.create(t0, otaTask(t, "pull", resource.ModePull, "fw", "d5"))
	before := w.dump()
	res := w.do(t2, fsm.OTAOp{Op: fsm.OpSend, TaskID: "stopped", DeviceIDs: []string{"d4"}},
		fsm.OTAOp{Op: fsm.OpSend, TaskID: "pull", DeviceIDs: []string{"d5"}},
		fsm.OTAOp{Op: fsm.OpSend, TaskID: "ghost", DeviceIDs: []string{"d4"}})
	if len(res.Sent) != 0 || res.Applied != 0 {
		t.Errorf("sends that cannot apply answered %+v", res)
	}
	if after := w.dump(); after != before {
		t.Errorf("sends that cannot apply changed the state:\nbefore %s\nafter  %s", before, after)
	}
}

func TestProgressReports(t *testing.T) {
	w := standardWorld(t)
	w.devices("p", "d4")
	w.create(t0, otaTask(t, "push", resource.ModePush, "fw"))
	w.send(t0, "push", "d1", "d2", "d3", "d4")

	// Progress moves progress and counts as the response.
	w.progress(t1, fsm.OTAOp{DeviceID: "d1", Progress: 40})
	if r := w.rec("push", "d1"); r.State != resource.RecordProcessing || r.Progress != 40 || !r.Responded || r.CompleteTime != nil {
		t.Errorf("d1 after progress 40: %+v", r)
	}
	w.progress(t1, fsm.OTAOp{DeviceID: "d1", Progress: 20}) // a late, older report
	if r := w.rec("push", "d1"); r.Progress != 40 {
		t.Errorf("progress went back to %d", r.Progress)
	}

	// complete → success.
	w.progress(t1, fsm.OTAOp{DeviceID: "d2", Progress: 70, Complete: true})
	if r := w.rec("push", "d2"); r.State != resource.RecordSuccess || r.Progress != 100 || r.CompleteTime == nil || !r.CompleteTime.Equal(t1) || r.ErrorReason != "" {
		t.Errorf("d2 after complete: %+v", r)
	}

	// success: false → failed with the device's reason, even with complete: true.
	w.progress(t2, fsm.OTAOp{DeviceID: "d3", Complete: true, Success: ptr(false), ErrorReason: "flash write failed"})
	if r := w.rec("push", "d3"); r.State != resource.RecordFailed || r.ErrorReason != "flash write failed" || r.CompleteTime == nil || !r.CompleteTime.Equal(t2) {
		t.Errorf("d3 after success:false: %+v", r)
	}
	task := w.task("push")
	wantCounts(t, task, resource.TaskCounts{Processing: 2, Success: 1, Failed: 1})
	if task.Progress != 50 || task.State != resource.TaskRunning {
		t.Errorf("task after 2 of 4 done: state %s progress %d", task.State, task.Progress)
	}

	// Reports for a device with no processing record change nothing.
	before := w.dump()
	for _, op := range []fsm.OTAOp{
		{DeviceID: "d2", Success: ptr(false)}, // already success
		{DeviceID: "d3", Complete: true},      // already failed
		{DeviceID: "e1", Progress: 10},        // in no task
		{DeviceID: "ghost", Complete: true},   // no such device
		{DeviceID: "d1", TaskID: "nope", Complete: true},
	} {
		if res := w.progress(t2, op); res.Applied != 0 {
			t.Errorf("report %+v applied %d", op, res.Applied)
		}
	}
	if after := w.dump(); after != before {
		t.Errorf("reports without a processing record changed the state:\nbefore %s\nafter  %s", before, after)
	}

	// A firmware report of another version changes nothing; of the task's version it is success.
	if res := w.do(t2, fsm.OTAOp{Op: fsm.OpReport, DeviceID: "d4", Version: "1.0.9"}); res.Applied != 0 {
		t.Errorf("report of another version applied %d", res.Applied)
	}
	if after := w.dump(); after != before {
		t.Errorf("report of another version changed the state")
	}
	w.do(t2, fsm.OTAOp{Op: fsm.OpReport, DeviceID: "d4", Version: "1.1.0"})
	if r := w.rec("push", "d4"); r.State != resource.RecordSuccess || r.Progress != 100 || !r.CompleteTime.Equal(t2) {
		t.Errorf("d4 after a report of the task's version: %+v", r)
	}

	// The last open record finishing completes the task.
	w.progress(t2, fsm.OTAOp{DeviceID: "d1", Complete: true})
	task = w.task("push")
	wantCounts(t, task, resource.TaskCounts{Success: 3, Failed: 1})
	if task.State != resource.TaskCompleted || task.Progress != 100 || task.CompletedAt == nil || !task.CompletedAt.Equal(t2) {
		t.Errorf("task after every device finished: %+v", task)
	}
}

// TestProgressPicksTheTask: a device pulling from two tasks reports against the one whose
// firmware it names.
func TestProgressPicksTheTask(t *testing.T) {
	w := standardWorld(t)
	w.firmware("fw2", "p", "2.0.0", 3)
	w.create(t0, otaTask(t, "old", resource.ModePull, "fw", "d1"))
	w.create(t0, otaTask(t, "new", resource.ModePull, "fw2", "d1"))
	w.do(t1, fsm.OTAOp{Op: fsm.OpPulled, TaskID: "old", DeviceID: "d1"})
	w.do(t2, fsm.OTAOp{Op: fsm.OpPulled, TaskID: "new", DeviceID: "d1"})

	w.progress(t2, fsm.OTAOp{DeviceID: "d1", FirmwareID: "fw", Progress: 30})
	if o, n := w.rec("old", "d1").Progress, w.rec("new", "d1").Progress; o != 30 || n != 0 {
		t.Errorf("report naming fw: old %d new %d, want 30 0", o, n)
	}
	// Without a firmware: the most recent answer.
	w.progress(t2, fsm.OTAOp{DeviceID: "d1", Progress: 50})
	if o, n := w.rec("old", "d1").Progress, w.rec("new", "d1").Progress; o != 30 || n != 50 {
		t.Errorf("report naming no firmware: old %d new %d, want 30 50", o, n)
	}
	// Naming the task.
	w.progress(t2, fsm.OTAOp{DeviceID: "d1", TaskID: "old", Progress: 60})
	if o, n := w.rec("old", "d1").Progress, w.rec("new", "d1").Progress; o != 60 || n != 50 {
		t.Errorf("report naming task old: old %d new %d, want 60 50", o, n)
	}
	// A report of 1.1.0 ends the task offering 1.1.0 only.
	w.do(t2, fsm.OTAOp{Op: fsm.OpReport, DeviceID: "d1", Version: "1.1.0"})
	if o, n := w.rec("old", "d1").State, w.rec("new", "d1").State; o != resource.RecordSuccess || n != resource.RecordProcessing {
		t.Errorf("after report 1.1.0: old %s new %s", o, n)
	}
	w.progress(t2, fsm.OTAOp{DeviceID: "d1", FirmwareID: "fw2", Success: ptr(false), ErrorReason: "no space"})
	if r := w.rec("new", "d1"); r.State != resource.RecordFailed || r.ErrorReason != "no space" {
		t.Errorf("new after failure: %+v", r)
	}
	if w.task("old").State != resource.TaskCompleted || w.task("new").State != resource.TaskCompleted {
		t.Errorf("tasks with nothing open: %s %s", w.task("old").State, w.task("new").State)
	}
}

func TestTimeouts(t *testing.T) {
	w := standardWorld(t)
	task := otaTask(t, "push", resource.ModePush, "fw")
	task.ResponseTimeoutSeconds, task.TimeoutSeconds = 30, 600
	w.create(t0, task)
	w.send(t0, "push", "d1", "d2", "d3")
	w.progress(at(10*time.Second), fsm.OTAOp{DeviceID: "d2", Progress: 10})
	w.progress(at(10*time.Second), fsm.OTAOp{DeviceID: "d3", Progress: 10})
	all := []string{"d1", "d2", "d3"}
	response := func(now time.Time) *fsm.OTAResult {
		return w.do(now, fsm.OTAOp{Op: fsm.OpTimeout, TaskID: "push", DeviceIDs: all, Kind: fsm.TimeoutResponse})
	}
	upgrade := func(now time.Time, devices ...string) *fsm.OTAResult {
		return w.do(now, fsm.OTAOp{Op: fsm.OpTimeout, TaskID: "push", DeviceIDs: devices, Kind: fsm.TimeoutUpgrade})
	}

	// The leader's clock is checked against the command's: stamped before the limit, nothing.
	before := w.dump()
	if res := response(at(29 * time.Second)); res.Applied != 0 {
		t.Errorf("early response timeout applied %d", res.Applied)
	}
	if res := upgrade(at(599*time.Second), all...); res.Applied != 0 {
		t.Errorf("early upgrade timeout applied %d", res.Applied)
	}
	if after := w.dump(); after != before {
		t.Errorf("early timeouts changed the state:\nbefore %s\nafter  %s", before, after)
	}

	// At the limit the silent device fails; the devices that answered go on.
	response(at(30 * time.Second))
	r1 := w.rec("push", "d1")
	if r1.State != resource.RecordFailed || !strings.Contains(r1.ErrorReason, "response timeout") || !r1.CompleteTime.Equal(at(30*time.Second)) {
		t.Errorf("silent d1 after the response timeout: %+v", r1)
	}
	wantStates(t, w, "push", map[string]string{"d1": "failed", "d2": "processing", "d3": "processing"})

	// Not complete within timeoutSeconds: failed, for another reason.
	upgrade(at(600*time.Second), "d2")
	r2 := w.rec("push", "d2")
	if r2.State != resource.RecordFailed || !strings.Contains(r2.ErrorReason, "upgrade timeout") || r2.ErrorReason == r1.ErrorReason {
		t.Errorf("d2 after the upgrade timeout: %+v (d1's reason %q)", r2, r1.ErrorReason)
	}
	wantStates(t, w, "push", map[string]string{"d1": "failed", "d2": "failed", "d3": "processing"})
	wantCounts(t, w.task("push"), resource.TaskCounts{Processing: 1, Failed: 2})

	// An unknown kind refuses the batch.
	if _, ok := w.ota(at(time.Hour), fsm.OTAOp{Op: fsm.OpTimeout, TaskID: "push", DeviceIDs: all, Kind: "nap"}).(error); !ok {
		t.Error("unknown timeout kind accepted")
	}
	upgrade(at(time.Hour), "d3")
	if task := w.task("push"); task.State != resource.TaskCompleted {
		t.Errorf("task after every device timed out: %+v", task)
	}

	// Pull devices have answered already: no response timeout, but the upgrade timeout holds.
	w.create(t0, otaTask(t, "pull", resource.ModePull, "fw", "d1"))
	w.do(t0, fsm.OTAOp{Op: fsm.OpPulled, TaskID: "pull", DeviceID: "d1"})
	w.do(at(time.Hour), fsm.OTAOp{Op: fsm.OpTimeout, TaskID: "pull", DeviceIDs: []string{"d1"}, Kind: fsm.TimeoutResponse})
	if r := w.rec("pull", "d1"); r.State != resource.RecordProcessing {
		t.Errorf("pull record after a response timeout: %+v", r)
	}
	w.do(at(time.Hour), fsm.OTAOp{Op: fsm.OpTimeout, TaskID: "pull", DeviceIDs: []string{"d1"}, Kind: fsm.TimeoutUpgrade})
	if r := w.rec("pull", "d1"); r.State != resource.RecordFailed || !strings.Contains(r.ErrorReason, "upgrade timeout") {
		t.Errorf("pull record after the upgrade timeout: %+v", r)
	}
}

func TestRequeue(t *testing.T) {
	w := standardWorld(t)
	w.create(t0, otaTask(t, "push", resource.ModePush, "fw"))
	w.send(t1, "push", "d1", "d2")
	w.progress(t1, fsm.OTAOp{DeviceID: "d2", Progress: 5})
	w.do(t2, fsm.OTAOp{Op: fsm.OpRequeue, TaskID: "push", DeviceIDs: []string{"d1", "d2", "d3"}})

	if r := w.rec("push", "d1"); r.State != resource.RecordWaiting || r.UpgradeTime != nil || r.Attempts != 0 {
		t.Errorf("undelivered d1 after requeue: %+v", r)
	}
	if r := w.rec("push", "d2"); r.State != resource.RecordProcessing || r.Progress != 5 || !r.UpgradeTime.Equal(t1) {
		t.Errorf("answered d2 after requeue: %+v", r)
	}
	wantCounts(t, w.task("push"), resource.TaskCounts{Waiting: 2, Processing: 1})
	if sent := w.send(t2, "push", "d1"); !reflect.DeepEqual(sent, []string{"d1"}) {
		t.Errorf("requeued d1 not sent again: %v", sent)
	}
	if r := w.rec("push", "d1"); r.Attempts != 1 || !r.UpgradeTime.Equal(t2) {
		t.Errorf("d1 sent after requeue: %+v", r)
	}
}

func TestStopResumeRetry(t *testing.T) {
	w := standardWorld(t)
	w.devices("p", "d4")
	w.create(t0, otaTask(t, "push", resource.ModePush, "fw"))
	w.send(t0, "push", "d1", "d2")

	// Stop: waiting → canceled; processing goes on.
	task := w.action(t1, fsm.OpStop, "push")
	if task.State != resource.TaskStopped || w.task("push").State != resource.TaskStopped {
		t.Fatalf("task after stop: %s", task.State)
	}
	wantStates(t, w, "push", map[string]string{"d1": "processing", "d2": "processing", "d3": "canceled", "d4": "canceled"})
	if r := w.rec("push", "d3"); r.ErrorReason == "" || !r.CompleteTime.Equal(t1) {
		t.Errorf("canceled d3: %+v", r)
	}
	w.succeed(t1, "d1")
	w.fail(t1, "d2", "boom")
	if s := w.task("push").State; s != resource.TaskStopped {
		t.Errorf("stopped task with nothing open is %s, want still stopped", s)
	}
	wantCounts(t, w.task("push"), resource.TaskCounts{Success: 1, Failed: 1, Canceled: 2})

	// Resume: canceled → waiting, running again.
	task = w.action(t2, fsm.OpResume, "push")
	if task.State != resource.TaskRunning {
		t.Fatalf("task after resume: %s", task.State)
	}
	wantStates(t, w, "push", map[string]string{"d1": "success", "d2": "failed", "d3": "waiting", "d4": "waiting"})
	if r := w.rec("push", "d3"); r.ErrorReason != "" || r.CompleteTime != nil {
		t.Errorf("resumed d3: %+v", r)
	}

	// Retry: failed → waiting; the next send is a second attempt.
	w.send(t2, "push", "d3")
	w.fail(t2, "d3", "boom")
	task = w.action(t2, fsm.OpRetry, "push")
	if task.State != resource.TaskRunning {
		t.Fatalf("task after retry: %s", task.State)
	}
	wantStates(t, w, "push", map[string]string{"d1": "success", "d2": "waiting", "d3": "waiting", "d4": "waiting"})
	if r := w.rec("push", "d2"); r.ErrorReason != "" || r.UpgradeTime != nil || r.CompleteTime != nil || r.Responded {
		t.Errorf("retried d2: %+v", r)
	}
	w.send(t2, "push", "d2")
	if r := w.rec("push", "d2"); r.Attempts != 2 {
		t.Errorf("d2 sent a second time: attempts %d", r.Attempts)
	}

	// Retry is for push tasks; an action on no task is not found. Neither changes anything.
	w.create(t0, otaTask(t, "pull", resource.ModePull, "fw", "d1"))
	w.do(t0, fsm.OTAOp{Op: fsm.OpPulled, TaskID: "pull", DeviceID: "d1"})
	w.fail(t1, "d1", "x")
	before := w.dump()
	wantRule(t, w.ota(t2, fsm.OTAOp{Op: fsm.OpRetry, TaskID: "pull"}), "retry_push_only", 409, "")
	mustErr(t, w.ota(t2, fsm.OTAOp{Op: fsm.OpStop, TaskID: "ghost"}), fsm.ErrNotFound)
	// A refused action refuses its whole batch: the stop before it is not applied.
	mustErr(t, w.ota(t2, fsm.OTAOp{Op: fsm.OpStop, TaskID: "push"}, fsm.OTAOp{Op: fsm.OpResume, TaskID: "ghost"}), fsm.ErrNotFound)
	if after := w.dump(); after != before {
		t.Errorf("refused actions changed the state:\nbefore %s\nafter  %s", before, after)
	}
}

func TestCompletion(t *testing.T) {
	w := standardWorld(t)
	w.create(t0, otaTask(t, "push", resource.ModePush, "fw", "d1", "d2"))
	w.send(t0, "push", "d1", "d2")
	w.succeed(t1, "d1")
	if task := w.task("push"); task.State != resource.TaskRunning || task.Progress != 50 || task.CompletedAt != nil {
		t.Errorf("task half done: %+v", task)
	}
	w.fail(t2, "d2", "x")
	task := w.task("push")
	if task.State != resource.TaskCompleted || task.Progress != 100 || task.CompletedAt == nil || !task.CompletedAt.Equal(t2) {
		t.Fatalf("task with nothing open: %+v", task)
	}

	// Retry reopens it; it completes again when the retried device finishes.
	w.action(at(5*time.Hour), fsm.OpRetry, "push")
	task = w.task("push")
	if task.State != resource.TaskRunning || task.CompletedAt != nil || task.Progress != 50 {
		t.Fatalf("retried task: %+v", task)
	}
	w.send(at(5*time.Hour), "push", "d2")
	w.succeed(at(6*time.Hour), "d2")
	task = w.task("push")
	if task.State != resource.TaskCompleted || !task.CompletedAt.Equal(at(6*time.Hour)) {
		t.Errorf("task after the retried device succeeded: %+v", task)
	}
	wantCounts(t, task, resource.TaskCounts{Success: 2})

	// A stopped task with nothing open stays stopped: it was not carried out.
	w.create(t0, otaTask(t, "stopped", resource.ModePush, "fw", "d3"))
	w.action(t1, fsm.OpStop, "stopped")
	task = w.task("stopped")
	if task.State != resource.TaskStopped || task.CompletedAt != nil {
		t.Errorf("stopped task with every record canceled: %+v", task)
	}
	wantCounts(t, task, resource.TaskCounts{Canceled: 1})
	// Resumed, it runs again.
	w.action(t2, fsm.OpResume, "stopped")
	if task := w.task("stopped"); task.State != resource.TaskRunning {
		t.Errorf("resumed task: %+v", task)
	}
}

func TestAbort(t *testing.T) {
	w := newOTAWorld(t)
	w.product("p")
	var devices []string
	for i := 1; i <= 10; i++ {
		devices = append(devices, fmt.Sprintf("d%02d", i))
	}
	w.devices("p", devices...)
	w.firmware("fw", "p", "2.0", 1)
	task := otaTask(t, "push", resource.ModePush, "fw")
	task.Abort = &resource.AbortPolicy{FailurePercent: 50, MinFinished: 4}
	w.create(t0, task)
	w.send(t0, "push", "d01", "d02", "d03", "d04", "d05")

	// Three failures of three finished: below minFinished.
	for _, d := range []string{"d01", "d02", "d03"} {
		w.fail(t1, d, "bricked")
	}
	if task := w.task("push"); task.State != resource.TaskRunning || task.AbortReason != "" {
		t.Fatalf("task after 3 of 3 failed with minFinished 4: %+v", task)
	}
	// The fourth finished device: 3 of 4 failed reaches 50%.
	w.succeed(t1, "d04")
	task = w.task("push")
	if task.State != resource.TaskAborted {
		t.Fatalf("task after 3 of 4 failed: %+v", task)
	}
	for _, want := range []string{"3 of 4", "75%", "50%"} {
		if !strings.Contains(task.AbortReason, want) {
			t.Errorf("abortReason %q does not contain %q", task.AbortReason, want)
		}
	}
	wantCounts(t, task, resource.TaskCounts{Processing: 1, Success: 1, Failed: 3, Canceled: 5})
	if r := w.rec("push", "d06"); r.State != resource.RecordCanceled || !strings.Contains(r.ErrorReason, "abort") {
		t.Errorf("waiting d06 after the abort: %+v", r)
	}
	if sent := w.send(t1, "push", "d06"); len(sent) != 0 {
		t.Errorf("aborted task sent %v", sent)
	}

	// Resume continues it, judged on what happens from now on.
	task = w.action(t2, fsm.OpResume, "push")
	if task.State != resource.TaskRunning || task.AbortReason != "" {
		t.Fatalf("resumed task: %+v", task)
	}
	if task := w.task("push"); task.State != resource.TaskRunning || task.Counts.Waiting != 5 {
		t.Fatalf("stored resumed task: %+v", task)
	}
	w.fail(t2, "d05", "bricked") // 1 of 1 since the resume
	w.send(t2, "push", "d06", "d07", "d08")
	w.succeed(t2, "d06")
	w.succeed(t2, "d07") // 1 of 3
	if task := w.task("push"); task.State != resource.TaskRunning {
		t.Fatalf("task after 1 of 3 failed since the resume (4 of 7 overall): %+v", task)
	}
	w.fail(t2, "d08", "bricked") // 2 of 4
	task = w.task("push")
	if task.State != resource.TaskAborted || !strings.Contains(task.AbortReason, "2 of 4") {
		t.Fatalf("task after 2 of 4 failed since the resume: %+v", task)
	}
	wantStates(t, w, "push", map[string]string{"d01": "failed", "d02": "failed", "d03": "failed", "d04": "success", "d05": "failed",
		"d06": "success", "d07": "success", "d08": "failed", "d09": "canceled", "d10": "canceled"})
}

func TestDeleteTask(t *testing.T) {
	w := standardWorld(t)
	w.create(t0, otaTask(t, "push", resource.ModePush, "fw"))
	before := w.dump()
	wantRule(t, w.del(resource.UpgradeTasks, "push"), "task_running", 409, "")
	if after := w.dump(); after != before {
		t.Errorf("refused delete changed the state")
	}
	w.action(t1, fsm.OpStop, "push")
	if res := w.del(resource.UpgradeTasks, "push"); res != nil {
		t.Fatalf("delete of a stopped task: %v", res)
	}
	if _, err := w.f.Store().Get(resource.UpgradeTasks, "push"); !errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("deleted task still there: %v", err)
	}
	if recs := w.f.Store().OTARecords("push", ""); len(recs) != 0 {
		t.Errorf("deleted task's records remain: %v", recs)
	}
	if recs := w.f.Store().OTARecordsOfDevice("d1"); len(recs) != 0 {
		t.Errorf("device d1 still has records: %v", recs)
	}
	// Its devices are free for a new push, and its firmware may go.
	w.create(t1, otaTask(t, "push", resource.ModePush, "fw", "d1"))
	w.action(t1, fsm.OpStop, "push")
	w.del(resource.UpgradeTasks, "push")
	if res := w.del(resource.Firmwares, "fw"); res != nil {
		t.Errorf("firmware without tasks not deleted: %v", res)
	}
}

func TestDeletingADeviceCancelsItsRecords(t *testing.T) {
	w := standardWorld(t)
	w.create(t0, otaTask(t, "push", resource.ModePush, "fw", "d1", "d2"))
	w.create(t0, otaTask(t, "pull", resource.ModePull, "fw", "d1", "d3"))
	w.send(t0, "push", "d1")
	w.succeed(t1, "d1")
	w.do(t1, fsm.OTAOp{Op: fsm.OpPulled, TaskID: "pull", DeviceID: "d3"})

	// d2 was push's last open record (waiting), d3 pull's processing one.
	if res := w.deleteDevice("d2", t2); res != nil {
		t.Fatalf("delete d2: %v", res)
	}
	if res := w.deleteDevice("d3", t2); res != nil {
		t.Fatalf("delete d3: %v", res)
	}
	for _, k := range [][2]string{{"push", "d2"}, {"pull", "d3"}} {
		r := w.rec(k[0], k[1])
		if r.State != resource.RecordCanceled || !strings.Contains(r.ErrorReason, "deleted") || r.CompleteTime == nil || !r.CompleteTime.Equal(t2) {
			t.Errorf("record of deleted %s in %s: %+v", k[1], k[0], r)
		}
	}
	task := w.task("push")
	if task.State != resource.TaskCompleted || !task.CompletedAt.Equal(t2) {
		t.Errorf("push task whose last open device was deleted: %+v", task)
	}
	wantCounts(t, task, resource.TaskCounts{Success: 1, Canceled: 1})
	task = w.task("pull")
	if task.State != resource.TaskRunning {
		t.Errorf("pull task with d1 still waiting: %+v", task)
	}
	wantCounts(t, task, resource.TaskCounts{Waiting: 1, Canceled: 1})

	// A deleted device never comes back to upgrade: resume and retry leave its record
	// alone, so the task can still complete.
	w.action(t2, fsm.OpStop, "pull")
	w.action(t2, fsm.OpResume, "pull")
	wantStates(t, w, "pull", map[string]string{"d1": "waiting", "d3": "canceled"})
	w.do(t2, fsm.OTAOp{Op: fsm.OpPulled, TaskID: "pull", DeviceID: "d1"})
	w.succeed(t2, "d1")
	if task := w.task("pull"); task.State != resource.TaskCompleted {
		t.Errorf("pull task after its last device finished: %+v", task)
	}
	w.action(t2, fsm.OpResume, "push")
	if task := w.task("push"); task.State != resource.TaskCompleted || task.Counts.Waiting != 0 {
		t.Errorf("resumed push task whose canceled device is deleted: %+v", task)
	}

	w.devices("p", "d4")
	w.create(t2, otaTask(t, "retry", resource.ModePush, "fw", "d1", "d4"))
	w.send(t2, "retry", "d1", "d4")
	w.fail(t2, "d4", "x")
	w.deleteDevice("d4", t2)
	if r := w.rec("retry", "d4"); r.State != resource.RecordFailed {
		t.Errorf("a finished record of a deleted device changed: %+v", r)
	}
	w.action(t2, fsm.OpRetry, "retry")
	wantStates(t, w, "retry", map[string]string{"d1": "processing", "d4": "failed"})
	w.succeed(t2, "d1")
	if task := w.task("retry"); task.State != resource.TaskCompleted {
		t.Errorf("retried task whose failed device is deleted: %+v", task)
	}
}

func TestPulled(t *testing.T) {
	w := standardWorld(t)
	w.create(t0, otaTask(t, "pull", resource.ModePull, "fw"))
	w.do(t1, fsm.OTAOp{Op: fsm.OpPulled, TaskID: "pull", DeviceID: "d1"})
	r := w.rec("pull", "d1")
	if r.State != resource.RecordProcessing || !r.Responded || !r.UpgradeTime.Equal(t1) || r.Attempts != 1 {
		t.Errorf("pulled d1: %+v", r)
	}
	wantCounts(t, w.task("pull"), resource.TaskCounts{Waiting: 2, Processing: 1})

	// A failed device pulls again.
	w.fail(t1, "d1", "bad image")
	w.do(t2, fsm.OTAOp{Op: fsm.OpPulled, TaskID: "pull", DeviceID: "d1"})
	r = w.rec("pull", "d1")
	if r.State != resource.RecordProcessing || r.ErrorReason != "" || r.CompleteTime != nil || r.Attempts != 2 || !r.UpgradeTime.Equal(t2) {
		t.Errorf("d1 pulled after failing: %+v", r)
	}
	w.succeed(t2, "d1")

	// Nothing to record: a finished device, a device not in the task, a push task, a
	// stopped task.
	w.create(t0, otaTask(t, "push", resource.ModePush, "fw", "d2"))
	w.create(t0, otaTask(t, "stopped", resource.ModePull, "fq", "e1"))
	w.action(t0, fsm.OpStop, "stopped")
	before := w.dump()
	res := w.do(t2,
		fsm.OTAOp{Op: fsm.OpPulled, TaskID: "pull", DeviceID: "d1"},
		fsm.OTAOp{Op: fsm.OpPulled, TaskID: "pull", DeviceID: "e1"},
		fsm.OTAOp{Op: fsm.OpPulled, TaskID: "push", DeviceID: "d2"},
		fsm.OTAOp{Op: fsm.OpPulled, TaskID: "stopped", DeviceID: "e1"},
		fsm.OTAOp{Op: fsm.OpPulled, TaskID: "ghost", DeviceID: "d1"})
	if res.Applied != 0 {
		t.Errorf("pulls that cannot apply applied %d", res.Applied)
	}
	if after := w.dump(); after != before {
		t.Errorf("pulls that cannot apply changed the state:\nbefore %s\nafter  %s", before, after)
	}
}

// otaScript drives a campaign through most transitions, the same way on any FSM.
func otaScript(t *testing.T, w *otaWorld) {
	w.product("p")
	w.product("q")
	w.devices("p", "d1", "d2", "d3", "d4", "d5")
	w.devices("q", "e1", "e2")
	w.firmware("fw", "p", "1.1.0", 2)
	w.firmware("fw2", "p", "1.2.0", 3)
	w.firmware("fq", "q", "9.0", 1)
	push := otaTask(t, "push", resource.ModePush, "fw")
	push.Abort = &resource.AbortPolicy{FailurePercent: 80, MinFinished: 2}
	w.create(t0, push)
	w.create(t0, otaTask(t, "pull", resource.ModePull, "fw2", "d1", "d2"))
	w.create(t0, otaTask(t, "q", resource.ModePush, "fq"))
	w.do(t1,
		fsm.OTAOp{Op: fsm.OpSend, TaskID: "push", DeviceIDs: []string{"d1", "d2", "d3"}},
		fsm.OTAOp{Op: fsm.OpPulled, TaskID: "pull", DeviceID: "d1"},
		fsm.OTAOp{Op: fsm.OpSend, TaskID: "q", DeviceIDs: []string{"e1", "e2"}})
	w.do(at(100*time.Minute),
		fsm.OTAOp{Op: fsm.OpProgress, DeviceID: "d1", FirmwareID: "fw", Progress: 30},
		fsm.OTAOp{Op: fsm.OpProgress, DeviceID: "d1", FirmwareID: "fw2", Complete: true},
		fsm.OTAOp{Op: fsm.OpProgress, DeviceID: "d2", Success: ptr(false), ErrorReason: "checksum"},
		fsm.OTAOp{Op: fsm.OpReport, DeviceID: "e1", Version: "9.0"},
		fsm.OTAOp{Op: fsm.OpRequeue, TaskID: "push", DeviceIDs: []string{"d3"}},
		fsm.OTAOp{Op: fsm.OpTimeout, TaskID: "q", DeviceIDs: []string{"e2"}, Kind: fsm.TimeoutResponse})
	w.action(t2, fsm.OpStop, "push")
	w.action(t2, fsm.OpResume, "push")
	w.deleteDevice("d5", t2)
	w.action(t2, fsm.OpRetry, "q")
}

func TestOTASnapshotRoundTrip(t *testing.T) {
	src := newOTAWorld(t)
	otaScript(t, src)
	want := src.dump()
	if !strings.Contains(want, `"state":"processing"`) || !strings.Contains(want, `"state":"failed"`) || !strings.Contains(want, `"state":"canceled"`) {
		t.Fatalf("the script should leave records in many states: %s", want)
	}
	b := snapshotBytes(t, src.f)
	sum, err := fsm.VerifySnapshot(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("VerifySnapshot: %v", err)
	}
	if sum.Counts[resource.UpgradeTasks.Name] != 3 || sum.Counts[resource.Firmwares.Name] != 3 {
		t.Errorf("snapshot counts = %v", sum.Counts)
	}

	dst := &otaWorld{t: t, f: newFSM(t), idx: src.idx}
	if err := restore(t, dst.f, b); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := dst.dump(); got != want {
		t.Errorf("restored OTA state differs:\nwant %s\ngot  %s", want, got)
	}
	for _, d := range []string{"d1", "d2", "d3", "d4", "d5", "e1", "e2"} {
		w, g := src.f.Store().OTARecordsOfDevice(d), dst.f.Store().OTARecordsOfDevice(d)
		if !reflect.DeepEqual(w, g) {
			t.Errorf("records of %s: want %+v got %+v", d, w, g)
		}
	}
	if b2 := snapshotBytes(t, dst.f); !bytes.Equal(b, b2) {
		t.Error("snapshot of the restored state differs from the original")
	}

	// The restored indexes serve the rules and the commands alike (the same commands on both
	// FSMs, at the same raft indexes).
	for _, w := range []*otaWorld{src, dst} {
		wantRule(t, w.ota(t2, fsm.OTAOp{Op: fsm.OpCreate, Task: otaTask(t, "again", resource.ModePush, "fw", "d4")}), "device_in_task", 409, "")
		mustRule(t, w.del(resource.Firmwares, "fw"), "firmware_has_tasks")
		if sent := w.send(t2, "push", "d3", "d4"); !reflect.DeepEqual(sent, []string{"d3", "d4"}) {
			t.Errorf("send after the script moved %v", sent)
		}
	}
	if src.dump() != dst.dump() {
		t.Error("the same send on the source and the restored FSM left different states")
	}
}

// TestOTAIsDeterministic: replicas applying the same log hold the same records and tasks.
func TestOTAIsDeterministic(t *testing.T) {
	a, b := newOTAWorld(t), newOTAWorld(t)
	otaScript(t, a)
	otaScript(t, b)
	if da, db := a.dump(), b.dump(); da != db {
		t.Fatalf("two FSMs applying the same commands differ:\n%s\n%s", da, db)
	}
	if !bytes.Equal(snapshotBytes(t, a.f), snapshotBytes(t, b.f)) {
		t.Error("two FSMs applying the same commands snapshot differently")
	}
}

// TestResumeKeepsOnePushTask: resuming a stopped push task leaves canceled the devices
// that meanwhile joined another running push task (a device is in one at a time), and
// resumes the others.
func TestResumeKeepsOnePushTask(t *testing.T) {
	w := standardWorld(t)
	w.create(t0, otaTask(t, "a", resource.ModePush, "fw", "d1", "d2"))
	w.action(t1, fsm.OpStop, "a")
	w.create(t1, otaTask(t, "b", resource.ModePush, "fw", "d1"))
	w.action(t2, fsm.OpResume, "a")
	wantStates(t, w, "a", map[string]string{"d1": resource.RecordCanceled, "d2": resource.RecordWaiting})
	wantStates(t, w, "b", map[string]string{"d1": resource.RecordWaiting})
}

// TestRequeueOnStoppedTask: a push that could not be delivered after its task was stopped
// ends canceled, as it would had it still been waiting.
func TestRequeueOnStoppedTask(t *testing.T) {
	w := standardWorld(t)
	w.create(t0, otaTask(t, "push", resource.ModePush, "fw", "d1", "d2"))
	w.send(t1, "push", "d1")
	w.action(t1, fsm.OpStop, "push")
	w.do(t2, fsm.OTAOp{Op: fsm.OpRequeue, TaskID: "push", DeviceIDs: []string{"d1"}})
	wantStates(t, w, "push", map[string]string{"d1": resource.RecordCanceled, "d2": resource.RecordCanceled})
	if got := w.task("push"); got.State != resource.TaskStopped {
		t.Errorf("state %s, want stopped", got.State)
	}
}
