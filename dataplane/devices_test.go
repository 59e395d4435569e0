package dataplane_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/protocol/official"
)

// mqttGateway creates a per-node MQTT_SERVER (127.0.0.1/2/3) and an enabled official
// gateway on it, and returns the component's port.
func mqttGateway(t *testing.T, c *cluster, component, gateway, protocolID string) int {
	t.Helper()
	port := testutil.FreePort(t, "tcp")
	c.create(t, testutil.PerNodeComponent(component, "MQTT_SERVER", port, nil))
	testutil.WaitComponentStates(t, c.admin, component, allRunning)
	c.do(t, http.MethodPost, "/api/v1/gateways", map[string]any{"id": gateway, "name": gateway, "provider": "mqtt-server-gateway",
		"channelId": component, "protocol": protocolID, "state": "enabled"}, nil)
	return port
}

// officialMQTTCluster starts a 3-node cluster with an official MQTT gateway on a per-node
// MQTT_SERVER and a product of it with devices, applied on every node.
func officialMQTTCluster(t *testing.T, component, gateway, product string, devices ...string) (*cluster, int, testutil.Product) {
	t.Helper()
	c := startCluster(t)
	dumpLogs(t, c)
	port := mqttGateway(t, c, component, gateway, "official")
	p := testutil.CreateProductWithDevices(t, c.admin, product, gateway, devices...)
	c.synced(t)
	return c, port, p
}

// synced waits until every node has applied what was written so far: a default read on a
// node waits for the leader's commit index (SPEC §3), and device admission reads the node's
// own state.
func (c *cluster) synced(t *testing.T) {
	t.Helper()
	for _, n := range c.nodes {
		testutil.Do(t, n.Client(c.admin.Token), http.MethodGet, "/api/v1/devices?pageSize=1", nil, nil)
	}
}

// dialWatched connects an official device and returns it with a channel that receives
// the error when the node drops its connection.
func dialWatched(t *testing.T, addr, id string, p testutil.Product) (*testutil.MQTTDevice, <-chan error) {
	t.Helper()
	lost := make(chan error, 4)
	o := testutil.MQTTOptions(addr, id, p, false)
	o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	d, err := testutil.DialMQTTDevice(addr, id, p, o)
	if err != nil {
		t.Fatalf("%s connecting to %s: %v", id, addr, err)
	}
	t.Cleanup(d.Close)
	return d, lost
}

func hostPort(i, port int) string { return net.JoinHostPort(testutil.NodeHosts[i], fmt.Sprint(port)) }

// refusedWith connects with options and expects paho's refusal err.
func refusedWith(t *testing.T, what string, o *paho.ClientOptions, want error) {
	t.Helper()
	cl := paho.NewClient(o)
	tok := cl.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatalf("%s: connect timed out", what)
	}
	if err := tok.Error(); !errors.Is(err, want) {
		cl.Disconnect(0)
		t.Fatalf("%s: connect answered %v, want %v", what, err, want)
	}
}

