package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member statuses, as gossip sees them.
const (
	StatusAlive   = "alive"
	StatusSuspect = "suspect"
	StatusDead    = "dead"
	StatusLeft    = "left"
)

// Member is one node as gossip knows it.
type Member struct {
	ID         string `json:"id"`
	APIAddr    string `json:"apiAddr"`
	RaftAddr   string `json:"raftAddr"`
	GossipAddr string `json:"gossipAddr"`
	Rack       string `json:"rack"`
	Version    string `json:"version"`
	Status     string `json:"status"`
	// Expect is the member's --bootstrap-expect; nodes that disagree do not bootstrap
	// together.
	Expect int `json:"-"`
}

// memberMeta is what each node gossips about itself (memberlist limits it to 512 bytes).
type memberMeta struct {
	API     string `json:"a"`
	Raft    string `json:"r"`
	Rack    string `json:"k,omitempty"`
	Version string `json:"v"`
	Expect  int    `json:"e"`
}

// membership runs gossip: who is in the cluster, where their APIs and raft are, and
// whether they are alive.
type membership struct {
	ml     *memberlist.Memberlist
	name   string
	meta   []byte
	log    *slog.Logger
	events chan struct{} // pulsed on every join, leave or update

	mu      sync.Mutex
	stopped bool
	stopCh  chan struct{}
	joinWG  sync.WaitGroup
	// seen is every member gossip counts (neither dead nor left), as this node last copied
	// it. memberlist rewrites in place the nodes its Members() points at (Addr, Port, Meta
	// and State; hashicorp/memberlist#306), so a node's fields are read only where that is
	// safe: in the event callbacks, which memberlist calls under its node lock, and from
	// the private copy a probe's ack hands to NotifyPingComplete.
	seen map[string]Member
	// known is every member seen, by id → gossip address, until it leaves on purpose:
	// memberlist forgets a dead member after GossipToTheDeadTime and never contacts it
	// again, so healing a partition is ours to do (Serf's reconnect loop).
	known map[string]string
	// reconnectEvery is how often members that are not alive are joined again.
	reconnectEvery time.Duration
}

// Reconnect intervals: how often a node tries members it sees dead or has lost.
const (
	reconnectInterval     = 5 * time.Second
	fastReconnectInterval = time.Second
)

type membershipConfig struct {
	NodeID    string
	Bind      string
	Advertise string
	Key       []byte
	Meta      memberMeta
	Logger    *slog.Logger
	// Fast shortens gossip intervals for tests on loopback.
	Fast bool
}

func newMembership(cfg membershipConfig) (*membership, error) {
	meta, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, err
	}
	m := &membership{name: cfg.NodeID, meta: meta, log: cfg.Logger.With("component", "gossip"), events: make(chan struct{}, 1), stopCh: make(chan struct{}),
		known: map[string]string{}, seen: map[string]Member{}, reconnectEvery: reconnectInterval}
	if cfg.Fast {
		m.reconnectEvery = fastReconnectInterval
	}

	mc := memberlist.DefaultLANConfig()
	if cfg.Fast {
		mc = memberlist.DefaultLocalConfig()
		mc.GossipInterval = 50 * time.Millisecond
		mc.ProbeInterval = 300 * time.Millisecond
		mc.ProbeTimeout = 200 * time.Millisecond
		mc.SuspicionMult = 2
	}
	// A node restarted on new ports comes back under its name: without a reclaim time
	// memberlist refuses the new address of a name it knows, dead or not, until it has
	// forgotten the old one.
	mc.DeadNodeReclaimTime = reconnectInterval
	if cfg.Fast {
		mc.DeadNodeReclaimTime = fastReconnectInterval
	}
	mc.Name = cfg.NodeID
	host, port, err := splitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("--gossip-addr %q: %w", cfg.Bind, err)
	}
	mc.BindAddr, mc.BindPort = host, port
	if cfg.Advertise != "" {
		ahost, aport, err := splitHostPort(cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise address %q: %w", cfg.Advertise, err)
		}
		if aport != 0 {
			mc.AdvertiseAddr, mc.AdvertisePort = ahost, aport
		}
	}
	if len(cfg.Key) > 0 {
		mc.SecretKey = cfg.Key
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	mc.Delegate = m
	mc.Events = m
	mc.Ping = m
	mc.Logger = log.New(&memberlistLogWriter{log: m.log, suspected: m.suspected}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.Bind, err)
	}
	m.ml = ml
	return m, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return host, port, err
}

