package modbus_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/modbus"
)

type statusList struct {
	Items []listeners.Status `json:"items"`
}

func gatewayStatus(t *testing.T, c *client.Client, id string) map[string]listeners.Status {
	t.Helper()
	var out statusList
	testutil.Do(t, c, http.MethodGet, "/api/v1/gateways/"+id+"/status", nil, &out)
	m := map[string]listeners.Status{}
	for _, s := range out.Items {
		m[s.ServerID] = s
	}
	return m
}

// waitStatus waits until the gateway's status through c satisfies ok (30 s at most).
func waitStatus(t *testing.T, c *client.Client, id, what string, ok func(map[string]listeners.Status) bool) map[string]listeners.Status {
	t.Helper()
	var last map[string]listeners.Status
	testutil.WaitFor(t, 30*time.Second, what, func() bool {
		last = gatewayStatus(t, c, id)
		return ok(last)
	})
	return last
}

// polledBy is the one node whose status is not standby (running or failed), "" if none
// or several.
func polledBy(st map[string]listeners.Status) string {
	node := ""
	for id, s := range st {
		if s.State != modbus.StateStandby {
			if node != "" {
				return ""
			}
			node = id
		}
	}
	return node
}

func prop(d testutil.Device, name string) any { return d.Properties[name] }

