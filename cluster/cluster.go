package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
)

// Defaults for the raft settings that an operator rarely changes.
const (
	DefaultApplyTimeout      = 10 * time.Second
	DefaultSnapshotThreshold = 8192
	DefaultTrailingLogs      = 10240
	// DefaultHeartbeatTimeout is how long a follower waits without hearing from the
	// leader before it calls an election (randomised up to twice as long). Half of raft's
	// 1 s default: a killed leader is replaced in about a second (bench B2), while the
	// leader still heartbeats every 50 ms, far more often than a loaded node stalls.
	DefaultHeartbeatTimeout = 500 * time.Millisecond
	DefaultElectionTimeout  = 500 * time.Millisecond
)

// LeaderRoutine is leader-only work. Run is started after the new leader's barrier and must
// return promptly once ctx is cancelled (leadership lost or node stopping).
type LeaderRoutine struct {
	Name string
	Run  func(ctx context.Context)
}

// Config assembles a Cluster.
type Config struct {
	NodeID string
	// DataDir holds raft/ (bolt log and stable store) and snapshots/.
	DataDir string
	// RaftBind is the TCP address raft listens on; RaftAdvertise the address peers use.
	RaftBind      string
	RaftAdvertise string
	// BootstrapExpect: a new cluster is formed once this many servers have met. With 1 and
	// no Join the node bootstraps itself at once.
	BootstrapExpect int
	// GossipBind and GossipAdvertise are the memberlist addresses (TCP and UDP).
	GossipBind      string
	GossipAdvertise string
	// APIAdvertise is where peers reach this node's API (forwarding, read index).
	APIAdvertise string
	Rack         string
	Version      string
	// Join lists gossip addresses of members; joining is retried until one answers.
	Join []string
	// ClusterKey (32 bytes) encrypts gossip and authenticates raft connections and
	// internal calls. Empty leaves them open (single-node development).
	ClusterKey []byte
	// FastGossip shortens gossip timers for tests on loopback.
	FastGossip bool
	FSM        raft.FSM
	// FSMIndex returns the index of the last command the FSM has applied (read barriers
	// wait on it).
	FSMIndex       func() uint64
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
	LeaderRoutines []LeaderRoutine

	ApplyTimeout      time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// SnapshotInterval is how often raft checks whether a snapshot is due (tests shorten it).
	SnapshotInterval time.Duration
	// HeartbeatTimeout and ElectionTimeout (defaults above); LeaderLeaseTimeout follows
	// at half the heartbeat timeout.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
}

// Cluster is this node's membership in the raft cluster.
type Cluster struct {
	cfg       Config
	log       *slog.Logger
	raft      *raft.Raft
	transport *raft.NetworkTransport
	store     *raftboltdb.BoltStore
	snapshots *raft.FileSnapshotStore
	notifyCh  chan bool
	metrics   *metrics
	members   *membership
	peers     *peerClient
	// leaderReady is set once this node leads and has applied everything its predecessor
	// committed (after the leader barrier); reads are served from it only then.
	leaderReady atomic.Bool

	existing     bool
	shutdownOnce sync.Once
	shutdownCh   chan struct{}
	monitorDone  chan struct{}
	bgWG         sync.WaitGroup
}

