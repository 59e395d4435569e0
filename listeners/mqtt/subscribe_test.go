package mqtt_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/mqtt"
)

// ownTopics admits every client with a session that may subscribe to /p/d/# only, and
// records what it was asked.
type ownTopics struct{ tracker }

func (h *ownTopics) Open(ctx context.Context, c listeners.Conn) (listeners.Session, error) {
	s, err := h.tracker.Open(ctx, c)
	if err != nil {
		return nil, err
	}
	return ownSession{s.(*tracked)}, nil
}

type ownSession struct{ *tracked }

func (ownSession) AuthorizeSubscribe(filter string) bool {
	return filter == "/p/d/#" || strings.HasPrefix(filter, "/p/d/")
}

// A SUBSCRIBE the session refuses gets a failure SUBACK, 0x80 on 3.1.1 and 0x87 "not
// authorized" on 5.0, as mosquitto_sub reports it; the allowed filter in the same run is
// granted and gets its downlink; the connection stays up; refusals are counted.
func TestSubscribeOutsideOwnTopicsMosquitto(t *testing.T) {
	h := &ownTopics{}
	run := serve(t, plainSpec(), h)
	for i, tc := range []struct {
		version string
		code    string // mosquitto_sub -d prints the SUBACK's codes in decimal
	}{
		{"mqttv311", "128"},
		{"mqttv5", "135"},
	} {
		var out bytes.Buffer
		args := append(hostPort(t, run.Addr), "-d", "-V", tc.version, "-i", "sub-"+tc.version,
			"-t", "/p/other/#", "-t", "/p/d/#", "-C", "2", "-W", "25", "-F", "%t %p")
		cmd := exec.Command("mosquitto_sub", args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		s := h.session(t, i)
		// The SUBSCRIBE may still be in flight: send until the subscriber has its messages.
		// Two, not one: downlinks reach a client whether or not it subscribed, so the first
		// may beat the SUBACK and end mosquitto_sub before it prints the SUBACK's codes;
		// the second comes 100 ms later, after it.
		var err error
	send:
		for {
			if serr := s.conn.Send(listeners.Frame{Topic: "/p/d/function/invoke", Payload: []byte("cmd")}); serr != nil {
				t.Fatalf("%s: Send: %v", tc.version, serr)
			}
			select {
			case err = <-exited:
				break send
			case <-time.After(100 * time.Millisecond):
			}
		}
		// Both filters go in one SUBSCRIBE; the SUBACK lists the refused one first.
		printed := out.String()
		if err != nil || !strings.Contains(printed, "Subscribed (mid: 1): "+tc.code+", 0") ||
			!strings.Contains(printed, "/p/d/function/invoke cmd") {
			t.Fatalf("mosquitto_sub -V %s: %v, printed %q; want SUBACK codes %s, 0 and the downlink", tc.version, err, printed, tc.code)
		}
	}
	run.WaitErrors(t, "unauthorized", 2)
}

// paho (3.1.1) reads the return codes itself: 0x80 for the refused filter, the granted
// QoS for the allowed one, and keeps publishing on the same connection.
func TestSubscribeOutsideOwnTopicsPaho(t *testing.T) {
	h := &ownTopics{}
	run := serve(t, plainSpec(), h)
	c, err := pahoClient(t, run.Addr, "d", nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := c.SubscribeMultiple(map[string]byte{"/p/d/#": 1, "/p/e/#": 1, "#": 0}, func(paho.Client, paho.Message) {})
	wait(t, tok)
	got := tok.(*paho.SubscribeToken).Result()
	if got["/p/d/#"] != 1 || got["/p/e/#"] != 0x80 || got["#"] != 0x80 {
		t.Fatalf("SUBACK codes %v, want /p/d/# 1 and 0x80 for the others", got)
	}
	wait(t, c.Publish("/p/d/properties/report", 1, false, []byte("up")))
	s := h.session(t, 0)
	eventually(t, "the report", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(s.frames) == 1 })
	if r := s.closedReasons(); len(r) != 0 {
		t.Fatalf("session closed: %q", r)
	}
}

// The exact SUBACK bytes on 5.0, from a hand-written SUBSCRIBE: reason codes 0x00 and
// 0x87, in the order of the filters.
func TestSubscribeRefusalBytesV5(t *testing.T) {
	h := &ownTopics{}
	run := serve(t, plainSpec(), h)
	c := dialRaw(t, run.Addr)
	if code := c.connect(t, 5, "d", "u", "p"); code != 0 {
		t.Fatalf("CONNACK %#x", code)
	}
	c.write(t, subscribe5(7, "/p/d/#", "/p/x/y"))
	typ, body := c.read(t)
	// packet id 7, properties length, then one reason code per filter
	if typ != 0x90 || len(body) < 3 || u16(body) != 7 {
		t.Fatalf("want SUBACK for packet 7, got %#x % x", typ, body)
	}
	props := int(body[2])
	if codes := body[3+props:]; !bytes.Equal(codes, []byte{0x00, 0x87}) {
		t.Fatalf("SUBACK reason codes % x, want 00 87", codes)
	}
}

// subscribe5 is an MQTT 5 SUBSCRIBE of the filters at QoS 0, no properties.
func subscribe5(id uint16, filters ...string) []byte {
	body := []byte{byte(id >> 8), byte(id), 0}
	for _, f := range filters {
		body = append(mqtt.AppendString(body, f), 0)
	}
	return append(mqtt.AppendLength([]byte{0x82}, len(body)), body...)
}
