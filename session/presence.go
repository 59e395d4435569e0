package session

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/linkops/linkops/fsm"
)

// writer is this node's presence queue: the latest transition per device, flushed to raft
// in batches. A failed flush keeps its changes (unless a newer one for the device came
// meanwhile) and is retried with backoff, so a node without a leader loses none.
type writer struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	pending map[string]fsm.PresenceChange
	order   []string // device ids in the order they were queued
	wake    chan struct{}
	// inflight: sessions whose online is being proposed right now.
	flushing bool
	idle     *sync.Cond
}

func newWriter(cfg Config, log *slog.Logger) *writer {
	w := &writer{cfg: cfg, log: log, pending: map[string]fsm.PresenceChange{}, wake: make(chan struct{}, 1)}
	w.idle = sync.NewCond(&w.mu)
	return w
}

// put queues a change, replacing any queued one of the same device.
func (w *writer) put(c fsm.PresenceChange) {
	w.mu.Lock()
	if _, queued := w.pending[c.DeviceID]; !queued {
		w.order = append(w.order, c.DeviceID)
	}
	w.pending[c.DeviceID] = c
	n := len(w.pending)
	w.mu.Unlock()
	w.cfg.Metrics.presenceQueue.Set(float64(n))
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// forget drops a queued change of a session this node no longer holds.
func (w *writer) forget(deviceID, session string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.pending[deviceID]; ok && c.Session == session {
		delete(w.pending, deviceID)
	}
}

// pendingSession reports whether a change for this session is queued.
func (w *writer) pendingSession(deviceID, session string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.pending[deviceID]
	return ok && c.Session == session
}

// take removes up to max queued changes, oldest first.
func (w *writer) take(max int) []fsm.PresenceChange {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]fsm.PresenceChange, 0, min(max, len(w.pending)))
	i := 0
	for ; i < len(w.order) && len(out) < max; i++ {
		id := w.order[i]
		if c, ok := w.pending[id]; ok {
			out = append(out, c)
			delete(w.pending, id)
		}
	}
	w.order = append(w.order[:0:0], w.order[i:]...)
	if len(w.pending) == 0 {
		w.order = w.order[:0]
	}
	if len(out) > 0 {
		w.flushing = true
	}
	w.cfg.Metrics.presenceQueue.Set(float64(len(w.pending)))
	return out
}

// giveBack requeues a failed batch, except devices with a newer change queued since.
func (w *writer) giveBack(batch []fsm.PresenceChange) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var front []string
	for _, c := range batch {
		if _, newer := w.pending[c.DeviceID]; newer {
			continue
		}
		w.pending[c.DeviceID] = c
		front = append(front, c.DeviceID)
	}
	w.order = append(front, w.order...)
	w.cfg.Metrics.presenceQueue.Set(float64(len(w.pending)))
}

func (w *writer) done() {
	w.mu.Lock()
	w.flushing = false
	w.idle.Broadcast()
	w.mu.Unlock()
}

// run flushes until ctx ends.
func (w *writer) run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		// Let a burst gather: one entry per FlushInterval at most under load.
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.cfg.FlushInterval):
		}
		for {
			batch := w.take(w.cfg.MaxBatch)
			if len(batch) == 0 {
				w.done()
				break
			}
			err := w.propose(ctx, batch)
			if err == nil {
				w.done()
				backoff = 50 * time.Millisecond
				continue
			}
			w.giveBack(batch)
			w.done()
			if ctx.Err() != nil {
				return
			}
			w.log.Warn("presence not recorded yet; devices are served meanwhile and the changes are retried", "changes", len(batch), "error", err, "retryIn", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

func (w *writer) propose(ctx context.Context, batch []fsm.PresenceChange) error {
	cmd, err := fsm.NewPresence(batch)
	if err != nil {
		return err
	}
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = w.cfg.Propose(pctx, cmd)
	w.cfg.Metrics.presenceWrite(start, len(batch), err)
	return err
}

// flushAll writes everything queued now, once, within ctx (used when stopping).
func (w *writer) flushAll(ctx context.Context) error {
	w.mu.Lock()
	for w.flushing {
		w.idle.Wait()
	}
	w.mu.Unlock()
	var errs []error
	for {
		batch := w.take(w.cfg.MaxBatch)
		if len(batch) == 0 {
			w.done()
			return errors.Join(errs...)
		}
		if err := w.propose(ctx, batch); err != nil {
			errs = append(errs, err)
			w.done()
			return errors.Join(errs...)
		}
		w.done()
	}
}

// follow keeps this node's sessions and the presence table in agreement (see the package
// doc): it reads every change in raft index order, and once at start the whole of what
// the table says this node holds.
func (m *Manager) follow(ctx context.Context) {
	m.reconcileOwn()
	var last uint64
	for {
		recs, ws := m.cfg.Store.PresenceSince(last)
		for _, p := range recs {
			if p.Index > last {
				last = p.Index
			}
			m.check(p)
		}
		if err := ws.WatchCtx(ctx); err != nil {
			return
		}
	}
}

// reconcileOwn handles what the table says this node holds: sessions it no longer has
// (it restarted, or closed them while raft was away) go offline.
func (m *Manager) reconcileOwn() {
	for _, p := range m.cfg.Store.PresenceOnServer(m.cfg.NodeID) {
		m.check(p)
	}
}

// check compares one presence record with what this node holds.
func (m *Manager) check(p *fsm.Presence) {
	s := m.Get(p.DeviceID)
	switch {
	case s != nil && s.id == p.Session:
		if !p.Online && !m.writer.pendingSession(p.DeviceID, s.id) {
			// Released while this node was cut off (the leader saw it dead): it still
			// holds the device, so it says so again.
			m.log.Info("presence says offline but this node holds the session; recording it online again", "device", p.DeviceID)
			m.writer.put(fsm.PresenceChange{DeviceID: p.DeviceID, ServerID: m.cfg.NodeID, Session: s.id, Online: true, At: s.connectedAt})
		}
	case s != nil && p.Online && p.Session != s.id && p.ConnectedAt.After(s.connectedAt):
		m.drop(p.DeviceID, s.id)
	case s == nil && p.Online && p.ServerID == m.cfg.NodeID:
		// A session this node does not hold (it restarted, or the connection closed while
		// its online was in flight). A session held here under another id needs nothing:
		// its own queued online replaces the record.
		if m.writer.pendingSession(p.DeviceID, p.Session) {
			return
		}
		m.writer.put(fsm.PresenceChange{DeviceID: p.DeviceID, ServerID: m.cfg.NodeID, Session: p.Session, At: m.cfg.Now().UTC(), ConnectedAt: p.ConnectedAt})
	}
}
