package session

import (
	"encoding/json"
	"time"

	"github.com/linkops/linkops/internal/pubsub"
	"github.com/linkops/linkops/protocol"
)

// Event is one message of a device's stream (GET /api/v1/devices/{id}/messages).
type Event struct {
	Direction string           `json:"direction"` // up | down
	Type      string           `json:"type"`
	Topic     string           `json:"topic,omitempty"`
	Message   protocol.Message `json:"message"`
	ServerID  string           `json:"serverId"`
	Time      time.Time        `json:"time"`
}

// Data is the event as the SSE data line carries it.
func (e Event) Data() []byte {
	b, _ := json.Marshal(e)
	return b
}

// Hub fans each device's messages out to its stream subscribers (pubsub.Hub): publishing
// never blocks a device, and a subscriber that falls behind is told how many it lost.
type Hub = pubsub.Hub[Event]

// Subscription receives one device's events.
type Subscription = pubsub.Subscription[Event]

// NewHub returns a hub with no subscribers.
func NewHub() *Hub { return pubsub.New[Event]() }
