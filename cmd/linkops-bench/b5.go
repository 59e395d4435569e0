package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"log"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/protocol/official"
	"github.com/linkops/linkops/resource"
)

func b5DeviceID(i int) string { return fmt.Sprintf("b5-%05d", i) }

// b5Round is what one campaign measured.
type b5Round struct {
	maxInFlight                      int
	start                            time.Time
	total, create, firstPush, steady time.Duration
	steadyDevices                    int
	counts                           resource.TaskCounts
	entries, idleEntriesPerSecond    float64
	pushes, bytes                    float64
	bytesByNode                      []float64
	oneAttempt                       int
	fleet                            otaStats
	nodesCPU, devicesCPU, machineCPU float64
	leaderChanges                    float64
}

func (r b5Round) rate() float64 { return float64(r.counts.Success) / r.total.Seconds() }

// deviceSteady is the devices' own 10%→90% rate: completions sent per second.
func (r b5Round) deviceSteady() float64 {
	d := r.fleet.done90.Sub(r.fleet.done10)
	if d <= 0 {
		return 0
	}
	return float64(r.fleet.done*8/10) / d.Seconds()
}

// benchB5: a push OTA campaign on a 3-node in-process cluster over devices official MQTT
// devices connected a third to each node, every one of which downloads a tiny firmware
// through the signed link in its push (no token), checks its sha256 and reports
// completion; timed from the task's create to its state completed, runs times over the same
// devices (a new firmware each time). Then, when asked, once more with the default rollout
// (maxInFlight 100).
func benchB5(dir string, devices, maxInFlight, fwBytes, runs int, defaultRound bool) Result {
	runs = max(runs, 1)
	limit := raiseFileLimit()
	if devices > limit-1500 {
		log.Fatalf("B5: %d devices need %d descriptors here; the open-file limit is %d", devices, devices+1500, limit)
	}
	log.Printf("B5: push OTA campaign over %d devices on 3 nodes, %d-byte firmware, maxInFlight %d", devices, fwBytes, maxInFlight)
	nodes, token := startInProcess(dir, 3)
	defer shutdownAll(nodes)
	if profileDir != "" {
		// The nodes' warnings explain a slow campaign; their directory goes with the run.
		defer func() {
			for _, nd := range nodes {
				if b, err := os.ReadFile(filepath.Join(dir, nd.ID(), "node.log")); err == nil {
					_ = os.WriteFile(filepath.Join(profileDir, "b5-"+nd.ID()+".log"), b, 0o644)
				}
			}
		}()
	}
	clients, targets, secureID, secureKey := officialMQTTProduct(nodes, token, "b5", 8)
	admin := clients[0]
	createDevices(admin, "b5", devices, b5DeviceID)
	// waitServed probes each node with device b8-probe-<i>; they go once it has, so that a
	// task over every device of the product holds exactly the fleet's.
	probe := func(i int) string { return fmt.Sprintf("b8-probe-%d", i) }
	createDevices(admin, "b5", len(nodes), probe)
	waitServed(nodes, clients, targets, secureID, secureKey)
	for i := range nodes {
		mustDo(admin, http.MethodDelete, "/api/v1/devices/"+probe(i), nil, nil)
	}

	// One firmware per campaign (version k.0, order k): a device is pushed once per task.
	firmwares := make([]string, runs+btoi(defaultRound))
	for k := range firmwares {
		firmwares[k] = uploadB5Firmware(admin, clients, fmt.Sprintf("b5-fw%d", k+2), fmt.Sprintf("%d.0", k+2), k+2, fwBytes)
	}

	f := startFleet(fleetSpec{ProductID: "b5", SecureID: secureID, SecureKey: secureKey, IDFormat: "b5-%05d", Count: devices,
		Targets: targets, Sources: []string{"127.0.0.30", "127.0.0.31", "127.0.0.32", "127.0.0.33"}, Concurrency: 1500,
		Firmware: true, DownloadConns: 128})
	defer f.close()
	if res := f.dial(); res.Failed > 0 {
		log.Fatalf("B5: %d of %d devices failed to connect: %s", res.Failed, devices, res.FirstError)
	}
	for i := range nodes {
		waitOnline(clients[i], devices)
	}
	log.Printf("B5: %d devices online on every node's list", devices)

	var campaigns []b5Round
	for k := range runs {
		profile := ""
		if k == 0 {
			profile = "b5-campaign"
		}
		campaigns = append(campaigns, b5Campaign(clients, f, firmwares[k], devices, maxInFlight, profile))
	}
	// The median campaign by rate stands for the run (the machine is shared; the others'
	// rates are reported beside it).
	byRate := slices.Clone(campaigns)
	slices.SortFunc(byRate, func(a, b b5Round) int { return cmp.Compare(a.rate(), b.rate()) })
	median := byRate[len(byRate)/2]
	rounds := []b5Round{median}
	if defaultRound {
		rounds = append(rounds, b5Campaign(clients, f, firmwares[runs], devices, 0, ""))
	}

	figures := map[string]float64{"devices": float64(devices), "firmwareBytes": float64(fwBytes), "campaigns": float64(runs),
		"minDevicesPerSecond": byRate[0].rate(), "maxDevicesPerSecond": byRate[len(byRate)-1].rate()}
	for k, r := range rounds {
		prefix := ""
		if k > 0 {
			prefix = "default100_"
		}
		put := func(name string, v float64) {
			// The default-rollout campaign keeps its headline figures only: the table is wide.
			if k == 0 || slices.Contains(b5DefaultFigures, name) {
				figures[prefix+name] = v
			}
		}
		put("maxInFlight", float64(r.maxInFlight))
		put("devicesPerSecond", r.rate())
		put("steadyDevicesPerSecond", float64(r.steadyDevices)/r.steady.Seconds())
		put("deviceSteadyDevicesPerSecond", r.deviceSteady())
		put("totalSeconds", r.total.Seconds())
		put("createSeconds", r.create.Seconds())
		put("firstPushSeconds", r.firstPush.Seconds())
		put("lastPushReceivedSeconds", r.fleet.lastPush.Sub(r.start).Seconds())
		put("devicePushToCompleteP50Ms", ms(r.fleet.deviceP50))
		put("devicePushToCompleteP99Ms", ms(r.fleet.deviceP99))
		put("success", float64(r.counts.Success))
		put("failed", float64(r.counts.Failed))
		put("raftEntries", r.entries)
		put("raftEntriesPer1000Devices", r.entries/float64(devices)*1000)
		put("idleRaftEntriesPerSecond", r.idleEntriesPerSecond)
		put("leadershipChanges", r.leaderChanges)
		put("pushes", r.pushes)
		put("bytesServed", r.bytes)
		put("devicesWithOnePush", float64(r.fleet.one))
		put("devicesWithNoPush", float64(r.fleet.none))
		put("devicesWithMorePushes", float64(r.fleet.more))
		put("recordsWithOneAttempt", float64(r.oneAttempt))
		put("downloadsVerified", float64(r.fleet.done))
		put("deviceErrors", float64(r.fleet.failed))
		put("nodesCPUSeconds", r.nodesCPU)
		put("devicesCPUSeconds", r.devicesCPU)
		put("otherProcessesCPUSeconds", max(0, r.machineCPU-r.nodesCPU-r.devicesCPU))
		for i, b := range r.bytesByNode {
			put(fmt.Sprintf("bytesServed_%s", nodes[i].ID()), b)
		}
	}
	// Exactly once, as the devices and the records saw it. linkops_ota_pushes_total is
	// reported, not judged: the leader counts a push when the holder answers, and a
	// leadership lost meanwhile loses the answer, not the push.
	exact := func(r b5Round) bool {
		return r.counts.Success == devices && r.fleet.one == devices && r.fleet.done == devices && r.fleet.failed == 0 && r.oneAttempt == devices
	}
	var rates []string
	for _, r := range campaigns {
		rates = append(rates, fmt.Sprintf("%.0f", r.rate()))
	}
	notes := fmt.Sprintf("3 nodes in the bench process (file:// blob stores, default raft timings), devices in a child process (fleet.go: raw MQTT 3.1.1, "+
		"signed md5 CONNECT, from 127.0.0.30-33; %d/%d/%d on node1/2/3); firmware %d bytes, sha256 signed; task {mode push, rollout.maxInFlight %d}, every device of the product; "+
		"on firmware/upgrade each device publishes firmware/upgrade/reply, GETs the signed URL (no token; one shared http.Client, at most 128 connections per node), "+
		"checks sha256 against sign and publishes firmware/upgrade/progress {progress 100, complete, success, version}; "+
		"%d campaigns over the same devices (a firmware each), the median by rate reported (devices/s of each: %s); "+
		"devicesPerSecond = success ÷ (task create sent → completedAt); steady = 10%%→90%% of the records' completeTime "+
		"(coarse: a holder records up to 5,000 completions in one entry, so one batch may span most of it), deviceSteady = 10%%→90%% of the completions the devices sent; "+
		"raftEntries = the leader's appliedIndex (GET /api/v1/cluster/nodes) after minus before (idle background rate measured just before over 2 s); "+
		"pushes, bytesServed and leadershipChanges are linkops_ota_pushes_total, linkops_firmware_bytes_served_total and linkops_raft_leadership_changes_total summed over the nodes "+
		"(pushes undercounts when a leadership is lost during a delivery); pushes per device counted by the fleet and by the records' attempts",
		(devices+2)/3, (devices+1)/3, devices/3, fwBytes, maxInFlight, runs, strings.Join(rates, ", "))
	if defaultRound {
		notes += "; default100_*: one more campaign over the same devices with the default rollout (maxInFlight 100), which bounds throughput by design"
	}
	for _, r := range campaigns {
		if !exact(r) {
			notes += fmt.Sprintf("; NOT every device upgraded exactly once: counts %+v, fleet %+v, records with one attempt %d", r.counts, r.fleet, r.oneAttempt)
		}
	}
	return Result{
		ID:      "B5",
		What:    fmt.Sprintf("push OTA campaign over %d official MQTT devices spread over 3 nodes, %d-byte firmware downloaded by every device through its signed URL", devices, fwBytes),
		Figures: figures,
		Target:  "≥ 1,000 devices/s to success",
		Met:     median.rate() >= 1000 && !slices.ContainsFunc(campaigns, func(r b5Round) bool { return !exact(r) }),
		Notes:   notes,
	}
}