// TestOfficialMQTTDevice: an official device on node3 is seen through node1 and node2
// with its properties, online and serverId, and its ETag never moves; every refusal of
// §5.2 comes at CONNACK with its code; md5 in upper case and the plain mode log in
// (issue 10, acceptance 1).
func TestOfficialMQTTDevice(t *testing.T) {
	c, port, p := officialMQTTCluster(t, "mqtt-dev", "gw-mqtt", "meter", "meter-1", "meter-2", "meter-3")
	before := testutil.GetDevice(t, c.admin, "meter-1")
	if before.State != "notActive" {
		t.Fatalf("a device that never connected is %q, want notActive", before.State)
	}

	d := testutil.ConnectMQTTDevice(t, hostPort(2, port), "meter-1", p)
	d.Report(t, map[string]any{"temp": 36.5, "mode": "eco"})
	for i := range 2 {
		via := c.nodes[i].Client(c.admin.Token)
		got := testutil.WaitDevice(t, via, "meter-1", "online on node3 with its report", func(d testutil.Device) bool {
			return d.State == "online" && d.ServerID == "node3" && d.Properties["temp"] == 36.5 && d.Properties["mode"] == "eco"
		})
		if got.Index != before.Index {
			t.Fatalf("the device's index moved from %d to %d: session fields must not touch the record", before.Index, got.Index)
		}
	}
	h, err := c.admin.Do(context.Background(), http.MethodGet, "/api/v1/devices/meter-1", nil, nil)
	if err != nil || h.Get("ETag") != fmt.Sprintf("%q", fmt.Sprint(before.Index)) {
		t.Fatalf("ETag %q after connect and report, want the record's index %d (%v)", h.Get("ETag"), before.Index, err)
	}
	var online struct{ Total int }
	c.do(t, http.MethodGet, "/api/v1/devices?state=online", nil, &online)
	if online.Total != 1 {
		t.Fatalf("?state=online lists %d devices, want 1", online.Total)
	}

	addr := hostPort(0, port)
	t.Run("refusals", func(t *testing.T) {
		o := testutil.MQTTOptions(addr, "meter-2", p, false)
		o.SetPassword("0123456789abcdef0123456789abcdef")
		refusedWith(t, "wrong password", o, packets.ErrorRefusedBadUsernameOrPassword)

		stale := time.Now().Add(-6 * time.Minute)
		ts := fmt.Sprint(stale.UnixMilli())
		sum := md5.Sum([]byte(p.SecureID + "|" + ts + "|" + p.SecureKey))
		o = testutil.MQTTOptions(addr, "meter-2", p, false)
		o.SetUsername(p.SecureID + "|" + ts).SetPassword(hex.EncodeToString(sum[:]))
		refusedWith(t, "timestamp 6 minutes old", o, packets.ErrorRefusedBadUsernameOrPassword)

		refusedWith(t, "unknown device", testutil.MQTTOptions(addr, "no-such-device", p, false), packets.ErrorRefusedNotAuthorised)

		// mosquitto_pub exits with the CONNACK code: 3.1.1 and 5.0 each get their own.
		user, pass := official.SignMQTT(p.SecureID, p.SecureKey, time.Now())
		for _, tc := range []struct {
			version, client, password string
			code                      int
		}{
			{"mqttv311", "meter-2", "wrong", 0x04}, {"mqttv5", "meter-2", "wrong", 0x86},
			{"mqttv311", "stranger", pass, 0x05}, {"mqttv5", "stranger", pass, 0x87},
		} {
			host, portStr, _ := net.SplitHostPort(addr)
			out, err := exec.Command("mosquitto_pub", "-h", host, "-p", portStr, "-V", tc.version, "-i", tc.client,
				"-u", user, "-P", tc.password, "-t", "/meter/"+tc.client+"/properties/report", "-m", "{}").CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tc.code {
				t.Fatalf("mosquitto_pub -V %s as %s: %v %q, want exit status (CONNACK) %#x", tc.version, tc.client, err, out, tc.code)
			}
		}
	})
	t.Run("accepted", func(t *testing.T) {
		now := fmt.Sprint(time.Now().UnixMilli())
		sum := md5.Sum([]byte(p.SecureID + "|" + now + "|" + p.SecureKey))
		o := testutil.MQTTOptions(addr, "meter-2", p, false)
		o.SetUsername(p.SecureID + "|" + now).SetPassword(strings.ToUpper(hex.EncodeToString(sum[:])))
		up, err := testutil.DialMQTTDevice(addr, "meter-2", p, o)
		if err != nil {
			t.Fatalf("upper-case md5 refused: %v", err)
		}
		up.Close()
		plain, err := testutil.DialMQTTDevice(addr, "meter-3", p, testutil.MQTTOptions(addr, "meter-3", p, true))
		if err != nil {
			t.Fatalf("plain mode refused: %v", err)
		}
		plain.Close()
	})

	t.Run("downlinks", func(t *testing.T) {
		d.Values["temp"] = 37.25
		var read struct {
			MessageID  string
			Success    bool
			Properties map[string]any
		}
		c.do(t, http.MethodPost, "/api/v1/devices/meter-1/properties/read", map[string]any{"properties": []string{"temp"}}, &read)
		if !read.Success || read.Properties["temp"] != 37.25 || read.MessageID == "" {
			t.Fatalf("read through node1 of a device on node3: %+v", read)
		}
		var write struct {
			Success    bool
			Properties map[string]any
		}
		c.do(t, http.MethodPost, "/api/v1/devices/meter-1/properties/write", map[string]any{"properties": map[string]any{"mode": "boost"}}, &write)
		if !write.Success || write.Properties["mode"] != "boost" {
			t.Fatalf("write: %+v", write)
		}
		var call struct {
			Success bool
			Output  map[string]any
		}
		c.do(t, http.MethodPost, "/api/v1/devices/meter-1/functions/reboot", map[string]any{"inputs": map[string]any{"b": 2, "a": "x"}}, &call)
		if !call.Success || call.Output["function"] != "reboot" {
			t.Fatalf("function call: %+v", call)
		}
		var wire struct {
			Function string           `json:"function"`
			Inputs   []map[string]any `json:"inputs"`
		}
		if err := json.Unmarshal(d.LastRaw(), &wire); err != nil || wire.Function != "reboot" || len(wire.Inputs) != 2 ||
			wire.Inputs[0]["name"] != "a" || wire.Inputs[0]["value"] != "x" || wire.Inputs[1]["name"] != "b" {
			t.Fatalf("function/invoke on the wire: %s (want inputs as [{name, value}] sorted by name)", d.LastRaw())
		}

		d.SetSilent(true)
		_, err := c.admin.Do(context.Background(), http.MethodPost, "/api/v1/devices/meter-1/properties/read?timeout=1s", map[string]any{"properties": []string{"temp"}}, nil)
		var pr *client.Problem
		if !errors.As(err, &pr) || pr.Status != http.StatusGatewayTimeout || pr.Code != "device_timeout" {
			t.Fatalf("silent device: %v, want 504 device_timeout", err)
		}
		d.SetSilent(false)
		_, err = c.admin.Do(context.Background(), http.MethodPost, "/api/v1/devices/meter-2/properties/read", map[string]any{"properties": []string{"temp"}}, nil)
		if !errors.As(err, &pr) || pr.Status != http.StatusConflict || pr.Code != "device_offline" {
			t.Fatalf("offline device: %v, want 409 device_offline", err)
		}
	})

	t.Run("time-sync", func(t *testing.T) {
		d.Publish(t, protocol.Message{Type: protocol.TypeTimeSync, MessageID: "ts-1"})
		for {
			m := d.NextDownlink(t)
			if m.Type != protocol.TypeTimeSyncReply {
				continue
			}
			if m.MessageID != "ts-1" || time.Since(time.UnixMilli(m.Timestamp)).Abs() > time.Hour {
				t.Fatalf("time-sync reply %+v", m)
			}
			break
		}
	})

	t.Run("disabled gateway", func(t *testing.T) {
		c.do(t, http.MethodPost, "/api/v1/gateways/gw-mqtt/disable", nil, nil)
		testutil.WaitDevice(t, c.admin, "meter-1", "offline once its gateway is disabled", func(d testutil.Device) bool { return d.State == "offline" })
		refusedWith(t, "device of a disabled gateway", testutil.MQTTOptions(addr, "meter-2", p, false), packets.ErrorRefusedNotAuthorised)
		c.do(t, http.MethodPost, "/api/v1/gateways/gw-mqtt/enable", nil, nil)
		testutil.DialMQTTDeviceWhenAccepted(t, addr, "meter-2", p).Close()
	})
}

