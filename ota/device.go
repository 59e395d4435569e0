package ota

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/session"
)

// Devices is the device side of the firmware topics on this node (SPEC §5.2): it answers
// pulls from the state it has, delivers the leader's pushes to the devices it holds, and
// batches what devices report (replies, progress, versions) into raft — one entry per flush,
// never one per message.
type Devices struct {
	cfg      DevicesConfig
	log      *slog.Logger
	metrics  *Metrics
	firmware *Firmware

	mu      sync.Mutex
	pending []fsm.OTAOp
	// progressAt indexes the pending plain progress report of each device, so that a
	// device reporting faster than a flush costs one op.
	progressAt map[string]int
	wake       chan struct{}
}

// DevicesConfig assembles Devices.
type DevicesConfig struct {
	Store *fsm.Store
	// Propose writes a command through raft (forwarded to the leader from a follower).
	Propose func(ctx context.Context, cmd []byte) error
	// Send delivers a message to a device this node holds (the session manager's Downlink).
	Send func(ctx context.Context, deviceID string, m protocol.Message) error
	// Firmware signs the links put in upgrade messages.
	Firmware *Firmware
	Metrics  *Metrics
	Log      *slog.Logger
	Now      func() time.Time
	// FlushInterval and MaxBatch bound how long a report waits and how many go in one raft
	// entry (defaults 50 ms and 5000).
	FlushInterval time.Duration
	MaxBatch      int
}

// NewDevices assembles the device side.
func NewDevices(cfg DevicesConfig) *Devices {
	defaults(&cfg.Log, &cfg.Now, &cfg.Metrics)
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 50 * time.Millisecond
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 5000
	}
	return &Devices{cfg: cfg, log: cfg.Log, metrics: cfg.Metrics, firmware: cfg.Firmware,
		progressAt: map[string]int{}, wake: make(chan struct{}, 1)}
}

// Receive takes a firmware message from a device this node holds.
func (d *Devices) Receive(deviceID string, m protocol.Message) {
	d.metrics.reports.WithLabelValues(m.Type).Inc()
	switch m.Type {
	case protocol.TypeFirmwarePull:
		// Answered off the connection's read loop: the answer is a write to the same
		// connection.
		go d.answerPull(deviceID, m)
	case protocol.TypeFirmwareUpgradeAck:
		op := fsm.OTAOp{Op: fsm.OpProgress, DeviceID: deviceID, FirmwareID: m.FirmwareID}
		failed := m.Success != nil && !*m.Success
		if failed {
			op.Success, op.ErrorReason = m.Success, firstOf(m.ErrorReason, m.Message, m.Code)
		}
		d.queue(op, !failed)
	case protocol.TypeFirmwareProgress:
		op := fsm.OTAOp{Op: fsm.OpProgress, DeviceID: deviceID, FirmwareID: m.FirmwareID, Progress: m.Progress,
			Complete: m.Complete, Success: m.Success, ErrorReason: firstOf(m.ErrorReason, m.Message)}
		final := m.Complete || (m.Success != nil && !*m.Success)
		d.queue(op, !final)
	case protocol.TypeFirmwareReport:
		if m.Version != "" {
			d.queue(fsm.OTAOp{Op: fsm.OpReport, DeviceID: deviceID, Version: m.Version}, false)
		}
	}
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// queue adds an op to the next batch; a plain progress report replaces the device's
// pending one.
func (d *Devices) queue(op fsm.OTAOp, coalesce bool) {
	d.mu.Lock()
	if i, ok := d.progressAt[op.DeviceID]; ok && (coalesce || op.Op == fsm.OpProgress || op.Op == fsm.OpReport) {
		// The device's pending plain report (an upgrade reply, some progress) is superseded
		// by this one, in its place: one record write instead of two (B5: three writes a
		// device otherwise).
		d.pending[i] = op
		if !coalesce {
			delete(d.progressAt, op.DeviceID)
		}
	} else {
		d.pending = append(d.pending, op)
		if coalesce {
			d.progressAt[op.DeviceID] = len(d.pending) - 1
		} else {
			// Order matters from here on: a later plain report must not overwrite an
			// earlier one across this final op.
			delete(d.progressAt, op.DeviceID)
		}
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// take removes up to max ops from the front of the queue.
func (d *Devices) take(max int) []fsm.OTAOp {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := min(len(d.pending), max)
	if n == 0 {
		return nil
	}
	batch := append([]fsm.OTAOp(nil), d.pending[:n]...)
	d.pending = append(d.pending[:0:0], d.pending[n:]...)
	d.progressAt = map[string]int{}
	for i, op := range d.pending {
		if op.Op == fsm.OpProgress && !op.Complete && (op.Success == nil || *op.Success) {
			d.progressAt[op.DeviceID] = i
		} else {
			// As in queue: a plain report followed by a final op of the device must not be
			// replaced by a later one, which would then land before that final op.
			delete(d.progressAt, op.DeviceID)
		}
	}
	return batch
}

// giveBack puts a batch that could not be written back at the front, in order.
func (d *Devices) giveBack(batch []fsm.OTAOp) {
	d.mu.Lock()
	d.pending = append(batch, d.pending...)
	d.progressAt = map[string]int{} // conservative: no coalescing across a retry
	d.mu.Unlock()
}

// Run flushes reports into raft until ctx ends, then once more within a short budget.
func (d *Devices) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			stop, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			for batch := d.take(d.cfg.MaxBatch); batch != nil && stop.Err() == nil; batch = d.take(d.cfg.MaxBatch) {
				if err := d.propose(stop, batch); err != nil {
					d.log.Warn("firmware reports not recorded before stopping", "ops", len(batch), "error", err)
					break
				}
			}
			cancel()
			return
		case <-d.wake:
		}
		// Let a batch gather: a campaign's devices answer together.
		select {
		case <-time.After(d.cfg.FlushInterval):
		case <-ctx.Done():
			continue
		}
		for batch := d.take(d.cfg.MaxBatch); batch != nil; batch = d.take(d.cfg.MaxBatch) {
			if err := d.propose(ctx, batch); err != nil {
				d.metrics.batchFails.Inc()
				d.giveBack(batch)
				d.log.Warn("recording firmware reports failed; retrying", "ops", len(batch), "error", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
				}
				backoff = min(backoff*2, 5*time.Second)
				select {
				case d.wake <- struct{}{}:
				default:
				}
				break
			}
			backoff = 100 * time.Millisecond
		}
	}
}