// b5DefaultFigures are the figures reported of the default-rollout campaign.
var b5DefaultFigures = []string{"maxInFlight", "devicesPerSecond", "steadyDevicesPerSecond", "totalSeconds", "success", "failed",
	"raftEntries", "raftEntriesPer1000Devices", "pushes", "bytesServed", "devicesWithOnePush", "leadershipChanges"}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// uploadB5Firmware uploads a firmware of product b5 (multipart, fields before the file,
// sign given) and checks that every node serves its file.
func uploadB5Firmware(admin *client.Client, clients []*client.Client, id, version string, order, size int) string {
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i*7) ^ version[i%len(version)]
	}
	sum := sha256.Sum256(content)
	sign := hex.EncodeToString(sum[:])
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, kv := range [][2]string{{"id", id}, {"name", id}, {"productId", "b5"}, {"version", version},
		{"versionOrder", fmt.Sprint(order)}, {"signMethod", "sha256"}, {"sign", sign}} {
		check(mw.WriteField(kv[0], kv[1]))
	}
	w, err := mw.CreateFormFile("file", id+".bin")
	check(err)
	_, _ = w.Write(content)
	check(mw.Close())
	resp, err := admin.Raw(context.Background(), http.MethodPost, "/api/v1/firmwares", &body, mw.FormDataContentType(), nil)
	check(err)
	resp.Body.Close()
	// Each node copies the blob into its own store (from a peer when it lacks it) before the
	// campaign: the measure is of campaigns, not of the first copy.
	for _, c := range clients {
		waitFor("every node to serve firmware "+id, func() bool {
			resp, err := c.Raw(context.Background(), http.MethodGet, "/api/v1/firmwares/"+id+"/file", nil, "", nil)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == http.StatusOK && bytes.Equal(b, content)
		})
	}
	return id
}

