package mqtt_test

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/linkops/linkops/listeners"
)

// Each refusal becomes its CONNACK code (SPEC §5.2): bad credentials 0x04 / 0x86,
// everything else 0x05 / 0x87; the connection is then closed, no session stays open,
// and the refusal is counted.
func TestRefusalCodes(t *testing.T) {
	cases := []struct {
		err    error
		v3, v5 byte
		metric string
	}{
		{fmt.Errorf("device d1: %w", listeners.ErrBadCredentials), 0x04, 0x86, "unauthorized"},
		{fmt.Errorf("device d1: %w", listeners.ErrNotAuthorized), 0x05, 0x87, "unauthorized"},
		{listeners.ErrNoGateway, 0x05, 0x87, "no_gateway"},
		{errors.New("the handler broke"), 0x05, 0x87, "handler"},
	}
	for _, tc := range cases {
		h := &tracker{refuse: tc.err}
		run := serve(t, plainSpec(), h)
		for _, level := range []byte{4, 5} {
			c := dialRaw(t, run.Addr)
			want := tc.v3
			if level == 5 {
				want = tc.v5
			}
			if got := c.connect(t, level, "d1", "u", "p"); got != want {
				t.Fatalf("%v, level %d: CONNACK code %#x, want %#x", tc.err, level, got, want)
			}
			c.closedByServer(t)
		}
		run.WaitErrors(t, tc.metric, 2)
		if len(h.sessions) != 0 {
			t.Fatalf("%v: %d sessions opened", tc.err, len(h.sessions))
		}
		if run.Env.Connections() != 0 {
			t.Fatalf("%v: %d connections still counted", tc.err, run.Env.Connections())
		}
	}
}

// With NoGateway (no enabled gateway on the component) real clients are refused "not
// authorized": mosquitto over 3.1.1 and 5.0 (its exit status is the CONNACK code) and
// paho; the debug stream shows each connect and its refusal.
func TestNoGatewayRefusesEveryConnect(t *testing.T) {
	run := serve(t, plainSpec(), listeners.NoGateway{})
	sub := run.Hub.Subscribe("test", 64)
	defer sub.Close()
	for _, tc := range []struct {
		version string
		status  int
		output  string
	}{
		{"mqttv311", 0x05, "not authorised"},
		{"mqttv5", 0x87, "Not authorized"},
	} {
		args := append(hostPort(t, run.Addr), "-V", tc.version, "-i", "dev-"+tc.version, "-t", "a/b", "-m", "x", "-q", "1")
		out, err := mosquitto(t, "mosquitto_pub", args...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != tc.status || !strings.Contains(out, tc.output) {
			t.Fatalf("mosquitto_pub -V %s: %v %q; want exit status %#x and %q", tc.version, err, out, tc.status, tc.output)
		}
		for _, kind := range []string{listeners.EventConnect, listeners.EventDisconnect} {
			select {
			case e := <-sub.C:
				if e.Kind != kind || e.ClientID != "dev-"+tc.version || (kind == listeners.EventDisconnect && !strings.Contains(e.Reason, "refused")) {
					t.Fatalf("debug event %+v, want %s of dev-%s", e, kind, tc.version)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %s event for %s", kind, tc.version)
			}
		}
	}
	if _, err := pahoClient(t, run.Addr, "paho-1", nil); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Fatalf("paho connect: %v, want %v", err, packets.ErrorRefusedNotAuthorised)
	}
	run.WaitErrors(t, "no_gateway", 3)
	if n := run.Env.Connections(); n != 0 {
		t.Fatalf("%d connections counted after refusals", n)
	}
}
