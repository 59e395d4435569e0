package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/protocol/official"
	"github.com/linkops/linkops/resource"
)

// CoAP response codes (RFC 7252 §12.1.2) as listeners.Reply carries them.
const (
	coapCreated    = 65  // 2.01
	coapContent    = 69  // 2.05
	coapBadRequest = 128 // 4.00
)

// officialCodec is the built-in JetLinks official protocol (SPEC §5.2) on a transport;
// g's configuration picks the binary deviceId dialect of TCP and UDP.
func officialCodec(transport string, g *resource.Gateway, now func() time.Time) codec {
	o := &officialProto{transport: transport, now: now}
	if g.Configuration != nil && g.Configuration.BinaryDeviceID == resource.BinaryDeviceIDUntyped {
		o.dialect.UntypedDeviceID = true
	}
	return o
}

type officialProto struct {
	transport string
	dialect   official.Dialect
	now       func() time.Time
}

func (o *officialProto) authenticates() bool { return false }

func (o *officialProto) subscribe(productID, deviceID, filter string) bool {
	return officialSubscribe(productID, deviceID, filter)
}

func officialSubscribe(productID, deviceID, filter string) bool {
	return official.AllowedSubscription(productID, deviceID, filter)
}

// officialMQTTAuth checks an MQTT CONNECT against the secureId and secureKey of the
// device's product: md5-signed or plain (SPEC §5.2).
func officialMQTTAuth(c *conn, now time.Time) (string, error) {
	deviceID := c.info.ClientID
	_, p, err := c.rt.device(deviceID)
	if err != nil {
		return deviceID, err
	}
	if p.SecureKey == "" {
		return deviceID, fmt.Errorf("%w: product %s has no secureKey, so its devices cannot log in", listeners.ErrBadCredentials, p.ID)
	}
	if err := official.CheckMQTT(p.SecureID, p.SecureKey, c.info.Username, c.info.Password, now); err != nil {
		return deviceID, fmt.Errorf("%w: %v", listeners.ErrBadCredentials, err)
	}
	return deviceID, nil
}

// bearer is the token of an Authorization header or of ?token=.
func bearer(info listeners.ConnInfo) string {
	if h := info.Header.Get("Authorization"); h != "" {
		if v, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(v)
		}
		return strings.TrimSpace(h)
	}
	return info.Query.Get("token")
}

func (o *officialProto) open(ctx context.Context, c *conn) (string, error) {
	switch o.transport {
	case listeners.TransportMQTT:
		return officialMQTTAuth(c, o.now())
	case listeners.TransportWebSocket:
		// ws://host/{productId}/{deviceId} with the product's secureKey as bearer token.
		parts := strings.Split(strings.Trim(c.info.Path, "/"), "/")
		if len(parts) < 2 {
			return "", fmt.Errorf("%w: connect to /{productId}/{deviceId}", listeners.ErrNotAuthorized)
		}
		deviceID := parts[1]
		_, p, err := c.rt.device(deviceID)
		if err != nil {
			return deviceID, err
		}
		if p.ID != parts[0] {
			return deviceID, fmt.Errorf("%w: device %s is not of product %s", listeners.ErrNotAuthorized, deviceID, parts[0])
		}
		if p.SecureKey == "" || bearer(c.info) != p.SecureKey {
			return deviceID, fmt.Errorf("%w: the token is not the product's secureKey", listeners.ErrBadCredentials)
		}
		return deviceID, nil
	}
	return "", nil
}

func (o *officialProto) decode(ctx context.Context, c *conn, f listeners.Frame) (decoded, error) {
	switch o.transport {
	case listeners.TransportMQTT:
		props := lendProps()
		m, err := official.DecodeJSONInto(f.Topic, f.Payload, props)
		out, err := o.decodedJSON(c, m, err)
		out.lent = props
		return out, err
	case listeners.TransportWebSocket:
		_, m, err := official.DecodeWebSocket(f.Payload)
		return o.decodedJSON(c, m, err)
	case listeners.TransportHTTP:
		return o.decodeHTTP(c, f)
	case listeners.TransportCoAP:
		return o.decodeCoAP(c, f)
	case listeners.TransportTCP:
		return o.decodeTCP(c, f)
	case listeners.TransportUDP:
		return o.decodeUDP(c, f)
	}
	return decoded{}, fmt.Errorf("%w: the official protocol does not speak %s", listeners.ErrDropped, o.transport)
}

