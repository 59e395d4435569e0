package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/protocol/official"
)

const (
	presenceComponent = "mqtt-presence"
	presenceGateway   = "gw-presence"
	presenceDevices   = 100
	// mqttPort is the shared MQTT_SERVER's port: every container has its own network
	// namespace, so each binds 0.0.0.0:1883 of its own and the host dials the container's IP.
	mqttPort = 1883
	// presenceDeadline bounds every wait for the cluster to converge: generous, because the
	// machine is shared; the measured times are logged, never asserted.
	presenceDeadline = 90 * time.Second
	// partitionHold is how long the partition lasts at least.
	partitionHold = 50 * time.Second
)

// presenceDevice is what the device API answers about presence and properties.
type presenceDevice struct {
	ID         string         `json:"id"`
	State      string         `json:"state"`
	ServerID   string         `json:"serverId"`
	Properties map[string]any `json:"properties"`
	Missing    []string       `json:"missing"`
	OnlineAt   *time.Time     `json:"onlineAt"`
	OfflineAt  *time.Time     `json:"offlineAt"`
}

func (d presenceDevice) String() string {
	return fmt.Sprintf("%s{state=%s serverId=%q missing=%v properties=%v}", d.ID, d.State, d.ServerID, d.Missing, d.Properties)
}

// presenceRig is the docker cluster with the shared MQTT_SERVER, its official gateway,
// one product and its devices, and the simulated devices currently connected.
type presenceRig struct {
	t       *testing.T
	dc      *dockerCluster
	addrs   *nodeAddrs
	token   string
	product testutil.Product
	ids     []string

	mu      sync.Mutex
	devices map[string]*testutil.MQTTDevice
}

func nodeName(i int) string { return fmt.Sprintf("n%d", i+1) }

func startPresenceRig(t *testing.T) *presenceRig {
	t.Helper()
	const n = 3
	dc := startDockerCluster(t, n, "--request-timeout", "3s")
	r := &presenceRig{t: t, dc: dc, addrs: &nodeAddrs{addrs: make([]string, n)}, devices: map[string]*testutil.MQTTDevice{}}
	t.Cleanup(r.closeAll)
	t.Cleanup(r.saveLogs)
	for i := range n {
		r.addrs.refresh(t, dc, i)
	}
	leaderIndex(t, r.addrs, 0, 1, 2)
	testutil.WaitFor(t, 60*time.Second, "admin login", func() bool {
		tok, _, err := client.New(r.addrs.get(0), "").Login(context.Background(), "admin", adminPassword)
		r.token = tok
		return err == nil
	})
	admin := r.api(0)
	testutil.Do(t, admin, http.MethodPost, "/api/v1/network-components", map[string]any{
		"id": presenceComponent, "name": presenceComponent, "type": "MQTT_SERVER", "shareCluster": true,
		"configuration": map[string]any{"host": "0.0.0.0", "port": mqttPort}, "state": "enabled"}, nil)
	r.waitComponentRunning(0, 1, 2)
	testutil.Do(t, admin, http.MethodPost, "/api/v1/gateways", map[string]any{"id": presenceGateway, "name": presenceGateway,
		"provider": "mqtt-server-gateway", "channelId": presenceComponent, "protocol": "official", "state": "enabled"}, nil)
	for i := range presenceDevices {
		r.ids = append(r.ids, fmt.Sprintf("pm-%03d", i))
	}
	r.product = testutil.CreateProductWithDevices(t, admin, "presence-meter", presenceGateway, r.ids...)
	// Admission reads the node's own state: every node must have applied the devices.
	for i := range n {
		testutil.Do(t, r.api(i), http.MethodGet, "/api/v1/devices?pageSize=1", nil, nil)
	}
	return r
}

// saveLogs keeps every container's whole log when the test failed (the cluster's own
// cleanup prints only the last lines).
func (r *presenceRig) saveLogs() {
	if !r.t.Failed() {
		return
	}
	for _, name := range r.dc.names {
		logs, err := exec.Command("docker", "logs", name).CombinedOutput()
		if err != nil {
			continue
		}
		if f, err := os.CreateTemp("", name+"-*.log"); err == nil {
			_, _ = f.Write(logs)
			f.Close()
			r.t.Logf("whole log of %s: %s", name, f.Name())
		}
	}
}

