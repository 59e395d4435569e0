package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/cluster"
	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/session"
)

// Sessions is what the API needs from this node's device sessions.
type Sessions interface {
	// Holds reports whether the device's session is on this node (it may be, a moment
	// before the presence table says so).
	Holds(deviceID string) bool
	Downlink(ctx context.Context, deviceID string, m protocol.Message) (*protocol.Message, error)
	Kick(deviceID string) bool
	Sessions(gatewayID string) []session.Info
	Records(deviceIDs []string) map[string]session.Record
	SubscribeDevice(deviceID string, buffer int) *session.Subscription
}

// Downlink bounds (SPEC §4.6).
const (
	DefaultDownlinkTimeout = 10 * time.Second
	MaxDownlinkTimeout     = 60 * time.Second
)

// Internal paths of the device side.
const (
	InternalProposePath  = "/internal/v1/propose"
	internalDevicesPath  = "/internal/v1/devices/"
	internalRecordsPath  = "/internal/v1/device-records"
	internalGatewaysPath = "/internal/v1/gateways/"
)

// ProposeRequest carries a data-plane command from a follower to the leader.
type ProposeRequest struct {
	Command []byte `json:"command"`
}

// RecordsRequest asks a node for what it knows of some devices.
type RecordsRequest struct {
	IDs []string `json:"ids"`
}

// DownlinkRequest is a downlink routed to the node that holds the device.
type DownlinkRequest struct {
	Message   protocol.Message `json:"message"`
	TimeoutMs int64            `json:"timeoutMs"`
}

// ReadRequest, WriteRequest and InvokeRequest are the downlink bodies (SPEC §4.6).
type ReadRequest struct {
	Properties []string `json:"properties"`
}

// WriteRequest writes properties.
type WriteRequest struct {
	Properties map[string]any `json:"properties"`
}

// InvokeRequest calls a function.
type InvokeRequest struct {
	Inputs map[string]any `json:"inputs"`
}

// DownlinkReply is the answer of a downlink.
type DownlinkReply struct {
	MessageID  string         `json:"messageId"`
	Success    bool           `json:"success"`
	Properties map[string]any `json:"properties,omitempty"`
	Output     any            `json:"output,omitempty"`
	Code       string         `json:"code,omitempty"`
	Message    string         `json:"message,omitempty"`
}

// SessionList is GET /api/v1/gateways/{id}/sessions.
type SessionList struct {
	Items    []session.Info    `json:"items"`
	Total    int               `json:"total"`
	Page     int               `json:"page"`
	PageSize int               `json:"pageSize"`
	Missing  []cluster.Missing `json:"missing"`
}

var (
	errDeviceOffline = errors.New("device is offline")
	errDeviceTimeout = errors.New("device did not answer in time")
)

