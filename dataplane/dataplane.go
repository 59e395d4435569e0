package dataplane

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/linkops/linkops/cloud"
	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/gateway"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/coap"
	httplistener "github.com/linkops/linkops/listeners/http"
	"github.com/linkops/linkops/listeners/mqtt"
	"github.com/linkops/linkops/listeners/mqttclient"
	"github.com/linkops/linkops/listeners/tcp"
	"github.com/linkops/linkops/listeners/udp"
	"github.com/linkops/linkops/listeners/websocket"
	"github.com/linkops/linkops/media"
	"github.com/linkops/linkops/modbus"
	"github.com/linkops/linkops/ota"
	"github.com/linkops/linkops/ota/blob"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/session"
	"github.com/linkops/linkops/sip"
	"github.com/linkops/linkops/video"
)

// Types is the one table of listener implementations, by component type. An eighth
// type is one package and one line here.
var Types = map[string]listeners.Listener{
	resource.TypeMQTTServer:      mqtt.Listener{},
	resource.TypeMQTTClient:      mqttclient.Listener{},
	resource.TypeTCPServer:       tcp.Listener{},
	resource.TypeUDP:             udp.Listener{},
	resource.TypeHTTPServer:      httplistener.Listener{},
	resource.TypeWebSocketServer: websocket.Listener{},
	resource.TypeCoAPServer:      coap.Listener{},
}

// Config assembles a DataPlane.
type Config struct {
	NodeID      string
	Store       *fsm.Store
	Registry    prometheus.Registerer
	Log         *slog.Logger
	AllowRemote []netip.Prefix
	// Propose writes a command through raft, forwarded to the leader from a follower:
	// the data plane proposes presence changes, never writes the state itself.
	Propose func(ctx context.Context, cmd []byte) error
	// PropertiesPath is the file of this node's latest device properties ("": memory).
	PropertiesPath string
	// PoolSize is the number of sandboxes per uploaded codec (0: the default).
	PoolSize int

	// Blobs is this node's firmware blob store (--blob-store); PublicURL the base of the
	// download links devices get (--public-url).
	Blobs     blob.Store
	PublicURL string
	// Peers lists the other nodes, alive first; FetchBlob reads a blob from one of them.
	Peers     func() []string
	FetchBlob func(ctx context.Context, node, key string) (io.ReadCloser, error)
	// CallPush hands firmware pushes to another node (its internal API).
	CallPush func(ctx context.Context, node string, pushes []ota.Push) ([]ota.PushResult, error)
}

// DataPlane is this node's device side.
type DataPlane struct {
	cfg      Config
	hub      *listeners.Hub
	sup      *listeners.Supervisor
	sessions *session.Manager
	gateways *gateway.Runtime
	props    *session.Properties
	ota      *ota.Service
	otaStats *ota.Metrics
	sip      *sip.Service
	media    *media.Servers
	video    *video.Service
	cloud    *cloud.Handler
	modbus   *modbus.Service
}

