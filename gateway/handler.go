package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/session"
)

// Refusals of the pipeline, wrapped around the listeners' sentinels so each transport
// answers them its own way.
var (
	errUnknownDevice = fmt.Errorf("%w: unknown device", listeners.ErrNotAuthorized)
	errOtherGateway  = fmt.Errorf("%w: the device's product uses another gateway", listeners.ErrNotAuthorized)
	errOtherDevice   = fmt.Errorf("%w: a message for another device on this connection", listeners.ErrNotAuthorized)
)

// handler serves one component's connections (listeners.Handler).
type handler struct {
	rt          *Runtime
	componentID string
}

// Open admits a connection through the component's gateways (SPEC §4.4.1, §5.2).
func (h *handler) Open(ctx context.Context, lc listeners.Conn) (listeners.Session, error) {
	info := lc.Info()
	gws := h.rt.current().byComponent[h.componentID]
	c := &conn{rt: h.rt, lc: lc, info: info, transport: info.Transport, componentID: h.componentID}
	if len(gws) == 0 {
		switch info.Transport {
		case listeners.TransportMQTT, listeners.TransportHTTP, listeners.TransportCoAP:
			if !info.Outbound {
				return listeners.NoGateway{}.Open(ctx, lc)
			}
		}
		// A stream that outlives the moment (MQTT_CLIENT's broker connection, a TCP or
		// WebSocket device, a UDP peer) finds its gateway at its first message after one is
		// enabled; until then its messages are dropped and counted (SPEC §4.3.1).
		return c, nil
	}
	if info.Outbound {
		// MQTT_CLIENT's broker connection carries many devices: each message names its own.
		c.setGateway(gws[0])
		c.shared = true
		return c, nil
	}
	if info.Transport != listeners.TransportMQTT {
		c.setGateway(gws[0]) // only an MQTT_SERVER may be shared by several gateways
		deviceID, err := c.gateway().codec.open(ctx, c)
		if err != nil {
			h.rt.refused(c, deviceID, err)
			return nil, err
		}
		if deviceID != "" {
			if err := c.bind(deviceID); err != nil {
				h.rt.refused(c, deviceID, err)
				return nil, err
			}
		}
		return c, nil
	}
	// MQTT: the client id is the device, and its product names the gateway.
	g, err := h.mqttGateway(info.ClientID, gws)
	if err != nil {
		h.rt.refused(c, info.ClientID, err)
		return nil, err
	}
	c.setGateway(g)
	deviceID, err := g.codec.open(ctx, c)
	if err == nil {
		err = c.bind(deviceID)
	}
	if err != nil {
		h.rt.refused(c, deviceID, err)
		return nil, err
	}
	return c, nil
}

// mqttGateway picks the gateway of the device a client id names among the component's.
func (h *handler) mqttGateway(clientID string, gws []*gw) (*gw, error) {
	d, p, err := h.rt.device(clientID)
	if err != nil {
		// A codec that authenticates by itself may map the client to another device id.
		for _, g := range gws {
			if g.codec.authenticates() {
				return g, nil
			}
		}
		return nil, err
	}
	for _, g := range gws {
		if g.g.ID == p.GatewayID {
			return g, nil
		}
	}
	_ = d
	return nil, errOtherGateway
}

// device looks up a registered device and its product.
func (r *Runtime) device(id string) (*resource.Device, *resource.Product, error) {
	if id == "" {
		return nil, nil, errUnknownDevice
	}
	o, err := r.cfg.Store.Get(resource.Devices, id)
	if err != nil {
		return nil, nil, fmt.Errorf("%w %q", errUnknownDevice, id)
	}
	d := o.(*resource.Device)
	po, err := r.cfg.Store.Get(resource.Products, d.ProductID)
	if err != nil {
		return nil, nil, fmt.Errorf("%w %q (its product %q is gone)", errUnknownDevice, id, d.ProductID)
	}
	return d, po.(*resource.Product), nil
}

// refused logs a refused connection with its reason (SPEC §5.2: each refusal is logged).
func (r *Runtime) refused(c *conn, deviceID string, err error) {
	gateway := ""
	if c.gateway() != nil {
		gateway = c.gateway().g.ID
	}
	r.cfg.Metrics.refusal(gateway, err)
	r.log.Info("device refused", "gateway", gateway, "device", deviceID, "transport", c.transport, "remote", c.info.Remote, "reason", err.Error())
}