// decodedJSON is a decoded topic message; time-sync is answered at once.
func (o *officialProto) decodedJSON(c *conn, m protocol.Message, err error) (decoded, error) {
	if err != nil {
		return decoded{}, fmt.Errorf("%w: %v", listeners.ErrDropped, err)
	}
	out := decoded{one: m, hasOne: true}
	if m.Type == protocol.TypeTimeSync {
		reply, err := o.timeSyncReply(c, m)
		if err == nil {
			out.replies = append(out.replies, reply)
		}
	}
	return out, nil
}

func (o *officialProto) timeSyncReply(c *conn, m protocol.Message) (listeners.Frame, error) {
	r := protocol.Message{Type: protocol.TypeTimeSyncReply, DeviceID: m.DeviceID, MessageID: m.MessageID, Timestamp: o.now().UnixMilli()}
	return o.encode(context.Background(), c, r)
}

// jsonReply is an HTTP answer of the official protocol.
func jsonReply(status int, body any) *listeners.Reply {
	b, _ := json.Marshal(body)
	return &listeners.Reply{Code: status, ContentType: "application/json", Payload: b}
}

// decodeHTTP: POST /{productId}/{deviceId}/<suffix> with the product's secureKey as
// bearer token (SPEC §5.2).
func (o *officialProto) decodeHTTP(c *conn, f listeners.Frame) (decoded, error) {
	unauthorized := jsonReply(http.StatusUnauthorized, map[string]any{"success": false, "code": "unauthorized"})
	productID, deviceID, _, ok := official.ParseTopic(f.Topic)
	if !ok {
		return decoded{reply: jsonReply(http.StatusBadRequest, map[string]any{"success": false, "code": "bad_topic",
			"message": "post to /{productId}/{deviceId}/<suffix>"})}, fmt.Errorf("%w: bad topic %q", listeners.ErrDropped, f.Topic)
	}
	_, p, err := c.rt.device(deviceID)
	if err != nil || p.ID != productID {
		return decoded{reply: unauthorized}, fmt.Errorf("%w: unknown device %s of product %s", listeners.ErrNotAuthorized, deviceID, productID)
	}
	if p.SecureKey == "" || bearer(c.info) != p.SecureKey {
		return decoded{reply: unauthorized}, fmt.Errorf("%w: the bearer token is not the product's secureKey", listeners.ErrNotAuthorized)
	}
	m, err := official.DecodeJSON(f.Topic, f.Payload)
	if err != nil {
		return decoded{reply: jsonReply(http.StatusBadRequest, map[string]any{"success": false, "code": "bad_payload", "message": err.Error()})},
			fmt.Errorf("%w: %v", listeners.ErrDropped, err)
	}
	out := decoded{identify: deviceID, one: m, hasOne: true, reply: jsonReply(http.StatusOK, map[string]any{"success": true})}
	if m.Type == protocol.TypeTimeSync {
		out.reply = jsonReply(http.StatusOK, map[string]any{"success": true, "messageId": m.MessageID, "timestamp": o.now().UnixMilli()})
	}
	return out, nil
}

// decodeCoAP: POST /{productId}/{deviceId}/<suffix>, the payload AES-ECB encrypted under
// the product's secureKey; 2.01, or 4.00 when it does not decrypt or decode (SPEC §5.2).
func (o *officialProto) decodeCoAP(c *conn, f listeners.Frame) (decoded, error) {
	bad := func(err error) (decoded, error) {
		return decoded{reply: &listeners.Reply{Code: coapBadRequest, ContentType: "text/plain", Payload: []byte(err.Error())}},
			fmt.Errorf("%w: %v", listeners.ErrDropped, err)
	}
	productID, _, _, ok := official.ParseTopic(f.Topic)
	if !ok {
		return bad(fmt.Errorf("post to /{productId}/{deviceId}/<suffix>, not %q", f.Topic))
	}
	// The device may name itself in option 2100 instead of (or besides) the path.
	option := c.info.Header.Get(strconv.Itoa(official.CoAPDeviceIDOption))
	deviceID := official.CoAPDeviceID(f.Topic, option)
	_, p, err := c.rt.device(deviceID)
	if err != nil || p.ID != productID {
		return bad(fmt.Errorf("unknown device %s of product %s", deviceID, productID))
	}
	m, err := official.DecodeCoAP(f.Topic, option, p.SecureKey, f.Payload)
	if err != nil {
		return bad(err)
	}
	out := decoded{identify: deviceID, one: m, hasOne: true, reply: &listeners.Reply{Code: coapCreated}}
	if m.Type == protocol.TypeTimeSync {
		body, _ := json.Marshal(map[string]any{"messageId": m.MessageID, "timestamp": o.now().UnixMilli()})
		enc, err := official.Encrypt(p.SecureKey, body)
		if err != nil {
			return bad(err)
		}
		out.reply = &listeners.Reply{Code: coapContent, ContentType: "application/octet-stream", Payload: enc}
	}
	return out, nil
}