func (s *Server) registerDeviceRoutes() {
	// Downlinks are POSTs but not writes to the state: the node that receives one routes it
	// to the node holding the session itself (Local), never through the leader.
	s.add(&Route{Method: http.MethodPost, Path: "/api/v1/devices/:id/properties/read", Access: Admin, Tag: "devices", Local: true,
		Timeout: MaxDownlinkTimeout + 5*time.Second,
		Summary: "Read properties from the device, wherever it is connected (?timeout=, default 10s)", Request: ReadRequest{}, Response: DownlinkReply{}},
		func(c echo.Context) error {
			var req ReadRequest
			if err := decodeJSON(c, &req); err != nil {
				return err
			}
			if len(req.Properties) == 0 {
				return invalid(resource.Errors{{Field: "properties", Message: "name at least one property to read"}})
			}
			return s.downlink(c, protocol.Message{Type: protocol.TypeReadProperty, PropertyNames: req.Properties})
		})
	s.add(&Route{Method: http.MethodPost, Path: "/api/v1/devices/:id/properties/write", Access: Admin, Tag: "devices", Local: true,
		Timeout: MaxDownlinkTimeout + 5*time.Second,
		Summary: "Write properties to the device (?timeout=)", Request: WriteRequest{}, Response: DownlinkReply{}},
		func(c echo.Context) error {
			var req WriteRequest
			if err := decodeJSON(c, &req); err != nil {
				return err
			}
			if len(req.Properties) == 0 {
				return invalid(resource.Errors{{Field: "properties", Message: "give at least one property value"}})
			}
			return s.downlink(c, protocol.Message{Type: protocol.TypeWriteProperty, Properties: req.Properties})
		})
	s.add(&Route{Method: http.MethodPost, Path: "/api/v1/devices/:id/functions/:function", Access: Admin, Tag: "devices", Local: true,
		Timeout: MaxDownlinkTimeout + 5*time.Second,
		Summary: "Call a function of the device (?timeout=)", Request: InvokeRequest{}, Response: DownlinkReply{}},
		func(c echo.Context) error {
			var req InvokeRequest
			if err := decodeJSON(c, &req); err != nil {
				return err
			}
			if req.Inputs == nil {
				req.Inputs = map[string]any{}
			}
			return s.downlink(c, protocol.Message{Type: protocol.TypeInvokeFunction, FunctionID: c.Param("function"), Inputs: req.Inputs})
		})
	s.add(&Route{Method: http.MethodDelete, Path: "/api/v1/devices/:id/session", Access: Admin, Tag: "devices", Local: true, Status: http.StatusNoContent,
		Summary: "Disconnect the device (it may reconnect)"}, s.kickDevice)
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/devices/:id/messages", Access: Admin, Tag: "devices", Raw: true,
		Summary: "Server-sent events of the device's messages up and down, from whichever node holds it"}, s.deviceMessages)
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/gateways/:id/sessions", Access: Viewer, Tag: "gateways",
		Summary: "The gateway's device sessions on every node (paged)", Response: SessionList{}}, s.gatewaySessions)

	s.add(&Route{Method: http.MethodPost, Path: InternalProposePath, Access: Internal, Tag: "internal", Local: true,
		Summary: "Apply a data-plane command (presence) proposed by a follower", Request: ProposeRequest{}}, s.internalPropose)
	s.add(&Route{Method: http.MethodPost, Path: internalRecordsPath, Access: Internal, Tag: "internal", Local: true, ReadOnly: true,
		Summary: "What this node knows of some devices' reports", Request: RecordsRequest{}, Response: map[string]session.Record{}},
		func(c echo.Context) error {
			var req RecordsRequest
			if err := decodeJSON(c, &req); err != nil {
				return err
			}
			return c.JSON(http.StatusOK, s.cfg.Sessions.Records(req.IDs))
		})
	s.add(&Route{Method: http.MethodPost, Path: internalDevicesPath + ":id/downlink", Access: Internal, Tag: "internal", Local: true,
		Timeout: MaxDownlinkTimeout + 5*time.Second,
		Summary: "Send a downlink to a device held on this node", Request: DownlinkRequest{}, Response: protocol.Message{}}, s.internalDownlink)
	s.add(&Route{Method: http.MethodDelete, Path: internalDevicesPath + ":id/session", Access: Internal, Tag: "internal", Local: true, Status: http.StatusNoContent,
		Summary: "Disconnect a device held on this node"}, func(c echo.Context) error {
		if !s.cfg.Sessions.Kick(c.Param("id")) {
			return errDeviceOffline
		}
		return c.NoContent(http.StatusNoContent)
	})
	s.add(&Route{Method: http.MethodGet, Path: internalDevicesPath + ":id/messages", Access: Internal, Tag: "internal", Local: true, Raw: true,
		Summary: "Server-sent events of a device's messages on this node"}, s.localDeviceMessages)
	s.add(&Route{Method: http.MethodGet, Path: internalGatewaysPath + ":id/sessions", Access: Internal, Tag: "internal", Local: true,
		Summary: "The gateway's sessions on this node", Response: []session.Info{}}, func(c echo.Context) error {
		return c.JSON(http.StatusOK, s.cfg.Sessions.Sessions(c.Param("id")))
	})
}