// TestTakeoverAcrossNodes: the same device connecting to node2 while on node1 closes
// node1's session, node2 holds it, and no node ever shows it offline in between
// (acceptance 3, and the late-offline trap of mochi issues #246/#483 on one node).
func TestTakeoverAcrossNodes(t *testing.T) {
	c, port, p := officialMQTTCluster(t, "mqtt-to", "gw-to", "lamp", "lamp-1")

	_, lost := dialWatched(t, hostPort(0, port), "lamp-1", p)
	testutil.WaitDevice(t, c.admin, "lamp-1", "online on node1", func(d testutil.Device) bool { return d.State == "online" && d.ServerID == "node1" })

	// Watch the device's state through node3 the whole time.
	var sawOffline atomic.Value
	stop := make(chan struct{})
	watched := make(chan struct{})
	via := c.nodes[2].Client(c.admin.Token)
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var d testutil.Device
			if _, err := via.Do(context.Background(), http.MethodGet, "/api/v1/devices/lamp-1", nil, &d); err == nil && d.State != "online" {
				sawOffline.Store(d)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	second := testutil.ConnectMQTTDevice(t, hostPort(1, port), "lamp-1", p)
	select {
	case <-lost:
	case <-time.After(20 * time.Second):
		t.Fatal("node1 kept its session after the device connected to node2")
	}
	testutil.WaitDevice(t, c.admin, "lamp-1", "online on node2", func(d testutil.Device) bool { return d.State == "online" && d.ServerID == "node2" })
	// Let any late offline from node1 arrive, then look again.
	time.Sleep(1500 * time.Millisecond)
	second.Report(t, map[string]any{"on": true})
	testutil.WaitDevice(t, c.admin, "lamp-1", "still online on node2", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node2" && d.Properties["on"] == true
	})

	// The same node: a reconnect with the same client id replaces the session in place.
	third := testutil.ConnectMQTTDevice(t, hostPort(1, port), "lamp-1", p)
	time.Sleep(1500 * time.Millisecond)
	third.Report(t, map[string]any{"on": false})
	testutil.WaitDevice(t, c.admin, "lamp-1", "online on node2 after a same-node takeover", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node2" && d.Properties["on"] == false
	})
	close(stop)
	<-watched
	if v := sawOffline.Load(); v != nil {
		t.Fatalf("the device showed %+v during the takeovers; it must stay online", v)
	}
}

