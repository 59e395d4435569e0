package cluster

import (
	"context"
	"sync"
	"time"
)

// monitorLeadership owns leader-only work: it starts the leader loop when raft reports
// leadership and stops it, waiting for every routine, when leadership is lost. Nothing else
// checks "am I leader?" in passing (after Nomad's monitorLeadership).
func (c *Cluster) monitorLeadership() {
	defer close(c.monitorDone)
	var (
		stop chan struct{}
		wg   sync.WaitGroup
	)
	revoke := func() {
		if stop == nil {
			return
		}
		close(stop)
		wg.Wait()
		stop = nil
		c.log.Info("leader routines stopped")
	}
	for {
		select {
		case isLeader := <-c.notifyCh:
			c.metrics.leaderChanges.Inc()
			if isLeader {
				if stop != nil {
					continue
				}
				c.log.Info("gained leadership", "node", c.cfg.NodeID)
				stop = make(chan struct{})
				wg.Add(1)
				go func(stop chan struct{}) {
					defer wg.Done()
					c.leaderLoop(stop)
				}(stop)
			} else {
				c.log.Info("lost leadership", "node", c.cfg.NodeID)
				revoke()
			}
		case <-c.shutdownCh:
			revoke()
			return
		}
	}
}

// leaderLoop waits for a barrier, then runs every leader routine until stop is closed.
func (c *Cluster) leaderLoop(stop chan struct{}) {
	// A new leader may not have applied its predecessor's entries yet (Raft dissertation
	// §6.4): the barrier makes leader routines start from the committed state.
	for {
		err := c.raft.Barrier(c.cfg.ApplyTimeout).Error()
		if err == nil {
			break
		}
		c.log.Warn("leader barrier failed; retrying", "error", err)
		select {
		case <-stop:
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	c.leaderReady.Store(true)
	defer c.leaderReady.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, r := range c.cfg.LeaderRoutines {
		wg.Add(1)
		go func(r LeaderRoutine) {
			defer wg.Done()
			c.log.Debug("leader routine started", "routine", r.Name)
			r.Run(ctx)
		}(r)
	}
	<-stop
	cancel()
	wg.Wait()
}
