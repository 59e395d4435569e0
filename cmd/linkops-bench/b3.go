package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/linkops/linkops/client"
)

// benchB3: one API call enables a component → it accepts connections on all three nodes.
// The component is configured per node on 127.0.0.1/2/3 (three machines' addresses on one
// host); each trial enables it, polls a TCP connect on every node until all three accept,
// then disables it and waits until none does.
func benchB3(bin, dir string, trials int) Result {
	log.Printf("B3: %d enable → accepting on 3 nodes", trials)
	nodes, token := startCluster(bin, dir, nil)
	defer stopAll(nodes)
	c := client.New(nodes[0].HTTPAddr, token)
	ctx := context.Background()
	port := freeTCPPortOn("127.0.0.1", "127.0.0.2", "127.0.0.3")
	var cluster []map[string]any
	addrs := []string{}
	for i, n := range nodes {
		host := fmt.Sprintf("127.0.0.%d", i+1)
		cluster = append(cluster, map[string]any{"serverId": n.ID, "configuration": map[string]any{"host": host, "port": port}})
		addrs = append(addrs, fmt.Sprintf("%s:%d", host, port))
	}
	_, err := c.Do(ctx, http.MethodPost, "/api/v1/network-components", map[string]any{"id": "b3", "name": "b3", "type": "TCP_SERVER",
		"shareCluster": false, "cluster": cluster}, nil)
	check(err)
	var lat []time.Duration
	for range trials {
		t0 := time.Now()
		_, err := c.Do(ctx, http.MethodPost, "/api/v1/network-components/b3/enable", nil, nil)
		check(err)
		for _, a := range addrs {
			waitDial(a, true, t0)
		}
		lat = append(lat, time.Since(t0))
		_, err = c.Do(ctx, http.MethodPost, "/api/v1/network-components/b3/disable", nil, nil)
		check(err)
		for _, a := range addrs {
			waitDial(a, false, time.Now())
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	p99 := percentile(lat, 99)
	return Result{ID: "B3", What: fmt.Sprintf("component enabled (one API call) → accepting connections on all 3 nodes, %d trials", trials),
		Figures: map[string]float64{"p50_ms": ms(percentile(lat, 50)), "p99_ms": ms(p99), "max_ms": ms(lat[len(lat)-1])},
		Target:  "p99 ≤ 1 s", Met: p99 <= time.Second}
}

// waitDial polls addr every millisecond until a connect succeeds (want) or is refused.
func waitDial(addr string, want bool, since time.Time) {
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		if (err == nil) == want {
			return
		}
		if time.Since(since) > time.Minute {
			log.Fatalf("B3: %s still %v after a minute", addr, map[bool]string{true: "refusing", false: "accepting"}[want])
		}
		time.Sleep(time.Millisecond)
	}
}

// freeTCPPortOn finds a port free on every host.
func freeTCPPortOn(hosts ...string) int {
	for range 100 {
		ln, err := net.Listen("tcp", hosts[0]+":0")
		check(err)
		port := ln.Addr().(*net.TCPAddr).Port
		ok := true
		var others []net.Listener
		for _, h := range hosts[1:] {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", h, port))
			if err != nil {
				ok = false
				break
			}
			others = append(others, l)
		}
		ln.Close()
		for _, l := range others {
			l.Close()
		}
		if ok {
			return port
		}
	}
	log.Fatal("B3: no port free on every loopback host")
	return 0
}