// TestPropertiesSurviveMovesAndRestarts: values reported on one node stay visible after
// the device moved to another and after a restart of the node that recorded them; while
// that node is down the answer names it as missing (SPEC §4.6).
func TestPropertiesSurviveMovesAndRestarts(t *testing.T) {
	c, port, p := officialMQTTCluster(t, "mqtt-props", "gw-props", "pump", "pump-1")

	first := testutil.ConnectMQTTDevice(t, hostPort(1, port), "pump-1", p)
	first.Report(t, map[string]any{"pressure": 2.5})
	testutil.WaitDevice(t, c.admin, "pump-1", "reporting on node2", func(d testutil.Device) bool {
		return d.ServerID == "node2" && d.Properties["pressure"] == 2.5
	})
	first.Close()
	moved := testutil.ConnectMQTTDevice(t, hostPort(2, port), "pump-1", p)
	moved.Report(t, map[string]any{"flow": 7.0})
	testutil.WaitDevice(t, c.admin, "pump-1", "on node3 with both values", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node3" && d.Properties["pressure"] == 2.5 && d.Properties["flow"] == 7.0
	})

	c.nodes[1].Stop(t)
	d := testutil.WaitDevice(t, c.admin, "pump-1", "answered with node2 missing", func(d testutil.Device) bool {
		return len(d.Missing) == 1 && d.Missing[0] == "node2"
	})
	if d.Properties["flow"] != 7.0 {
		t.Fatalf("with node2 down the answer lost node3's value: %+v", d)
	}
	c.nodes[1] = c.nodes[1].Restart(t, c.nodes[0].Cluster().GossipAddr())
	testutil.WaitDevice(t, c.admin, "pump-1", "whole again once node2 is back", func(d testutil.Device) bool {
		return len(d.Missing) == 0 && d.Properties["pressure"] == 2.5 && d.Properties["flow"] == 7.0 && d.State == "online"
	})
}