// Addr is the gossip address this node advertises.
func (m *membership) Addr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[m.name].GossipAddr
}

// joinInBackground keeps trying to join the given members until one answers, so nodes
// can start in any order.
func (m *membership) joinInBackground(addrs []string) {
	if len(addrs) == 0 {
		return
	}
	m.joinWG.Add(1)
	go func() {
		defer m.joinWG.Done()
		backoff := 200 * time.Millisecond
		for attempt := 1; ; attempt++ {
			n, err := m.ml.Join(addrs)
			if n > 0 {
				m.log.Info("joined the cluster", "contacted", n, "members", m.ml.NumMembers())
				return
			}
			if attempt == 1 || attempt%10 == 0 {
				m.log.Warn("cannot join yet; retrying", "join", strings.Join(addrs, ","), "attempt", attempt, "error", err)
			}
			select {
			case <-m.stopCh:
				return
			case <-time.After(backoff):
			}
			if backoff < 5*time.Second {
				backoff *= 2
			}
		}
	}()
}

// reconnectInBackground joins again, every reconnectEvery, each known member that gossip
// does not see alive, and the join addresses while lonely says no leader reaches this node: after a partition heals the two sides would otherwise stay apart
// for good (memberlist probes only members it believes alive), and a node cut off from
// gossip cannot forward to its leader or be asked for its devices.
func (m *membership) reconnectInBackground(join []string, lonely func() bool) {
	m.joinWG.Add(1)
	go func() {
		defer m.joinWG.Done()
		t := time.NewTicker(m.reconnectEvery)
		defer t.Stop()
		for {
			select {
			case <-m.stopCh:
				return
			case <-t.C:
			}
			targets := m.lost()
			if lonely() {
				// No leader reaches this node: the others may not have accepted it (it came
				// back on a new address while they still knew the old one), so it announces
				// itself again through the members it was told to join.
				for i, addr := range join {
					targets["join-"+strconv.Itoa(i)] = addr
				}
			}
			for id, addr := range targets {
				if n, err := m.ml.Join([]string{addr}); n > 0 && !strings.HasPrefix(id, "join-") {
					m.log.Info("reconnected to a member gossip had lost", "member", id, "addr", addr)
				} else if err != nil {
					m.log.Debug("member still unreachable", "member", id, "addr", addr, "error", err)
				}
			}
		}
	}()
}

// lost lists the known members that gossip does not see alive now.
func (m *membership) lost() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for id, addr := range m.known {
		if m.seen[id].Status != StatusAlive && id != m.name {
			out[id] = addr
		}
	}
	return out
}

