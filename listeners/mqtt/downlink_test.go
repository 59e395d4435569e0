package mqtt_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/mqtt"
)

// Conn.Send reaches a subscribed mosquitto_sub, over 3.1.1 and 5.0, bytes intact.
func TestSendReachesMosquittoSub(t *testing.T) {
	h := &tracker{}
	run := serve(t, plainSpec(), h)
	payload := binaryPayload(t, 300)
	for i, version := range []string{"mqttv311", "mqttv5"} {
		var out bytes.Buffer
		args := append(hostPort(t, run.Addr), "-V", version, "-i", "sub-"+version, "-t", "/p/d/#", "-C", "1", "-W", "25", "-F", "%t %x")
		cmd := exec.Command("mosquitto_sub", args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		s := h.session(t, i)
		// The SUBSCRIBE may still be in flight: send until the subscriber has its message.
		var err error
	send:
		for {
			if serr := s.conn.Send(listeners.Frame{Topic: "/p/d/function/invoke", Payload: payload}); serr != nil {
				t.Fatalf("%s: Send: %v", version, serr)
			}
			select {
			case err = <-exited:
				break send
			case <-time.After(100 * time.Millisecond):
			}
		}
		want := "/p/d/function/invoke " + hex.EncodeToString(payload)
		if err != nil || strings.TrimSpace(out.String()) != want {
			t.Fatalf("mosquitto_sub -V %s: %v, printed %q, want %q", version, err, out.String(), want)
		}
	}
}

// A downlink goes to its own client only, and a device's PUBLISH to no other client,
// even one subscribed to everything.
func TestNothingIsRouted(t *testing.T) {
	h := &tracker{}
	run := serve(t, plainSpec(), h)
	got := map[string]chan paho.Message{"a": make(chan paho.Message, 16), "b": make(chan paho.Message, 16)}
	for i, id := range []string{"a", "b"} {
		c, err := pahoClient(t, run.Addr, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		ch := got[id]
		wait(t, c.Subscribe("#", 1, func(_ paho.Client, m paho.Message) { ch <- m }))
		if h.session(t, i).info.ClientID != id {
			t.Fatalf("session %d is not %s", i, id)
		}
		if id == "a" {
			wait(t, c.Publish("/p/a/properties/report", 1, false, []byte("up")))
		}
	}
	a, b := h.session(t, 0), h.session(t, 1)
	if err := a.conn.Send(listeners.Frame{Topic: "/p/a/down", Payload: []byte("for a")}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, got["a"]); m.Topic() != "/p/a/down" || string(m.Payload()) != "for a" {
		t.Fatalf("a got %s %q", m.Topic(), m.Payload())
	}
	// b's connection is ordered: once b has this, anything routed to it earlier is there.
	if err := b.conn.Send(listeners.Frame{Topic: "/p/b/down", Payload: []byte("for b")}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, got["b"]); m.Topic() != "/p/b/down" {
		t.Fatalf("b got %s %q, want only its own downlink", m.Topic(), m.Payload())
	}
	if len(got["a"]) != 0 || len(got["b"]) != 0 {
		t.Fatalf("extra messages delivered: a %d, b %d", len(got["a"]), len(got["b"]))
	}
}

func next(t *testing.T, ch chan paho.Message) paho.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(15 * time.Second):
		t.Fatal("no message")
		return nil
	}
}

// Conn.Close disconnects that client only; its session is closed once, with the reason
// given; Send to it then fails with net.ErrClosed.
func TestCloseDisconnectsOneClient(t *testing.T) {
	h := &tracker{}
	run := serve(t, plainSpec(), h)
	lost := make(chan error, 1)
	opts := paho.NewClientOptions().AddBroker("tcp://" + run.Addr).SetClientID("a").SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	a := paho.NewClient(opts)
	wait(t, a.Connect())
	defer a.Disconnect(0)
	b, err := pahoClient(t, run.Addr, "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	sa := h.session(t, 0)
	sa.conn.Close("kicked by the test")
	select {
	case <-lost:
	case <-time.After(15 * time.Second):
		t.Fatal("client a was not disconnected")
	}
	eventually(t, "a's session closed", func() bool { return len(sa.closedReasons()) > 0 })
	if r := sa.closedReasons(); len(r) != 1 || r[0] != "kicked by the test" {
		t.Fatalf("a's session closed with %q, want once with the reason given", r)
	}
	if err := sa.conn.Send(listeners.Frame{Topic: "x", Payload: []byte("late")}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close: %v, want net.ErrClosed", err)
	}
	wait(t, b.Publish("still/here", 1, false, []byte("b")))
	sb := h.session(t, 1)
	eventually(t, "b's message", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(sb.frames) == 1 })
	if len(sb.closedReasons()) != 0 {
		t.Fatal("b's session was closed")
	}
}

// A Send from inside Open cannot precede the CONNACK: it fails at once instead of
// deadlocking; a bad topic is refused.
func TestSendBeforeConnack(t *testing.T) {
	errs := make(chan error, 1)
	h := openFunc(func(c listeners.Conn) { errs <- c.Send(listeners.Frame{Topic: "t", Payload: []byte("x")}) })
	run := serve(t, plainSpec(), h)
	c := dialRaw(t, run.Addr)
	if code := c.connect(t, 4, "d", "u", "p"); code != 0 {
		t.Fatalf("CONNACK %#x", code)
	}
	if err := <-errs; !errors.Is(err, mqtt.ErrNotConnected) {
		t.Fatalf("Send in Open: %v", err)
	}
	conn := h.session(t, 0).conn
	for _, topic := range []string{"", "a/+", "a/#"} {
		if err := conn.Send(listeners.Frame{Topic: topic}); err == nil {
			t.Fatalf("Send to topic %q succeeded", topic)
		}
	}
}

// openFunc is a tracker that runs f inside Open.
func openFunc(f func(listeners.Conn)) *openHook { return &openHook{f: f} }

type openHook struct {
	tracker
	f func(listeners.Conn)
}

func (h *openHook) Open(ctx context.Context, c listeners.Conn) (listeners.Session, error) {
	h.f(c)
	return h.tracker.Open(ctx, c)
}
