package node

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/linkops/linkops/api"
	"github.com/linkops/linkops/auth"
	"github.com/linkops/linkops/cluster"
	"github.com/linkops/linkops/dataplane"
	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/logs"
	"github.com/linkops/linkops/ota"
	"github.com/linkops/linkops/ota/blob"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/web"
)

// ErrNodeIDMismatch: the data directory was created by a node with another id.
var ErrNodeIDMismatch = errors.New("data directory belongs to a different node id")

// Node is one running linkops agent.
type Node struct {
	cfg      Config
	log      *slog.Logger
	logs     *logs.Store
	out      io.Writer
	fsm      *fsm.FSM
	cluster  *cluster.Cluster
	api      *api.Server
	http     *http.Server
	httpLn   net.Listener
	registry *prometheus.Registry
	served   chan struct{}
	inflight sync.WaitGroup // API handlers running
	pprof    *http.Server
	// The data plane (listeners) runs from start until stop, before raft stops.
	data     *dataplane.DataPlane
	dataStop context.CancelFunc
	dataDone chan struct{}
}

// Options are the parts of a node that are not configuration: where it writes its log
// and its one-time console messages.
type Options struct {
	// Log receives the structured system log (stdout when nil).
	Log io.Writer
	// Console receives messages meant for the person who started the node: the URL, and
	// the generated admin password, which must never enter the system log (stdout when nil).
	Console io.Writer
}

// New validates the configuration, opens the data directory and starts the node.
func New(cfg Config, opts Options) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	if opts.Log == nil {
		opts.Log = os.Stdout
	}
	if opts.Console == nil {
		opts.Console = os.Stdout
	}
	level, _ := parseLevel(cfg.LogLevel)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", cfg.DataDir, err)
	}
	id, err := claimNodeID(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	cfg.NodeID = id
	fileLimit, fileLimitErr := raiseFileLimit()
	registry := prometheus.NewRegistry()
	// Access and system logs stay on this node (SPEC §4.9); every log record is printed and
	// also kept in the store, where the cluster-wide log API finds it.
	store, err := logs.Open(logs.Options{Path: filepath.Join(cfg.DataDir, "logs.db"), ServerID: id,
		MaxAge: cfg.LogMaxAge, MaxBytes: cfg.LogMaxBytes, Registry: registry})
	if err != nil {
		return nil, fmt.Errorf("open the log store: %w", err)
	}
	text := slog.NewTextHandler(opts.Log, &slog.HandlerOptions{Level: level})
	log := slog.New(logs.NewHandler(text, store)).With("node", id)

	n := &Node{cfg: cfg, log: log, logs: store, out: opts.Console, registry: registry, served: make(chan struct{})}
	if fileLimitErr != nil {
		log.Warn("could not raise the open-file limit; each device connection needs a descriptor", "limit", fileLimit, "error", fileLimitErr)
	} else {
		log.Debug("open-file limit", "limit", fileLimit)
	}
	// go_gc_heap_live_bytes (the heap still reachable at the last GC) is what the state
	// really costs; heap-in-use also counts garbage not yet collected.
	registry.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := n.start(); err != nil {
		n.stop(context.Background())
		return nil, err
	}
	return n, nil
}

