package mqtt_test

import (
	"context"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/mqtt"
)

// slowOpen is a tracker whose Open for client "slow" waits for the listener to stop.
type slowOpen struct {
	tracker
	waiting chan struct{}
}

func (h *slowOpen) Open(ctx context.Context, c listeners.Conn) (listeners.Session, error) {
	if c.Info().ClientID == "slow" {
		close(h.waiting)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return h.tracker.Open(ctx, c)
}

// Stopping the listener closes every connection it accepted (paho and mosquitto clients,
// one still being admitted, one that never sent CONNECT), closes each session once, returns nil
// and leaves no goroutine behind.
func TestStopClosesEveryClient(t *testing.T) {
	base := runtime.NumGoroutine()
	h := &slowOpen{waiting: make(chan struct{})}
	run := serve(t, plainSpec(), h)

	lost := make(chan error, 3)
	var pahos []paho.Client
	for _, id := range []string{"a", "b", "c"} {
		opts := paho.NewClientOptions().AddBroker("tcp://" + run.Addr).SetClientID(id).SetAutoReconnect(false).
			SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
		c := paho.NewClient(opts)
		wait(t, c.Connect())
		pahos = append(pahos, c)
	}
	sub := exec.Command("mosquitto_sub", append(hostPort(t, run.Addr), "-V", "mqttv5", "-i", "sub", "-t", "#")...)
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Process.Kill(); _ = sub.Wait() }() // it would reconnect forever
	silent := dialRaw(t, run.Addr)
	slow := dialRaw(t, run.Addr)
	slow.write(t, mqtt.ConnectPacket("slow", "u", "p", 30))
	<-h.waiting
	for i := range 4 {
		h.session(t, i)
	}

	run.Stop(t)
	for range pahos {
		select {
		case <-lost:
		case <-time.After(15 * time.Second):
			t.Fatal("a paho client was not disconnected")
		}
	}
	silent.closedByServer(t)
	slow.closedByServer(t)
	for i := range 4 {
		if r := h.session(t, i).closedReasons(); len(r) != 1 || r[0] != "listener stopped" {
			t.Fatalf("session %d closed with %q, want once, listener stopped", i, r)
		}
	}
	if _, err := net.Dial("tcp", run.Addr); err == nil {
		t.Fatal("the port still accepts")
	}
	for _, c := range pahos {
		c.Disconnect(0)
	}
	listenertest.Goroutines(t, base, 2)
}

// A port that is taken is an error at once, with the operating system's message; the
// port is free again after a stop, for a restart.
func TestBindErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	spec := plainSpec()
	spec.Config.Port = taken.Addr().(*net.TCPAddr).Port
	err = listenertest.ServeErr(t, mqtt.Listener{}, spec, listeners.NoGateway{})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Serve on a taken port: %v", err)
	}

	spec.Config.Port = 0
	first := serve(t, spec, listeners.NoGateway{})
	first.Stop(t)
	spec.Config.Port = mustPort(t, first.Addr)
	again := serve(t, spec, &tracker{})
	if code := dialRaw(t, again.Addr).connect(t, 4, "d", "u", "p"); code != 0 {
		t.Fatalf("CONNACK %#x after a restart on the same port", code)
	}

	spec.Config.Secure, spec.Config.Port = true, 0 // and no certificate
	if err := listenertest.ServeErr(t, mqtt.Listener{}, spec, listeners.NoGateway{}); err == nil {
		t.Fatal("secure without a certificate served")
	}
}

func mustPort(t *testing.T, addr string) int {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a.Port
}
