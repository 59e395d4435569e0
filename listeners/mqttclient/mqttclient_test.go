package mqttclient_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/mqttclient"
)

// Messages published to the broker arrive at the handler intact, each one message with
// its topic; topics not subscribed to do not arrive. The broker sees client id
// <clientId>-<nodeId>, and the status address is the broker's.
func TestMessagesArriveIntact(t *testing.T) {
	b := startBroker(t)
	rec := listenertest.NewRecorder()
	r := listenertest.Serve(t, mqttclient.Listener{}, b.spec("cid", "up/#", "cmd/+/reply"), rec)
	if r.Addr != b.addr() {
		t.Errorf("bound address %q, want the broker's %q", r.Addr, b.addr())
	}
	b.waitLog(t, "as cid-node1 (p2")

	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	b.pub(t, "other/x", []byte("not subscribed"))
	b.pub(t, "up/a", []byte("hello"))
	b.pub(t, "cmd/dev7/reply", binary)
	b.pub(t, "up/empty", nil)
	got := rec.WaitFrames(t, 3)
	want := []listeners.Frame{{Topic: "up/a", Payload: []byte("hello")}, {Topic: "cmd/dev7/reply", Payload: binary}, {Topic: "up/empty"}}
	for i, w := range want {
		if got[i].Topic != w.Topic || !bytes.Equal(got[i].Payload, w.Payload) {
			t.Errorf("frame %d = %q %x, want %q %x", i, got[i].Topic, got[i].Payload, w.Topic, w.Payload)
		}
	}
	if len(got) != 3 {
		t.Errorf("%d frames, want 3 (other/x is not subscribed): %v", len(got), got)
	}
	info := rec.Opened()
	if len(info) != 1 || info[0].Transport != listeners.TransportMQTT || info[0].ClientID != "cid-node1" || info[0].Remote != b.addr() {
		t.Errorf("opened %+v, want one MQTT connection cid-node1 from %s", info, b.addr())
	}
}

// Without a clientId the client id is <componentId>-<nodeId>.
func TestClientIDDefaultsToComponentID(t *testing.T) {
	b := startBroker(t)
	spec := b.spec("", "up/#")
	spec.ComponentID = "comp-7"
	listenertest.Serve(t, mqttclient.Listener{}, spec, listenertest.NewRecorder())
	b.waitLog(t, "as comp-7-node1 (p2")
}

// A $share/ prefix makes the nodes of one component share the messages: each message
// reaches exactly one of them, and both get some.
func TestSharedSubscriptionSplitsMessages(t *testing.T) {
	b := startBroker(t)
	spec := b.spec("shared", "up/#")
	spec.Config.TopicPrefix = "$share/g/"
	rec1, rec2 := listenertest.NewRecorder(), listenertest.NewRecorder()
	n1, n2 := runNode(t, spec, rec1, "node1"), runNode(t, spec, rec2, "node2")
	n1.waitBound(t)
	n2.waitBound(t)
	b.waitLog(t, "as shared-node1 (p2")
	b.waitLog(t, "as shared-node2 (p2")

	const total = 40
	var lines []string
	for i := range total {
		lines = append(lines, fmt.Sprintf("m%02d", i))
	}
	cmd := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", fmt.Sprint(b.port), "-t", "up/x", "-l")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}

	var f1, f2 []listeners.Frame
	deadline := time.Now().Add(20 * time.Second)
	for {
		f1, f2 = rec1.Frames(), rec2.Frames()
		seen := map[string]bool{}
		for _, f := range append(append([]listeners.Frame(nil), f1...), f2...) {
			seen[string(f.Payload)] = true
		}
		if len(seen) == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d messages arrived", len(seen), total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(f1)+len(f2) != total {
		t.Errorf("node1 got %d and node2 %d messages: %d in all, want each of the %d exactly once", len(f1), len(f2), len(f1)+len(f2), total)
	}
	if len(f1) == 0 || len(f2) == 0 {
		t.Errorf("node1 got %d and node2 %d messages; want both to get some", len(f1), len(f2))
	}
}

