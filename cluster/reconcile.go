package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Errors of node removal.
var (
	ErrUnknownNode = errors.New("no such node in the raft configuration")
	ErrNodeAlive   = errors.New("node is alive")
	ErrNodeIsSelf  = errors.New("the leader cannot remove itself")
)

// reconcileInterval is how often the leader compares gossip with raft even without events.
const reconcileInterval = 2 * time.Second

// reconcileMembers is a leader routine: it adds alive gossip members to raft as voters and
// removes members that left on purpose. Failed (dead) members stay voters until an operator
// removes them (DELETE /api/v1/cluster/nodes/{id}): a dead node may come back, and removing
// it automatically would shrink the quorum under a partition.
func (c *Cluster) reconcileMembers(ctx context.Context) {
	t := time.NewTicker(reconcileInterval)
	defer t.Stop()
	for {
		if err := c.reconcileOnce(); err != nil && ctx.Err() == nil {
			c.log.Warn("reconciling members with raft failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.members.events:
		}
	}
}

func (c *Cluster) reconcileOnce() error {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := map[string]raft.Server{}
	for _, s := range f.Configuration().Servers {
		servers[string(s.ID)] = s
	}
	for _, m := range c.members.Members() {
		s, inRaft := servers[m.ID]
		switch {
		case m.Status == StatusAlive && m.RaftAddr != "" && (!inRaft || string(s.Address) != m.RaftAddr):
			c.log.Info("adding member to raft", "member", m.ID, "raft", m.RaftAddr)
			if err := c.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, 0).Error(); err != nil {
				return fmt.Errorf("add %s: %w", m.ID, err)
			}
		case m.Status == StatusLeft && inRaft && m.ID != c.cfg.NodeID:
			c.log.Info("removing member that left", "member", m.ID)
			if err := c.raft.RemoveServer(raft.ServerID(m.ID), 0, 0).Error(); err != nil {
				return fmt.Errorf("remove %s: %w", m.ID, err)
			}
		}
	}
	return nil
}

// RemoveNode removes a dead node from raft. Only the leader can, and it refuses to remove
// a node gossip sees alive or itself.
func (c *Cluster) RemoveNode(id string) error {
	if c.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if id == c.cfg.NodeID {
		return ErrNodeIsSelf
	}
	servers, err := c.Servers()
	if err != nil {
		return err
	}
	found := false
	for _, s := range servers {
		found = found || string(s.ID) == id
	}
	if !found {
		return ErrUnknownNode
	}
	for _, m := range c.members.Members() {
		if m.ID == id && (m.Status == StatusAlive || m.Status == StatusSuspect) {
			return fmt.Errorf("%w: gossip sees %s %s; stop it first", ErrNodeAlive, id, m.Status)
		}
	}
	c.log.Warn("removing node from raft on request", "member", id)
	return classify(c.raft.RemoveServer(raft.ServerID(id), 0, 0).Error())
}

// NodeStatus is one node of the cluster as the node list shows it.
type NodeStatus struct {
	Member
	Role         string     `json:"role"`
	Voter        bool       `json:"voter"`
	LastContact  *time.Time `json:"lastContact"`
	AppliedIndex *uint64    `json:"appliedIndex"`
}

// Nodes lists every node raft or gossip knows, asking each alive one for its raft state.
func (c *Cluster) Nodes(ctx context.Context) ([]NodeStatus, error) {
	servers, err := c.Servers()
	if err != nil {
		return nil, err
	}
	_, leader := c.raft.LeaderWithID()
	byID := map[string]*NodeStatus{}
	for _, m := range c.members.Members() {
		byID[m.ID] = &NodeStatus{Member: m, Role: "nonvoter"}
	}
	for _, s := range servers {
		n, ok := byID[string(s.ID)]
		if !ok {
			// In raft but unknown to gossip (e.g. long dead and forgotten).
			n = &NodeStatus{Member: Member{ID: string(s.ID), Status: StatusDead}}
			byID[string(s.ID)] = n
		}
		n.RaftAddr = string(s.Address)
		n.Voter = s.Suffrage == raft.Voter
		n.Role = "follower"
		if !n.Voter {
			n.Role = "nonvoter"
		}
		if string(s.ID) == string(leader) {
			n.Role = "leader"
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, n := range byID {
		if n.ID == c.cfg.NodeID {
			c.fillStatus(n, c.Status())
			continue
		}
		if n.Status != StatusAlive && n.Status != StatusSuspect || n.APIAddr == "" {
			continue
		}
		wg.Add(1)
		go func(n *NodeStatus) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			var st PeerStatus
			if err := c.peers.get(cctx, n.APIAddr, StatusPath, &st); err != nil {
				return
			}
			mu.Lock()
			c.fillStatus(n, st)
			mu.Unlock()
		}(n)
	}
	wg.Wait()
	out := make([]NodeStatus, 0, len(byID))
	for _, n := range byID {
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (c *Cluster) fillStatus(n *NodeStatus, st PeerStatus) {
	applied := st.AppliedIndex
	n.AppliedIndex = &applied
	switch st.RaftState {
	case raft.Leader.String():
		n.Role = "leader"
		now := time.Now().UTC()
		n.LastContact = &now
	case raft.Candidate.String():
		n.Role = "candidate"
	}
	if n.LastContact == nil && !st.LastContact.IsZero() {
		lc := st.LastContact.UTC()
		n.LastContact = &lc
	}
}

// Peers lists every node this node knows, cheaply: the members gossip sees (with their API
// addresses) and the raft servers gossip does not, which are reported dead. Fan-out
// queries use it to ask every live node and to name the ones they could not ask.
func (c *Cluster) Peers() []Member {
	out := c.members.Members()
	known := map[string]bool{}
	for _, m := range out {
		known[m.ID] = true
	}
	if servers, err := c.Servers(); err == nil {
		for _, s := range servers {
			if !known[string(s.ID)] {
				out = append(out, Member{ID: string(s.ID), RaftAddr: string(s.Address), Status: StatusDead})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