// binaryState is a TCP connection's side of the binary protocol: whether its online frame
// was accepted, and which downlink each outstanding seq stands for (replies carry the seq,
// the API waits on the messageId).
type binaryState struct {
	mu      sync.Mutex
	authed  bool
	seq     uint16
	pending map[uint16]string
}

func (b *binaryState) next(messageID string) uint16 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	if b.seq == 0 {
		b.seq = 1
	}
	if b.pending == nil {
		b.pending = map[uint16]string{}
	}
	if len(b.pending) > 1024 {
		clear(b.pending) // a device that never answers must not grow this forever
	}
	b.pending[b.seq] = messageID
	return b.seq
}

func (b *binaryState) reply(seq uint16) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id, ok := b.pending[seq]
	delete(b.pending, seq)
	return id, ok
}

// decodeTCP: the first frame must be an online frame with the product's secureKey; an
// unauthenticated connection gets ack 0x01 and is closed.
func (o *officialProto) decodeTCP(c *conn, f listeners.Frame) (decoded, error) {
	st := &c.binary
	fr, err := o.dialect.DecodeTCP(f.Payload)
	if err != nil {
		return decoded{}, fmt.Errorf("%w: %v", listeners.ErrDropped, err)
	}
	now := o.now()
	ack := func(code official.AckCode) listeners.Frame {
		b, _ := o.dialect.EncodeTCP(official.AckFor(fr, code, now))
		return listeners.Frame{Payload: b}
	}
	st.mu.Lock()
	authed := st.authed
	st.mu.Unlock()
	if !authed {
		deny := func(reason string) (decoded, error) {
			_ = c.lc.Send(ack(official.AckUnauthorized))
			return decoded{}, fmt.Errorf("%w: %s", listeners.ErrNotAuthorized, reason)
		}
		if fr.Type != official.FrameOnline {
			return deny("the first frame must be an online frame")
		}
		_, p, err := c.rt.device(fr.DeviceID)
		if err != nil {
			return deny(err.Error())
		}
		if p.SecureKey == "" || fr.Key != p.SecureKey {
			return deny("the online frame's key is not the product's secureKey")
		}
		st.mu.Lock()
		st.authed = true
		st.mu.Unlock()
		return decoded{identify: fr.DeviceID, one: onlineOf(fr), hasOne: true, replies: []listeners.Frame{ack(official.AckOK)}}, nil
	}
	if fr.Type == official.FrameOnline {
		// Again on an authenticated connection: acknowledged, nothing new to say.
		return decoded{replies: []listeners.Frame{ack(official.AckOK)}}, nil
	}
	if d, _ := c.Device(); fr.DeviceID == "" && d != nil {
		fr.Message.DeviceID = d.ID
	}
	m, acked, ok := c.binaryUplink(fr)
	if !ok {
		return decoded{replies: []listeners.Frame{ack(official.AckUnsupported)}}, fmt.Errorf("%w: %s frames are not sent by devices", listeners.ErrDropped, fr.Type)
	}
	out := decoded{one: m, hasOne: m.Type != ""}
	if acked {
		out.replies = []listeners.Frame{ack(official.AckOK)}
	}
	return out, nil
}