func (r *presenceRig) api(i int) *client.Client {
	c := client.New(r.addrs.get(i), r.token)
	c.HTTP.Timeout = 30 * time.Second
	return c
}

func (r *presenceRig) waitComponentRunning(nodes ...int) {
	r.t.Helper()
	want := map[string]string{}
	for _, i := range nodes {
		want[nodeName(i)] = listeners.StateRunning
	}
	testutil.WaitComponentStates(r.t, r.api(0), presenceComponent, want)
}

// mqttAddr is node i's MQTT_SERVER as the host reaches it: the container's address on the
// suite's bridge network (it may change when the container restarts).
func (r *presenceRig) mqttAddr(i int) string {
	return net.JoinHostPort(r.dc.ip(i), strconv.Itoa(mqttPort))
}

// connect connects each device to the node of nodeFor, a few at a time, asking again while
// a node refuses (it may not have applied the gateway yet, or still holds a stale session).
func (r *presenceRig) connect(ids []string, nodeFor func(k int) int) {
	r.t.Helper()
	addrs := map[int]string{}
	for k := range ids {
		i := nodeFor(k)
		if _, ok := addrs[i]; !ok {
			addrs[i] = r.mqttAddr(i)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10)
	errs := make(chan error, len(ids))
	for k, id := range ids {
		addr := addrs[nodeFor(k)]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var last error
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				d, err := testutil.DialMQTTDevice(addr, id, r.product, testutil.MQTTOptions(addr, id, r.product, false))
				if err == nil {
					r.mu.Lock()
					r.devices[id] = d
					r.mu.Unlock()
					return
				}
				last = err
			}
			errs <- fmt.Errorf("device %s never connected to %s: %v", id, addr, last)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		r.t.Fatal(err)
	}
}

func (r *presenceRig) device(id string) *testutil.MQTTDevice {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.devices[id]
}

// closeAll disconnects every simulated device (in parallel: a device whose node was killed
// waits out paho's quiesce time).
func (r *presenceRig) closeAll() {
	r.mu.Lock()
	devices := r.devices
	r.devices = map[string]*testutil.MQTTDevice{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.Client.Disconnect(100)
		}()
	}
	wg.Wait()
}