// New opens the raft stores, starts raft and the leadership monitor, and bootstraps a
// single-server cluster when BootstrapExpect is 1 and the data dir is new.
func New(cfg Config) (*Cluster, error) {
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = DefaultApplyTimeout
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if cfg.TrailingLogs == 0 {
		cfg.TrailingLogs = DefaultTrailingLogs
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout = DefaultElectionTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Cluster{
		cfg:         cfg,
		log:         cfg.Logger.With("component", "cluster"),
		notifyCh:    make(chan bool, 1),
		shutdownCh:  make(chan struct{}),
		monitorDone: make(chan struct{}),
	}
	c.peers = newPeerClient(cfg.ClusterKey)
	c.metrics = newMetrics(c, cfg.Registerer)
	c.cfg.LeaderRoutines = append([]LeaderRoutine{{Name: "reconcile-members", Run: c.reconcileMembers}}, cfg.LeaderRoutines...)
	if err := c.open(); err != nil {
		if c.members != nil {
			c.members.shutdown()
		}
		if c.raft != nil {
			_ = c.raft.Shutdown().Error()
		}
		c.closeStores()
		c.metrics.unregister()
		return nil, err
	}
	go c.monitorLeadership()
	c.members.joinInBackground(cfg.Join)
	c.members.reconnectInBackground(cfg.Join, func() bool { addr, _ := c.raft.LeaderWithID(); return addr == "" })
	if !c.existing && (cfg.BootstrapExpect > 1 || len(cfg.Join) > 0) {
		c.bgWG.Add(1)
		go func() {
			defer c.bgWG.Done()
			c.bootstrapWhenReady()
		}()
	}
	return c, nil
}

func (c *Cluster) open() error {
	dir := filepath.Join(c.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create raft dir: %w", err)
	}
	hlog := newHCLogger("raft", c.cfg.Logger)

	// The freelist is rebuilt on open instead of written on every commit: one write less
	// per raft batch, at the price of a slower start on a very large log.
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), BoltOptions: &bbolt.Options{
		Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType,
	}})
	if err != nil {
		return fmt.Errorf("open raft log %s: %w", filepath.Join(dir, "raft.db"), err)
	}
	c.store = store
	logs, err := raft.NewLogCache(512, store)
	if err != nil {
		return err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	c.snapshots = snaps

	adv, err := net.ResolveTCPAddr("tcp", c.cfg.RaftAdvertise)
	if err != nil {
		return fmt.Errorf("raft advertise address %q: %w", c.cfg.RaftAdvertise, err)
	}
	if adv.IP == nil || adv.IP.IsUnspecified() {
		return fmt.Errorf("raft advertise address %q must name a reachable IP, not a wildcard (set --advertise-host)", c.cfg.RaftAdvertise)
	}
	var advertise net.Addr = adv
	if adv.Port == 0 {
		advertise = nil // bound to a random port (tests): advertise the port we get
	}
	stream, err := newAuthStreamLayer(c.cfg.RaftBind, advertise, c.cfg.ClusterKey, c.log, func() { c.metrics.refusedConns.Inc() })
	if err != nil {
		return fmt.Errorf("listen for raft on %s: %w", c.cfg.RaftBind, err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 8, Timeout: 10 * time.Second, Logger: hlog,
	})
	c.transport = trans

	c.members, err = newMembership(membershipConfig{
		NodeID: c.cfg.NodeID, Bind: c.cfg.GossipBind, Advertise: c.cfg.GossipAdvertise, Key: c.cfg.ClusterKey,
		Meta:   memberMeta{API: c.cfg.APIAdvertise, Raft: string(trans.LocalAddr()), Rack: c.cfg.Rack, Version: c.cfg.Version, Expect: c.cfg.BootstrapExpect},
		Logger: c.cfg.Logger, Fast: c.cfg.FastGossip,
	})
	if err != nil {
		return err
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.cfg.NodeID)
	rc.Logger = hlog
	rc.NotifyCh = c.notifyCh
	// Concurrent applies are batched into one log append and one fsync.
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = c.cfg.SnapshotThreshold
	rc.TrailingLogs = c.cfg.TrailingLogs
	if c.cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = c.cfg.SnapshotInterval
	}
	rc.HeartbeatTimeout, rc.ElectionTimeout = c.cfg.HeartbeatTimeout, c.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = c.cfg.HeartbeatTimeout / 2

	existing, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		return fmt.Errorf("inspect raft state: %w", err)
	}
	c.existing = existing
	r, err := raft.NewRaft(rc, c.cfg.FSM, logs, store, snaps, trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	c.raft = r
	if !existing && c.cfg.BootstrapExpect <= 1 && len(c.cfg.Join) == 0 {
		c.log.Info("bootstrapping a new single-node cluster", "node", c.cfg.NodeID)
		boot := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: trans.LocalAddr()}}}
		if err := r.BootstrapCluster(boot).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrap cluster: %w", err)
		}
	}
	return nil
}

