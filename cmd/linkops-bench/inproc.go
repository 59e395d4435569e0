package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/node"
)

// startInProcess starts n nodes in this process (node1 first, the others joining its
// gossip) and logs in. B4 and B8 run their nodes here rather than as agent processes: B4
// reads runtime.MemStats, and a CPU profile of this process is a profile of the nodes
// (the simulated devices run in a child process, see fleet.go). Each node logs at warn
// to node.log in its directory.
func startInProcess(dir string, n int) ([]*node.Node, string) {
	cfg := func(i int, join []string) node.Config {
		return node.Config{
			NodeID: fmt.Sprintf("node%d", i+1), DataDir: filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0",
			BootstrapExpect: n, Join: join, ClusterKey: clusterKey, AdminPassword: adminPassword,
			LogLevel: "warn", TokenTTL: time.Hour,
		}
	}
	start := func(c node.Config) *node.Node {
		check(os.MkdirAll(c.DataDir, 0o700))
		f, err := os.Create(filepath.Join(c.DataDir, "node.log"))
		check(err)
		nd, err := node.New(c, node.Options{Log: f, Console: f})
		check(err)
		return nd
	}
	nodes := make([]*node.Node, n)
	nodes[0] = start(cfg(0, nil))
	join := []string{nodes[0].Cluster().GossipAddr()}
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() { nodes[i] = start(cfg(i, join)) })
	}
	wg.Wait()
	var token string
	for _, nd := range nodes {
		deadline := time.Now().Add(time.Minute)
		for {
			t, _, err := client.New(nd.HTTPAddr(), "").Login(context.Background(), "admin", adminPassword)
			if err == nil {
				token = t
				break
			}
			if time.Now().After(deadline) {
				log.Fatalf("node %s does not serve logins: %v", nd.ID(), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nodes, token
}

func shutdownAll(nodes []*node.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, nd := range nodes {
		if err := nd.Shutdown(ctx); err != nil {
			log.Printf("shutdown %s: %v", nd.ID(), err)
		}
	}
}

// apiDo sends one request; a 503 no_leader (an election on a loaded machine: nothing was
// applied) is asked again for up to 30 s.
func apiDo(c *client.Client, method, path string, body, out any) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.Do(context.Background(), method, path, body, out)
		var p *client.Problem
		if err == nil || !errors.As(err, &p) || p.Code != "no_leader" || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustDo(c *client.Client, method, path string, body, out any) {
	if err := apiDo(c, method, path, body, out); err != nil {
		log.Fatalf("%s %s: %v", method, path, err)
	}
}

// metricSum adds up every sample of a metric on a node's /metrics whose labels hold all
// of the given `key="value"` pairs.
func metricSum(c *client.Client, name string, labels ...string) (float64, error) {
	resp, err := c.Raw(context.Background(), http.MethodGet, "/metrics", nil, "", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}

// waitMetric polls a node's metric until ok holds or the timeout passes.
func waitMetric(c *client.Client, what string, timeout time.Duration, name string, ok func(float64) bool, labels ...string) float64 {
	deadline := time.Now().Add(timeout)
	for {
		v, err := metricSum(c, name, labels...)
		if err == nil && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			log.Fatalf("timed out after %s waiting for %s: %s is %v (%v)", timeout, what, name, v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// raiseFileLimit raises the soft open-file limit to the hard one (as node/rlimit.go
// does) and returns it.
func raiseFileLimit() int {
	var lim syscall.Rlimit
	check(syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	lim.Cur = lim.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	check(syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	return int(lim.Cur)
}

// openFiles is how many descriptors this process holds.
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	check(err)
	return len(ents)
}

// perNodeComponent is the body of an enabled component bound per node: node i on hosts[i].
func perNodeComponent(id, typ string, hosts []string, port int) map[string]any {
	var cl []map[string]any
	for i, h := range hosts {
		cl = append(cl, map[string]any{"serverId": fmt.Sprintf("node%d", i+1), "configuration": map[string]any{"host": h, "port": port}})
	}
	return map[string]any{"id": id, "name": id, "type": typ, "shareCluster": false, "cluster": cl, "state": "enabled"}
}

// createDevices creates devices ids(0..n-1) of a product in batches of 10,000 (the API's
// most).
func createDevices(c *client.Client, productID string, n int, id func(int) string) {
	const batch = 10000
	for start := 0; start < n; start += batch {
		body := make([]map[string]string, 0, batch)
		for i := start; i < min(n, start+batch); i++ {
			body = append(body, map[string]string{"id": id(i), "name": id(i), "productId": productID})
		}
		mustDo(c, http.MethodPost, "/api/v1/devices/batch", body, nil)
	}
}

// deviceTotal is the total of a device list query through c.
func deviceTotal(c *client.Client, query string) (int, error) {
	var out struct{ Total int }
	_, err := c.Do(context.Background(), http.MethodGet, "/api/v1/devices?pageSize=1"+query, nil, &out)
	return out.Total, err
}

// machineCPU is the CPU time every process on this machine has used since boot, from
// /proc/stat (user, nice, system, irq, softirq and steal; USER_HZ is 100 on Linux). Its
// growth minus the bench's own shows what other processes took while a figure was
// measured: the machine is shared.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i > 7 { // guest time is counted in user already
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// processCPU is this process's CPU time so far, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