// binaryUplink is what an accepted binary frame of a device says, on TCP and UDP alike:
// its message (none for keepalives and acks), whether it is acknowledged on TCP (online,
// reports and events), and false for frames devices do not send.
func (c *conn) binaryUplink(fr official.Frame) (m protocol.Message, acked, ok bool) {
	switch fr.Type {
	case official.FrameKeepalive, official.FrameAck:
		return m, false, true
	case official.FrameOnline:
		return onlineOf(fr), true, true
	case official.FrameReadPropertyReply, official.FrameWritePropertyReply, official.FrameFunctionReply:
		// The reply carries the seq of its downlink; the API waits on the messageId.
		if id, ok := c.binary.reply(fr.Seq); ok {
			fr.Message.MessageID = id
		}
		return fr.Message, false, true
	case official.FrameReportProperty, official.FrameEvent:
		return fr.Message, true, true
	}
	return m, false, false
}

// onlineOf is the online message of an accepted online frame.
func onlineOf(fr official.Frame) protocol.Message {
	m := fr.Message
	m.Type, m.DeviceID = protocol.TypeOnline, fr.DeviceID
	return m
}

// decodeUDP: each datagram carries the secureKey and one binary message; answered with an
// ack datagram (SPEC §5.2).
func (o *officialProto) decodeUDP(c *conn, f listeners.Frame) (decoded, error) {
	dg, err := o.dialect.DecodeUDP(f.Payload)
	if err != nil {
		return decoded{}, fmt.Errorf("%w: %v", listeners.ErrDropped, err)
	}
	now := o.now()
	answer := func(code official.AckCode) listeners.Frame {
		b, _ := o.dialect.EncodeUDP(official.Datagram{AuthType: official.AuthToken, Frame: official.AckFor(dg.Frame, code, now)})
		return listeners.Frame{Payload: b}
	}
	deviceID := dg.Frame.DeviceID
	if deviceID == "" {
		if d, _ := c.Device(); d != nil {
			deviceID = d.ID
		}
	}
	_, p, err := c.rt.device(deviceID)
	if err != nil || p.SecureKey == "" || dg.Key != p.SecureKey {
		_ = c.lc.Send(answer(official.AckUnauthorized))
		if err == nil {
			err = errors.New("the datagram's key is not the product's secureKey")
		}
		return decoded{}, fmt.Errorf("%w: %v", listeners.ErrDropped, err)
	}
	fr := dg.Frame
	fr.Message.DeviceID = deviceID
	m, _, ok := c.binaryUplink(fr)
	if !ok {
		return decoded{replies: []listeners.Frame{answer(official.AckUnsupported)}}, fmt.Errorf("%w: %s datagrams are not sent by devices", listeners.ErrDropped, fr.Type)
	}
	out := decoded{identify: deviceID, one: m, hasOne: m.Type != ""}
	if !protocol.IsReply(m.Type) {
		// Every datagram is answered, keepalives too, but a device's reply to a downlink.
		out.replies = []listeners.Frame{answer(official.AckOK)}
	}
	return out, nil
}

func (o *officialProto) encode(ctx context.Context, c *conn, m protocol.Message) (listeners.Frame, error) {
	_, p := c.Device()
	if p == nil && c.shared {
		// MQTT_CLIENT's broker connection carries many devices: the message names one.
		_, p, _ = c.rt.device(m.DeviceID)
	}
	if p == nil {
		return listeners.Frame{}, errors.New("the connection has no device yet")
	}
	switch o.transport {
	case listeners.TransportMQTT:
		topic, payload, err := official.EncodeJSON(p.ID, m)
		return listeners.Frame{Topic: topic, Payload: payload}, err
	case listeners.TransportWebSocket:
		b, err := official.EncodeWebSocket(p.ID, m)
		return listeners.Frame{Topic: c.info.Path, Payload: b}, err
	case listeners.TransportTCP, listeners.TransportUDP:
		fr, err := official.FrameOf(m, c.binary.next(m.MessageID))
		if err != nil {
			return listeners.Frame{}, err
		}
		var b []byte
		if o.transport == listeners.TransportTCP {
			b, err = o.dialect.EncodeTCP(fr)
		} else {
			b, err = o.dialect.EncodeUDP(official.Datagram{AuthType: official.AuthToken, Key: p.SecureKey, Frame: fr})
		}
		return listeners.Frame{Payload: b}, err
	}
	return listeners.Frame{}, fmt.Errorf("the official protocol sends nothing down over %s", o.transport)
}
