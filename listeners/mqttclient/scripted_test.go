package mqttclient_test

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/mqttclient"
)

// scriptedBroker is a broker that misbehaves as a test says: it accepts one connection,
// answers the CONNECT, answers the SUBSCRIBE with a SUBACK of codes, sends the packets
// of then, and reads until the client goes. mosquitto is too well-behaved for this.
func scriptedBroker(t *testing.T, codes []byte, then ...[]byte) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := packets.ReadPacket(c); err != nil {
			return
		}
		ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
		if ack.Write(c) != nil {
			return
		}
		cp, err := packets.ReadPacket(c)
		sub, ok := cp.(*packets.SubscribePacket)
		if err != nil || !ok {
			return
		}
		raw := append([]byte{0x90, byte(2 + len(codes)), byte(sub.MessageID >> 8), byte(sub.MessageID)}, codes...)
		if _, err := c.Write(bytes.Join(append([][]byte{raw}, then...), nil)); err != nil {
			return
		}
		for {
			if _, err := packets.ReadPacket(c); err != nil {
				return
			}
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func rawPublish(t *testing.T, qos byte, topic, payload string) []byte {
	t.Helper()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.MessageID, p.TopicName, p.Payload = qos, 7, topic, []byte(payload)
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A subscription the broker refuses (SUBACK 0x80) fails Serve with the topic named: the
// component would otherwise look running while receiving nothing.
func TestSubscriptionRefused(t *testing.T) {
	port := scriptedBroker(t, []byte{0x80})
	err := listenertest.ServeErr(t, mqttclient.Listener{}, clientSpec("127.0.0.1", port, loopback), listenertest.NewRecorder())
	want := fmt.Sprintf(`MQTT broker 127.0.0.1:%d: the broker refused the subscription to "up/#"`, port)
	if err == nil || err.Error() != want {
		t.Fatalf("Serve returned %v, want %q", err, want)
	}
}

// A SUBACK with more return codes than topics would make paho index past its topics and
// panic; the filter ends the connection instead, and Serve says why.
func TestMalformedSubackEndsConnection(t *testing.T) {
	port := scriptedBroker(t, []byte{0, 0, 0})
	err := listenertest.ServeErr(t, mqttclient.Listener{}, clientSpec("127.0.0.1", port, loopback), listenertest.NewRecorder())
	if err == nil || !strings.Contains(err.Error(), "subscribe: malformed MQTT packet: a SUBACK with 3 return codes for 1 topics") {
		t.Fatalf("Serve returned %v, want the malformed SUBACK", err)
	}
}

// QoS 1 and 2 PUBLISH packets break the QoS 0 subscription and are skipped and counted;
// a packet that announces a huge length ends the connection; neither costs more.
func TestMisbehavingBroker(t *testing.T) {
	huge := []byte{0xb0, 0xff, 0xff, 0xff, 0x7f} // an UNSUBACK announcing 256 MiB
	port := scriptedBroker(t, []byte{0}, rawPublish(t, 2, "up/q2", "two"), rawPublish(t, 1, "up/q1", "one"),
		rawPublish(t, 0, "up/q0", "zero"), huge)
	rec := listenertest.NewRecorder()
	n := runNode(t, clientSpec("127.0.0.1", port, loopback), rec, "node1")
	if err := n.waitErr(t, "lost"); !strings.Contains(err.Error(), "malformed MQTT packet: a packet of type 11") {
		t.Errorf("Serve returned %v, want the malformed packet", err)
	}
	if f := rec.Frames(); len(f) != 1 || string(f[0].Payload) != "zero" {
		t.Errorf("frames %v, want only the QoS 0 one", f)
	}
	if got := n.counted("garbage"); got != 3 {
		t.Errorf("garbage counted %v times, want 3 (two publishes, one header)", got)
	}
}
