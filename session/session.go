package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/internal/coarse"
	"github.com/linkops/linkops/protocol"
)

// Errors of downlinks and session lookups.
var (
	// ErrOffline: the device has no session (409 device_offline).
	ErrOffline = errors.New("device is offline")
	// ErrTimeout: the device did not answer in time (504 device_timeout).
	ErrTimeout = errors.New("device did not answer in time")
	// ErrNoDownlink: the device's transport carries nothing down (HTTP, CoAP).
	ErrNoDownlink = errors.New("the device's transport has no downlink")
)

// Close reasons the Manager gives a session it ends itself.
const (
	ReasonTakenOver = "taken over by a newer session of the device"
	ReasonKicked    = "disconnected through the API"
	ReasonExpired   = "silent for longer than keepOnlineSeconds"
	ReasonGateway   = "its gateway was disabled or removed"
	ReasonStopping  = "node stopping"
)

// Sender delivers one message to a connected device (the gateway encodes it for the
// device's transport and protocol).
type Sender func(ctx context.Context, m protocol.Message) error

// Session is one device connected to this node.
type Session struct {
	DeviceID  string
	ProductID string
	GatewayID string
	Transport string
	// Remote is the address of the connection or, without one, of the last message.
	Remote string
	// Send is nil for transports without a downlink.
	Send Sender
	// Close ends the connection (nil for connectionless sessions); the Manager calls it
	// when the session is taken over, kicked or its gateway goes away.
	Close func(reason string)
	// KeepOnline, for a connectionless session (HTTP, CoAP, UDP), is how long it stays
	// online after its last message.
	KeepOnline time.Duration

	id          string
	connectedAt time.Time
	// upCounter caches the counter of the last message type the device sent: a device
	// sends mostly one type, and the label lookup costs more than the count.
	upCounter   atomic.Pointer[typedCounter]
	lastMessage atomic.Int64 // unix nanoseconds
	ended       atomic.Bool
}

// ID is the session's cluster-wide identity (what presence records).
func (s *Session) ID() string { return s.id }

// ConnectedAt is when this node accepted the session.
func (s *Session) ConnectedAt() time.Time { return s.connectedAt }

// LastMessageAt is when the device last sent something.
func (s *Session) LastMessageAt() time.Time { return time.Unix(0, s.lastMessage.Load()).UTC() }

// Info describes a live session (GET /api/v1/gateways/{id}/sessions).
type Info struct {
	DeviceID      string    `json:"deviceId"`
	ProductID     string    `json:"productId"`
	ServerID      string    `json:"serverId"`
	Remote        string    `json:"remote"`
	Transport     string    `json:"transport"`
	OnlineAt      time.Time `json:"onlineAt"`
	LastMessageAt time.Time `json:"lastMessageAt"`
}

// Config assembles a Manager.
type Config struct {
	NodeID string
	Store  *fsm.Store
	// Propose writes a presence command through raft (forwarded to the leader when this
	// node is a follower).
	Propose func(ctx context.Context, cmd []byte) error
	// Properties is this node's property store (nil: kept in memory only).
	Properties *Properties
	// Firmware receives the firmware messages of devices (upgrade replies, progress, pulls,
	// reports): the OTA side of this node (nil: dropped after the firmware version is
	// recorded).
	Firmware func(deviceID string, m protocol.Message)
	Log      *slog.Logger
	Metrics  *Metrics
	// FlushInterval and MaxBatch bound how long a presence change waits and how many go
	// in one raft entry (defaults DefaultFlushInterval, DefaultMaxBatch).
	FlushInterval time.Duration
	MaxBatch      int
	Now           func() time.Time
}

// Defaults of Config.
const (
	DefaultFlushInterval = 20 * time.Millisecond
	DefaultMaxBatch      = 5000
)

// Manager holds this node's device sessions.
type Manager struct {
	cfg    Config
	msgNow func() time.Time
	log    *slog.Logger
	props  *Properties
	hub    *Hub
	writer *writer

	// mu is read-locked on the paths that only look a session up (every downlink, every
	// OTA push), so that a burst of them does not queue behind one another.
	mu       sync.RWMutex
	byDevice map[string]*Session

	replies replies
}