// TestMQTTClientGateway: an mqtt-client-gateway takes official messages from a real
// broker (mosquitto) through node2's MQTT_CLIENT: a device publishing there is online on
// node2 with its report, and a read through node1 goes out through the broker and comes
// back with the device's answer.
func TestMQTTClientGateway(t *testing.T) {
	c := startCluster(t)
	dumpLogs(t, c)
	broker := startMosquitto(t)
	c.create(t, map[string]any{"id": "uplink", "name": "uplink", "type": "MQTT_CLIENT", "shareCluster": false,
		"cluster": []map[string]any{{"serverId": "node2", "configuration": map[string]any{
			"remoteHost": "127.0.0.1", "remotePort": broker, "topics": []string{"/+/+/#"}}}}})
	testutil.WaitComponentStates(t, c.admin, "uplink", map[string]string{"node2": "running"})
	c.do(t, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "gw-uplink", "name": "gw-uplink", "provider": "mqtt-client-gateway",
		"channelId": "uplink", "protocol": "official", "state": "enabled"}, nil)
	p := testutil.CreateProductWithDevices(t, c.admin, "tracker", "gw-uplink", "tr-1")
	c.synced(t)

	addr := fmt.Sprintf("127.0.0.1:%d", broker)
	d, err := testutil.DialMQTTDevice(addr, "tr-1", p, testutil.MQTTOptions(addr, "tr-1", p, true))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if tok := d.Client.Subscribe("/tracker/tr-1/#", 0, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe at the broker: %v", tok.Error())
	}
	d.Report(t, map[string]any{"lat": 48.1})
	testutil.WaitDevice(t, c.admin, "tr-1", "online on node2 through the broker", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node2" && d.Properties["lat"] == 48.1
	})
	d.Values["lat"] = 48.2
	var read struct {
		Success    bool
		Properties map[string]any
	}
	c.do(t, http.MethodPost, "/api/v1/devices/tr-1/properties/read", map[string]any{"properties": []string{"lat"}}, &read)
	if !read.Success || read.Properties["lat"] != 48.2 {
		t.Fatalf("read through the broker: %+v", read)
	}
}

// TestDeviceLimits: an oversized MQTT packet disconnects that device only, and a device
// may subscribe to its own topics but not to another device's (acceptance 9).
func TestDeviceLimits(t *testing.T) {
	c, port, p := officialMQTTCluster(t, "mqtt-lim", "gw-lim", "gauge", "g1", "g2")
	big, lost := dialWatched(t, hostPort(0, port), "g1", p)
	small := testutil.ConnectMQTTDevice(t, hostPort(0, port), "g2", p)

	// Subscriptions: its own topics yes, another device's or everything no.
	for filter, want := range map[string]byte{"/gauge/g2/#": 0, "/gauge/g2/properties/read": 0, "/gauge/g1/#": 0x80, "#": 0x80, "/+/+/properties/read": 0x80} {
		tok := small.Client.Subscribe(filter, 0, nil)
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatalf("subscribe %s timed out", filter)
		}
		st := tok.(*paho.SubscribeToken)
		if got := st.Result()[filter]; got != want {
			t.Fatalf("SUBACK for %s is 0x%02x, want 0x%02x", filter, got, want)
		}
	}

	// 9 KiB is over the component's default maxMessageSize of 8192.
	big.Client.Publish("/gauge/g1/properties/report", 0, false, strings.Repeat("x", 9<<10))
	select {
	case <-lost:
	case <-time.After(20 * time.Second):
		t.Fatal("an oversized packet did not disconnect its device")
	}
	small.Report(t, map[string]any{"level": 3})
	testutil.WaitDevice(t, c.admin, "g2", "still served after its neighbour's oversized packet", func(d testutil.Device) bool {
		return d.State == "online" && d.Properties["level"] == float64(3)
	})
	testutil.WaitDevice(t, c.admin, "g1", "offline after its oversized packet", func(d testutil.Device) bool { return d.State == "offline" })
}