func (n *Node) start() error {
	raftAdv, err := n.cfg.advertise(n.cfg.RaftAddr)
	if err != nil {
		return err
	}
	gossipAdv, err := n.cfg.advertise(n.cfg.GossipAddr)
	if err != nil {
		return err
	}
	// The API listens first so its real address (port 0 in tests) can be gossiped.
	n.httpLn, err = net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen for the API on %s: %w", n.cfg.HTTPAddr, err)
	}
	apiAdv, err := n.cfg.advertise(n.httpLn.Addr().String())
	if err != nil {
		return err
	}
	var key []byte
	if n.cfg.ClusterKey != "" {
		key, _ = base64.StdEncoding.DecodeString(n.cfg.ClusterKey) // validated already
	} else if n.cfg.BootstrapExpect > 1 || len(n.cfg.Join) > 0 {
		n.log.Warn("no --cluster-key: gossip is unencrypted and raft and internal calls are not authenticated; set one in production")
	}
	n.fsm = fsm.New(n.log.With("component", "fsm"))
	// Before the cluster: its leader routines use the data plane. Nothing it does calls
	// raft before Run.
	// A store that cannot be reached now still opens: the node starts, and firmware calls
	// answer 503 until it is back (SPEC §4.7).
	blobs, err := blob.Open(context.Background(), n.cfg.BlobStore, os.Getenv)
	if err != nil {
		return fmt.Errorf("--blob-store: %w", err)
	}
	if err := blobs.Check(context.Background()); err != nil {
		n.log.Warn("the firmware blob store is not usable yet; firmware uploads and downloads answer 503 until it is", "store", blobs.String(), "error", err)
	}
	publicURL := n.cfg.PublicURL
	if publicURL == "" {
		publicURL = "http://" + apiAdv
	}
	n.data, err = dataplane.New(dataplane.Config{NodeID: n.cfg.NodeID, Store: n.fsm.Store(), Registry: n.registry,
		Log: n.log, AllowRemote: n.cfg.allowRemote, Propose: n.propose,
		PropertiesPath: filepath.Join(n.cfg.DataDir, "devices.db"),
		Blobs:          blobs, PublicURL: publicURL, Peers: n.blobPeers, FetchBlob: n.fetchBlob, CallPush: n.callPush})
	if err != nil {
		return err
	}
	n.cluster, err = cluster.New(cluster.Config{
		NodeID:            n.cfg.NodeID,
		DataDir:           n.cfg.DataDir,
		RaftBind:          n.cfg.RaftAddr,
		RaftAdvertise:     raftAdv,
		GossipBind:        n.cfg.GossipAddr,
		GossipAdvertise:   gossipAdv,
		APIAdvertise:      apiAdv,
		Rack:              n.cfg.Rack,
		Version:           Version,
		Join:              n.cfg.Join,
		ClusterKey:        key,
		FastGossip:        n.cfg.FastGossip,
		BootstrapExpect:   n.cfg.BootstrapExpect,
		FSM:               n.fsm,
		FSMIndex:          n.fsm.AppliedIndex,
		Logger:            n.log,
		Registerer:        n.registry,
		SnapshotThreshold: n.cfg.SnapshotThreshold,
		SnapshotInterval:  n.cfg.SnapshotInterval,
		TrailingLogs:      n.cfg.TrailingLogs,
		HeartbeatTimeout:  n.cfg.HeartbeatTimeout,
		ElectionTimeout:   n.cfg.ElectionTimeout,
		LeaderRoutines: []cluster.LeaderRoutine{
			{Name: "initialize", Run: n.initialize},
			{Name: "release-dead-sessions", Run: func(ctx context.Context) { n.data.Reaper(n.deadNodes).Run(ctx) }},
			{Name: "ota-engine", Run: func(ctx context.Context) { n.data.Engine(n.cluster.Apply).Run(ctx) }},
			{Name: "modbus-poller", Run: n.data.Modbus().Run},
		},
	})
	if err != nil {
		return err
	}
	raftAdv = n.cluster.RaftAddr()
	tmp := filepath.Join(n.cfg.DataDir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	n.api = api.New(api.Config{
		NodeID:           n.cfg.NodeID,
		Raft:             n.cluster,
		Store:            n.fsm.Store(),
		Logs:             n.logs,
		Listeners:        n.data,
		Sessions:         n.data.Sessions(),
		OTA:              n.data.OTA(),
		Video:            n.data.Video(),
		Callbacks:        n.data.Callbacks(),
		Gateways:         n.data,
		PublicURL:        publicURL,
		FirmwareMaxBytes: n.cfg.FirmwareMaxBytes,
		Logger:           n.log,
		Registry:         n.registry,
		TokenTTL:         n.cfg.TokenTTL,
		TempDir:          tmp,
		RequestTimeout:   n.cfg.RequestTimeout,
	})
	// The console's page and files, then the API: every node serves both (web package).
	apiHandler := web.Handler(n.api.Handler())
	n.http = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Counted, so that stopping waits for the handlers that Shutdown's deadline cut
		// off before it tears down what they use (the data plane, raft, the log store).
		n.inflight.Add(1)
		defer n.inflight.Done()
		apiHandler.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn)}
	go func() {
		defer close(n.served)
		if err := n.http.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("API server stopped", "error", err)
		}
	}()
	if n.cfg.PprofAddr != "" {
		n.startPprof()
	}
	n.startDataPlane()
	n.log.Info("node started", "http", n.httpLn.Addr().String(), "raft", raftAdv, "version", Version, "data_dir", n.cfg.DataDir)
	fmt.Fprintf(n.out, "linkops node %q is serving the API at http://%s\n", n.cfg.NodeID, apiAdv)
	fmt.Fprintf(n.out, "web console: open http://%s/ in a browser and log in as admin\n", apiAdv)
	fmt.Fprintf(n.out, "log in with: linkops login --addr http://%s --username admin\n", apiAdv)
	return nil
}