func (d *Devices) propose(ctx context.Context, ops []fsm.OTAOp) error {
	cmd, err := fsm.NewOTA(d.cfg.Now(), ops...)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return d.cfg.Propose(pctx, cmd)
}

// offer is a firmware a running pull task offers a device.
type offer struct {
	task *resource.UpgradeTask
	fw   *resource.Firmware
}

// answerPull answers firmware/pull from this node's state (SPEC §4.8): exactly
// requestVersion when a running pull task for the device offers it, else the highest
// versionOrder offered above the device's current version.
func (d *Devices) answerPull(deviceID string, m protocol.Message) {
	var offers []offer
	for _, r := range d.cfg.Store.OTARecordsOfDevice(deviceID) {
		o, err := d.cfg.Store.Get(resource.UpgradeTasks, r.TaskID)
		if err != nil {
			continue
		}
		t := o.(*resource.UpgradeTask)
		if t.Mode != resource.ModePull || t.State != resource.TaskRunning || r.State == resource.RecordCanceled {
			continue
		}
		fo, err := d.cfg.Store.Get(resource.Firmwares, t.FirmwareID)
		if err != nil {
			continue
		}
		offers = append(offers, offer{task: t, fw: fo.(*resource.Firmware)})
	}
	var pick *offer
	if m.RequestVersion != "" {
		for i := range offers {
			if offers[i].fw.Version == m.RequestVersion {
				pick = &offers[i]
				break
			}
		}
	} else if len(offers) > 0 {
		current := 0
		if m.CurrentVersion != "" {
			fws, _ := d.cfg.Store.List(resource.Firmwares)
			for _, o := range fws {
				if fw := o.(*resource.Firmware); fw.ProductID == offers[0].fw.ProductID && fw.Version == m.CurrentVersion {
					current = fw.VersionOrder
				}
			}
		}
		for i := range offers {
			if o := &offers[i]; o.fw.VersionOrder > current && (pick == nil || o.fw.VersionOrder > pick.fw.VersionOrder) {
				pick = o
			}
		}
	}
	reply := protocol.Message{Type: protocol.TypeFirmwarePullReply, MessageID: m.MessageID}
	if pick == nil {
		no := false
		reply.Success, reply.Code, reply.Message = &no, "no_firmware", "no running pull task offers this device a newer firmware"
	} else {
		yes := true
		reply.Success = &yes
		d.fill(&reply, pick.fw, d.cfg.Now().Add(time.Duration(pick.task.TimeoutSeconds)*time.Second+time.Hour))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.cfg.Send(ctx, deviceID, reply); err != nil {
		d.log.Warn("answering a firmware pull failed", "device", deviceID, "error", err)
		return
	}
	if pick != nil {
		d.queue(fsm.OTAOp{Op: fsm.OpPulled, TaskID: pick.task.ID, DeviceID: deviceID}, false)
	}
}

// fill sets the upgrade payload of m for fw (SPEC §5.2).
func (d *Devices) fill(m *protocol.Message, fw *resource.Firmware, expires time.Time) {
	m.FirmwareID, m.Version, m.Sign, m.SignMethod, m.Size = fw.ID, fw.Version, fw.Sign, fw.SignMethod, fw.Size
	m.URL = d.firmware.DownloadURL(fw, expires)
	m.Parameters = fw.Parameters()
}

// Push delivers the leader's pushes to devices this node holds.
func (d *Devices) Push(ctx context.Context, pushes []Push) []PushResult {
	out := make([]PushResult, len(pushes))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, p := range pushes {
		out[i] = PushResult{DeviceID: p.DeviceID}
		o, err := d.cfg.Store.Get(resource.Firmwares, p.FirmwareID)
		if err != nil {
			out[i].Outcome, out[i].Error = PushFailed, "firmware "+p.FirmwareID+" is not in this node's state: "+err.Error()
			continue
		}
		m := protocol.Message{Type: protocol.TypeFirmwareUpgrade, MessageID: "ota-" + p.TaskID + "-" + p.DeviceID}
		d.fill(&m, o.(*resource.Firmware), p.Expires)
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, m protocol.Message) {
			defer func() { <-sem; wg.Done() }()
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := d.cfg.Send(sctx, pushes[i].DeviceID, m); err != nil {
				out[i].Outcome, out[i].Error = outcomeOf(err), err.Error()
				return
			}
			out[i].Outcome = PushSent
		}(i, m)
	}
	wg.Wait()
	return out
}

// outcomeOf classifies a failed delivery: a device that is no longer here goes back to
// waiting; anything else is left to the response timeout.
func outcomeOf(err error) string {
	if errors.Is(err, session.ErrOffline) {
		return PushOffline
	}
	return PushFailed
}