// TestNoLeaderKeepsServing: a node that has lost its peers (no leader, no quorum) keeps
// serving the devices connected to it and admits new ones: reports are decoded (its local
// counters move), a downlink through it reaches its device, and nothing waits for raft
// (SPEC §5.1).
func TestNoLeaderKeepsServing(t *testing.T) {
	c, port, p := officialMQTTCluster(t, "mqtt-alone", "gw-alone", "meter", "m1", "m2")
	d1 := testutil.ConnectMQTTDevice(t, hostPort(2, port), "m1", p)
	// Through node3 itself: its own state must hold the online before it is cut off.
	testutil.WaitDevice(t, c.nodes[2].Client(c.admin.Token), "m1", "online on node3", func(d testutil.Device) bool { return d.ServerID == "node3" })

	c.nodes[0].Stop(t)
	c.nodes[1].Stop(t)
	node3 := c.nodes[2].Client(c.admin.Token)
	reports := map[string]string{"gateway": "gw-alone", "direction": "up", "type": "reportProperty"}
	before := testutil.Metric(t, node3, "linkops_device_messages_total", reports)
	for i := range 5 {
		d1.Report(t, map[string]any{"n": i})
	}
	d2 := testutil.ConnectMQTTDevice(t, hostPort(2, port), "m2", p)
	d2.Report(t, map[string]any{"n": 99})
	testutil.WaitFor(t, 30*time.Second, "node3 to decode the reports without a leader", func() bool {
		return testutil.Metric(t, node3, "linkops_device_messages_total", reports) >= before+6
	})
	d1.Values["n"] = 4
	var read struct {
		Success    bool
		Properties map[string]any
	}
	if _, err := node3.Do(context.Background(), http.MethodPost, "/api/v1/devices/m1/properties/read?timeout=5s", map[string]any{"properties": []string{"n"}}, &read); err != nil || !read.Success {
		t.Fatalf("a downlink through the leaderless node to its own device: %+v %v (presence %+v)", read, err, c.nodes[2].Store().Presence("m1"))
	}
	// m2's online waits for raft: never applied here, and queued (the gauge reads 0 while a
	// batch is out trying to reach a leader, so it is watched, not sampled once).
	if pr := c.nodes[2].Store().Presence("m2"); pr != nil {
		t.Fatalf("m2's online was applied without a leader: %+v", pr)
	}
	testutil.WaitFor(t, 30*time.Second, "m2's online queued for raft", func() bool {
		return testutil.Metric(t, node3, "linkops_presence_queue", nil) >= 1
	})
}

// TestOfficialEdgeGateway: the official card's gateway on an MQTT_SERVER serves official
// devices like a custom gateway with the official protocol.
func TestOfficialEdgeGateway(t *testing.T) {
	c := startCluster(t)
	dumpLogs(t, c)
	port := testutil.FreePort(t, "tcp")
	c.create(t, testutil.PerNodeComponent("mqtt-edge", "MQTT_SERVER", port, nil))
	testutil.WaitComponentStates(t, c.admin, "mqtt-edge", allRunning)
	c.do(t, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "gw-edge", "name": "gw-edge", "provider": "official-edge-gateway",
		"channelId": "mqtt-edge", "state": "enabled"}, nil)
	p := testutil.CreateProductWithDevices(t, c.admin, "edge", "gw-edge", "edge-1")
	c.synced(t)
	d := testutil.ConnectMQTTDevice(t, hostPort(1, port), "edge-1", p)
	d.Report(t, map[string]any{"cpu": 0.5})
	testutil.WaitDevice(t, c.admin, "edge-1", "online on node2 through the official gateway", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node2" && d.Properties["cpu"] == 0.5
	})
}