// Apply proposes a command and waits until it is applied on this node. It returns the
// FSM's response: a command-level error (a refused rule, say) comes back as the error.
func (c *Cluster) Apply(ctx context.Context, cmd []byte) (any, error) {
	if c.raft.State() != raft.Leader {
		if addr, _ := c.raft.LeaderWithID(); addr == "" {
			return nil, ErrNoLeader
		}
		return nil, ErrNotLeader
	}
	timeout := c.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	start := time.Now()
	f := c.raft.Apply(cmd, timeout)
	err := f.Error()
	c.metrics.observeApply(start, err)
	if err != nil {
		return nil, classify(err)
	}
	if resp, ok := f.Response().(error); ok {
		return nil, resp
	}
	return f.Response(), nil
}

// classify maps raft's errors to this package's sentinels.
func classify(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrOutcomeUnknown
	case errors.Is(err, raft.ErrEnqueueTimeout):
		// Never handed to raft: the write did not happen.
		return fmt.Errorf("%w: timed out waiting to enqueue the write", ErrNoLeader)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	}
	return err
}

// Barrier waits until every entry committed before the call is applied on this node.
func (c *Cluster) Barrier(timeout time.Duration) error {
	return classify(c.raft.Barrier(timeout).Error())
}

// IsLeader reports whether this node currently leads.
func (c *Cluster) IsLeader() bool { return c.raft.State() == raft.Leader }

// Leader returns the leader's raft address and id, empty when none is known.
func (c *Cluster) Leader() (addr, id string) {
	a, i := c.raft.LeaderWithID()
	return string(a), string(i)
}

// State returns this node's raft state: Leader, Follower, Candidate or Shutdown.
func (c *Cluster) State() raft.RaftState { return c.raft.State() }

// AppliedIndex is the index of the last entry applied to this node's FSM.
func (c *Cluster) AppliedIndex() uint64 { return c.raft.AppliedIndex() }

// LastContact is when this node last heard from the leader (zero on the leader).
func (c *Cluster) LastContact() time.Time { return c.raft.LastContact() }

// Servers returns the current raft configuration.
func (c *Cluster) Servers() ([]raft.Server, error) {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, classify(err)
	}
	return f.Configuration().Servers, nil
}

// NodeID is this node's raft id.
func (c *Cluster) NodeID() string { return c.cfg.NodeID }

// GossipAddr is the address peers reach this node's gossip on.
func (c *Cluster) GossipAddr() string { return c.members.Addr() }

// RaftAddr is the address peers reach this node's raft on.
func (c *Cluster) RaftAddr() string { return string(c.transport.LocalAddr()) }

// Snapshot takes a snapshot now (or reuses the latest when nothing changed since) and opens
// it for reading. The caller must close the reader.
func (c *Cluster) Snapshot() (io.ReadCloser, error) {
	f := c.raft.Snapshot()
	if err := f.Error(); err != nil {
		if !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return nil, fmt.Errorf("take snapshot: %w", classify(err))
		}
		list, lerr := c.snapshots.List()
		if lerr != nil || len(list) == 0 {
			return nil, fmt.Errorf("take snapshot: %w", err)
		}
		_, rc, oerr := c.snapshots.Open(list[0].ID)
		return rc, oerr
	}
	_, rc, err := f.Open()
	return rc, err
}

// Restore replaces the whole cluster state with a snapshot (written in the FSM's format,
// already verified by the caller). Only the leader can restore.
func (c *Cluster) Restore(r io.Reader, size int64) error {
	if c.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: size}
	if err := c.raft.Restore(meta, r, 2*c.cfg.ApplyTimeout); err != nil {
		return fmt.Errorf("restore snapshot: %w", classify(err))
	}
	return nil
}

// Shutdown stops the leadership loop and raft and closes the stores.
func (c *Cluster) Shutdown() error {
	var err error
	c.shutdownOnce.Do(func() {
		close(c.shutdownCh)
		<-c.monitorDone
		c.bgWG.Wait()
		c.members.shutdown()
		if c.raft != nil {
			err = c.raft.Shutdown().Error()
		}
		c.closeStores()
		c.metrics.unregister()
	})
	return err
}

func (c *Cluster) closeStores() {
	if c.transport != nil {
		_ = c.transport.Close()
	}
	if c.store != nil {
		_ = c.store.Close()
	}
}
