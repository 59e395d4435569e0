package session

import (
	"context"
	"log/slog"
	"time"

	"github.com/linkops/linkops/fsm"
)

// ReapInterval is how often the leader looks for sessions held by dead nodes. With gossip
// declaring a node dead within about 6 s (memberlist's LAN timers), its devices are
// offline well within the 15 s of SPEC §5.1.
const ReapInterval = time.Second

// Reaper is a leader routine: it records offline the sessions that nodes gossip sees dead
// still hold in the presence table. A node that comes back puts the sessions it still has
// online again (Manager.follow), so reaping a node that was only cut off loses nothing.
type Reaper struct {
	Store *fsm.Store
	// Dead lists the ids of members gossip has declared dead (not suspect: a suspect node
	// may still be serving).
	Dead    func() []string
	Propose func(ctx context.Context, cmd []byte) error
	Log     *slog.Logger
	Now     func() time.Time
}

// Run reaps until ctx ends (leadership lost).
func (r *Reaper) Run(ctx context.Context) {
	if r.Now == nil {
		r.Now = time.Now
	}
	t := time.NewTicker(ReapInterval)
	defer t.Stop()
	for {
		r.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Reaper) once(ctx context.Context) {
	for _, node := range r.Dead() {
		var changes []fsm.PresenceChange
		now := r.Now().UTC()
		for _, p := range r.Store.PresenceOnServer(node) {
			if p.Online {
				changes = append(changes, fsm.PresenceChange{DeviceID: p.DeviceID, ServerID: node, Session: p.Session, At: now, ConnectedAt: p.ConnectedAt})
			}
		}
		for len(changes) > 0 && ctx.Err() == nil {
			n := min(len(changes), DefaultMaxBatch)
			cmd, err := fsm.NewPresence(changes[:n])
			if err != nil {
				return
			}
			if err := r.Propose(ctx, cmd); err != nil {
				r.Log.Warn("releasing the sessions of a dead node failed; retrying", "node", node, "devices", len(changes), "error", err)
				return
			}
			r.Log.Info("released the device sessions of a dead node", "node", node, "devices", n)
			changes = changes[n:]
		}
	}
}
