package fsm

import (
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/linkops/linkops/resource"
)

// OTAType carries the decisions of the OTA campaigns (OTARequest): a task created, pushes
// recorded before they are sent, device progress, timeouts, stop, resume and retry. It is
// state, so it is not ignorable: a node that cannot apply it must stop.
const OTAType MessageType = 7

const otaTable = "ota_records"

// OTA operations (OTAOp.Op).
const (
	// OpCreate creates a task and one waiting record per device (Task).
	OpCreate = "create"
	// OpSend records pushes about to be sent: waiting → processing (TaskID, DeviceIDs). The
	// leader sends only what the result says moved, so a push is never sent twice.
	OpSend = "send"
	// OpRequeue puts back pushes that could not be delivered (the device went away before
	// it was reached): processing → waiting, when the device has not answered.
	OpRequeue = "requeue"
	// OpPulled records a pull answered with the task's firmware: → processing (TaskID,
	// DeviceID).
	OpPulled = "pulled"
	// OpProgress is a device's upgrade reply or progress report (DeviceID, optional TaskID
	// and FirmwareID, Progress, Complete, Success, ErrorReason).
	OpProgress = "progress"
	// OpReport is a device's firmware report (DeviceID, Version): success of a processing
	// record whose firmware has that version.
	OpReport = "report"
	// OpTimeout fails processing records that did not answer or complete in time (TaskID,
	// DeviceIDs, Kind): the leader decided it on its clock; the FSM checks it against Now.
	OpTimeout = "timeout"
	// OpStop, OpResume and OpRetry are the task actions (TaskID).
	OpStop   = "stop"
	OpResume = "resume"
	OpRetry  = "retry"
)

// Timeout kinds, with the reasons they leave on a record.
const (
	TimeoutResponse = "response"
	TimeoutUpgrade  = "upgrade"
)