// conn is one admitted connection (listeners.Session): bound to one device once known.
type conn struct {
	rt          *Runtime
	componentID string
	lc          listeners.Conn
	info        listeners.ConnInfo
	transport   string
	// gw is the connection's gateway, as of its last message: swapped when a new protocol
	// version arrives, read by downlinks on other goroutines.
	gw atomic.Pointer[gw]
	// shared: an MQTT_CLIENT broker connection, whose messages each name their device.
	shared bool

	mu      sync.Mutex
	device  *resource.Device
	product *resource.Product
	sess    *session.Session
	// binary is the official binary protocol's side of a TCP or UDP connection (ready at
	// its zero value; unused by other transports).
	binary binaryState
}

func (c *conn) gateway() *gw     { return c.gw.Load() }
func (c *conn) setGateway(g *gw) { c.gw.Store(g) }

// bind ties the connection to a device after checking that it is a registered device of
// a product of this gateway, and opens its session (stream transports).
func (c *conn) bind(deviceID string) error {
	d, p, err := c.rt.device(deviceID)
	if err != nil {
		return err
	}
	if p.GatewayID != c.gateway().g.ID {
		return errOtherGateway
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.device != nil {
		if c.device.ID != deviceID {
			return errOtherDevice
		}
		return nil
	}
	c.device, c.product = d, p
	if c.connectionless() {
		return nil
	}
	c.sess = c.rt.cfg.Sessions.Open(&session.Session{
		DeviceID: d.ID, ProductID: p.ID, GatewayID: c.gateway().g.ID, Transport: c.transport, Remote: c.info.Remote,
		Send:  c.send,
		Close: c.lc.Close,
	})
	return nil
}

// connectionless transports keep a device online between messages (SPEC §5.2).
func (c *conn) connectionless() bool {
	switch c.transport {
	case listeners.TransportHTTP, listeners.TransportCoAP, listeners.TransportUDP:
		return true
	}
	return false
}

// Device is the device bound to the connection ("" until known).
func (c *conn) Device() (*resource.Device, *resource.Product) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.device, c.product
}

// Receive decodes one message with the gateway's protocol and hands what it says to the
// session manager.
func (c *conn) Receive(ctx context.Context, f listeners.Frame) (*listeners.Reply, error) {
	t := c.rt.current()
	if c.gateway() == nil {
		gws := t.byComponent[c.componentID]
		if len(gws) == 0 {
			return nil, fmt.Errorf("%w: %w", listeners.ErrDropped, listeners.ErrNoGateway)
		}
		c.setGateway(gws[0])
		c.shared = c.info.Outbound
		if !c.shared {
			deviceID, err := c.gateway().codec.open(ctx, c)
			if err == nil && deviceID != "" {
				err = c.bind(deviceID)
			}
			if err != nil {
				c.rt.refused(c, deviceID, err)
				return nil, err
			}
		}
	}
	cur := c.gateway()
	g := t.byID[cur.g.ID]
	if g == nil {
		if c.shared {
			return nil, fmt.Errorf("%w: gateway %s is not enabled", listeners.ErrDropped, cur.g.ID)
		}
		// Disabled a moment ago: the table's follower is closing this connection.
		return nil, fmt.Errorf("%w: gateway %s is not enabled", listeners.ErrNotAuthorized, cur.g.ID)
	}
	if g != cur {
		c.setGateway(g) // a new protocol version applies to the next message
	}
	out, err := g.codec.decode(ctx, c, f)
	if err != nil {
		d, _ := c.Device()
		id := ""
		if d != nil {
			id = d.ID
		}
		if !errors.Is(err, listeners.ErrNotAuthorized) {
			c.rt.log.Info("message not decoded", "gateway", g.g.ID, "device", id, "transport", c.transport, "remote", c.info.Remote, "error", err.Error())
		} else {
			c.rt.refused(c, id, err)
		}
		return out.reply, err
	}
	if out.identify != "" {
		if err := c.bind(out.identify); err != nil {
			c.rt.refused(c, out.identify, err)
			return out.reply, err
		}
	}
	if out.hasOne {
		kept, err := c.deliver(f.Topic, out.one)
		if err != nil {
			c.rt.refused(c, out.one.DeviceID, err)
			return out.reply, err
		}
		if !kept && out.lent != nil {
			giveBackProps(out.lent)
		}
	}
	for _, m := range out.messages {
		if _, err := c.deliver(f.Topic, m); err != nil {
			c.rt.refused(c, m.DeviceID, err)
			return out.reply, err
		}
	}
	for _, r := range out.replies {
		if err := c.lc.Send(r); err != nil {
			c.rt.log.Debug("reply to device not sent", "gateway", g.g.ID, "remote", c.info.Remote, "error", err)
		}
	}
	return out.reply, nil
}

