package mqtt

import (
	"errors"
	"strings"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/linkops/linkops/listeners"
)

// hook is where mochi hands us what it processes: each PUBLISH and SUBSCRIBE filter, and
// the CONNACK it encodes. Admission (admit) is called by our own session, not by mochi.
// All of it runs on the client's own goroutine, except OnPacketEncode, which runs on
// whichever goroutine writes (a downlink's Send).
type hook struct {
	mochi.HookBase
	s *server
}

func (h *hook) ID() string { return "linkops" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mochi.OnACLCheck, mochi.OnPublish, mochi.OnPacketEncode:
		return true
	}
	return false
}

// admit has the Handler admit the client, after its CONNECT was validated and before
// the CONNACK. A refusal is answered here with the code SPEC §5.2 asks for.
func (h *hook) admit(c *conn, cl *mochi.Client, pk packets.Packet) error {
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
	// an older connection's admission could run after a newer one's and close the newer).
	// cl.ID is mochi's: the CONNECT's client id, or one it assigned to an empty one.
	h.s.takeOver(c, cl.ID)
	return nil
}

// refuse answers a refused CONNECT (SPEC §5.2): bad credentials 0x04 (3.x) / 0x86 (5.0),
// anything else "not authorized" 0x05 / 0x87. It writes the CONNACK itself: mochi's
// SendConnack would send a 3.x client 0x87 as is and bad credentials (0x86) as 0x05.
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

// OnACLCheck allows every PUBLISH (the Session decides what it means). Reads are asked
// only for SUBSCRIBE filters, since nothing is routed: they are granted so clients run
// normally, except $-topics (the broker's own, and it offers none), filters the Session
// refuses (listeners.SubscribeAuthorizer) and past maxSubscriptions, which bounds what
// one client can make us store. mochi answers a refused filter with 0x87 "not
// authorized" on 5.0 and 0x80 on 3.x (processSubscribe maps every code above 0x02 to
// 0x80 for MQTT 3), and keeps the connection.
func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if write {
		return true
	}
	if strings.HasPrefix(topic, "$") {
		return false
	}
	if c := connOf(cl); c == nil || c.session == nil {
		return false
	} else if a, ok := c.session.(listeners.SubscribeAuthorizer); ok && !a.AuthorizeSubscribe(topic) {
		return false
	}
	if _, ok := cl.State.Subscriptions.Get(topic); ok {
		return true
	}
	return cl.State.Subscriptions.Len() < maxSubscriptions
}

// OnPublish hands a QoS 1 or 2 message to the Session (deliver) and tells mochi to
// acknowledge it without routing or retaining it (CodeSuccessIgnore); a refused one is
// rejected, so it is not acknowledged. QoS 0 messages never come here (publishQoS0).
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if !h.deliver(cl, &pk) {
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

// deliver hands one PUBLISH to the connection's Session; false if it was refused. A
// Session that refuses the client (ErrNotAuthorized) or the size (ErrTooLarge) ends the
// connection.
func (h *hook) deliver(cl *mochi.Client, pk *packets.Packet) bool {
	c := connOf(cl)
	if c == nil || c.session == nil {
		return false
	}
	_, err := c.session.Receive(h.s.ctx, listeners.Frame{Topic: pk.TopicName, Payload: pk.Payload})
	if errors.Is(err, listeners.ErrNotAuthorized) || errors.Is(err, listeners.ErrTooLarge) {
		c.Close("message refused: " + err.Error())
		return false
	}
	return true
}

// OnPacketEncode tells MQTT 5 clients the packet limit in their CONNACK, so that
// conforming clients never send what would cost them the connection.
func (h *hook) OnPacketEncode(_ *mochi.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode < packets.ErrUnspecifiedError.Code {
		pk.Properties.MaximumPacketSize = uint32(h.s.limit)
	}
	return pk
}