// internalPropose applies a data-plane command a follower sent: presence, or the device
// reports of OTA (progress, versions, answered pulls). Configuration and the engine's own
// decisions go through the API's validation and the leader.
func (s *Server) internalPropose(c echo.Context) error {
	var req ProposeRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if !dataPlaneCommand(req.Command) {
		return invalid(resource.Errors{{Field: "command", Message: "only presence commands and OTA device reports are proposed this way"}})
	}
	if _, err := s.cfg.Raft.Apply(c.Request().Context(), req.Command); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// dataPlaneCommand reports whether cmd is one a node's device side may propose.
func dataPlaneCommand(cmd []byte) bool {
	if len(cmd) == 0 {
		return false
	}
	switch fsm.MessageType(cmd[0]) &^ fsm.IgnoreUnknownTypeFlag {
	case fsm.PresenceType:
		return true
	case fsm.OTAType:
		var req fsm.OTARequest
		if json.Unmarshal(cmd[1:], &req) != nil {
			return false
		}
		for _, op := range req.Ops {
			switch op.Op {
			case fsm.OpProgress, fsm.OpReport, fsm.OpPulled:
			default:
				return false
			}
		}
		return true
	}
	return false
}

// downlinkTimeout reads ?timeout= (SPEC §4.6).
func downlinkTimeout(c echo.Context) (time.Duration, error) {
	v := c.QueryParam("timeout")
	if v == "" {
		return DefaultDownlinkTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > MaxDownlinkTimeout {
		return 0, invalid(resource.Errors{{Field: "timeout", Message: fmt.Sprintf("must be a Go duration above 0 and at most %v, like 5s", MaxDownlinkTimeout)}})
	}
	return d, nil
}

// downlink sends msg to the device through the node that holds its session and answers
// with the device's reply.
func (s *Server) downlink(c echo.Context, msg protocol.Message) error {
	id := c.Param("id")
	if _, err := s.cfg.Store.Get(resource.Devices, id); err != nil {
		return err
	}
	timeout, err := downlinkTimeout(c)
	if err != nil {
		return err
	}
	msg.MessageID = newMessageID()
	holder, err := s.holder(id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), timeout)
	defer cancel()
	var reply *protocol.Message
	if holder == s.cfg.NodeID {
		reply, err = s.cfg.Sessions.Downlink(ctx, id, msg)
	} else {
		reply = &protocol.Message{}
		cctx, ccancel := context.WithTimeout(c.Request().Context(), timeout+5*time.Second)
		defer ccancel()
		err = s.cfg.Raft.CallNode(cctx, holder, cluster.Call{Method: http.MethodPost,
			Path: internalDevicesPath + url.PathEscape(id) + "/downlink",
			Body: DownlinkRequest{Message: msg, TimeoutMs: timeout.Milliseconds()}}, reply)
		err = peerDownlinkError(err)
	}
	if err != nil {
		return err
	}
	out := DownlinkReply{MessageID: msg.MessageID, Success: reply.Success == nil || *reply.Success,
		Properties: reply.Properties, Output: reply.Output, Code: reply.Code, Message: reply.Message}
	if msg.Type == protocol.TypeWriteProperty && out.Properties == nil && out.Success {
		out.Properties = msg.Properties
	}
	return c.JSON(http.StatusOK, out)
}

// peerDownlinkError maps the holding node's answer back to the same errors.
func peerDownlinkError(err error) error {
	var pe *cluster.PeerError
	if errors.As(err, &pe) {
		var body struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal([]byte(pe.Body), &body)
		switch body.Code {
		case "device_offline":
			return errDeviceOffline
		case "device_timeout":
			return errDeviceTimeout
		}
	}
	if errors.Is(err, cluster.ErrNodeDown) {
		return errDeviceOffline
	}
	return err
}

func (s *Server) internalDownlink(c echo.Context) error {
	var req DownlinkRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	timeout := time.Duration(req.TimeoutMs) * time.Millisecond
	if timeout <= 0 || timeout > MaxDownlinkTimeout {
		timeout = DefaultDownlinkTimeout
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), timeout)
	defer cancel()
	reply, err := s.cfg.Sessions.Downlink(ctx, c.Param("id"), req.Message)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, reply)
}

var messageSeq atomic.Uint64

// newMessageID makes a downlink's messageId: unique per node and time, short.
func newMessageID() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36) + strconv.FormatUint(messageSeq.Add(1), 36)
}

