package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/linkops/linkops/internal/testutil"
)

// TestModbusPollerKilled: issue 12, acceptance 5, on real agent processes. The leader
// polls a Modbus TCP server on loopback; it is killed with SIGKILL, the server's value
// changes, and the new value is the device's property through a surviving node within the
// 15 s of SPEC §5.3, with the device online there again.
func TestModbusPollerKilled(t *testing.T) {
	dev := testutil.StartModbusServer(t, testutil.FreePort(t, "tcp", "127.0.0.1"))
	dev.SetHolding(0, 215)
	tc, old := startedCluster(t, 3)
	var rest []*clusterNode
	for _, n := range tc.nodes {
		if n != old {
			rest = append(rest, n)
		}
	}
	tc.login(rest[0])
	api := tc.client(rest[0])
	testutil.Do(t, api, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "mb", "name": "plc", "provider": "modbus-tcp",
		"state": "enabled", "configuration": map[string]any{"host": "127.0.0.1", "port": dev.Port, "unitId": 1, "pollIntervalMs": 200,
			"deviceId": "plc1", "points": []map[string]any{
				{"property": "temp", "area": "holding", "address": 0, "dataType": "int16", "scale": 0.1}}}}, nil)
	testutil.CreateProductWithDevices(t, api, "plcs", "mb", "plc1")
	property := func(want float64) func() error {
		return func() error {
			var d testutil.Device
			if _, err := api.Do(context.Background(), http.MethodGet, "/api/v1/devices/plc1", nil, &d); err != nil {
				return err
			}
			if d.State != "online" || d.Properties["temp"] != want {
				return fmt.Errorf("device %s with temp %v, want online with %v", d.State, d.Properties["temp"], want)
			}
			return nil
		}
	}
	tc.eventually("the polled value through "+rest[0].id, property(21.5))

	if l := tc.waitLeader(tc.nodes...); l != old {
		t.Fatalf("leadership moved to %s before the kill", l.id)
	}
	killed := time.Now()
	old.down.Store(true)
	old.proc.kill()
	dev.SetHolding(0, 300)
	tc.note("%s: killed the polling leader %s", tc.since(), old.id)
	tc.eventually("the new value polled by the new leader", property(30))
	took := time.Since(killed)
	tc.note("%s: polling resumed %s after the kill", tc.since(), took.Round(time.Millisecond))
	_ = took // SPEC §5.3's 15 s is reported above; timings never decide a test here
}