// deliver hands one decoded message to the session of its device; kept is whether
// anything may still refer to it (session.Manager.Receive).
func (c *conn) deliver(topic string, m protocol.Message) (kept bool, err error) {
	if c.shared {
		return c.deliverShared(topic, m)
	}
	// bind sets the device, its product and the session together, once: one look under
	// the lock per message.
	d, p, s := c.bound()
	if d == nil {
		if m.DeviceID == "" {
			return false, fmt.Errorf("%w: the protocol decoded a message without a device id", listeners.ErrDropped)
		}
		if err := c.bind(m.DeviceID); err != nil {
			return false, err
		}
		d, p, s = c.bound()
	}
	if m.DeviceID == "" {
		m.DeviceID = d.ID
	} else if m.DeviceID != d.ID {
		return false, errOtherDevice
	}
	if c.connectionless() {
		s = c.seen(d, p)
	}
	if s == nil {
		return false, fmt.Errorf("%w: no session", listeners.ErrDropped)
	}
	return c.rt.cfg.Sessions.Receive(s, topic, m), nil
}

func (c *conn) bound() (*resource.Device, *resource.Product, *session.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.device, c.product, c.sess
}

// seen is the current session of the device of a connectionless transport, opened on its
// first message.
func (c *conn) seen(d *resource.Device, p *resource.Product) *session.Session {
	var send session.Sender
	if c.transport == listeners.TransportUDP {
		send = c.send // to the device's last address
	}
	return c.rt.cfg.Sessions.Seen(d.ID, c.gateway().g.ID, c.info.Remote, send, func() *session.Session {
		return &session.Session{DeviceID: d.ID, ProductID: p.ID, GatewayID: c.gateway().g.ID, Transport: c.transport,
			Remote: c.info.Remote, Send: send, KeepOnline: c.gateway().keepOnline}
	})
}

// deliverShared handles a message of an MQTT_CLIENT broker connection, which may carry
// any device of the gateway.
func (c *conn) deliverShared(topic string, m protocol.Message) (kept bool, err error) {
	d, p, err := c.rt.device(m.DeviceID)
	if err != nil {
		return false, fmt.Errorf("%w: %v", listeners.ErrDropped, err)
	}
	if p.GatewayID != c.gateway().g.ID {
		return false, fmt.Errorf("%w: %v", listeners.ErrDropped, errOtherGateway)
	}
	s := c.rt.cfg.Sessions.Seen(d.ID, c.gateway().g.ID, c.info.Remote, c.send, func() *session.Session {
		return &session.Session{DeviceID: d.ID, ProductID: p.ID, GatewayID: c.gateway().g.ID, Transport: c.transport,
			Remote: c.info.Remote, Send: c.send, KeepOnline: c.gateway().keepOnline}
	})
	return c.rt.cfg.Sessions.Receive(s, topic, m), nil
}

// send encodes a downlink with the gateway's current protocol and writes it.
func (c *conn) send(ctx context.Context, m protocol.Message) error {
	g := c.rt.current().byID[c.gateway().g.ID]
	if g == nil {
		g = c.gateway()
	}
	f, err := g.codec.encode(ctx, c, m)
	if err != nil {
		return err
	}
	return c.lc.Send(f)
}

// AuthorizeSubscribe lets an MQTT device subscribe only to its own topics (SPEC §5.2).
func (c *conn) AuthorizeSubscribe(filter string) bool {
	d, p := c.Device()
	if d == nil || c.gateway() == nil {
		return false
	}
	return c.gateway().codec.subscribe(p.ID, d.ID, filter)
}

// Closed ends the device's session (only if it still is the device's session: the late
// close of a taken-over connection changes nothing).
func (c *conn) Closed(reason string) {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s != nil {
		c.rt.cfg.Sessions.Closed(s, reason)
	}
}
