// Command linkops-bench measures the quality bars of SPEC §6 on real `linkops agent`
// processes on this machine and writes a report (markdown and JSON). `make bench` runs it.
//
// Benchmarks never decide a test's pass or fail; they report figures against targets.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/agentproc"
)

const (
	adminPassword = "bench-admin-password"
	clusterKey    = "bGlua29wcy1iZW5jaC1jbHVzdGVyLWtleS0zMmJ5dGU="
)

// Result is one benchmark's figures.
type Result struct {
	ID      string             `json:"id"`
	What    string             `json:"what"`
	Figures map[string]float64 `json:"figures"`
	Target  string             `json:"target"`
	Met     bool               `json:"met"`
	Notes   string             `json:"notes,omitempty"`
	// Date is when it was measured (a report keeps older results of benchmarks not rerun).
	Date time.Time `json:"date,omitempty"`
}

// Report is what `make bench` writes.
type Report struct {
	Date     time.Time `json:"date"`
	Machine  string    `json:"machine"`
	Go       string    `json:"go"`
	Results  []Result  `json:"results"`
	Duration string    `json:"duration"`
}

func main() {
	out := flag.String("out", "bench", "directory for report.md and report.json")
	only := flag.String("only", "B1,B2,B3,B4,B4L,B5,B6,B7,B8", "comma-separated benchmarks to run (B4L: the MQTT listener alone, memory per idle connection)")
	b6Records := flag.Int("b6-records", 1000000, "B6 access records ingested and queried")
	b7Devices := flag.Int("b7-devices", 1000000, "B7 registered devices")
	b1Duration := flag.Duration("b1-duration", 15*time.Second, "B1 measuring time")
	b1Clients := flag.Int("b1-clients", 64, "B1 concurrent clients")
	b2Trials := flag.Int("b2-trials", 20, "B2 leader kills")
	b3Trials := flag.Int("b3-trials", 20, "B3 component enables")
	b4Publishers := flag.Int("b4-publishers", 100, "B4 publishers (devices sending QoS 0 property reports)")
	b4Window := flag.Duration("b4-window", 8*time.Second, "B4 measuring time of each throughput round (2 rounds per broker)")
	b5Devices := flag.Int("b5-devices", 10000, "B5 devices in the push OTA campaign, a third on each node")
	b5MaxInFlight := flag.Int("b5-max-in-flight", 10000, "B5 the campaign task's rollout.maxInFlight")
	b5FirmwareBytes := flag.Int("b5-firmware-bytes", 1024, "B5 firmware file size")
	b5Runs := flag.Int("b5-runs", 3, "B5 campaigns with -b5-max-in-flight over the same devices (the median is reported)")
	b5Default := flag.Bool("b5-default-round", true, "B5: then one more campaign with the default rollout (maxInFlight 100)")
	b8Devices := flag.Int("b8-devices", 15000, "B8 devices in the connect storm, a third to each node")
	b8Concurrency := flag.Int("b8-concurrency", 1500, "B8 connects in flight at once (0: every device at once)")
	b8Reads := flag.Int("b8-reads", 300, "B8 property reads sent one at a time through a node not holding the session")
	b8Callers := flag.Int("b8-callers", 16, "B8 concurrent callers of the reads that follow")
	fleetMode := flag.Bool("fleet", false, "internal: be the simulated-device child process of B4, B5 and B8 (spec on stdin)")
	flag.StringVar(&profileDir, "profile-dir", "", "save CPU profiles here: B1 8 s of every node; B4 one window of each broker; B8 the connect storm (B4 and B8 run their nodes in this process)")
	flag.BoolVar(&leaderOnly, "b1-leader-only", false, "B1: send every write to the leader (no forwarding), to see what forwarding costs")
	flag.Parse()
	log.SetFlags(log.Ltime)
	if *fleetMode {
		runFleet()
		return
	}

	root, err := agentproc.ModuleRoot()
	check(err)
	tmp, err := os.MkdirTemp("", "linkops-bench-")
	check(err)
	defer os.RemoveAll(tmp)
	want := map[string]bool{}
	for _, id := range strings.Split(*only, ",") {
		want[strings.TrimSpace(id)] = true
	}
	var bin string
	if want["B1"] || want["B2"] || want["B3"] || want["B7"] { // the others run in this process
		bin, err = agentproc.Build(root, tmp)
		check(err)
	}

	start := time.Now()
	rep := Report{Date: start.UTC(), Machine: fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()), Go: runtime.Version()}
	if want["B1"] {
		rep.Results = append(rep.Results, benchB1(bin, filepath.Join(tmp, "b1"), *b1Clients, *b1Duration))
	}
	if want["B2"] {
		rep.Results = append(rep.Results, benchB2(bin, filepath.Join(tmp, "b2"), *b2Trials))
	}
	if want["B3"] {
		rep.Results = append(rep.Results, benchB3(bin, filepath.Join(tmp, "b3"), *b3Trials))
	}
	if want["B4"] {
		rep.Results = append(rep.Results, benchB4(filepath.Join(tmp, "b4"), *b4Publishers, *b4Window))
	}
	if want["B4L"] {
		rep.Results = append(rep.Results, benchB4L())
	}
	if want["B5"] {
		rep.Results = append(rep.Results, benchB5(filepath.Join(tmp, "b5"), *b5Devices, *b5MaxInFlight, *b5FirmwareBytes, *b5Runs, *b5Default))
	}
	if want["B6"] {
		rep.Results = append(rep.Results, benchB6(filepath.Join(tmp, "b6"), *b6Records))
	}
	if want["B7"] {
		rep.Results = append(rep.Results, benchB7(bin, filepath.Join(tmp, "b7"), *b7Devices))
	}
	if want["B8"] {
		rep.Results = append(rep.Results, benchB8(filepath.Join(tmp, "b8"), *b8Devices, *b8Reads, *b8Callers, *b8Concurrency))
	}
	rep.Duration = time.Since(start).Round(time.Second).String()
	dir := *out
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	check(writeReport(dir, rep))
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// startCluster starts three nodes and logs in; with pprofAddrs, each node serves its
// profiles there.
func startCluster(bin, dir string, pprofAddrs []string) ([]*agentproc.Node, string) {
	nodes, err := agentproc.Cluster(bin, dir, 3, "--cluster-key", clusterKey, "--admin-password", adminPassword, "--log-level", "warn")
	if err != nil {
		stopAll(nodes)
		log.Fatal(err)
	}
	for i, addr := range pprofAddrs {
		check(nodes[i].Stop(30 * time.Second))
		nodes[i].Flags = append(nodes[i].Flags, "--pprof-addr", addr)
		check(nodes[i].Start())
	}
	for _, n := range nodes {
		_, err := n.WaitLeader(time.Minute)
		check(err)
	}
	var token string
	deadline := time.Now().Add(30 * time.Second)
	for {
		token, _, err = client.New(nodes[0].HTTPAddr, "").Login(context.Background(), "admin", adminPassword)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	check(err)
	return nodes, token
}

func stopAll(nodes []*agentproc.Node) {
	for _, n := range nodes {
		if n != nil {
			_ = n.Stop(30 * time.Second)
		}
	}
}

var (
	leaderOnly bool
	profileDir string
)

// certificate is a small valid certificate and key for write load.
var certPEM, keyPEM = makeCert()

// benchB1: acknowledged config writes per second through the REST API of a three-node
// cluster, the clients spread over all nodes (two thirds of the writes are forwarded).
func benchB1(bin, dir string, clients int, d time.Duration) Result {
	log.Printf("B1: %d clients for %s against 3 nodes", clients, d)
	var pprofAddrs []string
	if profileDir != "" {
		var err error
		pprofAddrs, err = agentproc.FreeAddrs(3)
		check(err)
	}
	nodes, token := startCluster(bin, dir, pprofAddrs)
	defer stopAll(nodes)
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 30 * time.Second}
	ctx := context.Background()
	for i := range clients {
		c := client.New(nodes[i%3].HTTPAddr, token)
		c.HTTP = httpc
		_, err := c.Do(ctx, http.MethodPost, "/api/v1/certificates", map[string]string{"id": fmt.Sprintf("b1-%d", i), "name": "b1", "cert": certPEM, "key": keyPEM}, nil)
		check(err)
	}
	var (
		stop      atomic.Bool
		measuring atomic.Bool
		mu        sync.Mutex
		lat       []time.Duration
		errs      atomic.Int64
		wg        sync.WaitGroup
	)
	target := func(i int) *agentproc.Node { return nodes[i%3] }
	if leaderOnly {
		id, err := nodes[0].WaitLeader(time.Minute)
		check(err)
		for _, n := range nodes {
			if n.ID == id {
				target = func(int) *agentproc.Node { return n }
			}
		}
	}
	for i := range clients {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := client.New(target(i).HTTPAddr, token)
			c.HTTP = httpc
			path := fmt.Sprintf("/api/v1/certificates/b1-%d", i)
			var mine []time.Duration
			for seq := 0; !stop.Load(); seq++ {
				t0 := time.Now()
				_, err := c.Do(ctx, http.MethodPut, path, map[string]string{"name": "b1", "cert": certPEM, "description": fmt.Sprint(seq)}, nil)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}(i)
	}
	time.Sleep(2 * time.Second) // warm-up: connections, caches
	measuring.Store(true)
	t0 := time.Now()
	for i, addr := range pprofAddrs {
		go saveProfile(addr, filepath.Join(profileDir, nodes[i].ID+".pprof"))
	}
	time.Sleep(d)
	measuring.Store(false)
	elapsed := time.Since(t0)
	stop.Store(true)
	wg.Wait()
	rate := float64(len(lat)) / elapsed.Seconds()
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	log.Printf("B1: %.0f writes/s, p50 %s, p99 %s, %d errors", rate, p50, p99, errs.Load())
	return Result{
		ID: "B1", What: fmt.Sprintf("acknowledged config writes/s through the REST API of a 3-node cluster, %d concurrent clients spread over all nodes", clients),
		Figures: map[string]float64{"writesPerSecond": rate, "p50Ms": ms(p50), "p99Ms": ms(p99), "errors": float64(errs.Load()), "acknowledged": float64(len(lat)), "seconds": elapsed.Seconds()},
		Target:  "≥ 3,000/s (etcd 3.6 here: ~5,000/s), p99 ≤ 50 ms",
		Met:     rate >= 3000 && p99 <= 50*time.Millisecond,
	}
}