// holder is the node holding a device's session: this one if the device is connected
// here (it may be, a moment before the presence table says so), else the one presence
// names; errDeviceOffline when there is none.
func (s *Server) holder(id string) (string, error) {
	if s.cfg.Sessions.Holds(id) {
		return s.cfg.NodeID, nil
	}
	if p := s.cfg.Store.Presence(id); p != nil && p.Online && p.ServerID != s.cfg.NodeID {
		return p.ServerID, nil
	}
	return "", errDeviceOffline
}

// deviceHolder is the route's device (404 when it does not exist) and the node holding
// its session (errDeviceOffline when none does).
func (s *Server) deviceHolder(c echo.Context) (id, holder string, err error) {
	id = c.Param("id")
	if _, err := s.cfg.Store.Get(resource.Devices, id); err != nil {
		return id, "", err
	}
	holder, err = s.holder(id)
	return id, holder, err
}

// kickDevice disconnects a device through the node that holds it.
func (s *Server) kickDevice(c echo.Context) error {
	id, holder, err := s.deviceHolder(c)
	if err != nil {
		return err
	}
	if holder == s.cfg.NodeID {
		if !s.cfg.Sessions.Kick(id) {
			return errDeviceOffline
		}
	} else if err := s.cfg.Raft.CallNode(c.Request().Context(), holder, cluster.Call{Method: http.MethodDelete,
		Path: internalDevicesPath + url.PathEscape(id) + "/session"}, nil); err != nil {
		return peerDownlinkError(err)
	}
	s.log.Info("device disconnected through the API", "device", id, "node", holder, "user", currentUser(c).Username)
	return c.NoContent(http.StatusNoContent)
}

// presentDevices joins the session fields into device answers (SPEC §4.6): state and
// serverId from the presence table, properties merged from every node that recorded some.
func (s *Server) presentDevices(ctx context.Context, devices []*resource.Device) {
	if len(devices) == 0 {
		return
	}
	ids := make([]string, len(devices))
	for i, d := range devices {
		ids[i] = d.ID
	}
	presence := s.cfg.Store.PresenceOf(ids)
	records, missing := cluster.FanOut(ctx, s.cfg.Raft, "", s.cfg.RequestTimeout, func(ctx context.Context, m cluster.Member) (map[string]session.Record, error) {
		if m.ID == s.cfg.NodeID {
			return s.cfg.Sessions.Records(ids), nil
		}
		var out map[string]session.Record
		err := s.cfg.Raft.CallNode(ctx, m.ID, cluster.Call{Method: http.MethodPost, Path: internalRecordsPath, Body: RecordsRequest{IDs: ids}}, &out)
		return out, err
	})
	var missingIDs []string
	for _, m := range missing {
		missingIDs = append(missingIDs, m.ServerID)
	}
	sort.Strings(missingIDs)
	for _, d := range devices {
		d.State, d.ServerID, d.OnlineAt, d.OfflineAt = resource.DeviceNotActive, "", nil, nil
		if p := presence[d.ID]; p != nil {
			at := p.OnlineAt
			d.OnlineAt, d.OfflineAt = &at, p.OfflineAt
			if p.Online {
				d.State, d.ServerID = resource.DeviceOnline, p.ServerID
			} else {
				d.State = resource.DeviceOffline
			}
		}
		var merged session.Record
		for _, recs := range records {
			if r, ok := recs[d.ID]; ok {
				merged.Merge(r)
			}
		}
		if len(merged.Properties) > 0 {
			d.Properties = make(map[string]any, len(merged.Properties))
			for k, v := range merged.Properties {
				d.Properties[k] = v.Value
			}
			at := merged.Latest()
			d.PropertiesAt = &at
		}
		if !merged.LastMessageAt.IsZero() {
			at := merged.LastMessageAt
			d.LastMessageAt = &at
		}
		d.FirmwareVersion = merged.FirmwareVersion
		d.Missing = missingIDs
	}
}

// deviceStates returns the state filter (?state=online): one read of the presence table
// per request, not one per device.
func (s *Server) deviceStates() func(resource.Object) string {
	presence := s.cfg.Store.AllPresence()
	return func(o resource.Object) string {
		p := presence[o.Base().ID]
		switch {
		case p == nil:
			return resource.DeviceNotActive
		case p.Online:
			return resource.DeviceOnline
		}
		return resource.DeviceOffline
	}
}