// NewManager assembles a Manager; Run starts its presence writer and follower.
func NewManager(cfg Config) *Manager {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	// msgNow stamps device messages: to a few milliseconds is enough there, and the hot
	// path then never reads the system clock (package coarse).
	msgNow := coarse.Now
	if cfg.Now == nil {
		cfg.Now = time.Now
	} else {
		msgNow = cfg.Now
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	props := cfg.Properties
	if props == nil {
		props = NewMemoryProperties()
	}
	m := &Manager{cfg: cfg, log: cfg.Log, props: props, hub: NewHub(), byDevice: map[string]*Session{}, msgNow: msgNow}
	m.writer = newWriter(cfg, m.log)
	m.replies.init()
	return m
}

// NodeID is this node's id.
func (m *Manager) NodeID() string { return m.cfg.NodeID }

// Properties is this node's property store.
func (m *Manager) Properties() *Properties { return m.props }

// Records returns what this node knows of the devices' reports.
func (m *Manager) Records(deviceIDs []string) map[string]Record { return m.props.Get(deviceIDs) }

// SubscribeDevice follows one device's messages on this node.
func (m *Manager) SubscribeDevice(deviceID string, buffer int) *Subscription {
	return m.hub.Subscribe(deviceID, buffer)
}

// Hub is the per-device message stream of this node.
func (m *Manager) Hub() *Hub { return m.hub }

func newSessionID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Open makes s the device's session on this node. A session of the same device already
// here is taken over: closed, without an offline. The online goes to the presence writer.
func (m *Manager) Open(s *Session) *Session {
	now := m.cfg.Now().UTC()
	s.id = newSessionID()
	s.connectedAt = now
	s.lastMessage.Store(now.UnixNano())
	m.mu.Lock()
	old := m.byDevice[s.DeviceID]
	m.byDevice[s.DeviceID] = s
	m.mu.Unlock()
	if old != nil {
		m.end(old, ReasonTakenOver)
	}
	m.cfg.Metrics.opened(s.GatewayID)
	m.writer.put(fsm.PresenceChange{DeviceID: s.DeviceID, ServerID: m.cfg.NodeID, Session: s.id, Online: true, At: now})
	m.log.Debug("device online", "device", s.DeviceID, "gateway", s.GatewayID, "transport", s.Transport, "remote", s.Remote)
	return s
}

// end closes a session the Manager no longer holds, at most once.
func (m *Manager) end(s *Session, reason string) {
	if s.ended.Swap(true) {
		return
	}
	m.cfg.Metrics.closed(s.GatewayID)
	if s.Close != nil {
		s.Close(reason)
	}
}

// Closed reports that a session's connection ended. Only the device's current session
// goes offline: the late close of a connection that was taken over changes nothing.
func (m *Manager) Closed(s *Session, reason string) {
	m.mu.Lock()
	current := m.byDevice[s.DeviceID] == s
	if current {
		delete(m.byDevice, s.DeviceID)
	}
	m.mu.Unlock()
	if !current {
		return
	}
	if !s.ended.Swap(true) {
		m.cfg.Metrics.closed(s.GatewayID)
	}
	m.writer.put(fsm.PresenceChange{DeviceID: s.DeviceID, ServerID: m.cfg.NodeID, Session: s.id, At: m.cfg.Now().UTC(), ConnectedAt: s.connectedAt})
	m.replies.fail(s.DeviceID)
	m.log.Debug("device offline", "device", s.DeviceID, "gateway", s.GatewayID, "reason", reason)
}

// drop ends the device's session here without an offline: another node holds it now.
func (m *Manager) drop(deviceID, session string) {
	m.mu.Lock()
	s := m.byDevice[deviceID]
	if s == nil || s.id != session {
		m.mu.Unlock()
		return
	}
	delete(m.byDevice, deviceID)
	m.mu.Unlock()
	m.writer.forget(deviceID, session)
	m.end(s, ReasonTakenOver)
	m.log.Info("session taken over by another node", "device", deviceID)
}

// Get returns the device's session on this node.
func (m *Manager) Get(deviceID string) *Session {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.byDevice[deviceID]
}

// Holds reports whether the device's session is on this node.
func (m *Manager) Holds(deviceID string) bool { return m.Get(deviceID) != nil }

// Kick disconnects the device (DELETE /api/v1/devices/{id}/session); false if it has no
// session here.
func (m *Manager) Kick(deviceID string) bool {
	s := m.Get(deviceID)
	if s == nil {
		return false
	}
	if s.Close == nil {
		m.Closed(s, ReasonKicked) // connectionless: just offline
		return true
	}
	s.Close(ReasonKicked)
	// The listener reports Closed when the connection is gone; a connection that was
	// already going away has done so.
	return true
}

// CloseGateway ends every session of a gateway (disabled or removed).
func (m *Manager) CloseGateway(gatewayID string) int {
	var list []*Session
	m.mu.Lock()
	for _, s := range m.byDevice {
		if s.GatewayID == gatewayID {
			list = append(list, s)
		}
	}
	m.mu.Unlock()
	for _, s := range list {
		if s.Close != nil {
			s.Close(ReasonGateway)
		} else {
			m.Closed(s, ReasonGateway)
		}
	}
	return len(list)
}

// Sessions lists this node's sessions of a gateway (all gateways when empty), by device id.
func (m *Manager) Sessions(gatewayID string) []Info {
	m.mu.Lock()
	out := make([]Info, 0, len(m.byDevice))
	for _, s := range m.byDevice {
		if gatewayID == "" || s.GatewayID == gatewayID {
			out = append(out, m.info(s))
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].DeviceID < out[j].DeviceID })
	return out
}