// list reads every device through node i's API.
func (r *presenceRig) list(i int) (map[string]presenceDevice, error) {
	var out struct {
		Items []presenceDevice `json:"items"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := r.api(i).Do(ctx, http.MethodGet, "/api/v1/devices?pageSize=500", nil, &out); err != nil {
		return nil, err
	}
	m := make(map[string]presenceDevice, len(out.Items))
	for _, d := range out.Items {
		m[d.ID] = d
	}
	return m, nil
}

// waitDevices polls node i's device list until every one of ids satisfies ok, and returns
// the last answer and when it was asked. On timeout it fails with the devices that did not.
func (r *presenceRig) waitDevices(i int, ids []string, what string, ok func(presenceDevice) bool) (map[string]presenceDevice, time.Time) {
	r.t.Helper()
	deadline := time.Now().Add(presenceDeadline)
	var last map[string]presenceDevice
	var lastErr error
	for {
		asked := time.Now()
		got, err := r.list(i)
		if err == nil {
			last, lastErr = got, nil
			if len(failing(got, ids, ok)) == 0 {
				return got, asked
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			bad := failing(last, ids, ok)
			sample := bad
			if len(sample) > 5 {
				sample = sample[:5]
			}
			r.t.Fatalf("after %s, through %s: %d of %d devices are not %s (last list error: %v); for example %v\n%s",
				presenceDeadline, nodeName(i), len(bad), len(ids), what, lastErr, sample, r.clusterViews())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// clusterViews is how every node sees the cluster (raft leader, gossip status of each
// member), for failure messages: presence and fan-outs follow gossip.
func (r *presenceRig) clusterViews() string {
	var b strings.Builder
	for i := range r.dc.names {
		l, err := health(r.addrs.get(i))
		fmt.Fprintf(&b, "%s: leader %q (%v); members:", nodeName(i), l, err)
		var out struct {
			Items []struct {
				ID     string `json:"id"`
				Status string `json:"status"`
				Role   string `json:"role"`
			} `json:"items"`
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = r.api(i).Do(ctx, http.MethodGet, "/api/v1/cluster/nodes", nil, &out)
		cancel()
		if err != nil {
			fmt.Fprintf(&b, " (%v)", err)
		}
		for _, n := range out.Items {
			fmt.Fprintf(&b, " %s=%s/%s", n.ID, n.Status, n.Role)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func failing(got map[string]presenceDevice, ids []string, ok func(presenceDevice) bool) []presenceDevice {
	var bad []presenceDevice
	for _, id := range ids {
		d, found := got[id]
		if !found {
			d = presenceDevice{ID: id, State: "absent from the list"}
		}
		if !found || !ok(d) {
			bad = append(bad, d)
		}
	}
	return bad
}

func onlineOn(node string) func(presenceDevice) bool {
	return func(d presenceDevice) bool { return d.State == "online" && d.ServerID == node }
}

func offline(d presenceDevice) bool { return d.State == "offline" }

// latestOffline is the latest offlineAt the cluster recorded among ids (zero if none).
func latestOffline(got map[string]presenceDevice, ids []string) time.Time {
	var latest time.Time
	for _, id := range ids {
		if at := got[id].OfflineAt; at != nil && at.After(latest) {
			latest = *at
		}
	}
	return latest
}

var metricLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)`)
var metricLabel = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// metric reads one sample of node i's own /metrics: the series name with exactly the
// labels given (0 when the node has not created it yet).
func (r *presenceRig) metric(i int, name string, labels map[string]string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := r.api(i).Raw(ctx, http.MethodGet, "/metrics", nil, "", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := metricLine.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != name {
			continue
		}
		got := map[string]string{}
		for _, l := range metricLabel.FindAllStringSubmatch(m[2], -1) {
			got[l[1]] = l[2]
		}
		if len(got) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && got[k] == v
		}
		if match {
			return strconv.ParseFloat(m[3], 64)
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return 0, sc.Err()
}

var upReports = map[string]string{"gateway": presenceGateway, "direction": "up", "type": protocol.TypeReportProperty}

func (r *presenceRig) mustMetric(i int, name string, labels map[string]string) float64 {
	r.t.Helper()
	var v float64
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if v, err = r.metric(i, name, labels); err == nil {
			return v
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s's /metrics: %v", nodeName(i), err)
		}
	}
}

// publish sends one property report and waits for its PUBACK (QoS 1): an answer means the
// node received and handled it.
func publish(d *testutil.MQTTDevice, props map[string]any) error {
	m := protocol.Message{Type: protocol.TypeReportProperty, DeviceID: d.ID, MessageID: fmt.Sprint(time.Now().UnixNano()), Properties: props}
	topic, payload, err := official.EncodeUpJSON(d.Product.ID, m)
	if err != nil {
		return err
	}
	tok := d.Client.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(30 * time.Second) {
		return fmt.Errorf("device %s: no PUBACK within 30 s", d.ID)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("device %s: %w", d.ID, err)
	}
	return nil
}

// reporters keeps every device reporting a sequence number once a second until stopped.
type reporters struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	sent     atomic.Int64
	failures atomic.Int64
	mu       sync.Mutex
	lastErr  error
}

