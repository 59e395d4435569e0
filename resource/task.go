package resource

import (
	"fmt"
	"time"
)

// Upgrade task modes and states (SPEC §4.8).
const (
	ModePush = "push"
	ModePull = "pull"

	TaskRunning   = "running"
	TaskStopped   = "stopped"
	TaskCompleted = "completed"
	TaskAborted   = "aborted"
)

// States of one device's record in a task.
const (
	RecordWaiting    = "waiting"
	RecordProcessing = "processing"
	RecordSuccess    = "success"
	RecordFailed     = "failed"
	RecordCanceled   = "canceled"
)

// RecordStates lists the record states in the order answers show them.
var RecordStates = []string{RecordWaiting, RecordProcessing, RecordSuccess, RecordFailed, RecordCanceled}

// Defaults and bounds of a task's settings.
const (
	DefaultResponseTimeoutSeconds = 30
	DefaultTimeoutSeconds         = 600
	DefaultMaxInFlight            = 100
	MaxTaskDevices                = 100000
)

// UpgradeTask is one firmware campaign (升级任务) over devices of the firmware's product.
// Its per-device records live beside it in the state (fsm), not in this record.
type UpgradeTask struct {
	Meta
	Name       string `json:"name"`
	FirmwareID string `json:"firmwareId"`
	Mode       string `json:"mode"`
	// ResponseTimeoutSeconds (push only): a device that neither replies to the upgrade nor
	// reports progress within it fails.
	ResponseTimeoutSeconds int `json:"responseTimeoutSeconds,omitempty"`
	// TimeoutSeconds: a device that does not complete within it fails.
	TimeoutSeconds int `json:"timeoutSeconds"`
	// DeviceIDs are the devices to upgrade; empty means every device of the product when the
	// task was created.
	DeviceIDs   []string     `json:"deviceIds,omitempty"`
	Rollout     Rollout      `json:"rollout"`
	Abort       *AbortPolicy `json:"abort,omitempty"`
	Description string       `json:"description,omitempty"`

	// Read-only: the firmware's product, and what the campaign has done so far.
	ProductID   string     `json:"productId"`
	State       string     `json:"state"`
	Counts      TaskCounts `json:"counts"`
	Progress    int        `json:"progress"`
	AbortReason string     `json:"abortReason,omitempty"`
	// AbortFrom are the finished counts when the task was last resumed: the abort threshold
	// judges what happened since, so that a resumed task is not aborted again at once.
	AbortFrom *TaskCounts `json:"abortFrom,omitempty"`
	// CompletedAt is when the last record finished.
	CompletedAt *time.Time `json:"completedAt,omitempty"`
}

// Rollout limits how fast a push task sends (what JetLinks and ThingsBoard CE lack).
type Rollout struct {
	// MaxInFlight bounds the devices processing at once (default 100).
	MaxInFlight int `json:"maxInFlight"`
	// MaxPerMinute bounds the pushes sent in any minute (0: unlimited).
	MaxPerMinute int `json:"maxPerMinute"`
}

// AbortPolicy stops a task whose devices fail: once MinFinished devices have finished and
// failed ÷ finished reaches FailurePercent.
type AbortPolicy struct {
	FailurePercent int `json:"failurePercent"`
	MinFinished    int `json:"minFinished"`
}

// TaskCounts are the task's records by state.
type TaskCounts struct {
	Waiting    int `json:"waiting"`
	Processing int `json:"processing"`
	Success    int `json:"success"`
	Failed     int `json:"failed"`
	Canceled   int `json:"canceled"`
}

// Add moves n records into state (n may be negative).
func (c *TaskCounts) Add(state string, n int) {
	switch state {
	case RecordWaiting:
		c.Waiting += n
	case RecordProcessing:
		c.Processing += n
	case RecordSuccess:
		c.Success += n
	case RecordFailed:
		c.Failed += n
	case RecordCanceled:
		c.Canceled += n
	}
}

// Total is the number of records.
func (c TaskCounts) Total() int { return c.Waiting + c.Processing + c.Success + c.Failed + c.Canceled }

// Open is the number of records still waiting or processing.
func (c TaskCounts) Open() int { return c.Waiting + c.Processing }

// DisplayName is the task's name, for search and sorting.
func (t *UpgradeTask) DisplayName() string { return t.Name }