// info describes s; the caller holds m.mu.
func (m *Manager) info(s *Session) Info {
	return Info{DeviceID: s.DeviceID, ProductID: s.ProductID, ServerID: m.cfg.NodeID, Remote: s.Remote,
		Transport: s.Transport, OnlineAt: s.connectedAt, LastMessageAt: s.LastMessageAt()}
}

// Count is the number of sessions on this node.
func (m *Manager) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byDevice)
}

// Seen returns the live connectionless session of a device, refreshed with the address
// and sender of its latest message, or opens one with open (HTTP, CoAP and UDP devices are
// online from their first accepted message until silent for KeepOnline, SPEC §5.2;
// downlinks go to the last address).
func (m *Manager) Seen(deviceID, gatewayID, remote string, send Sender, open func() *Session) *Session {
	m.mu.Lock()
	s := m.byDevice[deviceID]
	if s != nil && s.Close == nil && s.GatewayID == gatewayID {
		s.lastMessage.Store(m.msgNow().UnixNano())
		if remote != "" {
			s.Remote = remote
		}
		if send != nil {
			s.Send = send
		}
		m.mu.Unlock()
		return s
	}
	m.mu.Unlock()
	return m.Open(open())
}

// sender is the session's current Sender.
func (m *Manager) sender(s *Session) Sender {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return s.Send
}

// expire closes connectionless sessions silent for longer than their KeepOnline.
func (m *Manager) expire(now time.Time) {
	var list []*Session
	m.mu.Lock()
	for _, s := range m.byDevice {
		if s.Close == nil && s.KeepOnline > 0 && now.Sub(s.LastMessageAt()) > s.KeepOnline {
			list = append(list, s)
		}
	}
	m.mu.Unlock()
	for _, s := range list {
		m.Closed(s, ReasonExpired)
	}
}

// Run writes presence and follows it until ctx ends; then every session here is closed
// and its offline flushed (a node stopped cleanly first marks its devices offline, SPEC
// §5.1) within the stop budget of ctxStop.
func (m *Manager) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); m.writer.run(ctx) }()
	followDone := make(chan struct{})
	go func() { defer close(followDone); m.follow(ctx) }()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			<-followDone
			m.stop()
			<-done
			return
		case now := <-t.C:
			m.expire(now)
		}
	}
}