// OTARecord is one device's part in one task (SPEC §4.8).
type OTARecord struct {
	TaskID       string     `json:"taskId"`
	DeviceID     string     `json:"deviceId"`
	State        string     `json:"state"`
	Progress     int        `json:"progress"`
	ErrorReason  string     `json:"errorReason,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
	UpgradeTime  *time.Time `json:"upgradeTime,omitempty"`
	CompleteTime *time.Time `json:"completeTime,omitempty"`
	// Responded: the device answered the push (a reply or any progress report), so the
	// response timeout no longer applies.
	Responded bool `json:"responded,omitempty"`
	// Attempts counts the pushes sent (retries included).
	Attempts int `json:"attempts,omitempty"`
	// Index is the raft index of the record's last change.
	Index uint64 `json:"index"`
}

// OTAOp is one decision; which fields matter depends on Op.
type OTAOp struct {
	Op          string                `json:"op"`
	Task        *resource.UpgradeTask `json:"task,omitempty"`
	TaskID      string                `json:"taskId,omitempty"`
	DeviceIDs   []string              `json:"deviceIds,omitempty"`
	DeviceID    string                `json:"deviceId,omitempty"`
	FirmwareID  string                `json:"firmwareId,omitempty"`
	Progress    int                   `json:"progress,omitempty"`
	Complete    bool                  `json:"complete,omitempty"`
	Success     *bool                 `json:"success,omitempty"`
	ErrorReason string                `json:"errorReason,omitempty"`
	Version     string                `json:"version,omitempty"`
	Kind        string                `json:"kind,omitempty"`
}

// OTARequest is one batch of decisions, applied in order, all stamped with the proposer's
// clock.
type OTARequest struct {
	Ops []OTAOp   `json:"ops"`
	Now time.Time `json:"now"`
}

// NewOTA builds an encoded OTARequest.
func NewOTA(now time.Time, ops ...OTAOp) ([]byte, error) {
	return Encode(OTAType, OTARequest{Ops: ops, Now: now.UTC()})
}

// OTAResult says what a batch did: the task a create or an action produced, and the
// devices each send moved to processing (keyed by task id).
type OTAResult struct {
	Task    *resource.UpgradeTask
	Sent    map[string][]string
	Applied int
}

// applyOTA applies a batch. A create or a task action that is refused refuses the whole
// batch (the API sends those one at a time); device reports and engine decisions that no
// longer fit the state (a record finished meanwhile) are skipped, not errors.
func (f *FSM) applyOTA(index uint64, req *OTARequest) any {
	db := f.store.writeDB()
	txn := db.Txn(true)
	defer txn.Abort()
	a := newOTAApply(txn, index, req.Now)
	for i := range req.Ops {
		if err := a.apply(&req.Ops[i]); err != nil {
			return err
		}
	}
	if err := a.finish(); err != nil {
		return err
	}
	txn.Commit()
	return a.res
}

// otaApply is the state of one batch: tasks touched so far are copied once, changed in
// place, and written back (with their completion and abort decided) at the end.
type otaApply struct {
	txn   *memdb.Txn
	index uint64
	now   time.Time
	tasks map[string]*resource.UpgradeTask
	// dirty names the tasks this batch changed: only they are written back.
	dirty map[string]bool
	res   *OTAResult
}

func newOTAApply(txn *memdb.Txn, index uint64, now time.Time) *otaApply {
	return &otaApply{txn: txn, index: index, now: now, tasks: map[string]*resource.UpgradeTask{}, dirty: map[string]bool{},
		res: &OTAResult{Sent: map[string][]string{}}}
}

// task returns the batch's copy of a stored task, or nil.
func (a *otaApply) task(id string) *resource.UpgradeTask {
	if t, ok := a.tasks[id]; ok {
		return t
	}
	raw := lookup(a.txn, resource.UpgradeTasks, id)
	if raw == nil {
		return nil
	}
	t := resource.Copy(raw.(*resource.UpgradeTask))
	if t.AbortFrom != nil {
		from := *t.AbortFrom
		t.AbortFrom = &from
	}
	a.tasks[id] = t
	return t
}

func (a *otaApply) record(taskID, deviceID string) *OTARecord {
	raw, err := a.txn.First(otaTable, "id", taskID, deviceID)
	if err != nil || raw == nil {
		return nil
	}
	cp := *raw.(*OTARecord)
	return &cp
}

// move stores rec in state, keeping its task's counts.
func (a *otaApply) move(t *resource.UpgradeTask, rec *OTARecord, state string) error {
	a.dirty[t.ID] = true
	if rec.State != state {
		t.Counts.Add(rec.State, -1)
		t.Counts.Add(state, 1)
		rec.State = state
	}
	switch state {
	case resource.RecordSuccess, resource.RecordFailed, resource.RecordCanceled:
		at := a.now
		rec.CompleteTime = &at
	default:
		rec.CompleteTime = nil
	}
	rec.Index = a.index
	a.res.Applied++
	if err := a.txn.Insert(otaTable, rec); err != nil {
		return fmt.Errorf("ota record %s/%s: %w", rec.TaskID, rec.DeviceID, err)
	}
	return nil
}

func (a *otaApply) apply(op *OTAOp) error {
	switch op.Op {
	case OpCreate:
		return a.create(op.Task)
	case OpSend:
		return a.send(op)
	case OpRequeue:
		return a.each(op, func(t *resource.UpgradeTask, r *OTARecord) error {
			if r.State != resource.RecordProcessing || r.Responded {
				return nil
			}
			r.UpgradeTime, r.Progress = nil, 0
			if r.Attempts > 0 {
				r.Attempts--
			}
			if t.State != resource.TaskRunning {
				// Stopped or aborted meanwhile: it would have been canceled had it waited.
				r.ErrorReason = "stopped before it was sent (task " + t.State + ")"
				return a.move(t, r, resource.RecordCanceled)
			}
			return a.move(t, r, resource.RecordWaiting)
		})
	case OpPulled:
		return a.pulled(op)
	case OpProgress:
		return a.progress(op)
	case OpReport:
		return a.report(op)
	case OpTimeout:
		return a.timeout(op)
	case OpStop, OpResume, OpRetry:
		return a.action(op)
	}
	return fmt.Errorf("ota: unknown operation %q", op.Op)
}

// each runs fn on the record of every device of op in its task.
func (a *otaApply) each(op *OTAOp, fn func(*resource.UpgradeTask, *OTARecord) error) error {
	t := a.task(op.TaskID)
	if t == nil {
		return nil
	}
	for _, d := range op.DeviceIDs {
		if r := a.record(t.ID, d); r != nil {
			if err := fn(t, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// create stores a new task with a waiting record per device. An empty device list means
// every device of the firmware's product now.
func (a *otaApply) create(t *resource.UpgradeTask) error {
	if t == nil || t.ID == "" {
		return fmt.Errorf("ota: create without a task")
	}
	if lookup(a.txn, resource.UpgradeTasks, t.ID) != nil {
		return ErrExists
	}
	raw := lookup(a.txn, resource.Firmwares, t.FirmwareID)
	if raw == nil {
		return Invalid("firmwareId", "there is no firmware %q", t.FirmwareID)
	}
	fw := raw.(*resource.Firmware)
	t.ProductID = fw.ProductID
	devices := t.DeviceIDs
	if len(devices) == 0 {
		it, err := a.txn.Get(resource.Devices.Name, "id")
		if err != nil {
			return err
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if d := raw.(*resource.Device); d.ProductID == fw.ProductID {
				devices = append(devices, d.ID)
			}
		}
		if len(devices) == 0 {
			return Invalid("deviceIds", "product %q has no devices to upgrade", fw.ProductID)
		}
	} else {
		for i, id := range devices {
			d := lookup(a.txn, resource.Devices, id)
			switch {
			case d == nil:
				return Invalid(fmt.Sprintf("deviceIds[%d]", i), "there is no device %q", id)
			case d.(*resource.Device).ProductID != fw.ProductID:
				return Invalid(fmt.Sprintf("deviceIds[%d]", i), "device %q is a device of product %q, not of the firmware's product %q", id, d.(*resource.Device).ProductID, fw.ProductID)
			}
		}
	}
	if t.Mode == resource.ModePush {
		if err := a.notInPush(devices); err != nil {
			return err
		}
	}
	t.CreatedAt, t.UpdatedAt, t.Index = a.now, a.now, a.index
	t.State, t.Counts, t.Progress, t.AbortReason, t.AbortFrom, t.CompletedAt = resource.TaskRunning, resource.TaskCounts{Waiting: len(devices)}, 0, "", nil, nil
	for _, id := range devices {
		rec := &OTARecord{TaskID: t.ID, DeviceID: id, State: resource.RecordWaiting, CreatedAt: a.now, Index: a.index}
		if err := a.txn.Insert(otaTable, rec); err != nil {
			return err
		}
	}
	a.tasks[t.ID], a.dirty[t.ID] = t, true
	a.res.Task = t
	return nil
}

// notInPush refuses devices waiting or processing in another running push task: a device
// is in at most one push campaign at a time.
func (a *otaApply) notInPush(devices []string) error {
	for _, id := range devices {
		it, err := a.txn.Get(otaTable, "device", id)
		if err != nil {
			return err
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			r := raw.(*OTARecord)
			if r.State != resource.RecordWaiting && r.State != resource.RecordProcessing {
				continue
			}
			if o, _ := lookup(a.txn, resource.UpgradeTasks, r.TaskID).(*resource.UpgradeTask); o != nil && o.Mode == resource.ModePush && o.State == resource.TaskRunning {
				return Refuse("device_in_task", "device %q is %s in running push task %q; a device is in one push task at a time (stop that task or wait for it)", id, r.State, o.ID)
			}
		}
	}
	return nil
}

func (a *otaApply) send(op *OTAOp) error {
	t := a.task(op.TaskID)
	if t == nil || t.State != resource.TaskRunning || t.Mode != resource.ModePush {
		return nil
	}
	for _, d := range op.DeviceIDs {
		r := a.record(t.ID, d)
		if r == nil || r.State != resource.RecordWaiting {
			continue
		}
		at := a.now
		r.UpgradeTime, r.Responded, r.Progress, r.ErrorReason = &at, false, 0, ""
		r.Attempts++
		if err := a.move(t, r, resource.RecordProcessing); err != nil {
			return err
		}
		a.res.Sent[t.ID] = append(a.res.Sent[t.ID], d)
	}
	return nil
}

func (a *otaApply) pulled(op *OTAOp) error {
	t := a.task(op.TaskID)
	if t == nil || t.State != resource.TaskRunning || t.Mode != resource.ModePull {
		return nil
	}
	r := a.record(t.ID, op.DeviceID)
	if r == nil {
		return nil
	}
	switch r.State {
	case resource.RecordWaiting, resource.RecordFailed:
		// A device that failed pulls again to try again: in pull mode the device decides.
	default:
		return nil
	}
	at := a.now
	r.UpgradeTime, r.Responded, r.Progress, r.ErrorReason = &at, true, 0, ""
	r.Attempts++
	return a.move(t, r, resource.RecordProcessing)
}

// processingOf finds the device's processing record a report belongs to: the named task's,
// else the one for the named firmware, else the most recently sent.
func (a *otaApply) processingOf(op *OTAOp) (*resource.UpgradeTask, *OTARecord) {
	if op.TaskID != "" {
		t := a.task(op.TaskID)
		if t == nil {
			return nil, nil
		}
		if r := a.record(t.ID, op.DeviceID); r != nil && r.State == resource.RecordProcessing {
			return t, r
		}
		return nil, nil
	}
	it, err := a.txn.Get(otaTable, "device", op.DeviceID)
	if err != nil {
		return nil, nil
	}
	var candidates []*OTARecord
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if r := raw.(*OTARecord); r.State == resource.RecordProcessing {
			cp := *r
			candidates = append(candidates, &cp)
		}
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	sort.SliceStable(candidates, func(i, j int) bool {
		return upgradeTime(candidates[i]).After(upgradeTime(candidates[j]))
	})
	if op.FirmwareID != "" {
		for _, r := range candidates {
			if t := a.task(r.TaskID); t != nil && t.FirmwareID == op.FirmwareID {
				return t, r
			}
		}
	}
	r := candidates[0]
	if t := a.task(r.TaskID); t != nil {
		return t, r
	}
	return nil, nil
}

func upgradeTime(r *OTARecord) time.Time {
	if r.UpgradeTime == nil {
		return time.Time{}
	}
	return *r.UpgradeTime
}

func (a *otaApply) progress(op *OTAOp) error {
	t, r := a.processingOf(op)
	if r == nil {
		return nil
	}
	r.Responded = true
	// success: false wins over complete (SPEC §4.8).
	if op.Success != nil && !*op.Success {
		r.ErrorReason = op.ErrorReason
		if r.ErrorReason == "" {
			r.ErrorReason = "the device reported the upgrade failed"
		}
		return a.move(t, r, resource.RecordFailed)
	}
	if op.Complete {
		r.Progress = 100
		return a.move(t, r, resource.RecordSuccess)
	}
	if p := min(max(op.Progress, 0), 100); p > r.Progress {
		r.Progress = p
	}
	r.Index = a.index
	a.res.Applied++
	return a.txn.Insert(otaTable, r)
}

func (a *otaApply) report(op *OTAOp) error {
	it, err := a.txn.Get(otaTable, "device", op.DeviceID)
	if err != nil {
		return err
	}
	var hits []*OTARecord
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if r := raw.(*OTARecord); r.State == resource.RecordProcessing {
			cp := *r
			hits = append(hits, &cp)
		}
	}
	for _, r := range hits {
		t := a.task(r.TaskID)
		if t == nil {
			continue
		}
		fw := lookup(a.txn, resource.Firmwares, t.FirmwareID)
		if fw == nil || fw.(*resource.Firmware).Version != op.Version {
			continue
		}
		r.Responded, r.Progress = true, 100
		if err := a.move(t, r, resource.RecordSuccess); err != nil {
			return err
		}
	}
	return nil
}

func (a *otaApply) timeout(op *OTAOp) error {
	return a.each(op, func(t *resource.UpgradeTask, r *OTARecord) error {
		if r.State != resource.RecordProcessing || r.UpgradeTime == nil {
			return nil
		}
		switch op.Kind {
		case TimeoutResponse:
			limit := time.Duration(t.ResponseTimeoutSeconds) * time.Second
			if r.Responded || limit <= 0 || a.now.Sub(*r.UpgradeTime) < limit {
				return nil
			}
			r.ErrorReason = fmt.Sprintf("response timeout: the device did not answer the upgrade within %ds (responseTimeoutSeconds)", t.ResponseTimeoutSeconds)
		case TimeoutUpgrade:
			if a.now.Sub(*r.UpgradeTime) < time.Duration(t.TimeoutSeconds)*time.Second {
				return nil
			}
			r.ErrorReason = fmt.Sprintf("upgrade timeout: the device did not complete the upgrade within %ds (timeoutSeconds)", t.TimeoutSeconds)
		default:
			return fmt.Errorf("ota: unknown timeout kind %q", op.Kind)
		}
		return a.move(t, r, resource.RecordFailed)
	})
}

// action applies stop, resume or retry to every record of the task in the state it
// changes (已停止, 继续升级, 批量重试).
func (a *otaApply) action(op *OTAOp) error {
	t := a.task(op.TaskID)
	if t == nil {
		return ErrNotFound
	}
	from, to := resource.RecordWaiting, resource.RecordCanceled
	switch op.Op {
	case OpStop:
		if t.State == resource.TaskRunning {
			t.State = resource.TaskStopped
		}
	case OpResume:
		from, to = resource.RecordCanceled, resource.RecordWaiting
	case OpRetry:
		if t.Mode != resource.ModePush {
			return Refuse("retry_push_only", "task %q is a pull task: only push tasks send again (a pulling device retries by pulling)", t.ID)
		}
		from, to = resource.RecordFailed, resource.RecordWaiting
	}
	records, err := a.recordsIn(t.ID, from)
	if err != nil {
		return err
	}
	for _, r := range records {
		if to == resource.RecordWaiting {
			if lookup(a.txn, resource.Devices, r.DeviceID) == nil {
				// A deleted device never comes online: waiting again, it would keep the
				// task running for ever.
				continue
			}
			if t.Mode == resource.ModePush && a.notInPush([]string{r.DeviceID}) != nil {
				// Meanwhile in another running push task: a device is in one at a time, so
				// this record stays as it is until that task is done.
				continue
			}
			r.UpgradeTime, r.Progress, r.ErrorReason, r.Responded = nil, 0, "", false
		} else {
			r.ErrorReason = "stopped before it was sent (task stopped)"
		}
		if err := a.move(t, r, to); err != nil {
			return err
		}
	}
	if op.Op != OpStop {
		if t.State != resource.TaskRunning {
			t.AbortReason = ""
			t.CompletedAt = nil
		}
		t.State = resource.TaskRunning
		if t.Abort != nil {
			t.AbortFrom = &resource.TaskCounts{Success: t.Counts.Success, Failed: t.Counts.Failed}
		}
	}
	t.UpdatedAt = a.now
	a.dirty[t.ID] = true
	a.res.Task = t
	a.res.Applied++
	return nil
}

// recordsIn returns copies of the task's records in state.
func (a *otaApply) recordsIn(taskID, state string) ([]*OTARecord, error) {
	it, err := a.txn.Get(otaTable, "state", taskID, state)
	if err != nil {
		return nil, err
	}
	var out []*OTARecord
	for raw := it.Next(); raw != nil; raw = it.Next() {
		cp := *raw.(*OTARecord)
		out = append(out, &cp)
	}
	return out, nil
}

// finish decides each touched task's abort and completion and writes it back.
func (a *otaApply) finish() error {
	ids := make([]string, 0, len(a.dirty))
	for id := range a.dirty {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t := a.tasks[id]
		if t.State == resource.TaskRunning && t.Abort != nil {
			if reason := abortReason(t); reason != "" {
				waiting, err := a.recordsIn(t.ID, resource.RecordWaiting)
				if err != nil {
					return err
				}
				for _, r := range waiting {
					r.ErrorReason = "canceled: the task was aborted"
					if err := a.move(t, r, resource.RecordCanceled); err != nil {
						return err
					}
				}
				t.State, t.AbortReason = resource.TaskAborted, reason
			}
		}
		if t.State == resource.TaskRunning && t.Counts.Open() == 0 {
			t.State = resource.TaskCompleted
			at := a.now
			t.CompletedAt = &at
		}
		t.Progress = t.Counts.Percent()
		t.Index = a.index
		if t.UpdatedAt.IsZero() {
			t.UpdatedAt = a.now
		}
		if err := a.txn.Insert(resource.UpgradeTasks.Name, t); err != nil {
			return fmt.Errorf("store task %s: %w", t.ID, err)
		}
	}
	return nil
}

// abortReason names the figures when the task's failures reach its abort threshold (since
// it was last resumed), else "".
func abortReason(t *resource.UpgradeTask) string {
	success, failed := t.Counts.Success, t.Counts.Failed
	if t.AbortFrom != nil {
		success -= t.AbortFrom.Success
		failed -= t.AbortFrom.Failed
	}
	finished := success + failed
	if finished < t.Abort.MinFinished || finished == 0 || failed*100 < t.Abort.FailurePercent*finished {
		return ""
	}
	return fmt.Sprintf("%d of %d finished devices failed (%d%%), reaching abort.failurePercent %d%% after at least abort.minFinished %d finished",
		failed, finished, failed*100/finished, t.Abort.FailurePercent, t.Abort.MinFinished)
}

// deleteTaskRecords removes a deleted task's records.
func deleteTaskRecords(txn *memdb.Txn, taskID string) error {
	_, err := txn.DeleteAll(otaTable, "task", taskID)
	return err
}

// cancelDeviceRecords ends the open records of a deleted device: nothing will ever upgrade
// it, and its tasks must still complete.
func cancelDeviceRecords(txn *memdb.Txn, index uint64, deviceID string, now time.Time) error {
	it, err := txn.Get(otaTable, "device", deviceID)
	if err != nil {
		return err
	}
	var open []*OTARecord
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if r := raw.(*OTARecord); r.State == resource.RecordWaiting || r.State == resource.RecordProcessing {
			cp := *r
			open = append(open, &cp)
		}
	}
	if len(open) == 0 {
		return nil
	}
	a := newOTAApply(txn, index, now)
	for _, r := range open {
		t := a.task(r.TaskID)
		if t == nil {
			continue
		}
		r.ErrorReason = "canceled: the device was deleted"
		if err := a.move(t, r, resource.RecordCanceled); err != nil {
			return err
		}
	}
	return a.finish()
}

func otaSchema() *memdb.TableSchema {
	return &memdb.TableSchema{Name: otaTable, Indexes: map[string]*memdb.IndexSchema{
		"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "TaskID"}, &memdb.StringFieldIndex{Field: "DeviceID"}}}},
		"task":   {Name: "task", Indexer: &memdb.StringFieldIndex{Field: "TaskID"}},
		"device": {Name: "device", Indexer: &memdb.StringFieldIndex{Field: "DeviceID"}},
		"state": {Name: "state", Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "TaskID"}, &memdb.StringFieldIndex{Field: "State"}}}},
	}}
}

// OTARecords returns a task's records (in device id order), those in state when it is not
// empty.
func (s *Store) OTARecords(taskID, state string) []*OTARecord {
	db, _ := s.current()
	return otaRecords(db.Txn(false), taskID, state, nil)
}

func otaRecords(txn *memdb.Txn, taskID, state string, ws memdb.WatchSet) []*OTARecord {
	var it memdb.ResultIterator
	var err error
	if state == "" {
		it, err = txn.Get(otaTable, "task", taskID)
	} else {
		it, err = txn.Get(otaTable, "state", taskID, state)
	}
	if err != nil {
		return nil
	}
	if ws != nil {
		ws.Add(it.WatchCh())
	}
	var out []*OTARecord
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*OTARecord))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DeviceID < out[j].DeviceID })
	return out
}

// OTARecord returns one record, or nil.
func (s *Store) OTARecord(taskID, deviceID string) *OTARecord {
	db, _ := s.current()
	raw, err := db.Txn(false).First(otaTable, "id", taskID, deviceID)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*OTARecord)
}

// OTARecordsOfDevice returns every record of a device, in any task.
func (s *Store) OTARecordsOfDevice(deviceID string) []*OTARecord {
	db, _ := s.current()
	it, err := db.Txn(false).Get(otaTable, "device", deviceID)
	if err != nil {
		return nil
	}
	var out []*OTARecord
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*OTARecord))
	}
	return out
}

// OTARecords reads a task's records (in state, when not empty) through the view, watching
// them.
func (v *View) OTARecords(taskID, state string) []*OTARecord {
	ws := memdb.NewWatchSet()
	out := otaRecords(v.txn, taskID, state, ws)
	for ch := range ws {
		v.watch(ch)
	}
	return out
}

// OTACounts sums the records of every task by state (the linkops_ota_devices gauge).
func (s *Store) OTACounts() resource.TaskCounts {
	var c resource.TaskCounts
	tasks, _ := s.List(resource.UpgradeTasks)
	for _, o := range tasks {
		tc := o.(*resource.UpgradeTask).Counts
		c.Waiting += tc.Waiting
		c.Processing += tc.Processing
		c.Success += tc.Success
		c.Failed += tc.Failed
		c.Canceled += tc.Canceled
	}
	return c
}
