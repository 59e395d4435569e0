package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/protocol"
)

// codec is a gateway's protocol on one transport, as a connection uses it. The official
// protocol and uploaded JavaScript codecs both implement it.
type codec interface {
	// open is told of a new connection; it returns the device when the connection names
	// it already (MQTT credentials, a WebSocket path), "" when the first message will.
	open(ctx context.Context, c *conn) (deviceID string, err error)
	// decode turns one frame into what it says.
	decode(ctx context.Context, c *conn, f listeners.Frame) (decoded, error)
	// encode turns a downlink into a frame for the device's connection.
	encode(ctx context.Context, c *conn, m protocol.Message) (listeners.Frame, error)
	// subscribe decides an MQTT SUBSCRIBE of a device.
	subscribe(productID, deviceID, filter string) bool
	// authenticates: the codec admits MQTT clients by itself (an authenticate export).
	authenticates() bool
}

// decoded is what one frame said.
type decoded struct {
	messages []protocol.Message
	// one is a single message, without the slice's allocation (the common case: one
	// official message per frame); set is whether it is there.
	one    protocol.Message
	hasOne bool
	// identify names the connection's device (the binary protocol's online frame).
	identify string
	// replies go back on the connection at once (acks, time-sync answers).
	replies []listeners.Frame
	// reply answers a request transport (HTTP, CoAP); nil is the transport's success.
	reply *listeners.Reply
	// lent is the map the decoder was lent for one's properties (lendProps), given back
	// once one is delivered and not kept.
	lent map[string]any
}

// propsPool holds the maps lent to the official decoder for a message's properties: the
// session copies the values out, so a property report, the bulk of device traffic, is
// decoded without a map of its own (about a third of its decoding, measured by
// official's BenchmarkDecodeJSON).
var propsPool = sync.Pool{New: func() any { return make(map[string]any) }}

func lendProps() map[string]any { return propsPool.Get().(map[string]any) }

// giveBackProps takes back a lent map nothing refers to any more. One that grew past
// what a device reports at once is left to the collector, as clearing keeps its size.
func giveBackProps(m map[string]any) {
	if len(m) > 64 {
		return
	}
	clear(m)
	propsPool.Put(m)
}

// scriptCodec is an uploaded JavaScript codec (SPEC §4.2, §4.4.1).
type scriptCodec struct {
	pool       *protocol.Pool
	transport  string
	protocolID string
	metrics    *Metrics
}

func (s *scriptCodec) authenticates() bool {
	return s.transport == listeners.TransportMQTT && s.pool.HasAuthenticate()
}

// open: over MQTT the official authentication applies unless the codec exports
// authenticate (SPEC §4.4.1); elsewhere the device is named by the messages.
func (s *scriptCodec) open(ctx context.Context, c *conn) (string, error) {
	if c.transport != listeners.TransportMQTT {
		return "", nil
	}
	if !s.pool.HasAuthenticate() {
		return officialMQTTAuth(c, c.rt.cfg.Now())
	}
	start := time.Now()
	res, err := s.pool.Authenticate(ctx, protocol.AuthInput{Transport: c.transport, ClientID: c.info.ClientID,
		Username: c.info.Username, Password: c.info.Password, Remote: c.info.Remote})
	s.metrics.codecCall(c.gateway().g.ID, "authenticate", start, err)
	if err != nil {
		return "", fmt.Errorf("%w: the protocol's authenticate failed: %v", listeners.ErrNotAuthorized, err)
	}
	if !res.Success {
		msg := res.Message
		if msg == "" {
			msg = "refused by the protocol's authenticate"
		}
		return res.DeviceID, fmt.Errorf("%w: %s", listeners.ErrBadCredentials, msg)
	}
	if res.DeviceID == "" {
		return c.info.ClientID, nil
	}
	return res.DeviceID, nil
}

func (s *scriptCodec) decode(ctx context.Context, c *conn, f listeners.Frame) (decoded, error) {
	d, _ := c.Device()
	in := protocol.DecodeInput{Transport: s.transport, Topic: f.Topic, Bytes: f.Payload, Session: map[string]any{}}
	if c.transport == listeners.TransportHTTP || c.transport == listeners.TransportCoAP {
		in.URL = f.Topic
	}
	if d != nil {
		in.DeviceID = d.ID
	}
	start := time.Now()
	msgs, errs, err := s.pool.Decode(ctx, in)
	s.metrics.codecCall(c.gateway().g.ID, "decode", start, err)
	if err != nil {
		return decoded{}, fmt.Errorf("%w: %v", listeners.ErrDropped, err)
	}
	if len(errs) > 0 {
		s.metrics.codecErrors(c.gateway().g.ID, "reported", len(errs))
		c.rt.log.Info("codec reported errors", "gateway", c.gateway().g.ID, "protocol", s.protocolID, "device", in.DeviceID, "errors", strings.Join(errs, "; "))
	}
	var out decoded
	for _, m := range msgs {
		if !protocol.IsUp(m.Type) {
			s.metrics.codecErrors(c.gateway().g.ID, "garbage", 1)
			continue
		}
		out.messages = append(out.messages, m)
	}
	if len(out.messages) == 0 && len(msgs) > 0 {
		return out, fmt.Errorf("%w: the codec returned no message a device may send", listeners.ErrDropped)
	}
	return out, nil
}

func (s *scriptCodec) encode(ctx context.Context, c *conn, m protocol.Message) (listeners.Frame, error) {
	start := time.Now()
	res, err := s.pool.Encode(ctx, m.DeviceID, m)
	s.metrics.codecCall(c.gateway().g.ID, "encode", start, err)
	if err != nil {
		return listeners.Frame{}, err
	}
	f := listeners.Frame{Topic: res.Topic, Payload: res.Bytes}
	if f.Topic == "" && c.transport == listeners.TransportMQTT {
		return f, errors.New("the codec's encode returned no topic for an MQTT device")
	}
	return f, nil
}

// subscribe: an uploaded codec's devices follow the official topic layout's rule: their
// own /{productId}/{deviceId}/… topics only.
func (s *scriptCodec) subscribe(productID, deviceID, filter string) bool {
	return officialSubscribe(productID, deviceID, filter)
}