// HTTPAddr is the address the API listens on (useful with port 0).
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// ID is this node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Cluster exposes the node's raft membership, for tests and in-process tools.
func (n *Node) Cluster() *cluster.Cluster { return n.cluster }

// Store exposes the node's replicated state, read-only.
func (n *Node) Store() *fsm.Store { return n.fsm.Store() }

// API exposes the API server, for tests that walk its routes.
func (n *Node) API() *api.Server { return n.api }

// Logs is this node's access and system log store.
func (n *Node) Logs() *logs.Store { return n.logs }

// Shutdown stops the API, then raft, waiting at most until ctx ends for requests in flight.
func (n *Node) Shutdown(ctx context.Context) error {
	n.log.Info("node stopping")
	return n.stop(ctx)
}

func (n *Node) stop(ctx context.Context) error {
	var errs []error
	if n.pprof != nil {
		_ = n.pprof.Close()
	}
	if n.http != nil {
		if err := n.http.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			_ = n.http.Close()
		}
		<-n.served
		n.waitHandlers()
	} else if n.httpLn != nil {
		_ = n.httpLn.Close()
	}
	if n.dataStop != nil {
		// Before raft: listeners close their connections while the node is still a member.
		n.dataStop()
		<-n.dataDone
	}
	if n.data != nil {
		if err := n.data.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.cluster != nil {
		if err := n.cluster.Shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.logs != nil {
		if err := n.logs.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// handlerGrace bounds how long stopping waits for API handlers still running after the
// server was closed (their requests' contexts are cancelled; they end quickly).
const handlerGrace = 15 * time.Second

func (n *Node) waitHandlers() {
	done := make(chan struct{})
	go func() { n.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(handlerGrace):
		n.log.Warn("API handlers still running after the server closed; stopping anyway", "waited", handlerGrace)
	}
}

// replayLimit bounds how long the data plane waits for the local log to be applied before
// serving the state it has (see dataplane.WaitReplayed).
const replayLimit = 10 * time.Second

// startDataPlane runs the listeners once this node has applied the log it holds.
func (n *Node) startDataPlane() {
	ctx, cancel := context.WithCancel(context.Background())
	n.dataStop, n.dataDone = cancel, make(chan struct{})
	last := n.cluster.Status().LastIndex
	go func() {
		defer close(n.dataDone)
		if !dataplane.WaitReplayed(ctx, n.fsm.AppliedIndex, last, replayLimit) && ctx.Err() == nil {
			n.log.Warn("starting listeners before the local raft log is applied: no leader has confirmed it yet",
				"applied", n.fsm.AppliedIndex(), "last_index", last)
		}
		n.data.Run(ctx)
	}()
}

// propose writes a data-plane command (presence) through raft: applied here on the
// leader, sent to the leader's internal API from a follower.
func (n *Node) propose(ctx context.Context, cmd []byte) error {
	_, err := n.cluster.Apply(ctx, cmd)
	if !errors.Is(err, cluster.ErrNotLeader) {
		return err
	}
	_, leader := n.cluster.Leader()
	if leader == "" {
		return cluster.ErrNoLeader
	}
	return n.cluster.CallNode(ctx, leader, cluster.Call{Method: http.MethodPost, Path: api.InternalProposePath,
		Body: api.ProposeRequest{Command: cmd}}, nil)
}

// blobPeers lists the other members that may hold a firmware blob, those gossip sees
// alive first.
func (n *Node) blobPeers() []string {
	var alive, other []string
	for _, m := range n.cluster.Peers() {
		switch {
		case m.ID == n.cfg.NodeID:
		case m.Status == cluster.StatusAlive:
			alive = append(alive, m.ID)
		default:
			other = append(other, m.ID)
		}
	}
	return append(alive, other...)
}

// fetchBlob opens a firmware blob held by another node.
func (n *Node) fetchBlob(ctx context.Context, node, key string) (io.ReadCloser, error) {
	resp, err := n.cluster.StreamNode(ctx, node, cluster.Call{Method: http.MethodGet, Path: api.InternalBlobsPath + key})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// callPush hands firmware pushes to the node holding their devices.
func (n *Node) callPush(ctx context.Context, node string, pushes []ota.Push) ([]ota.PushResult, error) {
	var out api.OTAPushResponse
	err := n.cluster.CallNode(ctx, node, cluster.Call{Method: http.MethodPost, Path: api.InternalOTAPushPath,
		Body: api.OTAPushRequest{Pushes: pushes}}, &out)
	return out.Results, err
}

// deadNodes are the members gossip has declared dead.
func (n *Node) deadNodes() []string {
	var out []string
	for _, m := range n.cluster.Peers() {
		if m.Status == cluster.StatusDead {
			out = append(out, m.ID)
		}
	}
	return out
}

// initialize is leader-only work that runs once per cluster: it stores the token key and
// the first admin user. It retries until it succeeds or leadership ends.
func (n *Node) initialize(ctx context.Context) {
	for ctx.Err() == nil {
		if n.fsm.Store().Meta(fsm.MetaInitialized) != nil {
			return
		}
		err := n.applyInit(ctx)
		if err == nil || errors.Is(err, fsm.ErrAlreadyInitialized) {
			return
		}
		n.log.Warn("initializing the cluster failed; retrying", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (n *Node) applyInit(ctx context.Context) error {
	pw, generated := n.cfg.AdminPassword, false
	if pw == "" {
		pw, generated = randomPassword(20), true
	}
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	admin := &resource.User{Meta: resource.Meta{ID: "admin"}, Username: "admin", PasswordHash: hash, Role: resource.RoleAdmin, PasswordSetAt: now}
	cmd, err := fsm.Encode(fsm.InitType, fsm.InitRequest{TokenKey: auth.NewKey(), Admin: admin, Now: now})
	if err != nil {
		return err
	}
	if _, err := n.cluster.Apply(ctx, cmd); err != nil {
		return err
	}
	n.log.Info("cluster initialized with user admin")
	if generated {
		// Straight to the console, never to the system log: it is a secret.
		fmt.Fprintf(n.out, "\n  Generated password for user admin (shown only once): %s\n  Change it with: linkops user update admin --password ...\n\n", pw)
	}
	return nil
}

const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

func randomPassword(n int) string {
	var b strings.Builder
	for range n {
		i, _ := rand.Int(rand.Reader, big.NewInt(int64(len(passwordAlphabet))))
		b.WriteByte(passwordAlphabet[i.Int64()])
	}
	return b.String()
}

// claimNodeID binds a data directory to one node id. The id is written on first start;
// a later start with a different --node-id is refused, because raft would otherwise
// rejoin its peers under a new name with an old log.
func claimNodeID(dataDir, flagID string) (string, error) {
	path := filepath.Join(dataDir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		stored := strings.TrimSpace(string(b))
		if flagID != "" && flagID != stored {
			return "", fmt.Errorf("%w: %s was created by node %q but this node was started with --node-id %q; "+
				"start it with --node-id %s, or give it a fresh --data-dir to make a new node", ErrNodeIDMismatch, dataDir, stored, flagID, stored)
		}
		return stored, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read node id: %w", err)
	}
	id := flagID
	if id == "" {
		host, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("no --node-id given and the hostname is unknown: %w", err)
		}
		id = strings.ReplaceAll(host, ".", "-")
	}
	var errs resource.Errors
	if resource.ValidateID(&errs, id); len(errs) > 0 {
		return "", fmt.Errorf("node id %q must match ^[A-Za-z0-9_-]{1,64}$; set --node-id", id)
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("store node id: %w", err)
	}
	return id, nil
}

// startPprof serves Go's profiler on its own listener, never on the API: profiles expose
// internals and cost CPU, so an operator turns them on deliberately.
func (n *Node) startPprof() {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: n.cfg.PprofAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	n.pprof = srv
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("pprof server stopped", "addr", n.cfg.PprofAddr, "error", err)
		}
	}()
	n.log.Warn("profiling endpoint enabled", "addr", n.cfg.PprofAddr)
}