// leaderApplied is the leader's appliedIndex as GET /api/v1/cluster/nodes shows it, asked
// again while an election leaves the list without a leader (the campaign's load can cost
// a leader its lease on this machine).
func leaderApplied(c *client.Client) float64 {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out struct {
			Items []struct {
				Role         string
				AppliedIndex *uint64
			}
		}
		mustDo(c, http.MethodGet, "/api/v1/cluster/nodes", nil, &out)
		for _, n := range out.Items {
			if n.Role == "leader" && n.AppliedIndex != nil {
				return float64(*n.AppliedIndex)
			}
		}
		if time.Now().After(deadline) {
			log.Fatalf("B5: no leader with an appliedIndex in the node list for 30 s: %+v", out.Items)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sumMetric adds a metric up over every node.
func sumMetric(clients []*client.Client, name string) (float64, []float64) {
	var sum float64
	per := make([]float64, len(clients))
	for i, c := range clients {
		v, err := metricSum(c, name)
		check(err)
		per[i] = v
		sum += v
	}
	return sum, per
}

// b5Campaign runs one push task of firmware over every device and measures it (with
// profile set and -profile-dir, this process's CPU profile of the campaign: the nodes).
func b5Campaign(clients []*client.Client, f *fleet, firmware string, devices, maxInFlight int, profile string) b5Round {
	admin := clients[0]
	time.Sleep(time.Second)
	idle0 := leaderApplied(admin)
	time.Sleep(2 * time.Second)
	before := leaderApplied(admin)
	r := b5Round{maxInFlight: maxInFlight, idleEntriesPerSecond: (before - idle0) / 2}
	if maxInFlight == 0 {
		r.maxInFlight = resource.DefaultMaxInFlight
	}
	pushes0, _ := sumMetric(clients, "linkops_ota_pushes_total")
	changes0, _ := sumMetric(clients, "linkops_raft_leadership_changes_total")
	bytes0, per0 := sumMetric(clients, "linkops_firmware_bytes_served_total")
	fleet0 := f.ota(firmware)
	var stopProfile func()
	if profileDir != "" && profile != "" {
		path := filepath.Join(profileDir, profile+".pprof")
		check(os.MkdirAll(profileDir, 0o755))
		pf, err := os.Create(path)
		check(err)
		check(pprof.StartCPUProfile(pf))
		stopProfile = func() {
			pprof.StopCPUProfile()
			pf.Close()
			log.Printf("B5: CPU profile of the campaign saved to %s", path)
		}
	}
	body := map[string]any{"name": "B5 " + firmware, "firmwareId": firmware, "mode": "push"}
	if maxInFlight > 0 {
		body["rollout"] = map[string]any{"maxInFlight": maxInFlight}
	}
	cpu0, machine0 := processCPU(), machineCPU()
	t0 := time.Now()
	r.start = t0
	if stopProfile != nil {
		// Where the campaign waits, a second and two seconds in.
		for _, at := range []time.Duration{time.Second, 2 * time.Second} {
			time.AfterFunc(at, func() {
				gf, err := os.Create(filepath.Join(profileDir, fmt.Sprintf("%s-goroutines-%ds.txt", profile, int(at.Seconds()))))
				check(err)
				defer gf.Close()
				_ = pprof.Lookup("goroutine").WriteTo(gf, 1)
			})
		}
	}
	var task resource.UpgradeTask
	mustDo(admin, http.MethodPost, "/api/v1/upgrade-tasks", body, &task)
	r.create = time.Since(t0)
	if task.Counts.Waiting != devices {
		log.Fatalf("B5: the new task has counts %+v, want %d waiting", task.Counts, devices)
	}
	deadline := t0.Add(10 * time.Minute)
	lastLog, lastSample := t0, t0
	// The timeline, logged at the end: waiting/processing/success every 250 ms.
	var timeline []string
	for task.State != resource.TaskCompleted {
		if time.Since(lastSample) >= 250*time.Millisecond {
			lastSample = time.Now()
			timeline = append(timeline, fmt.Sprintf("%.2fs %d/%d/%d", time.Since(t0).Seconds(), task.Counts.Waiting, task.Counts.Processing, task.Counts.Success))
		}
		if time.Now().After(deadline) {
			log.Fatalf("B5: task %s not completed after 10 minutes: %s %+v", task.ID, task.State, task.Counts)
		}
		time.Sleep(20 * time.Millisecond)
		mustDo(admin, http.MethodGet, "/api/v1/upgrade-tasks/"+task.ID, nil, &task)
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			log.Printf("B5: task %s after %s: %+v", task.ID, time.Since(t0).Round(time.Millisecond), task.Counts)
		}
	}
	r.total = time.Since(t0)
	if task.CompletedAt != nil && task.CompletedAt.After(t0) {
		r.total = task.CompletedAt.Sub(t0) // the recorded moment, not the next poll
	}
	r.nodesCPU, r.machineCPU = (processCPU() - cpu0).Seconds(), (machineCPU() - machine0).Seconds()
	if stopProfile != nil {
		stopProfile()
	}
	after := leaderApplied(admin)
	r.counts = task.Counts
	r.entries = after - before
	pushes1, _ := sumMetric(clients, "linkops_ota_pushes_total")
	changes1, _ := sumMetric(clients, "linkops_raft_leadership_changes_total")
	r.leaderChanges = changes1 - changes0
	bytes1, per1 := sumMetric(clients, "linkops_firmware_bytes_served_total")
	r.pushes, r.bytes = pushes1-pushes0, bytes1-bytes0
	for i := range per1 {
		r.bytesByNode = append(r.bytesByNode, per1[i]-per0[i])
	}
	r.fleet = f.ota(firmware)
	r.devicesCPU = r.fleet.cpu - fleet0.cpu

	// The records: when each device was pushed and completed.
	var completes []time.Time
	firstPush := time.Time{}
	for page := 1; ; page++ {
		var list struct {
			Items []struct {
				State        string
				UpgradeTime  *time.Time
				CompleteTime *time.Time
				Attempts     int
			}
			Total int
		}
		mustDo(admin, http.MethodGet, fmt.Sprintf("/api/v1/upgrade-tasks/%s/devices?page=%d&pageSize=500", task.ID, page), nil, &list)
		for _, it := range list.Items {
			if it.Attempts == 1 {
				r.oneAttempt++
			}
			if it.UpgradeTime != nil && (firstPush.IsZero() || it.UpgradeTime.Before(firstPush)) {
				firstPush = *it.UpgradeTime
			}
			if it.State == resource.RecordSuccess && it.CompleteTime != nil {
				completes = append(completes, *it.CompleteTime)
			}
		}
		if len(list.Items) == 0 || page*500 >= list.Total {
			break
		}
	}
	r.firstPush = firstPush.Sub(t0)
	slices.SortFunc(completes, func(a, b time.Time) int { return a.Compare(b) })
	if n := len(completes); n >= 10 {
		lo, hi := n/10, n*9/10-1
		r.steady, r.steadyDevices = completes[hi].Sub(completes[lo]), hi-lo
	}
	log.Printf("B5 (maxInFlight %d) waiting/processing/success: %s", r.maxInFlight, strings.Join(timeline, ", "))
	log.Printf("B5 (maxInFlight %d) devices: first push received after %s, last after %s, last completion sent after %s; push → completion sent p50 %s, p99 %s",
		r.maxInFlight, r.fleet.firstPush.Sub(t0).Round(time.Millisecond), r.fleet.lastPush.Sub(t0).Round(time.Millisecond),
		r.fleet.lastDone.Sub(t0).Round(time.Millisecond), r.fleet.deviceP50.Round(time.Millisecond), r.fleet.deviceP99.Round(time.Millisecond))
	log.Printf("B5 (maxInFlight %d): %d devices success in %s: %.0f devices/s (steady 10–90%%: records %.0f/s, devices %.0f/s); create %s, first push after %s; "+
		"%.0f raft entries (%.1f per 1,000 devices; idle %.1f/s); %.0f pushes, %.0f bytes served %v; devices with one push %d, none %d, more %d; verified and completed %d, failed %d; %.0f leadership changes; CPU: nodes %.1f s, devices %.1f s, machine %.1f s",
		r.maxInFlight, r.counts.Success, r.total.Round(time.Millisecond), r.rate(), float64(r.steadyDevices)/r.steady.Seconds(), r.deviceSteady(),
		r.create.Round(time.Millisecond), r.firstPush.Round(time.Millisecond), r.entries, r.entries/float64(devices)*1000, r.idleEntriesPerSecond,
		r.pushes, r.bytes, r.bytesByNode, r.fleet.one, r.fleet.none, r.fleet.more, r.fleet.done, r.fleet.failed, r.leaderChanges, r.nodesCPU, r.devicesCPU, r.machineCPU)
	return r
}

// otaStats is what a firmware fleet's devices did with one firmware's pushes: how many
// devices got exactly one, none or more than one, how many downloads checked out and
// were reported complete, how many failed (and the first reason), bytes downloaded, and
// the child's CPU seconds so far; and when, on the child's clock (the same machine's):
// the first and last push received, the last completion sent, and the median and p99 of
// the time from a device's push to its completion (reply, download, check, report).
type otaStats struct {
	one, none, more, done, failed int
	bytes                         int64
	cpu                           float64
	firstPush, lastPush, lastDone time.Time
	// done10 and done90 are when a tenth and nine tenths of the completions had been sent.
	done10, done90       time.Time
	deviceP50, deviceP99 time.Duration
	firstError           string
}

// ota asks the fleet child about a firmware's pushes.
func (f *fleet) ota(firmwareID string) otaStats {
	_, err := fmt.Fprintf(f.stdin, "ota %s\n", firmwareID)
	check(err)
	line := f.line()
	fields := strings.SplitN(line, " ", 16)
	if len(fields) < 15 || fields[0] != "ota" {
		log.Fatalf("fleet: unexpected answer %q", line)
	}
	num := func(i int) int64 { n, _ := strconv.ParseInt(fields[i], 10, 64); return n }
	at := func(i int) time.Time {
		if n := num(i); n > 0 {
			return time.Unix(0, n)
		}
		return time.Time{}
	}
	s := otaStats{one: int(num(1)), none: int(num(2)), more: int(num(3)), done: int(num(4)), failed: int(num(5)), bytes: num(6),
		firstPush: at(8), lastPush: at(9), lastDone: at(10), deviceP50: time.Duration(num(11)), deviceP99: time.Duration(num(12)),
		done10: at(13), done90: at(14)}
	s.cpu, _ = strconv.ParseFloat(fields[7], 64)
	if len(fields) == 16 {
		s.firstError = fields[15]
	}
	return s
}

// otaFleet is the child's side: devices that upgrade as otadevices.go's do, one goroutine
// each (the connection's read loop), downloads through one shared client.
type otaFleet struct {
	productID string
	count     int
	http      *http.Client

	mu     sync.Mutex
	rounds map[string]*otaRound
}

// otaRound counts one firmware's pushes, per device.
type otaRound struct {
	pushes       []int32
	done, failed int
	bytes        int64
	firstError   string
	// firstPush, lastPush and lastDone are unix nanoseconds; took holds each completed
	// device's push-to-completion time.
	firstPush, lastPush, lastDone int64
	took                          []time.Duration
	doneAt                        []int64
}

// fleetOTA is the child's firmware fleet (nil unless the spec asks for one).
var fleetOTA *otaFleet

func newOTAFleet(spec fleetSpec) *otaFleet {
	conns := spec.DownloadConns
	if conns <= 0 {
		conns = 128
	}
	tr := &http.Transport{MaxConnsPerHost: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}
	return &otaFleet{productID: spec.ProductID, count: spec.Count, http: &http.Client{Transport: tr, Timeout: time.Minute},
		rounds: map[string]*otaRound{}}
}

func (o *otaFleet) round(fw string) *otaRound {
	r := o.rounds[fw]
	if r == nil {
		r = &otaRound{pushes: make([]int32, o.count)}
		o.rounds[fw] = r
	}
	return r
}

func (o *otaFleet) stats(fw string) string {
	o.mu.Lock()
	r := o.round(fw)
	var one, none, more int
	for _, n := range r.pushes {
		switch {
		case n == 0:
			none++
		case n == 1:
			one++
		default:
			more++
		}
	}
	line := fmt.Sprintf("ota %d %d %d %d %d %d", one, none, more, r.done, r.failed, r.bytes)
	var done10, done90 int64
	if n := len(r.doneAt); n >= 10 {
		at := slices.Sorted(slices.Values(r.doneAt))
		done10, done90 = at[n/10], at[n*9/10-1]
	}
	times := fmt.Sprintf("%d %d %d %d %d %d %d", r.firstPush, r.lastPush, r.lastDone, percentile(r.took, 50), percentile(r.took, 99), done10, done90)
	firstError := r.firstError
	o.mu.Unlock()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return fmt.Sprintf("%s %.6f %s %s", line, cpu.Seconds(), times, firstError)
}

// serve is device k's read loop: every firmware/upgrade is answered, downloaded, checked
// and reported, in order, as a device with one upgrade slot does.
func (o *otaFleet) serve(c net.Conn, k int, id string) {
	r := bufio.NewReaderSize(c, 1024)
	var out bytes.Buffer
	send := func(m protocol.Message) error {
		m.DeviceID = id
		topic, payload, err := official.EncodeUpJSON(o.productID, m)
		if err != nil {
			return err
		}
		pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		pub.TopicName, pub.Payload = topic, payload
		out.Reset()
		_ = pub.Write(&out)
		_, err = c.Write(out.Bytes())
		return err
	}
	for {
		p, err := packets.ReadPacket(r)
		if err != nil {
			return
		}
		pub, ok := p.(*packets.PublishPacket)
		if !ok {
			continue
		}
		m, err := official.DecodeDownJSON(pub.TopicName, pub.Payload)
		if err != nil || m.Type != protocol.TypeFirmwareUpgrade {
			continue
		}
		pushed := time.Now()
		o.mu.Lock()
		rd := o.round(m.FirmwareID)
		rd.pushes[k]++
		if rd.firstPush == 0 {
			rd.firstPush = pushed.UnixNano()
		}
		rd.lastPush = max(rd.lastPush, pushed.UnixNano())
		o.mu.Unlock()
		yes := true
		if send(protocol.Message{Type: protocol.TypeFirmwareUpgradeAck, MessageID: m.MessageID, Success: &yes, FirmwareID: m.FirmwareID}) != nil {
			return
		}
		n, err := o.download(m)
		o.mu.Lock()
		rd.bytes += n
		if err != nil {
			rd.failed++
			if rd.firstError == "" {
				rd.firstError = fmt.Sprintf("device %s: %v", id, err)
			}
		}
		o.mu.Unlock()
		if err != nil {
			no := false
			if send(protocol.Message{Type: protocol.TypeFirmwareProgress, FirmwareID: m.FirmwareID, Success: &no, ErrorReason: err.Error()}) != nil {
				return
			}
			continue
		}
		if send(protocol.Message{Type: protocol.TypeFirmwareProgress, Progress: 100, Complete: true, Success: &yes,
			FirmwareID: m.FirmwareID, Version: m.Version}) != nil {
			return
		}
		done := time.Now()
		o.mu.Lock()
		rd.done++
		rd.lastDone = max(rd.lastDone, done.UnixNano())
		rd.took = append(rd.took, done.Sub(pushed))
		rd.doneAt = append(rd.doneAt, done.UnixNano())
		o.mu.Unlock()
	}
}

// download GETs the push's signed link without a token and checks the file against its
// sign; it returns the bytes read.
func (o *otaFleet) download(m protocol.Message) (int64, error) {
	var h hash.Hash = sha256.New()
	if m.SignMethod == "md5" {
		h = md5.New()
	}
	resp, err := o.http.Get(m.URL)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return 0, fmt.Errorf("GET the signed link: %s", resp.Status)
	}
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return n, err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(sum, m.Sign) {
		return n, fmt.Errorf("the file's %s is %s, the push says %s", m.SignMethod, sum, m.Sign)
	}
	if m.Size > 0 && n != m.Size {
		return n, fmt.Errorf("the file has %d bytes, the push says %d", n, m.Size)
	}
	return n, nil
}
