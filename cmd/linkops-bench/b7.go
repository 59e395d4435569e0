package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/linkops/linkops/client"
)

// benchB7: a million registered devices in the replicated state of a 3-node cluster — the
// time of each 10,000-device batch create, the memory the state takes on every node, and
// the time to take a snapshot of it and restore it.
func benchB7(bin, dir string, devices int) Result {
	const batch = 10000
	log.Printf("B7: %d devices in batches of %d on 3 nodes", devices, batch)
	nodes, token := startCluster(bin, dir, nil)
	defer stopAll(nodes)
	ctx := context.Background()
	c := client.New(nodes[0].HTTPAddr, token)
	_, err := c.Do(ctx, http.MethodPost, "/api/v1/products", map[string]string{"id": "b7", "name": "B7 meters"}, nil)
	check(err)
	time.Sleep(2 * time.Second)
	before := make([]float64, len(nodes))
	liveBefore := make([]float64, len(nodes))
	for i, n := range nodes {
		before[i] = rssBytes(n.Pid())
		liveBefore[i] = metric(n.HTTPAddr, token, "go_gc_heap_live_bytes")
	}

	var batchTimes []time.Duration
	body := make([]map[string]string, batch)
	for start := 0; start < devices; start += batch {
		for i := range body {
			id := fmt.Sprintf("b7-%07d", start+i)
			body[i] = map[string]string{"id": id, "name": "meter " + id, "productId": "b7"}
		}
		t0 := time.Now()
		_, err := c.Do(ctx, http.MethodPost, "/api/v1/devices/batch", body, nil)
		check(err)
		batchTimes = append(batchTimes, time.Since(t0))
		if len(batchTimes)%20 == 0 {
			log.Printf("B7: %d devices, last batch %s", start+batch, batchTimes[len(batchTimes)-1].Round(time.Millisecond))
		}
	}
	// Every node has applied the last batch once a default read through it sees it.
	for _, n := range nodes {
		var out struct{ Total int }
		_, err := client.New(n.HTTPAddr, token).Do(ctx, http.MethodGet, "/api/v1/devices?pageSize=1", nil, &out)
		check(err)
		if out.Total != devices {
			log.Fatalf("B7: node %s lists %d devices, want %d", n.ID, out.Total, devices)
		}
	}
	time.Sleep(5 * time.Second) // let the GC settle
	var rssMax, liveMax float64
	for i, n := range nodes {
		rss := rssBytes(n.Pid()) - before[i]
		live := metric(n.HTTPAddr, token, "go_gc_heap_live_bytes") - liveBefore[i]
		log.Printf("B7: node %s live heap grew by %.0f MiB, RSS by %.0f MiB", n.ID, live/(1<<20), rss/(1<<20))
		rssMax, liveMax = max(rssMax, rss), max(liveMax, live)
	}

	// Snapshot: stream the verified, compressed state to a file.
	snap := filepath.Join(dir, "b7.snap")
	t0 := time.Now()
	resp, err := c.Raw(ctx, http.MethodGet, "/api/v1/cluster/snapshot", nil, "", nil)
	check(err)
	f, err := os.Create(snap)
	check(err)
	size, err := io.Copy(f, resp.Body)
	check(err)
	resp.Body.Close()
	check(f.Close())
	snapTime := time.Since(t0)
	log.Printf("B7: snapshot of %.1f MiB in %s", float64(size)/(1<<20), snapTime.Round(time.Millisecond))

	// Restore it: verified, then installed on every node through raft.
	b, err := os.ReadFile(snap)
	check(err)
	t0 = time.Now()
	resp, err = c.Raw(ctx, http.MethodPost, "/api/v1/cluster/snapshot", bytes.NewReader(b), "application/octet-stream", nil)
	if err != nil {
		for _, n := range nodes {
			log.Printf("B7: node %s stderr:\n%s", n.ID, tail(n.Stderr.String(), 40))
		}
		log.Fatalf("B7: restore: %v", err)
	}
	resp.Body.Close()
	restoreTime := time.Since(t0)
	log.Printf("B7: restore in %s", restoreTime.Round(time.Millisecond))

	first, p50, maxB := batchTimes[0], percentile(batchTimes, 50), slices.Max(batchTimes)
	total := snapTime + restoreTime
	return Result{
		ID: "B7", What: fmt.Sprintf("%d registered devices in the replicated state of a 3-node cluster", devices),
		Figures: map[string]float64{
			"devices": float64(devices), "batchFirstMs": ms(first), "batchP50Ms": ms(p50), "batchMaxMs": ms(maxB),
			"snapshotSeconds": snapTime.Seconds(), "restoreSeconds": restoreTime.Seconds(), "snapshotMiB": float64(size) / (1 << 20),
			"liveHeapGrowthMiBMaxNode": liveMax / (1 << 20), "rssGrowthMiBMaxNode": rssMax / (1 << 20),
		},
		Target: "snapshot + restore ≤ 30 s; ≤ 1 GiB state memory per node; 10,000-device batch ≤ 2 s",
		Met:    total <= 30*time.Second && liveMax <= 1<<30 && maxB <= 2*time.Second,
		Notes:  "state memory is the growth of the live heap (go_gc_heap_live_bytes: state, indexes and raft's log cache) of the largest node; RSS also holds garbage not yet collected and the mmapped raft log",
	}
}

// rssBytes reads a process's resident set size from /proc.
func rssBytes(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// metric reads one unlabelled gauge from a node's /metrics.
func metric(addr, token, name string) float64 {
	resp, err := client.New(addr, token).Raw(context.Background(), http.MethodGet, "/metrics", nil, "", nil)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
