package session

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

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

// Hub fans each device's messages out to its stream subscribers. Publishing never blocks
// a device: a subscriber that falls behind loses events and is told how many, and nothing
// is done for devices nobody follows.
type Hub struct {
	mu   sync.RWMutex
	subs map[string]map[*Subscription]struct{}
}

// NewHub returns a hub with no subscribers.
func NewHub() *Hub { return &Hub{subs: map[string]map[*Subscription]struct{}{}} }

// Subscription receives one device's events.
type Subscription struct {
	C       chan Event
	dropped atomic.Int64
	hub     *Hub
	id      string
}

// Dropped returns and resets the number of events lost since the last call.
func (s *Subscription) Dropped() int64 { return s.dropped.Swap(0) }

// Close ends the subscription.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if set := s.hub.subs[s.id]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(s.hub.subs, s.id)
		}
	}
}

// Subscribe follows a device's messages on this node.
func (h *Hub) Subscribe(deviceID string, buffer int) *Subscription {
	s := &Subscription{C: make(chan Event, buffer), hub: h, id: deviceID}
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[deviceID]
	if set == nil {
		set = map[*Subscription]struct{}{}
		h.subs[deviceID] = set
	}
	set[s] = struct{}{}
	return s
}

func (h *Hub) publish(deviceID string, e Event) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs[deviceID] {
		select {
		case s.C <- e:
		default:
			s.dropped.Add(1)
		}
	}
}
