package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/resource"
)

// otaFirmware is a 16 KiB firmware file whose bytes depend on its version.
func otaFirmware(version string) []byte {
	b := make([]byte, 16<<10)
	for i := range b {
		b[i] = byte(i*7) ^ version[i%len(version)]
	}
	return b
}

// waitAccepted dials device id at addr until the node accepts it (a gateway created a
// moment ago reaches each node's table shortly after), then disconnects it again.
func waitAccepted(t *testing.T, addr, id string, p testutil.Product) {
	t.Helper()
	var last error
	for deadline := time.Now().Add(convergeTimeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		d, err := testutil.DialMQTTDevice(addr, id, p, testutil.MQTTOptions(addr, id, p, false))
		if err == nil {
			d.Close()
			return
		}
		last = err
	}
	t.Fatalf("%s never accepted device %s: %v", addr, id, last)
}

// TestOTALeaderKilledMidCampaign: issue 11, acceptance 6, on real agent processes. A push
// campaign over 200 devices is under way when the leader, whose task engine runs it, is
// killed with SIGKILL. The new leader finishes it: no record is lost, no device receives a
// second push, every device upgrades — except a push the old leader recorded but never
// delivered, which ends as a silent device does, failed by the response timeout (SPEC
// §4.8) and never pushed at all.
func TestOTALeaderKilledMidCampaign(t *testing.T) {
	const (
		deviceCount = 200
		maxInFlight = 40
		// installDelay makes each device take a while to complete, so that with maxInFlight
		// the campaign runs in several rounds and lasts a few seconds.
		installDelay    = time.Second
		responseTimeout = 5
	)
	tc, old := startedCluster(t, 3)
	var followers []int // indexes into tc.nodes (node i+1 binds testutil.NodeHosts[i])
	for i, n := range tc.nodes {
		if n != old {
			followers = append(followers, i)
		}
	}
	a, b := tc.nodes[followers[0]], tc.nodes[followers[1]]
	tc.login(a)
	api := tc.client(a)

	// A per-node MQTT_SERVER (each node on its own loopback address) and an official gateway.
	port := testutil.FreePort(t, "tcp")
	component := testutil.PerNodeComponent("mqtt-ota", "MQTT_SERVER", port, nil)
	component["state"] = "enabled"
	testutil.Do(t, api, http.MethodPost, "/api/v1/network-components", component, nil)
	testutil.WaitComponentStates(t, api, "mqtt-ota", map[string]string{
		"node1": listeners.StateRunning, "node2": listeners.StateRunning, "node3": listeners.StateRunning})
	testutil.Do(t, api, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "gw-ota", "name": "gw-ota",
		"provider": "mqtt-server-gateway", "channelId": "mqtt-ota", "protocol": "official", "state": "enabled"}, nil)
	ids := make([]string, deviceCount)
	for i := range ids {
		ids[i] = fmt.Sprintf("ota-%03d", i)
	}
	p := testutil.CreateProductWithDevices(t, api, "prod-ota", "gw-ota", ids...)
	// Admission reads the node's own state: a default read waits until a node has applied
	// everything written so far.
	for _, n := range tc.nodes {
		testutil.Do(t, tc.client(n), http.MethodGet, "/api/v1/devices?pageSize=1", nil, nil)
	}

	// The devices connect only to the two nodes that do not lead: killing the leader then
	// drops no device session, so what the test sees is the task engine's hand-over alone,
	// not devices reconnecting elsewhere.
	mqttAddr := func(i int) string { return fmt.Sprintf("%s:%d", testutil.NodeHosts[i], port) }
	for k, i := range followers {
		waitAccepted(t, mqttAddr(i), ids[k], p)
	}
	devices := make([]*testutil.OTADevice, deviceCount)
	for k, id := range ids {
		devices[k] = testutil.ConnectOTADevice(t, mqttAddr(followers[k%2]), id, p, "1.0", testutil.OTABehaviour{Delay: installDelay})
	}
	tc.eventually("every device online", func() error {
		var l struct{ Total int }
		if _, err := api.Do(t.Context(), http.MethodGet, "/api/v1/devices?state=online&pageSize=1", nil, &l); err != nil {
			return err
		}
		if l.Total != deviceCount {
			return fmt.Errorf("%d of %d devices online", l.Total, deviceCount)
		}
		return nil
	})

	content := otaFirmware("2.0")
	sum := sha256.Sum256(content)
	fw := testutil.MustUploadFirmware(t, api, testutil.FirmwareForm{ID: "fw2", Name: "fw2", ProductID: p.ID, Version: "2.0",
		VersionOrder: 2, SignMethod: "sha256", Sign: hex.EncodeToString(sum[:])}, content)
	// The other follower copies the file from its peer now (SPEC §4.7), so that the devices'
	// downloads never depend on the node about to be killed.
	tc.eventually("the firmware file through "+b.id, func() error {
		resp, err := tc.client(b).Raw(t.Context(), http.MethodGet, "/api/v1/firmwares/"+fw.ID+"/file", nil, "", nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		h := sha256.New()
		if _, err := io.Copy(h, resp.Body); err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != fw.Sign {
			return fmt.Errorf("%s serves a file whose sha256 is %s, want %s", b.id, got, fw.Sign)
		}
		return nil
	})

	created := time.Now()
	task := testutil.CreateTask(t, tc.client(b), map[string]any{"name": "push 2.0", "firmwareId": fw.ID, "mode": "push",
		"responseTimeoutSeconds": responseTimeout, "rollout": map[string]any{"maxInFlight": maxInFlight}})
	if task.State != resource.TaskRunning || task.Counts.Waiting != deviceCount {
		t.Fatalf("new task: state %s counts %+v", task.State, task.Counts)
	}

	// Kill the leader in the middle: some devices done, many still waiting.
	var before *testutil.Task
	testutil.WaitFor(t, convergeTimeout, "at least 40 devices upgraded", func() bool {
		before = testutil.GetTask(t, api, task.ID)
		if before.Counts.Success >= 4*maxInFlight || before.State != resource.TaskRunning {
			t.Fatalf("the campaign went too far before the kill could land in its middle: state %s counts %+v", before.State, before.Counts)
		}
		return before.Counts.Success >= maxInFlight
	})
	killAt := time.Now()
	old.down.Store(true)
	old.proc.kill()
	tc.note("%s: killed the leader %s with counts %+v, %s after creating the task", tc.since(), old.id, before.Counts, killAt.Sub(created).Round(time.Millisecond))

	leader := tc.waitLeader(a, b)
	elected := time.Since(killAt)
	done := testutil.WaitTask(t, tc.client(leader), task.ID, "completed", func(t *testutil.Task) bool { return t.State == resource.TaskCompleted })
	finished := time.Since(killAt)

	// No record lost.
	c := done.Counts
	if total := c.Waiting + c.Processing + c.Success + c.Failed + c.Canceled; total != deviceCount || c.Success+c.Failed != deviceCount {
		t.Errorf("completed task counts %+v: %d records, want %d, all success or failed", c, total, deviceCount)
	}
	records := testutil.TaskRecords(t, tc.client(leader), task.ID, "")
	if len(records) != deviceCount {
		t.Errorf("the task lists %d records, want %d", len(records), deviceCount)
	}

	// At most one push each; every device upgraded but for pushes lost with the old leader.
	lost, sentAfter := 0, 0
	for k, d := range devices {
		pushes := len(d.Pushes())
		r, ok := records[ids[k]]
		switch {
		case !ok:
			t.Errorf("device %s has no record", d.ID)
			continue
		case pushes > 1:
			t.Errorf("device %s received %d pushes for the task, want at most 1", d.ID, pushes)
		}
		if r.UpgradeTime != nil && r.UpgradeTime.After(killAt) {
			sentAfter++
		}
		switch r.State {
		case resource.RecordSuccess:
			if pushes != 1 {
				t.Errorf("device %s succeeded after %d pushes, want 1: %+v", d.ID, pushes, r)
			}
		case resource.RecordFailed:
			// A push recorded by the old leader and never delivered: the device never heard
			// of the upgrade, and the record failed as a silent device's does.
			if !strings.HasPrefix(r.ErrorReason, "response timeout") || pushes != 0 {
				t.Errorf("device %s failed with %q after %d pushes; only a push lost with the old leader may fail (response timeout, never delivered)",
					d.ID, r.ErrorReason, pushes)
			}
			lost++
		default:
			t.Errorf("record of %s in a completed task: %+v", d.ID, r)
		}
		if errs := d.Errors(); len(errs) > 0 {
			t.Errorf("device %s: %v", d.ID, errs)
		}
	}

	// The new leader carried the campaign on: it sent pushes of its own.
	pushed := testutil.Metric(t, tc.client(leader), "linkops_ota_pushes_total", nil)
	if pushed == 0 || sentAfter == 0 {
		t.Errorf("the new leader %s sent no push: linkops_ota_pushes_total %v, %d records sent after the kill", leader.id, pushed, sentAfter)
	}
	// 批量重试 sends the lost pushes again, and those devices upgrade too.
	if lost > 0 {
		testutil.Do(t, tc.client(leader), http.MethodPost, "/api/v1/upgrade-tasks/"+task.ID+"/retry", nil, nil)
		again := testutil.WaitTask(t, tc.client(leader), task.ID, "completed after retry", func(t *testutil.Task) bool { return t.State == resource.TaskCompleted })
		if again.Counts.Success != len(ids) {
			t.Errorf("after retry: %+v, want all %d success", again.Counts, len(ids))
		}
	}
	tc.note("successes at the kill %d (processing %d, waiting %d), after it %d; failed by the response timeout (pushes lost with %s) %d; "+
		"new leader %s elected %s after the kill, sent %v pushes (%d records sent after the kill); task completed %s after the kill, %s after it was created",
		before.Counts.Success, before.Counts.Processing, before.Counts.Waiting, c.Success-before.Counts.Success, old.id, lost,
		leader.id, elected.Round(time.Millisecond), pushed, sentAfter, finished.Round(time.Millisecond), time.Since(created).Round(time.Millisecond))
}