// stop closes every session and flushes their offlines (bounded: raft may be gone).
func (m *Manager) stop() {
	m.mu.Lock()
	list := make([]*Session, 0, len(m.byDevice))
	for _, s := range m.byDevice {
		list = append(list, s)
	}
	m.mu.Unlock()
	for _, s := range list {
		m.Closed(s, ReasonStopping)
		if s.Close != nil {
			s.Close(ReasonStopping)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := m.writer.flushAll(ctx); err != nil && len(list) > 0 {
		m.log.Warn("could not record this node's devices offline before stopping; the leader releases them once this node is seen dead", "devices", len(list), "error", err)
	}
}

// Downlink sends a message to a device held on this node and, when it expects an answer
// (a read, a write, a function call), waits for the device's reply with the same
// messageId until ctx ends.
func (m *Manager) Downlink(ctx context.Context, deviceID string, msg protocol.Message) (*protocol.Message, error) {
	s := m.Get(deviceID)
	if s == nil {
		return nil, ErrOffline
	}
	send := m.sender(s)
	if send == nil {
		return nil, fmt.Errorf("%w (%s)", ErrNoDownlink, s.Transport)
	}
	msg.DeviceID = deviceID
	if msg.Timestamp == 0 {
		msg.Timestamp = m.cfg.Now().UnixMilli()
	}
	wantsReply := replyType(msg.Type) != ""
	var wait <-chan *protocol.Message
	if wantsReply {
		var cancel func()
		wait, cancel = m.replies.expect(deviceID, msg.MessageID)
		defer cancel()
	}
	// Streamed before it is sent: the device's reply may come back before Send returns.
	m.hub.Publish(deviceID, Event{Direction: "down", Type: msg.Type, Message: msg, ServerID: m.cfg.NodeID, Time: m.cfg.Now().UTC()})
	if err := send(ctx, msg); err != nil {
		m.cfg.Metrics.message(s.GatewayID, "down", msg.Type+"_failed")
		return nil, err
	}
	m.cfg.Metrics.message(s.GatewayID, "down", msg.Type)
	if !wantsReply {
		return nil, nil
	}
	select {
	case r, ok := <-wait:
		if !ok || r == nil {
			return nil, ErrOffline
		}
		return r, nil
	case <-ctx.Done():
		return nil, ErrTimeout
	}
}

// replyType is the type that answers a downlink type ("" when none is expected).
func replyType(t string) string {
	switch t {
	case protocol.TypeReadProperty:
		return protocol.TypeReadPropertyReply
	case protocol.TypeWriteProperty:
		return protocol.TypeWritePropertyReply
	case protocol.TypeInvokeFunction:
		return protocol.TypeInvokeFunctionReply
	}
	return ""
}

// Receive takes one decoded message from a device of session s: replies go to their
// waiting downlink, property values to the store, everything to the message stream.
// kept says whether msg, its maps included, may still be referred to once Receive has
// returned (by a waiting downlink, a message stream or the firmware engine); the store
// copies what it keeps, so a caller may reuse the maps of a message that was not kept.
func (m *Manager) Receive(s *Session, topic string, msg protocol.Message) (kept bool) {
	now := m.msgNow().UTC()
	s.lastMessage.Store(now.UnixNano())
	if tc := s.upCounter.Load(); tc != nil && tc.typ == msg.Type {
		tc.c.Inc()
	} else {
		tc = &typedCounter{typ: msg.Type, c: m.cfg.Metrics.counter(s.GatewayID, "up", msg.Type)}
		tc.c.Inc()
		s.upCounter.Store(tc)
	}
	at := now
	if msg.Timestamp > 0 {
		at = time.UnixMilli(msg.Timestamp).UTC()
	}
	seen := false
	switch msg.Type {
	case protocol.TypeReportProperty, protocol.TypeReadPropertyReply, protocol.TypeWritePropertyReply:
		if len(msg.Properties) > 0 && (msg.Success == nil || *msg.Success || msg.Type == protocol.TypeReportProperty) {
			m.props.report(s.DeviceID, msg.Properties, at, now) // Update and Seen, one lock
			seen = true
		}
	case protocol.TypeFirmwareReport:
		if msg.Version != "" {
			m.props.SetFirmware(s.DeviceID, msg.Version, at)
		}
	case protocol.TypeFirmwareProgress:
		// A progress report that completes successfully names the version now running
		// (SPEC §4.8).
		if msg.Complete && msg.Version != "" && (msg.Success == nil || *msg.Success) {
			m.props.SetFirmware(s.DeviceID, msg.Version, at)
		}
	}
	switch msg.Type {
	case protocol.TypeFirmwareUpgradeAck, protocol.TypeFirmwareProgress, protocol.TypeFirmwarePull, protocol.TypeFirmwareReport:
		if m.cfg.Firmware != nil {
			m.cfg.Firmware(s.DeviceID, msg)
			kept = true
		}
	}
	if !seen {
		m.props.Seen(s.DeviceID, now)
	}
	if protocol.IsReply(msg.Type) {
		// A copy for the waiting downlink, so that only replies put a message on the heap.
		reply := msg
		m.replies.deliver(s.DeviceID, &reply)
		kept = true
	}
	if m.hub.Watched(s.DeviceID) {
		m.hub.Publish(s.DeviceID, Event{Direction: "up", Type: msg.Type, Topic: topic, Message: msg, ServerID: m.cfg.NodeID, Time: now})
		kept = true
	}
	return kept
}
