package listeners

import (
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/linkops/linkops/internal/pubsub"
)

// Debug stream event kinds (the SSE event names of SPEC §4.3.1).
const (
	EventConnect    = "connect"
	EventDisconnect = "disconnect"
	EventMessage    = "message"
)

// MaxDebugPayload is how much of a message the debug stream shows; Size is the real size.
const MaxDebugPayload = 64 << 10

// Event is one thing a listener saw, as the debug stream shows it.
type Event struct {
	Kind     string
	ServerID string
	Remote   string
	ClientID string
	Reason   string
	Topic    string
	Payload  []byte // at most MaxDebugPayload bytes
	Size     int    // the message's real size
	Time     time.Time
}

// eventJSON is an event's data on the wire; absent fields are omitted.
type eventJSON struct {
	ServerID   string    `json:"serverId"`
	Remote     string    `json:"remote,omitempty"`
	ClientID   string    `json:"clientId,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Topic      string    `json:"topic,omitempty"`
	PayloadHex *string   `json:"payloadHex,omitempty"`
	Size       *int      `json:"size,omitempty"`
	Time       time.Time `json:"time"`
}

// Data is the event's JSON, as the SSE data line carries it.
func (e Event) Data() []byte {
	j := eventJSON{ServerID: e.ServerID, Remote: e.Remote, ClientID: e.ClientID, Reason: e.Reason, Topic: e.Topic, Time: e.Time}
	if e.Kind == EventMessage {
		h, n := hex.EncodeToString(e.Payload), e.Size
		j.PayloadHex, j.Size = &h, &n
	}
	b, _ := json.Marshal(j)
	return b
}

// Hub fans the events of this node's listeners out to debug-stream subscribers, by
// component. A slow subscriber loses events (and is told how many), never slows a
// listener, and nothing is copied when nobody listens.
type Hub struct{ subs *pubsub.Hub[Event] }

// NewHub returns a hub with no subscribers.
func NewHub() *Hub { return &Hub{subs: pubsub.New[Event]()} }

// Subscription receives the events of one component.
type Subscription = pubsub.Subscription[Event]

// Subscribe follows the events of a component on this node; buffer bounds how many may
// wait for the reader.
func (h *Hub) Subscribe(componentID string, buffer int) *Subscription {
	return h.subs.Subscribe(componentID, buffer)
}

func (h *Hub) publish(componentID string, e Event) {
	if h == nil || !h.subs.Watched(componentID) {
		return
	}
	if e.Kind == EventMessage {
		// Copied: the listener may reuse its buffer once the handler returns.
		e.Size = len(e.Payload)
		e.Payload = append([]byte(nil), e.Payload[:min(len(e.Payload), MaxDebugPayload)]...)
	}
	h.subs.Publish(componentID, e)
}