// The broker restarted: Serve returns the loss (status failed), fails to connect while
// the broker is down, and once it is back a new Serve connects, subscribes again and
// messages flow.
func TestReconnectsAfterBrokerRestart(t *testing.T) {
	b := startBroker(t)
	rec := listenertest.NewRecorder()
	n := runNode(t, b.spec("cid", "up/#"), rec, "node1")
	n.waitBound(t)
	b.pub(t, "up/1", []byte("before"))
	rec.WaitFrames(t, 1)

	b.stop()
	lost := n.waitErr(t, "lost")
	t.Logf("Serve: %v", lost)
	if want := "connection to MQTT broker " + b.addr() + " lost"; !strings.HasPrefix(lost.Error(), want) {
		t.Errorf("Serve returned %q, want it to start with %q", lost, want)
	}
	if closed := rec.WaitClosed(t, 1); !strings.HasPrefix(closed[0], "connection lost") {
		t.Errorf("session closed with %q, want the connection lost", closed[0])
	}
	n.waitErr(t, "connection refused")

	b.start()
	if a := n.waitBound(t); a != b.addr() {
		t.Errorf("reconnected to %q, want %q", a, b.addr())
	}
	rec.WaitOpened(t, 2)
	b.pub(t, "up/2", []byte("after"))
	if f := rec.WaitFrames(t, 2); string(f[1].Payload) != "after" {
		t.Errorf("after the restart got %q, want after", f[1].Payload)
	}
}