// TestModbusGatewayOnACluster is acceptance point 5 of issue 12 on a 3-node cluster: the
// leader polls a real Modbus TCP server; holding int16 with scale, input float32 and coil
// values are the device's properties on every node; writes reach the registers; the device
// goes offline with the server and back with it; stopping the polling node moves polling.
func TestModbusGatewayOnACluster(t *testing.T) {
	dev := testutil.StartModbusServer(t, testutil.FreePort(t, "tcp", "127.0.0.1"))
	dev.SetHolding(0, 215) // temp 21.5 at scale 0.1
	dev.SetFloat32Input(10, 3.25)
	dev.SetCoil(3, true)

	nodes := testutil.StartCluster(t, 3)
	admin := nodes[0].Admin(t)
	testutil.Do(t, admin, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "mb", "name": "plc", "provider": "modbus-tcp",
		"state": "enabled", "configuration": map[string]any{"host": "127.0.0.1", "port": dev.Port, "unitId": 1, "pollIntervalMs": 200,
			"deviceId": "plc1", "points": []map[string]any{
				{"property": "temp", "name": "temperature", "area": "holding", "address": 0, "dataType": "int16", "scale": 0.1},
				{"property": "flow", "area": "input", "address": 10, "dataType": "float32"},
				{"property": "pump", "area": "coil", "address": 3, "dataType": "bool"},
			}}}, nil)

	// The device does not exist yet: the status says so on the polling node.
	st := waitStatus(t, admin, "mb", "the poller to report the missing device", func(m map[string]listeners.Status) bool {
		n := polledBy(m)
		return len(m) == 3 && n != "" && m[n].State == modbus.StateFailed && strings.Contains(m[n].Error, "plc1")
	})
	if n := polledBy(st); n != testutil.Leader(t, nodes).ID() {
		t.Errorf("polled by %q, want the leader: %+v", n, st)
	}

	testutil.CreateProductWithDevices(t, admin, "plcs", "mb", "plc1")
	for _, n := range nodes {
		c := n.Client(admin.Token)
		testutil.WaitDevice(t, c, "plc1", "online with the polled values through "+n.ID(), func(d testutil.Device) bool {
			return d.State == "online" && prop(d, "temp") == 21.5 && prop(d, "flow") == 3.25 && prop(d, "pump") == true
		})
	}
	waitStatus(t, admin, "mb", "running on the leader, standby elsewhere", func(m map[string]listeners.Status) bool {
		n := polledBy(m)
		return len(m) == 3 && n != "" && m[n].State == modbus.StateRunning && n == testutil.Leader(t, nodes).ID()
	})
	leader := testutil.Leader(t, nodes)

	// A write through a node that does not poll reaches the register, value ÷ scale
	// rounded to the nearest integer.
	follower := testutil.Followers(nodes, leader)[0].Client(admin.Token)
	var reply struct {
		Success    bool           `json:"success"`
		Code       string         `json:"code"`
		Properties map[string]any `json:"properties"`
	}
	testutil.Do(t, follower, http.MethodPost, "/api/v1/devices/plc1/properties/write", map[string]any{"properties": map[string]any{"temp": 23.46}}, &reply)
	if !reply.Success || reply.Properties["temp"] != 23.5 {
		t.Fatalf("write temp: %+v, want success with temp 23.5", reply)
	}
	if got := dev.Holding(0); got != 235 {
		t.Fatalf("holding register 0 = %d after writing 23.46 at scale 0.1, want 235", got)
	}
	testutil.Do(t, follower, http.MethodPost, "/api/v1/devices/plc1/properties/write", map[string]any{"properties": map[string]any{"pump": false}}, &reply)
	if !reply.Success || dev.Coil(3) {
		t.Fatalf("write pump=false: %+v, coil %v", reply, dev.Coil(3))
	}
	reply.Success, reply.Code = true, ""
	testutil.Do(t, follower, http.MethodPost, "/api/v1/devices/plc1/properties/write", map[string]any{"properties": map[string]any{"flow": 1}}, &reply)
	if reply.Success || reply.Code != modbus.CodeReadOnly {
		t.Fatalf("write to an input register: %+v, want success false, code %s", reply, modbus.CodeReadOnly)
	}
	testutil.WaitDevice(t, follower, "plc1", "showing the written values", func(d testutil.Device) bool {
		return prop(d, "temp") == 23.5 && prop(d, "pump") == false
	})

	// The server stops: offline, and the error in the status; back when it restarts.
	dev.Stop()
	testutil.WaitDevice(t, follower, "plc1", "offline once the server is gone", func(d testutil.Device) bool { return d.State == "offline" })
	waitStatus(t, admin, "mb", "failed with the device's error on the polling node", func(m map[string]listeners.Status) bool {
		n := polledBy(m)
		return n != "" && m[n].State == modbus.StateFailed && m[n].Error != ""
	})
	polls := func(outcome string) float64 {
		var n float64
		for _, tn := range nodes {
			n += testutil.Metric(t, tn.Client(admin.Token), "linkops_modbus_polls_total", map[string]string{"gateway": "mb", "outcome": outcome})
		}
		return n
	}
	if ok, failed, missing := polls(modbus.OutcomeOK), polls(modbus.OutcomeError), polls(modbus.OutcomeNoDevice); ok == 0 || failed < 3 || missing == 0 {
		t.Errorf("linkops_modbus_polls_total: ok %v, error %v, no_device %v; want each counted", ok, failed, missing)
	}
	var timed float64
	for _, tn := range nodes {
		timed += testutil.Metric(t, tn.Client(admin.Token), "linkops_modbus_poll_seconds_count", nil)
	}
	if timed == 0 {
		t.Error("linkops_modbus_poll_seconds counted no poll")
	}
	dev.SetHolding(0, 250)
	dev.Start()
	testutil.WaitDevice(t, follower, "plc1", "online again after the server restarted", func(d testutil.Device) bool {
		return d.State == "online" && prop(d, "temp") == 25.0
	})

	// The polling node stops: the new leader polls, seen by a value changing after the stop.
	leader = testutil.Leader(t, nodes)
	leader.Stop(t)
	stopped := time.Now()
	dev.SetHolding(0, 300)
	rest := testutil.Followers(nodes, leader)
	c := rest[0].Client(admin.Token)
	testutil.WaitDevice(t, c, "plc1", "polled by the new leader", func(d testutil.Device) bool {
		return d.State == "online" && prop(d, "temp") == 30.0
	})
	// SPEC §5.3 asks for 15 s; timings never decide a test here (the wait above has its own
	// deadline), so the figure is logged.
	t.Logf("polling resumed %v after the leader stopped (SPEC §5.3: within 15 s)", time.Since(stopped).Round(time.Millisecond))
	newLeader := testutil.Leader(t, rest)
	waitStatus(t, c, "mb", "the new leader running", func(m map[string]listeners.Status) bool {
		return m[newLeader.ID()].State == modbus.StateRunning && m[leader.ID()].State == listeners.StateUnreachable
	})
}