// Members returns every node gossip knows, sorted by id.
func (m *membership) Members() []Member {
	m.mu.Lock()
	out := make([]Member, 0, len(m.seen))
	for _, mb := range m.seen {
		out = append(out, mb)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func toMember(n *memberlist.Node) Member {
	var meta memberMeta
	_ = json.Unmarshal(n.Meta, &meta)
	status := StatusAlive
	switch n.State {
	case memberlist.StateSuspect:
		status = StatusSuspect
	case memberlist.StateDead:
		status = StatusDead
	case memberlist.StateLeft:
		status = StatusLeft
	}
	return Member{ID: n.Name, APIAddr: meta.API, RaftAddr: meta.Raft, Rack: meta.Rack, Version: meta.Version, Expect: meta.Expect,
		GossipAddr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), Status: status}
}

// leave tells the others this node is leaving on purpose, then stops gossip.
func (m *membership) leave(timeout time.Duration) error {
	return m.ml.Leave(timeout)
}

func (m *membership) shutdown() {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	m.stopped = true
	close(m.stopCh)
	m.mu.Unlock()
	m.joinWG.Wait()
	_ = m.ml.Shutdown()
}

func (m *membership) pulse() {
	select {
	case m.events <- struct{}{}:
	default:
	}
}

// memberlist.Delegate: only NodeMeta is used; state is in raft, not in gossip.
func (m *membership) NodeMeta(limit int) []byte                  { return m.meta }
func (m *membership) NotifyMsg([]byte)                           {}
func (m *membership) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (m *membership) LocalState(join bool) []byte                { return nil }
func (m *membership) MergeRemoteState(buf []byte, join bool)     {}

// memberlist.EventDelegate, called under memberlist's node lock (so n may be read, and
// nothing here may call back into memberlist): every change is copied into seen and wakes
// the leader's reconcile loop.
func (m *membership) NotifyJoin(n *memberlist.Node) {
	mb := toMember(n)
	m.log.Info("member joined", "member", mb.ID, "addr", mb.GossipAddr)
	m.mu.Lock()
	m.known[mb.ID] = mb.GossipAddr
	m.seen[mb.ID] = mb
	m.mu.Unlock()
	m.pulse()
}
func (m *membership) NotifyLeave(n *memberlist.Node) {
	mb := toMember(n)
	m.log.Info("member left or failed", "member", mb.ID, "state", mb.Status)
	m.mu.Lock()
	delete(m.seen, mb.ID)
	if mb.Status == StatusLeft {
		delete(m.known, mb.ID)
	}
	m.mu.Unlock()
	m.pulse()
}
func (m *membership) NotifyUpdate(n *memberlist.Node) {
	mb := toMember(n)
	m.mu.Lock()
	m.known[mb.ID] = mb.GossipAddr
	m.seen[mb.ID] = mb
	m.mu.Unlock()
	m.pulse()
}

// memberlist.PingDelegate. memberlist tells no delegate when it suspects a member or when
// the member refutes it, so this node learns it from its own probes: an ack hands over the
// probe's private copy of the member, whose State is gossip's opinion when the probe
// began (a refuted suspicion shows alive again by the next probe of that member), and a
// probe without acks is logged (memberlistLogWriter) just before memberlist suspects it.
func (m *membership) AckPayload() []byte { return nil }
func (m *membership) NotifyPingComplete(other *memberlist.Node, _ time.Duration, _ []byte) {
	status := toMember(other).Status
	if status != StatusAlive && status != StatusSuspect {
		return
	}
	m.setStatus(other.Name, status)
}

// suspected records that this node's probe of member name went unanswered.
func (m *membership) suspected(name string) { m.setStatus(name, StatusSuspect) }

func (m *membership) setStatus(name, status string) {
	m.mu.Lock()
	mb, ok := m.seen[name]
	changed := ok && mb.Status != status
	if changed {
		mb.Status = status
		m.seen[name] = mb
	}
	m.mu.Unlock()
	if changed {
		m.log.Info("member status changed", "member", name, "status", status)
		m.pulse()
	}
}

// memberlistLogWriter turns memberlist's "[LEVEL] memberlist: msg" lines into slog records,
// and passes on the one line that says this node's probe suspects a member (memberlist
// has no delegate for it).
type memberlistLogWriter struct {
	log       *slog.Logger
	suspected func(name string)
}

// probeFailedPrefix and probeFailedSuffix frame the member's name in memberlist's line
// "Suspect <name> has failed, no acks received" (state.go, probeNode).
const (
	probeFailedPrefix = "Suspect "
	probeFailedSuffix = " has failed, no acks received"
)

func (w *memberlistLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError, "[INFO]": slog.LevelInfo} {
		if strings.HasPrefix(line, prefix) {
			level = l
			line = strings.TrimSpace(strings.TrimPrefix(line, prefix))
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if name, ok := strings.CutPrefix(line, probeFailedPrefix); ok && w.suspected != nil {
		if name, ok := strings.CutSuffix(name, probeFailedSuffix); ok {
			w.suspected(name)
		}
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
