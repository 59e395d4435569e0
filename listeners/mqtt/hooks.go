package mqtt

import (
	"errors"
	"strings"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/linkops/linkops/listeners"
)

// hook is where mochi hands us its clients: admission at CONNECT, each PUBLISH, and the
// few broker features we switch off. All of it runs on the client's own goroutine.
type hook struct {
	mochi.HookBase
	s *server
}

func (h *hook) ID() string { return "linkops" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnSessionEstablished,
		mochi.OnACLCheck, mochi.OnPublish, mochi.OnPacketEncode:
		return true
	}
	return false
}

// OnConnect admits the client through the Handler. mochi calls it after validating the
// CONNECT and before taking over an older connection with the same client id; a refusal
// is answered here, because mochi would send nothing (and its only other refusal,
// OnConnectAuthenticate's, is 0x86 mapped to 3.1.1's 0x05, the wrong code).
func (h *hook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	c := connOf(cl)
	if c == nil {
		return packets.ErrServerUnavailable // not ours: cannot happen
	}
	// A clean session always (sessions are not kept, see Capabilities), and no will:
	// a will is a message to other clients, and this broker routes none.
	cl.Properties.Clean = true
	cl.Properties.Will = mochi.Will{}
	c.info = listeners.ConnInfo{
		Transport:   listeners.TransportMQTT,
		Remote:      cl.Net.Remote,
		ClientID:    pk.Connect.ClientIdentifier,
		Username:    string(pk.Connect.Username),
		Password:    string(pk.Connect.Password),
		MQTTVersion: pk.ProtocolVersion,
		TLS:         h.s.tls != nil,
	}
	c.beginOpen(cl)
	s, err := h.s.env.Open(h.s.ctx, c)
	c.endOpen(err != nil)
	if err != nil {
		return h.refuse(cl, err)
	}
	c.session = s
	// Registered here, before the CONNACK: a client cannot connect again before it has
	// its CONNACK, so registrations follow the order of connections (after the CONNACK,
	// an older connection's hook could run after a newer one's and close the newer).
	h.s.takeOver(c, cl.ID)
	return nil
}

// refuse answers a refused CONNECT (SPEC §5.2): bad credentials 0x04 (3.x) / 0x86 (5.0),
// anything else "not authorized" 0x05 / 0x87.
func (h *hook) refuse(cl *mochi.Client, err error) error {
	code, v3 := packets.ErrNotAuthorized, packets.Err3NotAuthorized
	if errors.Is(err, listeners.ErrBadCredentials) {
		code, v3 = packets.ErrBadUsernameOrPassword, packets.ErrMalformedUsernameOrPassword
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: code.Code}
	if cl.Properties.ProtocolVersion < 5 {
		ack.ReasonCode = v3.Code
	} else {
		ack.Properties.ReasonString = code.Reason
	}
	if werr := cl.WritePacket(ack); werr != nil {
		h.s.env.Log.Debug("mqtt: CONNACK refusal not sent", "component", h.s.env.ComponentID, "remote", cl.Net.Remote, "error", werr)
	}
	return code
}

// OnConnectAuthenticate admits whoever OnConnect admitted (it refuses by itself).
func (h *hook) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

// OnSessionEstablished: the CONNACK is out, downlinks may go.
func (h *hook) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	if c := connOf(cl); c != nil {
		c.connacked()
	}
}

// OnACLCheck allows every PUBLISH (the Session decides what it means). Reads are asked
// only for SUBSCRIBE filters, since nothing is routed: they are granted so clients run
// normally, except $-topics (the broker's own, and it offers none) and past
// maxSubscriptions, which bounds what one client can make us store.
func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if write {
		return true
	}
	if strings.HasPrefix(topic, "$") {
		return false
	}
	if _, ok := cl.State.Subscriptions.Get(topic); ok {
		return true
	}
	return cl.State.Subscriptions.Len() < maxSubscriptions
}

// OnPublish hands the message to the Session and tells mochi to acknowledge it without
// routing or retaining it (CodeSuccessIgnore). A Session that refuses the client
// (ErrNotAuthorized) or the size (ErrTooLarge) ends the connection; the packet is then
// rejected, so a QoS 1 or 2 message is not acknowledged.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	c := connOf(cl)
	if c == nil || c.session == nil {
		return pk, packets.ErrRejectPacket
	}
	_, err := c.session.Receive(h.s.ctx, listeners.Frame{Topic: pk.TopicName, Payload: pk.Payload})
	if errors.Is(err, listeners.ErrNotAuthorized) || errors.Is(err, listeners.ErrTooLarge) {
		c.Close("message refused: " + err.Error())
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

// OnPacketEncode tells MQTT 5 clients the packet limit in their CONNACK, so that
// conforming clients never send what would cost them the connection.
func (h *hook) OnPacketEncode(_ *mochi.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode < packets.ErrUnspecifiedError.Code {
		pk.Properties.MaximumPacketSize = uint32(h.s.limit)
	}
	return pk
}