// benchB2: kill -9 the leader and time until a write through a survivor is acknowledged.
func benchB2(bin, dir string, trials int) Result {
	log.Printf("B2: %d leader kills", trials)
	nodes, token := startCluster(bin, dir, nil)
	defer stopAll(nodes)
	ctx := context.Background()
	check(doRetry(nodes[0].HTTPAddr, token, http.MethodPost, "/api/v1/certificates", map[string]string{"id": "b2", "name": "b2", "cert": certPEM, "key": keyPEM}))
	var times []time.Duration
	for trial := range trials {
		leaderID, err := nodes[0].WaitLeader(60 * time.Second)
		check(err)
		var leader *agentproc.Node
		var survivors []*agentproc.Node
		for _, n := range nodes {
			if n.ID == leaderID {
				leader = n
			} else {
				survivors = append(survivors, n)
			}
		}
		// Make sure every survivor has caught up before the kill.
		for _, n := range survivors {
			_, err := n.WaitLeader(60 * time.Second)
			check(err)
		}
		leader.Kill()
		t0 := time.Now()
		for i := 0; ; i++ {
			c := client.New(survivors[i%2].HTTPAddr, token)
			c.HTTP.Timeout = 3 * time.Second
			_, err := c.Do(ctx, http.MethodPut, "/api/v1/certificates/b2", map[string]string{"name": "b2", "cert": certPEM, "description": fmt.Sprint(trial)}, nil)
			if err == nil {
				break
			}
			if time.Since(t0) > time.Minute {
				log.Fatalf("B2 trial %d: no write accepted within a minute: %v", trial, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(t0)
		times = append(times, took)
		log.Printf("B2 trial %d: killed %s, writes accepted again after %s", trial+1, leaderID, took.Round(time.Millisecond))
		check(leader.Start())
		_, err = leader.WaitLeader(60 * time.Second)
		check(err)
		time.Sleep(time.Second) // let the restarted node catch up
	}
	p50, p99, maxT := percentile(times, 50), percentile(times, 99), slices.Max(times)
	log.Printf("B2: p50 %s, p99 %s, max %s", p50, p99, maxT)
	return Result{
		ID: "B2", What: fmt.Sprintf("leader killed (SIGKILL) → writes through a survivor accepted again, %d trials", trials),
		Figures: map[string]float64{"p50Ms": ms(p50), "p99Ms": ms(p99), "maxMs": ms(maxT), "trials": float64(trials)},
		Target:  "p99 ≤ 2 s (etcd 3.6 here: p50 1.2 s, max 1.7 s)",
		Met:     p99 <= 2*time.Second,
	}
}

func doRetry(addr, token, method, path string, body any) error {
	var err error
	for range 50 {
		if _, err = client.New(addr, token).Do(context.Background(), method, path, body, nil); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// writeReport writes rep, keeping the results of an earlier report for the benchmarks this
// run did not measure (each result carries the date it was measured).
func writeReport(dir string, rep Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := range rep.Results {
		if rep.Results[i].Date.IsZero() {
			rep.Results[i].Date = rep.Date
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "report.json")); err == nil {
		var old Report
		if json.Unmarshal(b, &old) == nil {
			for _, r := range old.Results {
				if !slices.ContainsFunc(rep.Results, func(n Result) bool { return n.ID == r.ID }) {
					if r.Date.IsZero() {
						r.Date = old.Date
					}
					rep.Results = append(rep.Results, r)
				}
			}
			slices.SortStableFunc(rep.Results, func(a, b Result) int { return strings.Compare(a.ID, b.ID) })
		}
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# linkops benchmark report\n\n%s · %s · %s · took %s\n\n", rep.Date.Format(time.RFC3339), rep.Machine, rep.Go, rep.Duration)
	fmt.Fprintf(&md, "| id | what | figures | target | met | measured |\n|---|---|---|---|---|---|\n")
	for _, r := range rep.Results {
		keys := make([]string, 0, len(r.Figures))
		for k := range r.Figures {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var figs []string
		for _, k := range keys {
			figs = append(figs, fmt.Sprintf("%s %.1f", k, r.Figures[k]))
		}
		met := "no"
		if r.Met {
			met = "yes"
		}
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s | %s |\n", r.ID, r.What, strings.Join(figs, ", "), r.Target, met, r.Date.Format("2006-01-02"))
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	log.Printf("report written to %s/report.md and report.json", dir)
	return nil
}

func saveProfile(addr, path string) {
	resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=8")
	if err != nil {
		log.Printf("profile %s: %v", addr, err)
		return
	}
	defer resp.Body.Close()
	check(os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	check(err)
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
	log.Printf("CPU profile saved to %s", path)
	// And what the node allocated so far, most of it under the load just measured.
	if resp, err := http.Get("http://" + addr + "/debug/pprof/allocs"); err == nil {
		defer resp.Body.Close()
		if af, err := os.Create(strings.TrimSuffix(path, ".pprof") + ".allocs.pprof"); err == nil {
			defer af.Close()
			_, _ = io.Copy(af, resp.Body)
		}
	}
}
