package dataplane

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/coap"
	httplistener "github.com/linkops/linkops/listeners/http"
	"github.com/linkops/linkops/listeners/mqtt"
	"github.com/linkops/linkops/listeners/mqttclient"
	"github.com/linkops/linkops/listeners/tcp"
	"github.com/linkops/linkops/listeners/udp"
	"github.com/linkops/linkops/listeners/websocket"
	"github.com/linkops/linkops/resource"
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
}

// DataPlane is this node's device side.
type DataPlane struct {
	hub *listeners.Hub
	sup *listeners.Supervisor
}

// New assembles the data plane; nothing listens until Run.
func New(cfg Config) *DataPlane {
	hub := listeners.NewHub()
	return &DataPlane{hub: hub, sup: listeners.NewSupervisor(listeners.SupervisorConfig{
		NodeID:      cfg.NodeID,
		Store:       cfg.Store,
		Types:       Types,
		Hub:         hub,
		Metrics:     listeners.NewMetrics(cfg.Registry),
		Log:         cfg.Log,
		AllowRemote: cfg.AllowRemote,
	})}
}

// Run serves until ctx ends and every listener has stopped.
func (d *DataPlane) Run(ctx context.Context) { d.sup.Run(ctx) }

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
