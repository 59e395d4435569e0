package ota

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

// Engine advances the upgrade tasks: a leader routine (SPEC §1). Each round reads tasks,
// records and presence from one view, decides timeouts and the next pushes within the
// rollout limits, records all of it in one raft entry, and only then sends the pushes the
// entry moved to processing — so a new leader, reading the same records, never pushes a
// device twice.
type Engine struct {
	cfg     EngineConfig
	log     *slog.Logger
	metrics *Metrics
	// cooldown holds devices whose push found them gone, until the time given: presence
	// may still say online for a moment, and the engine must not spin on them.
	cooldown map[string]time.Time
}

// EngineConfig assembles an Engine.
type EngineConfig struct {
	Store *fsm.Store
	// Apply writes a command through raft on this node, the leader, and returns the FSM's
	// answer.
	Apply func(ctx context.Context, cmd []byte) (any, error)
	// Deliver hands pushes to the node that holds their devices.
	Deliver func(ctx context.Context, node string, pushes []Push) ([]PushResult, error)
	Metrics *Metrics
	Log     *slog.Logger
	Now     func() time.Time
	// MinRound is the least time between rounds (default 50 ms): reports that arrive
	// together are decided together.
	MinRound time.Duration
	// MaxSends bounds the pushes of one round (default 2000: in B5, rounds of 5,000 made
	// the apply of one entry long enough for the leader to lose its lease on 2 cores).
	MaxSends int
}

// NewEngine assembles the engine.
func NewEngine(cfg EngineConfig) *Engine {
	defaults(&cfg.Log, &cfg.Now, &cfg.Metrics)
	if cfg.MinRound <= 0 {
		cfg.MinRound = 50 * time.Millisecond
	}
	if cfg.MaxSends <= 0 {
		cfg.MaxSends = 2000
	}
	return &Engine{cfg: cfg, log: cfg.Log, metrics: cfg.Metrics, cooldown: map[string]time.Time{}}
}

// deliverTimeout bounds one node's delivery of a round's pushes.
const deliverTimeout = 15 * time.Second

// idleRound is the longest the engine sleeps with nothing due.
const idleRound = 5 * time.Second

// Run advances the tasks until ctx ends (leadership lost).
func (e *Engine) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		started := time.Now()
		next, ws, err := e.round(ctx)
		wait := time.Until(next)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			e.log.Warn("upgrade task round failed; retrying", "error", err, "retry_in", backoff)
			wait, ws = backoff, nil
			backoff = min(backoff*2, 5*time.Second)
		} else {
			backoff = 100 * time.Millisecond
		}
		if spent := time.Since(started); spent < e.cfg.MinRound {
			select {
			case <-time.After(e.cfg.MinRound - spent):
			case <-ctx.Done():
				return
			}
		}
		if wait <= 0 {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		if ws != nil {
			_ = ws.WatchCtx(wctx)
		} else {
			<-wctx.Done()
		}
		cancel()
	}
}

// plan is what one round decided.
type plan struct {
	ops []fsm.OTAOp
	// holders maps each device about to be sent to the node holding it.
	holders map[string]string
	tasks   map[string]*resource.UpgradeTask
}

// round makes one round of decisions and acts on them; it returns when the next one is due
// at the latest and what to watch meanwhile.
func (e *Engine) round(ctx context.Context) (time.Time, memdb.WatchSet, error) {
	now := e.cfg.Now()
	for d, until := range e.cooldown {
		if now.After(until) {
			delete(e.cooldown, d)
		}
	}
	view := e.cfg.Store.View()
	p, next := e.decide(view, now)
	ws := view.WatchSet()
	_, pws := e.cfg.Store.PresenceSince(^uint64(0) - 1)
	for ch := range pws {
		ws.Add(ch)
	}
	if len(p.ops) == 0 {
		return next, ws, nil
	}
	cmd, err := fsm.NewOTA(now, p.ops...)
	if err != nil {
		return next, nil, err
	}
	out, err := e.cfg.Apply(ctx, cmd)
	if err != nil {
		// Leadership lost while committing leaves the outcome unknown: if the entry did
		// commit, its pushes are processing and no later leader will send them, so this
		// engine delivers what it finds recorded by this very entry.
		if sent := e.recordedAnyway(ctx, now, p); len(sent) > 0 {
			e.log.Warn("the round's entry committed although raft could not say so; delivering its pushes", "error", err)
			e.deliver(context.WithoutCancel(ctx), now, sent, p)
		}
		return next, nil, fmt.Errorf("record decisions: %w", err)
	}
	res, _ := out.(*fsm.OTAResult)
	for _, op := range p.ops {
		if op.Op == fsm.OpTimeout {
			e.metrics.timeouts.WithLabelValues(op.Kind).Add(float64(len(op.DeviceIDs)))
		}
	}
	if res == nil || len(res.Sent) == 0 {
		return now, nil, nil // look again at once: what was decided changed the state
	}
	e.deliver(ctx, now, res.Sent, p)
	return now, nil, nil
}