// TestDeviceMessageStream: the device's messages, up and down, stream through a node that
// does not hold it, and keep coming after the device moves to another node.
func TestDeviceMessageStream(t *testing.T) {
	c, port, p := officialMQTTCluster(t, "mqtt-watch", "gw-watch", "fan", "fan-1")
	stream := testutil.OpenEvents(t, "http://"+c.nodes[0].HTTPAddr()+"/api/v1/devices/fan-1/messages", c.admin.Token)
	if nodes, _ := stream.Ready["nodes"].([]any); len(nodes) != 3 {
		t.Fatalf("ready %v, want all three nodes streaming", stream.Ready)
	}
	d := testutil.ConnectMQTTDevice(t, hostPort(2, port), "fan-1", p)
	d.Report(t, map[string]any{"rpm": 1200})
	e := stream.Next(t, "message", func(m map[string]any) bool { return m["direction"] == "up" && m["type"] == "reportProperty" })
	if e.Data["serverId"] != "node3" || e.Data["topic"] != "/fan/fan-1/properties/report" {
		t.Fatalf("up event %v", e.Data)
	}
	testutil.WaitDevice(t, c.admin, "fan-1", "online on node3", func(d testutil.Device) bool { return d.ServerID == "node3" })
	c.do(t, http.MethodPost, "/api/v1/devices/fan-1/properties/read", map[string]any{"properties": []string{"rpm"}}, nil)
	stream.Next(t, "message", func(m map[string]any) bool { return m["direction"] == "down" && m["type"] == "readProperty" })
	stream.Next(t, "message", func(m map[string]any) bool { return m["direction"] == "up" && m["type"] == "readPropertyReply" })

	d.Close()
	moved := testutil.ConnectMQTTDevice(t, hostPort(1, port), "fan-1", p)
	moved.Report(t, map[string]any{"rpm": 900})
	stream.Next(t, "message", func(m map[string]any) bool { return m["serverId"] == "node2" && m["type"] == "reportProperty" })

	// DELETE .../session through node1 disconnects the device held on node2.
	testutil.WaitDevice(t, c.admin, "fan-1", "online on node2", func(d testutil.Device) bool { return d.ServerID == "node2" })
	c.do(t, http.MethodDelete, "/api/v1/devices/fan-1/session", nil, nil)
	testutil.WaitFor(t, 20*time.Second, "the device to be disconnected", func() bool { return !moved.Client.IsConnected() })
	testutil.WaitDevice(t, c.admin, "fan-1", "offline", func(d testutil.Device) bool { return d.State == "offline" })
	_, err := c.admin.Do(context.Background(), http.MethodDelete, "/api/v1/devices/fan-1/session", nil, nil)
	var pr *client.Problem
	if !errors.As(err, &pr) || pr.Code != "device_offline" {
		t.Fatalf("disconnecting an offline device: %v, want 409 device_offline", err)
	}
}

// TestCleanStopMarksDevicesOffline: a node stopped cleanly records its own devices offline
// before it leaves (SPEC §5.1), so the leader's reaper never has to release them.
func TestCleanStopMarksDevicesOffline(t *testing.T) {
	c, port, p := officialMQTTCluster(t, "mqtt-stop", "gw-stop", "bulb", "bulb-1")
	testutil.ConnectMQTTDevice(t, hostPort(1, port), "bulb-1", p)
	testutil.WaitDevice(t, c.admin, "bulb-1", "online on node2", func(d testutil.Device) bool { return d.State == "online" && d.ServerID == "node2" })
	c.nodes[1].Stop(t)
	testutil.WaitDevice(t, c.admin, "bulb-1", "offline after node2 stopped", func(d testutil.Device) bool { return d.State == "offline" })
	for _, n := range []*testutil.TestNode{c.nodes[0], c.nodes[2]} {
		if strings.Contains(n.Log.String(), "released the device sessions of a dead node") {
			t.Fatalf("%s's reaper released node2's devices: node2 should have recorded them offline itself", n.ID())
		}
	}
}
