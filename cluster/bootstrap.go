package cluster

import (
	"context"
	"sort"
	"time"

	"github.com/hashicorp/raft"
)

// bootstrapWhenReady forms a new cluster once BootstrapExpect nodes have met by gossip, and
// never when any of them already belongs to a cluster: a fresh node that finds an existing
// cluster waits for its leader to add it (the check Nomad and Consul make before
// bootstrapping). Every node that bootstraps uses the same server list, sorted by id, so
// several nodes doing it at once agree.
func (c *Cluster) bootstrapWhenReady() {
	lastWait := time.Time{}
	for {
		select {
		case <-c.shutdownCh:
			return
		case <-time.After(250 * time.Millisecond):
		}
		if c.hasState() {
			return
		}
		var servers []raft.Server
		for _, m := range c.members.Members() {
			if m.Status == StatusAlive && m.Expect == c.cfg.BootstrapExpect && m.RaftAddr != "" {
				servers = append(servers, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr), Suffrage: raft.Voter})
			}
		}
		if len(servers) < c.cfg.BootstrapExpect || len(c.members.Members()) < 2 && len(c.cfg.Join) > 0 {
			if time.Since(lastWait) > 10*time.Second {
				c.log.Info("waiting for peers before forming a cluster", "have", len(servers), "expect", c.cfg.BootstrapExpect)
				lastWait = time.Now()
			}
			continue
		}
		existing, ok := c.peersHaveState()
		if !ok {
			continue // a peer did not answer: ask again
		}
		if existing != "" {
			c.log.Info("found an existing cluster; waiting for its leader to add this node", "via", existing)
			return
		}
		sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
		c.log.Info("bootstrapping a new cluster", "servers", len(servers))
		if err := c.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			c.log.Warn("bootstrap refused", "error", err)
		}
		return
	}
}

// peersHaveState asks every other alive member whether it already has raft state. It
// returns the id of one that does, and ok=false if any member did not answer.
func (c *Cluster) peersHaveState() (existing string, ok bool) {
	for _, m := range c.members.Members() {
		if m.ID == c.cfg.NodeID || m.Status != StatusAlive {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var st PeerStatus
		err := c.peers.get(ctx, m.APIAddr, StatusPath, &st)
		cancel()
		if err != nil {
			c.log.Debug("peer did not answer the bootstrap check", "peer", m.ID, "error", err)
			return "", false
		}
		if st.HasState {
			return m.ID, true
		}
	}
	return "", true
}