// UpgradeTasks is the upgrade task collection.
var UpgradeTasks = Register(&Kind{
	Name: "upgrade-tasks",
	New:  func() Object { return new(UpgradeTask) },
	Filters: map[string]func(Object) string{
		"firmwareId": func(o Object) string { return o.(*UpgradeTask).FirmwareID },
		"productId":  func(o Object) string { return o.(*UpgradeTask).ProductID },
		"mode":       func(o Object) string { return o.(*UpgradeTask).Mode },
		"state":      func(o Object) string { return o.(*UpgradeTask).State },
	},
	Refs: map[string]func(Object) []string{"firmwareId": func(o Object) []string { return nonEmpty(o.(*UpgradeTask).FirmwareID) }},
})

// Validate checks the fields a client sets and fills the defaults.
func (t *UpgradeTask) Validate() Errors {
	var errs Errors
	ValidateID(&errs, t.ID)
	ValidateName(&errs, "name", t.Name)
	ValidateDescription(&errs, "description", t.Description)
	if t.FirmwareID == "" {
		errs.Add("firmwareId", "is required: the firmware to install")
	} else if !idPattern.MatchString(t.FirmwareID) {
		errs.Add("firmwareId", "must be a firmware id")
	}
	switch t.Mode {
	case ModePush:
		if t.ResponseTimeoutSeconds == 0 {
			t.ResponseTimeoutSeconds = DefaultResponseTimeoutSeconds
		}
		if t.ResponseTimeoutSeconds < 1 || t.ResponseTimeoutSeconds > 86400 {
			errs.Add("responseTimeoutSeconds", "must be from 1 to 86400 seconds")
		}
	case ModePull:
		// A pulling device has already answered: the setting is the push's alone (JetLinks'
		// console sends it for both modes, so it is dropped rather than refused).
		t.ResponseTimeoutSeconds = 0
	case "":
		errs.Add("mode", "is required: push (平台推送) or pull (设备拉取)")
	default:
		errs.Add("mode", "%q is not a mode; use push or pull", t.Mode)
	}
	if t.TimeoutSeconds == 0 {
		t.TimeoutSeconds = DefaultTimeoutSeconds
	}
	if t.TimeoutSeconds < 1 || t.TimeoutSeconds > 30*86400 {
		errs.Add("timeoutSeconds", "must be from 1 to 2592000 seconds (30 days)")
	}
	if len(t.DeviceIDs) > MaxTaskDevices {
		errs.Add("deviceIds", "holds %d devices; a task takes at most %d", len(t.DeviceIDs), MaxTaskDevices)
	}
	seen := make(map[string]int, len(t.DeviceIDs))
	for i, id := range t.DeviceIDs {
		path := fmt.Sprintf("deviceIds[%d]", i)
		if !idPattern.MatchString(id) {
			errs.Add(path, "must be a device id")
		} else if j, dup := seen[id]; dup {
			errs.Add(path, "%q is also entry %d", id, j)
		}
		seen[id] = i
		if len(errs) > 100 {
			break
		}
	}
	if t.Rollout.MaxInFlight == 0 {
		t.Rollout.MaxInFlight = DefaultMaxInFlight
	}
	if t.Rollout.MaxInFlight < 1 || t.Rollout.MaxInFlight > MaxTaskDevices {
		errs.Add("rollout.maxInFlight", "must be from 1 to %d devices processing at once", MaxTaskDevices)
	}
	if t.Rollout.MaxPerMinute < 0 || t.Rollout.MaxPerMinute > 1000000 {
		errs.Add("rollout.maxPerMinute", "must be from 0 (unlimited) to 1000000 pushes a minute")
	}
	if a := t.Abort; a != nil {
		if a.FailurePercent < 1 || a.FailurePercent > 100 {
			errs.Add("abort.failurePercent", "must be from 1 to 100")
		}
		if a.MinFinished < 1 {
			errs.Add("abort.minFinished", "must be at least 1 finished device")
		}
	}
	return errs
}

// KeepProgress copies what only the campaign changes from old (a PUT edits the settings,
// never the devices, the firmware or the state).
func (t *UpgradeTask) KeepProgress(old *UpgradeTask) {
	t.FirmwareID, t.Mode, t.DeviceIDs, t.ProductID = old.FirmwareID, old.Mode, old.DeviceIDs, old.ProductID
	t.State, t.Counts, t.Progress, t.AbortReason, t.AbortFrom, t.CompletedAt = old.State, old.Counts, old.Progress, old.AbortReason, old.AbortFrom, old.CompletedAt
}

// Percent is the share of records that are done (not waiting or processing).
func (c TaskCounts) Percent() int {
	total := c.Total()
	if total == 0 {
		return 100
	}
	return (total - c.Open()) * 100 / total
}
