package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Status describes this node's raft state for its peers.
func (c *Cluster) Status() PeerStatus {
	_, leader := c.raft.LeaderWithID()
	return PeerStatus{
		NodeID:       c.cfg.NodeID,
		RaftState:    c.raft.State().String(),
		Leader:       string(leader),
		HasState:     c.hasState(),
		AppliedIndex: c.raft.AppliedIndex(),
		CommitIndex:  c.raft.CommitIndex(),
		LastIndex:    c.raft.LastIndex(),
		LastContact:  c.raft.LastContact(),
	}
}

// hasState reports whether this node already belongs to a cluster: it has a log, or a
// configuration with servers in it.
func (c *Cluster) hasState() bool {
	if c.raft.LastIndex() > 0 {
		return true
	}
	f := c.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// WaitLeader waits until some leader is known (or ctx ends) and returns its id.
func (c *Cluster) WaitLeader(ctx context.Context) (string, error) {
	for {
		if _, id := c.raft.LeaderWithID(); id != "" {
			return string(id), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: none elected within the request timeout (is a majority of nodes up and reachable?)", ErrNoLeader)
		case <-c.shutdownCh:
			return "", ErrShutdown
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// LeaderAPIAddr waits for a leader and returns the address of its API.
func (c *Cluster) LeaderAPIAddr(ctx context.Context) (id, addr string, err error) {
	for {
		id, err := c.WaitLeader(ctx)
		if err != nil {
			return "", "", err
		}
		if id == c.cfg.NodeID {
			return id, c.cfg.APIAdvertise, nil
		}
		for _, m := range c.members.Members() {
			if m.ID == id && m.APIAddr != "" {
				return id, m.APIAddr, nil
			}
		}
		// The leader is known to raft but not yet to gossip: wait a moment.
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("%w: leader %s is not known to gossip", ErrNoLeader, id)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// ReadIndex returns the raft index that a linearizable read must see. On the leader it
// takes the commit index and then confirms leadership with a heartbeat round to a quorum,
// so a deposed leader cannot serve stale state; concurrent calls share rounds. On a
// follower it asks the leader. (Raft dissertation §6.4, "read index".)
func (c *Cluster) ReadIndex(ctx context.Context) (uint64, error) {
	if c.raft.State() == raft.Leader {
		return c.LeaderReadIndex(ctx)
	}
	_, addr, err := c.LeaderAPIAddr(ctx)
	if err != nil {
		return 0, err
	}
	if addr == c.cfg.APIAdvertise {
		return c.LeaderReadIndex(ctx)
	}
	var out ReadIndexResponse
	if err := c.peers.get(ctx, addr, ReadIndexPath, &out); err != nil {
		return 0, fmt.Errorf("%w: asking the leader at %s for a read index: %v", ErrNoLeader, addr, err)
	}
	return out.Index, nil
}

// LeaderReadIndex is ReadIndex on the leader itself.
func (c *Cluster) LeaderReadIndex(ctx context.Context) (uint64, error) {
	// A new leader serves reads only after its barrier: before that its commit index may
	// not yet cover entries its predecessor acknowledged.
	for !c.leaderReady.Load() {
		if c.raft.State() != raft.Leader {
			return 0, ErrNotLeader
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: new leader still catching up", ErrNoLeader)
		case <-time.After(5 * time.Millisecond):
		}
	}
	// Every write this leader acknowledged was applied to its FSM first, and after the
	// barrier so was everything its predecessors acknowledged: the FSM's index covers them.
	idx := c.cfg.FSMIndex()
	if err := c.raft.VerifyLeader().Error(); err != nil {
		return 0, fmt.Errorf("%w: leadership not confirmed by a quorum: %v", ErrNoLeader, err)
	}
	return idx, nil
}

// WaitApplied waits until this node's FSM has applied index.
func (c *Cluster) WaitApplied(ctx context.Context, index uint64) error {
	delay := 100 * time.Microsecond
	for c.cfg.FSMIndex() < index {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: this node is behind the leader (applied %d, need %d)", ErrNoLeader, c.cfg.FSMIndex(), index)
		case <-c.shutdownCh:
			return ErrShutdown
		case <-time.After(delay):
		}
		if delay < 5*time.Millisecond {
			delay *= 2
		}
	}
	return nil
}