// New assembles the data plane; nothing listens until Run.
func New(cfg Config) (*DataPlane, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	props := session.NewMemoryProperties()
	if cfg.PropertiesPath != "" {
		var err error
		if props, err = session.OpenProperties(cfg.PropertiesPath, cfg.Log); err != nil {
			return nil, err
		}
	}
	otaStats := ota.NewMetrics(cfg.Registry, cfg.Store)
	firmware := ota.NewFirmware(ota.FirmwareConfig{NodeID: cfg.NodeID, Store: cfg.Store, Blobs: cfg.Blobs, PublicURL: cfg.PublicURL,
		Peers: cfg.Peers, FetchBlob: cfg.FetchBlob, Metrics: otaStats, Log: cfg.Log.With("component", "firmware")})
	var devices *ota.Devices // the session manager hands it firmware messages; it sends through the manager
	sessions := session.NewManager(session.Config{NodeID: cfg.NodeID, Store: cfg.Store, Propose: cfg.Propose,
		Properties: props, Log: cfg.Log.With("component", "sessions"), Metrics: session.NewMetrics(cfg.Registry),
		Firmware: func(deviceID string, m protocol.Message) { devices.Receive(deviceID, m) }})
	devices = ota.NewDevices(ota.DevicesConfig{Store: cfg.Store, Propose: cfg.Propose, Firmware: firmware, Metrics: otaStats,
		Log: cfg.Log.With("component", "ota"),
		Send: func(ctx context.Context, deviceID string, m protocol.Message) error {
			_, err := sessions.Downlink(ctx, deviceID, m)
			return err
		}})
	gateways := gateway.New(gateway.Config{NodeID: cfg.NodeID, Store: cfg.Store, Sessions: sessions,
		Metrics: gateway.NewMetrics(cfg.Registry), Log: cfg.Log.With("component", "gateways"), PoolSize: cfg.PoolSize})
	hub := listeners.NewHub()
	var videoService *video.Service // the SIP service tells it of calls that ended; it sends through SIP
	sipService := sip.New(sip.Config{NodeID: cfg.NodeID, Store: cfg.Store, Sessions: sessions,
		Metrics: sip.NewMetrics(cfg.Registry), Log: cfg.Log,
		CallEnded: func(deviceID, channelID, reason string) { videoService.Ended(deviceID, channelID, reason) }})
	mediaServers := media.NewServers(cfg.Store, cfg.Registry, cfg.Log.With("component", "media"))
	videoService = video.New(video.Config{SIP: sipService, Media: mediaServers, Registry: cfg.Registry, Log: cfg.Log})
	modbusService := modbus.New(modbus.Config{NodeID: cfg.NodeID, Store: cfg.Store, Sessions: sessions,
		Metrics: modbus.NewMetrics(cfg.Registry), Log: cfg.Log})
	return &DataPlane{cfg: cfg, hub: hub, sessions: sessions, gateways: gateways, props: props, sip: sipService, modbus: modbusService,
		media: mediaServers, video: videoService,
		cloud: cloud.New(cloud.Config{Store: cfg.Store, Sessions: sessions, Registry: cfg.Registry,
			Log: cfg.Log.With("component", "cloud"), PoolSize: cfg.PoolSize}),
		ota: &ota.Service{Firmware: firmware, Devices: devices}, otaStats: otaStats,
		sup: listeners.NewSupervisor(listeners.SupervisorConfig{
			NodeID:      cfg.NodeID,
			Store:       cfg.Store,
			Types:       Types,
			Hub:         hub,
			Handler:     gateways.Handler,
			Metrics:     listeners.NewMetrics(cfg.Registry),
			Log:         cfg.Log,
			AllowRemote: cfg.AllowRemote,
		})}, nil
}

// Run serves until ctx ends. Stopping, listeners close first (their sessions go offline),
// then the presence queue is flushed while raft still runs, then the properties file.
func (d *DataPlane) Run(ctx context.Context) {
	sessCtx, stopSessions := context.WithCancel(context.Background())
	sessDone := make(chan struct{})
	go func() { defer close(sessDone); d.sessions.Run(sessCtx) }()
	otaDone := make(chan struct{})
	go func() { defer close(otaDone); d.ota.Run(sessCtx) }()
	propsStop, propsDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(propsDone); d.props.Run(propsStop) }()
	gwDone := make(chan struct{})
	go func() { defer close(gwDone); d.gateways.Run(ctx) }()
	sipDone := make(chan struct{})
	go func() { defer close(sipDone); d.sip.Run(ctx) }()
	mediaDone := make(chan struct{})
	go func() { defer close(mediaDone); d.media.Run(ctx) }()
	d.sup.Run(ctx)
	<-gwDone
	<-sipDone
	<-mediaDone
	stopSessions()
	<-sessDone
	<-otaDone
	close(propsStop)
	<-propsDone
	if err := d.props.Close(); err != nil {
		d.cfg.Log.Error("closing the device properties file failed", "error", err)
	}
}