// gatewaySessions lists a gateway's sessions on every node, by device id, paged.
func (s *Server) gatewaySessions(c echo.Context) error {
	id := c.Param("id")
	if _, err := s.cfg.Store.Get(resource.Gateways, id); err != nil {
		return err
	}
	var errs resource.Errors
	page := intParam(&errs, c.QueryParam("page"), "page", 1, 1, 1<<31)
	size := intParam(&errs, c.QueryParam("pageSize"), "pageSize", 20, 1, MaxPageSize)
	if len(errs) > 0 {
		return invalid(errs)
	}
	answers, missing := cluster.FanOut(c.Request().Context(), s.cfg.Raft, "", s.cfg.RequestTimeout, func(ctx context.Context, m cluster.Member) ([]session.Info, error) {
		if m.ID == s.cfg.NodeID {
			return s.cfg.Sessions.Sessions(id), nil
		}
		var out []session.Info
		err := s.cfg.Raft.CallNode(ctx, m.ID, cluster.Call{Path: internalGatewaysPath + url.PathEscape(id) + "/sessions"}, &out)
		return out, err
	})
	var all []session.Info
	for _, list := range answers {
		all = append(all, list...)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].DeviceID != all[j].DeviceID {
			return all[i].DeviceID < all[j].DeviceID
		}
		return all[i].ServerID < all[j].ServerID
	})
	out := SessionList{Items: []session.Info{}, Total: len(all), Page: page, PageSize: size, Missing: append([]cluster.Missing{}, missing...)}
	for i := (page - 1) * size; i < len(all) && i < page*size; i++ {
		out.Items = append(out.Items, all[i])
	}
	return c.JSON(http.StatusOK, out)
}

// localDeviceMessages streams one device's messages on this node.
func (s *Server) localDeviceMessages(c echo.Context) error {
	id := c.Param("id")
	sub := s.cfg.Sessions.SubscribeDevice(id, debugBuffer)
	out := startSSE(c)
	if err := out.json("ready", DebugReady{Nodes: []string{s.cfg.NodeID}, Missing: []cluster.Missing{}}); err != nil {
		sub.Close()
		return nil
	}
	events := make(chan sseEvent, debugBuffer)
	var dropped dropCounter
	go relayDevice(c.Request().Context(), sub, s.cfg.NodeID, relayTo(events, &dropped))
	writeEvents(c.Request().Context(), out, events, &dropped)
	return nil
}

// deviceMessages merges the device's message streams of every node: the device may move
// between nodes while it is followed.
func (s *Server) deviceMessages(c echo.Context) error {
	id := c.Param("id")
	if _, err := s.cfg.Store.Get(resource.Devices, id); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	merged := make(chan sseEvent, debugBuffer)
	var dropped dropCounter
	relay := relayTo(merged, &dropped)
	opened, missing := cluster.FanOut(ctx, s.cfg.Raft, "", s.cfg.RequestTimeout, func(octx context.Context, m cluster.Member) (bool, error) {
		if m.ID == s.cfg.NodeID {
			go relayDevice(ctx, s.cfg.Sessions.SubscribeDevice(id, debugBuffer), m.ID, relay)
			return true, nil
		}
		return true, s.openPeerStream(ctx, octx, m.ID, internalDevicesPath+url.PathEscape(id)+"/messages", relay)
	})
	ready := DebugReady{Nodes: []string{}, Missing: append([]cluster.Missing{}, missing...)}
	for node := range opened {
		ready.Nodes = append(ready.Nodes, node)
	}
	sort.Strings(ready.Nodes)
	out := startSSE(c)
	if out.json("ready", ready) != nil {
		return nil
	}
	writeEvents(ctx, out, merged, &dropped)
	return nil
}

// relayDevice hands a device subscription's events to relay until ctx ends.
func relayDevice(ctx context.Context, sub *session.Subscription, node string, relay func(sseEvent)) {
	relayEvents(ctx, sub.C, sub.Close, sub.Dropped, node, relay, func(e session.Event) sseEvent { return sseEvent{"message", e.Data()} })
}