// A downlink Send is published to the broker and reaches a subscriber, bytes intact; a
// topic the broker would disconnect for is refused without costing the connection.
func TestDownlinkReachesSubscriber(t *testing.T) {
	b := startBroker(t)
	rec := listenertest.NewRecorder()
	listenertest.Serve(t, mqttclient.Listener{}, b.spec("cid", "up/#"), rec)
	rec.WaitOpened(t, 1)
	conn := rec.Conns()[0]

	received := b.sub(t, "downsub", "down/dev1")
	for _, bad := range []string{"", "down/+", "down/#"} {
		if err := conn.Send(listeners.Frame{Topic: bad, Payload: []byte("x")}); err == nil {
			t.Errorf("Send to %q succeeded; want it refused", bad)
		}
	}
	if err := conn.Send(listeners.Frame{Topic: "down/dev1", Payload: []byte{0, 1, 0xfe, 0xff}}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := received(); got != "down/dev1 0001feff" {
		t.Errorf("mosquitto_sub got %q, want %q", got, "down/dev1 0001feff")
	}
	if len(rec.Opened()) != 1 || len(rec.Closed()) != 0 {
		t.Errorf("the refused downlinks cost the connection: opened %d, closed %v", len(rec.Opened()), rec.Closed())
	}
}

// A handler may send a downlink from inside Receive (a reply): it is published, and the
// messages after it still arrive.
func TestSendFromReceive(t *testing.T) {
	b := startBroker(t)
	rec := listenertest.NewRecorder()
	rec.Reply = func(f listeners.Frame) (*listeners.Reply, error) {
		return nil, rec.Conns()[0].Send(listeners.Frame{Topic: "down/echo", Payload: f.Payload})
	}
	listenertest.Serve(t, mqttclient.Listener{}, b.spec("cid", "up/#"), rec)
	received := b.sub(t, "echosub", "down/echo")
	b.pub(t, "up/ping", []byte("abc"))
	if got := received(); got != "down/echo 616263" {
		t.Errorf("mosquitto_sub got %q, want the echo of abc", got)
	}
	b.pub(t, "up/ping", []byte("again"))
	rec.WaitFrames(t, 2)
}

// maxMessageSize: a larger PUBLISH is dropped and counted as oversize; the connection
// stays up and the next message arrives.
func TestOversizeMessageDropped(t *testing.T) {
	b := startBroker(t)
	spec := b.spec("cid", "up/#")
	spec.Config.MaxMessageSize = 100
	rec := listenertest.NewRecorder()
	n := runNode(t, spec, rec, "node1")
	n.waitBound(t)
	b.pub(t, "up/big", bytes.Repeat([]byte("x"), 1000))
	b.pub(t, "up/small", []byte("ok"))
	if f := rec.WaitFrames(t, 1); len(f) != 1 || string(f[0].Payload) != "ok" {
		t.Fatalf("frames %v, want only the small one", f)
	}
	if got := n.counted("oversize"); got != 1 {
		t.Errorf("oversize counted %v times, want 1", got)
	}
	if len(rec.Opened()) != 1 || len(n.errors()) != 0 {
		t.Errorf("the oversize message cost the connection: opened %d, Serve returned %v", len(rec.Opened()), n.errors())
	}
}

// With no gateway (NoGateway) the component still connects and subscribes, so an ops user
// can check reachability and watch traffic on the debug stream; every message is dropped
// and counted as no_gateway (SPEC §4.3.1).
func TestNoGateway(t *testing.T) {
	b := startBroker(t)
	n := runNode(t, b.spec("cid", "up/#"), listeners.NoGateway{}, "node1")
	if a := n.waitBound(t); a != b.addr() {
		t.Errorf("bound %q, want the broker %s", a, b.addr())
	}
	if connect := <-n.events.C; connect.Kind != listeners.EventConnect || connect.Remote != b.addr() || connect.ClientID != "cid-node1" {
		t.Errorf("first event %+v, want the connect of cid-node1 to %s", connect, b.addr())
	}
	b.waitLog(t, "cid-node1")
	deadline := time.Now().Add(10 * time.Second)
	for n.counted("no_gateway") < 1 {
		b.pub(t, "up/x", []byte("seen, then dropped")) // until the subscription is in place
		if time.Now().After(deadline) {
			t.Fatal("no message was counted as no_gateway")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for e := range n.events.C {
		if e.Kind == listeners.EventMessage {
			if e.Topic != "up/x" || string(e.Payload) != "seen, then dropped" {
				t.Errorf("debug message %+v", e)
			}
			break
		}
	}
	if errs := n.errors(); len(errs) != 0 {
		t.Errorf("Serve failed with no gateway: %v; the connection must stay up", errs)
	}
}

// The handler's Close disconnects; Serve returns with its reason and the next Serve
// connects again.
func TestHandlerCloseReconnects(t *testing.T) {
	b := startBroker(t)
	rec := listenertest.NewRecorder()
	n := runNode(t, b.spec("cid", "up/#"), rec, "node1")
	n.waitBound(t)
	rec.Conns()[0].Close("device table reloaded")
	if err := n.waitErr(t, "by the handler"); !strings.Contains(err.Error(), "device table reloaded") {
		t.Errorf("Serve returned %q, want the handler's reason", err)
	}
	if c := rec.WaitClosed(t, 1); c[0] != "device table reloaded" {
		t.Errorf("session closed with %q", c[0])
	}
	n.waitBound(t)
	rec.WaitOpened(t, 2)
}

// Stopping disconnects cleanly (the broker gets a DISCONNECT), closes the session, makes
// Send fail, and leaves no goroutine behind.
func TestStopDisconnects(t *testing.T) {
	b := startBroker(t)
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	r := listenertest.Serve(t, mqttclient.Listener{}, b.spec("cid", "up/#"), rec)
	b.pub(t, "up/1", []byte("x"))
	rec.WaitFrames(t, 1)
	conn := rec.Conns()[0]
	r.Stop(t)
	if c := rec.Closed(); len(c) != 1 || c[0] != "stopped" {
		t.Errorf("closed %v, want one session closed as stopped", c)
	}
	b.waitLog(t, "Received DISCONNECT from cid-node1")
	if err := conn.Send(listeners.Frame{Topic: "down/x", Payload: []byte("late")}); err == nil {
		t.Error("Send after stop succeeded")
	}
	listenertest.Goroutines(t, base, 0)
}