// Close releases what New opened (the properties file) when Run never ran or has returned.
func (d *DataPlane) Close() error { return d.props.Close() }

// Callbacks is this node's side of the cloud gateways' pushes (the API serves it).
func (d *DataPlane) Callbacks() *cloud.Handler { return d.cloud }

// Sessions is this node's session manager (downlinks, device records, message streams).
func (d *DataPlane) Sessions() *session.Manager { return d.sessions }

// Reaper is the leader routine that releases the sessions of dead nodes.
func (d *DataPlane) Reaper(dead func() []string) *session.Reaper {
	return &session.Reaper{Store: d.cfg.Store, Dead: dead, Propose: d.cfg.Propose, Log: d.cfg.Log.With("component", "reaper")}
}

// Modbus is the leader routine that polls the modbus-tcp gateways (SPEC §5.3).
func (d *DataPlane) Modbus() *modbus.Service { return d.modbus }

// GatewayStatus is this node's state of a gateway (GET /api/v1/gateways/{id}/status): the
// Modbus poller of a modbus-tcp gateway; for the others whether this node serves it.
func (d *DataPlane) GatewayStatus(g *resource.Gateway) listeners.Status {
	if g.Provider == resource.ProviderGB28181 {
		st := d.sip.Status(g)
		return listeners.Status{ServerID: d.cfg.NodeID, State: st.State, Error: st.Error, Address: st.Address,
			Connections: st.Registered, Since: st.Since}
	}
	if g.Provider == resource.ProviderModbusTCP {
		if !g.Enabled() {
			return listeners.Status{ServerID: d.cfg.NodeID, State: listeners.StateStopped}
		}
		return d.modbus.Status(g)
	}
	state := listeners.StateStopped
	if g.Enabled() {
		state = listeners.StateRunning
	}
	return listeners.Status{ServerID: d.cfg.NodeID, State: state}
}

// Video is this node's GB/T 28181 side: the channels of the cameras registered here and
// the streams they play.
func (d *DataPlane) Video() *video.Service { return d.video }

// OTA is this node's firmware and firmware-topic side (the API serves it).
func (d *DataPlane) OTA() *ota.Service { return d.ota }

// Engine is the leader routine that advances upgrade tasks; apply writes through raft on
// the leader.
func (d *DataPlane) Engine(apply func(ctx context.Context, cmd []byte) (any, error)) *ota.Engine {
	return ota.NewEngine(ota.EngineConfig{Store: d.cfg.Store, Apply: apply, Deliver: d.deliver, Metrics: d.otaStats,
		Log: d.cfg.Log.With("component", "ota-engine")})
}

// deliver hands pushes to the node holding their devices: this one, or a peer.
func (d *DataPlane) deliver(ctx context.Context, node string, pushes []ota.Push) ([]ota.PushResult, error) {
	if node == d.cfg.NodeID || d.cfg.CallPush == nil {
		return d.ota.Push(ctx, pushes), nil
	}
	return d.cfg.CallPush(ctx, node, pushes)
}

// ComponentStatus is this node's state of a component.
func (d *DataPlane) ComponentStatus(c *resource.NetworkComponent) listeners.Status {
	return d.sup.ComponentStatus(c)
}

// Subscribe follows a component's debug events on this node.
func (d *DataPlane) Subscribe(componentID string, buffer int) *listeners.Subscription {
	return d.hub.Subscribe(componentID, buffer)
}

// WaitReplayed waits until the FSM has applied the entries this node's raft log held at
// start (applied() reaching last), or until limit: raft applies entries past its snapshot
// only once it learns the commit index from a leader, and a node without a quorum must
// still start serving with the state it has.
func WaitReplayed(ctx context.Context, applied func() uint64, last uint64, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for applied() < last {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}