func (r *presenceRig) startReporting(ids []string) *reporters {
	rep := &reporters{stop: make(chan struct{})}
	for _, id := range ids {
		d := r.device(id)
		rep.wg.Add(1)
		go func() {
			defer rep.wg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for seq := 0; ; seq++ {
				if err := publish(d, map[string]any{"seq": seq}); err != nil {
					rep.failures.Add(1)
					rep.mu.Lock()
					rep.lastErr = err
					rep.mu.Unlock()
				} else {
					rep.sent.Add(1)
				}
				select {
				case <-rep.stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	return rep
}

func (rep *reporters) halt() {
	select {
	case <-rep.stop:
	default:
		close(rep.stop)
	}
	rep.wg.Wait()
}

func (rep *reporters) check(t *testing.T, when string) {
	t.Helper()
	if n := rep.failures.Load(); n > 0 {
		rep.mu.Lock()
		err := rep.lastErr
		rep.mu.Unlock()
		t.Fatalf("%s: %d property reports were not acknowledged by the node holding the devices (%d were); last: %v",
			when, n, rep.sent.Load(), err)
	}
}

func (r *presenceRig) disconnected(ids []string) []string {
	var out []string
	for _, id := range ids {
		if d := r.device(id); d == nil || !d.Client.IsConnected() {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// TestPresenceKillAndPartition: issue 10, acceptance 4, with real processes in containers.
// The node holding 100 MQTT sessions is killed with SIGKILL: the majority shows the devices
// offline, and online on the other nodes once they reconnect there. A node holding 100
// sessions is partitioned from the others: it goes on serving them (its own message
// counters grow, the devices stay connected and every report is acknowledged) while the
// majority shows them offline; once healed, presence converges back to that node and a
// report sent afterwards is visible through the majority.
func TestPresenceKillAndPartition(t *testing.T) {
	r := startPresenceRig(t)
	ids := r.ids
	const n1, n2, n3 = 0, 1, 2

	// Phase 1: kill -9 of the node holding the sessions.
	r.connect(ids, func(int) int { return n3 })
	r.waitDevices(n1, ids, "online on n3", onlineOn("n3"))
	t.Logf("phase 1: %d devices online on n3 (seen through n1); leader is n%d", len(ids), leaderIndex(t, r.addrs, n1, n2, n3)+1)
	killAt := time.Now()
	r.dc.kill(n3)
	got, seenAt := r.waitDevices(n1, ids, "offline after n3 was killed", offline)
	recorded := latestOffline(got, ids)
	t.Logf("phase 1: kill -9 n3 -> all %d devices offline through n1: first seen %s after the kill (the last offlineAt the cluster recorded is %s after it)",
		len(ids), seenAt.Sub(killAt).Round(10*time.Millisecond), recorded.Sub(killAt).Round(10*time.Millisecond))
	r.closeAll()
	half := len(ids) / 2
	r.connect(ids, func(k int) int {
		if k < half {
			return n1
		}
		return n2
	})
	reconnectAt := time.Now()
	r.waitDevices(n1, ids[:half], "online on n1 after reconnecting", onlineOn("n1"))
	_, seenAt = r.waitDevices(n1, ids[half:], "online on n2 after reconnecting", onlineOn("n2"))
	t.Logf("phase 1: reconnected %d devices to n1 and %d to n2; all online through n1 within %s of the last connect",
		half, len(ids)-half, seenAt.Sub(reconnectAt).Round(10*time.Millisecond))

	// Phase 2: bring n3 back, then partition a follower holding the sessions.
	r.dc.start(n3)
	r.addrs.refresh(t, r.dc, n3)
	testutil.WaitFor(t, presenceDeadline, "n3 to rejoin and know a leader", func() bool {
		l, err := health(r.addrs.get(n3))
		return err == nil && l != ""
	})
	r.waitComponentRunning(n1, n2, n3)
	leader := leaderIndex(t, r.addrs, n1, n2, n3)
	p := n3
	if leader == n3 {
		p = n2
	}
	o := otherThan(p, 3)[0] // an observer in the majority: n1 unless n1 is partitioned
	r.closeAll()
	r.connect(ids, func(int) int { return p })
	r.waitDevices(o, ids, "online on "+nodeName(p), onlineOn(nodeName(p)))
	t.Logf("phase 2: leader n%d; %d devices online on %s; partitioning it, observing through %s", leader+1, len(ids), nodeName(p), nodeName(o))

	rep := r.startReporting(ids)
	defer rep.halt()
	testutil.WaitFor(t, presenceDeadline, "the first reports to be acknowledged", func() bool { return rep.sent.Load() >= int64(len(ids)) })
	before := r.mustMetric(p, "linkops_device_messages_total", upReports)
	partitionAt := time.Now()
	r.dc.partition(p)
	got, seenAt = r.waitDevices(o, ids, "offline once gossip declares "+nodeName(p)+" dead", offline)
	recorded = latestOffline(got, ids)
	t.Logf("phase 2: partition %s -> all %d devices offline through %s: first seen %s after the partition (the last offlineAt recorded is %s after it)",
		nodeName(p), len(ids), nodeName(o), seenAt.Sub(partitionAt).Round(10*time.Millisecond), recorded.Sub(partitionAt).Round(10*time.Millisecond))
	testutil.WaitFor(t, presenceDeadline, nodeName(p)+" to lose its leader (the partition is real)", func() bool {
		l, err := health(r.addrs.get(p))
		return err == nil && l == ""
	})

	// The partitioned node keeps serving: its own counter of reports grows by at least two
	// more rounds from every device after the majority has given up on it.
	during := r.mustMetric(p, "linkops_device_messages_total", upReports)
	if during <= before {
		t.Fatalf("%s handled no report since the partition: linkops_device_messages_total %v before, %v after", nodeName(p), before, during)
	}
	var now float64
	deadline := time.Now().Add(presenceDeadline)
	for now = r.mustMetric(p, "linkops_device_messages_total", upReports); now < during+2*float64(len(ids)); now = r.mustMetric(p, "linkops_device_messages_total", upReports) {
		if time.Now().After(deadline) {
			t.Fatalf("while partitioned %s's report counter went from %v to only %v in %s (want +%d)", nodeName(p), during, now, presenceDeadline, 2*len(ids))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// A real partition lasts: hold it past the time gossip keeps talking to members it
	// declared dead (memberlist's GossipToTheDeadTime, 30 s on a LAN), so the heal cannot
	// lean on leftover gossip; the node must still be serving at the end of it.
	time.Sleep(time.Until(partitionAt.Add(partitionHold)))
	if late := r.mustMetric(p, "linkops_device_messages_total", upReports); late <= now {
		t.Fatalf("%s stopped handling reports late in the partition: counter %v at the end, %v before", nodeName(p), late, now)
	} else {
		now = late
	}
	if lost := r.disconnected(ids); len(lost) > 0 {
		t.Fatalf("while partitioned %d devices lost their connection to %s: %v", len(lost), nodeName(p), lost)
	}
	if s := r.mustMetric(p, "linkops_gateway_sessions", map[string]string{"gateway": presenceGateway}); s != float64(len(ids)) {
		t.Fatalf("while partitioned %s holds %v sessions of %s, want %d", nodeName(p), s, presenceGateway, len(ids))
	}
	rep.check(t, "while partitioned")
	t.Logf("phase 2: while partitioned (%s) %s handled %v reports (counter %v -> %v), every device still connected and acknowledged",
		time.Since(partitionAt).Round(time.Second), nodeName(p), now-before, before, now)

	// Heal: presence converges back to the node that kept the sessions.
	healAt := time.Now()
	r.dc.heal(p)
	_, seenAt = r.waitDevices(o, ids, "online on "+nodeName(p)+" again after the heal", onlineOn(nodeName(p)))
	t.Logf("phase 2: heal %s -> all %d devices online on %s again through %s within %s",
		nodeName(p), len(ids), nodeName(p), nodeName(o), seenAt.Sub(healAt).Round(10*time.Millisecond))
	rep.halt()
	rep.check(t, "across the partition and the heal")
	if lost := r.disconnected(ids); len(lost) > 0 {
		t.Fatalf("after the heal %d devices are disconnected from %s: %v", len(lost), nodeName(p), lost)
	}

	// A report sent after the heal shows through the majority (its fan-out reaches the node).
	mark := "healed-" + randomSuffix()
	for _, id := range ids {
		if err := publish(r.device(id), map[string]any{"mark": mark}); err != nil {
			t.Fatalf("report after the heal: %v", err)
		}
	}
	r.waitDevices(o, ids, "showing the report sent after the heal", func(d presenceDevice) bool {
		return d.State == "online" && d.ServerID == nodeName(p) && d.Properties["mark"] == mark && len(d.Missing) == 0
	})
	t.Logf("phase 2: the report sent after the heal is visible through %s for all %d devices", nodeName(o), len(ids))
}