// unknownOutcomeWait is how long an engine whose entry's outcome is unknown watches its
// node's state for it: a committed entry reaches a deposed leader within a heartbeat or two.
const unknownOutcomeWait = 5 * time.Second

// recordedAnyway returns the pushes of plan p that its entry, stamped now, recorded after
// all (records processing since exactly now), watching this node's state for a while.
func (e *Engine) recordedAnyway(ctx context.Context, now time.Time, p plan) map[string][]string {
	var sends []fsm.OTAOp
	for _, op := range p.ops {
		if op.Op == fsm.OpSend {
			sends = append(sends, op)
		}
	}
	if len(sends) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unknownOutcomeWait)
	defer cancel()
	for {
		found := map[string][]string{}
		for _, op := range sends {
			for _, d := range op.DeviceIDs {
				r := e.cfg.Store.OTARecord(op.TaskID, d)
				if r != nil && r.State == resource.RecordProcessing && r.UpgradeTime != nil && r.UpgradeTime.Equal(now) {
					found[op.TaskID] = append(found[op.TaskID], d)
				}
			}
		}
		// One entry records all of them at once: any found means all there are.
		if len(found) > 0 {
			return found
		}
		select {
		case <-wctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// decide reads the state and returns the round's decisions and when the next is due.
func (e *Engine) decide(view *fsm.View, now time.Time) (plan, time.Time) {
	p := plan{holders: map[string]string{}, tasks: map[string]*resource.UpgradeTask{}}
	next := now.Add(idleRound)
	due := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	sends := 0
	for _, o := range view.List(resource.UpgradeTasks) {
		t := o.(*resource.UpgradeTask)
		p.tasks[t.ID] = t
		inflight := 0
		if t.Counts.Processing > 0 {
			// Timeouts apply to a stopped or aborted task's processing devices too: they go on.
			var response, upgrade []string
			for _, r := range view.OTARecords(t.ID, resource.RecordProcessing) {
				if r.UpgradeTime == nil {
					continue
				}
				if t.Mode == resource.ModePush && !r.Responded && t.ResponseTimeoutSeconds > 0 {
					deadline := r.UpgradeTime.Add(time.Duration(t.ResponseTimeoutSeconds) * time.Second)
					if !now.Before(deadline) {
						response = append(response, r.DeviceID)
						continue
					}
					due(deadline)
				}
				deadline := r.UpgradeTime.Add(time.Duration(t.TimeoutSeconds) * time.Second)
				if !now.Before(deadline) {
					upgrade = append(upgrade, r.DeviceID)
					continue
				}
				due(deadline)
				inflight++
			}
			if len(response) > 0 {
				p.ops = append(p.ops, fsm.OTAOp{Op: fsm.OpTimeout, TaskID: t.ID, Kind: fsm.TimeoutResponse, DeviceIDs: response})
			}
			if len(upgrade) > 0 {
				p.ops = append(p.ops, fsm.OTAOp{Op: fsm.OpTimeout, TaskID: t.ID, Kind: fsm.TimeoutUpgrade, DeviceIDs: upgrade})
			}
		}
		if t.State != resource.TaskRunning || t.Mode != resource.ModePush || t.Counts.Waiting == 0 {
			continue
		}
		budget := min(t.Rollout.MaxInFlight-inflight, e.cfg.MaxSends-sends)
		if t.Rollout.MaxPerMinute > 0 && budget > 0 {
			left, free := perMinute(view.OTARecords(t.ID, ""), now, t.Rollout.MaxPerMinute)
			budget = min(budget, left)
			if left <= 0 {
				due(free)
			}
		}
		if budget <= 0 {
			continue
		}
		waiting := view.OTARecords(t.ID, resource.RecordWaiting)
		ids := make([]string, len(waiting))
		for i, r := range waiting {
			ids[i] = r.DeviceID
		}
		presence := e.cfg.Store.PresenceOf(ids)
		var picked []string
		for _, id := range ids {
			if len(picked) == budget {
				break
			}
			pr := presence[id]
			if pr == nil || !pr.Online {
				continue // sent to when it comes online (the presence watch wakes the engine)
			}
			if until, ok := e.cooldown[id]; ok {
				due(until)
				continue
			}
			picked = append(picked, id)
			p.holders[id] = pr.ServerID
		}
		if len(picked) > 0 {
			p.ops = append(p.ops, fsm.OTAOp{Op: fsm.OpSend, TaskID: t.ID, DeviceIDs: picked})
			sends += len(picked)
		}
	}
	return p, next
}

// perMinute returns how many pushes the last minute still allows and, when none, when the
// oldest of them leaves the window. It reads the records' upgrade times, so the limit
// holds across a change of leader.
func perMinute(records []*fsm.OTARecord, now time.Time, limit int) (int, time.Time) {
	var recent []time.Time
	for _, r := range records {
		if r.UpgradeTime != nil && now.Sub(*r.UpgradeTime) < time.Minute {
			recent = append(recent, *r.UpgradeTime)
		}
	}
	left := limit - len(recent)
	if left > 0 || len(recent) == 0 {
		return left, now
	}
	sort.Slice(recent, func(i, j int) bool { return recent[i].Before(recent[j]) })
	return left, recent[len(recent)-limit].Add(time.Minute)
}

// deliver sends the recorded pushes, each to the node holding its device, and puts back
// to waiting the ones whose device had gone.
func (e *Engine) deliver(ctx context.Context, now time.Time, sent map[string][]string, p plan) {
	byNode := map[string][]Push{}
	for taskID, devices := range sent {
		t := p.tasks[taskID]
		expires := now.Add(time.Duration(t.TimeoutSeconds)*time.Second + time.Hour)
		for _, d := range devices {
			node := p.holders[d]
			byNode[node] = append(byNode[node], Push{TaskID: taskID, DeviceID: d, FirmwareID: t.FirmwareID, Expires: expires})
		}
	}
	var mu sync.Mutex
	requeue := map[string][]string{}
	var wg sync.WaitGroup
	for node, pushes := range byNode {
		wg.Add(1)
		go func(node string, pushes []Push) {
			defer wg.Done()
			// Not cancelled with leadership: these pushes are recorded as processing, a new
			// leader never sends them again, and one dropped now is a device that fails by
			// its response timeout. A lost leadership therefore waits for at most this
			// delivery (seen in B5: leases lost under load while 5,000 pushes went out).
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deliverTimeout)
			defer cancel()
			results, err := e.cfg.Deliver(dctx, node, pushes)
			if err != nil {
				// The node may have taken them: leave them to the response timeout, as a
				// push lost with a leader is (SPEC §4.8).
				e.log.Warn("delivering firmware pushes failed", "node", node, "pushes", len(pushes), "error", err)
				e.metrics.pushFailures.WithLabelValues("node_unreachable").Add(float64(len(pushes)))
				return
			}
			mu.Lock()
			defer mu.Unlock()
			taskOf := make(map[string]string, len(pushes))
			for _, p := range pushes {
				taskOf[p.DeviceID] = p.TaskID
			}
			for _, r := range results {
				task, ok := taskOf[r.DeviceID]
				if !ok {
					continue // not a push of ours (a node of another version?)
				}
				switch r.Outcome {
				case PushSent:
					e.metrics.pushes.Inc()
				case PushOffline:
					e.metrics.pushFailures.WithLabelValues(PushOffline).Inc()
					requeue[task] = append(requeue[task], r.DeviceID)
					e.cooldown[r.DeviceID] = now.Add(2 * time.Second)
				default:
					e.metrics.pushFailures.WithLabelValues(PushFailed).Inc()
					e.log.Warn("a firmware push failed", "device", r.DeviceID, "node", node, "error", r.Error)
				}
			}
		}(node, pushes)
	}
	wg.Wait()
	if len(requeue) == 0 {
		return
	}
	var ops []fsm.OTAOp
	for taskID, devices := range requeue {
		ops = append(ops, fsm.OTAOp{Op: fsm.OpRequeue, TaskID: taskID, DeviceIDs: devices})
	}
	cmd, err := fsm.NewOTA(e.cfg.Now(), ops...)
	if err == nil {
		_, err = e.cfg.Apply(ctx, cmd)
	}
	if err != nil && ctx.Err() == nil {
		e.log.Warn("putting undelivered pushes back to waiting failed; they fail after the response timeout", "error", err)
	}
}
