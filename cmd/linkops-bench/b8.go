package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/node"
	"github.com/linkops/linkops/protocol/official"
)

func b8DeviceID(i int) string { return fmt.Sprintf("b8-%05d", i) }

// benchB8: a connect storm on a 3-node in-process cluster — devices official devices
// (created by batch) connect at once, a third to each node's MQTT_SERVER (127.0.0.1/2/3),
// timed until every node's device list counts them all online; then property reads sent
// through a node that does not hold the device's session, to devices that answer them,
// one at a time and then from concurrent callers.
func benchB8(dir string, devices, sequential, callers, concurrency int) Result {
	limit := raiseFileLimit()
	if devices > limit-1000 {
		log.Fatalf("B8: %d devices need %d descriptors here; the open-file limit is %d", devices, devices+1000, limit)
	}
	log.Printf("B8: %d devices connect at once, %d to each of 3 nodes (%d connects in flight)", devices, devices/3, concurrency)
	nodes, token := startInProcess(dir, 3)
	defer shutdownAll(nodes)
	clients, targets, secureID, secureKey := officialMQTTProduct(nodes, token, "b8", max(callers, 4))
	admin := clients[0]
	t0 := time.Now()
	createDevices(admin, "b8", devices, b8DeviceID)
	createDevices(admin, "b8", len(nodes), func(i int) string { return fmt.Sprintf("b8-probe-%d", i) })
	log.Printf("B8: %d devices created in %s", devices, time.Since(t0).Round(time.Millisecond))
	waitServed(nodes, clients, targets, secureID, secureKey)

	f := startFleet(fleetSpec{ProductID: "b8", SecureID: secureID, SecureKey: secureKey, IDFormat: "b8-%05d", Count: devices,
		Targets: targets, Sources: []string{"127.0.0.20", "127.0.0.21", "127.0.0.22", "127.0.0.23"}, Concurrency: concurrency, Answer: true})
	defer f.close()
	var stopProfile func()
	if profileDir != "" {
		path := filepath.Join(profileDir, "b8-storm.pprof")
		check(os.MkdirAll(profileDir, 0o755))
		pf, err := os.Create(path)
		check(err)
		check(pprof.StartCPUProfile(pf))
		stopProfile = func() {
			pprof.StopCPUProfile()
			pf.Close()
			log.Printf("B8: CPU profile of the storm saved to %s", path)
		}
	}
	dialed := make(chan fleetResult, 1)
	cpu0, machine0 := processCPU(), machineCPU()
	t0 = time.Now()
	go func() { dialed <- f.dial() }()
	if profileDir != "" {
		// Where the connections wait, a second into the storm.
		time.AfterFunc(time.Second, func() {
			path := filepath.Join(profileDir, "b8-storm-goroutines.txt")
			gf, err := os.Create(path)
			check(err)
			defer gf.Close()
			_ = pprof.Lookup("goroutine").WriteTo(gf, 1)
		})
	}
	// The lists are polled only once every device has its CONNACK: a node queues a
	// session's online before it sends the CONNACK, so no list can be complete earlier, and
	// each ?state=online list looks up the presence of every device (about 15 ms for 15,000
	// here), which polled from the start cost the nodes a fifth of their CPU in the storm.
	var res fleetResult
	select {
	case res = <-dialed:
	case <-time.After(3 * time.Minute):
		log.Fatal("B8: the devices did not finish connecting within 3 minutes")
	}
	if res.Failed > 0 {
		log.Fatalf("B8: %d of %d devices failed to connect: %s", res.Failed, devices, res.FirstError)
	}
	reached := make([]time.Duration, len(nodes))
	for done := 0; done < len(nodes); {
		if time.Since(t0) > 3*time.Minute {
			log.Fatalf("B8: not every device online in every node's list after 3 minutes: %v reached", reached)
		}
		for i := range nodes {
			if reached[i] > 0 {
				continue
			}
			if n, err := deviceTotal(clients[i], "&state=online"); err == nil && n >= devices {
				reached[i] = time.Since(t0)
				done++
				log.Printf("B8: node %s lists all %d devices online after %s", nodes[i].ID(), devices, reached[i].Round(time.Millisecond))
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	all := time.Since(t0)
	nodesCPU, machine := processCPU()-cpu0, machineCPU()-machine0
	if stopProfile != nil {
		stopProfile()
	}
	rate := float64(devices) / all.Seconds()
	others := max(0, machine.Seconds()-nodesCPU.Seconds()-res.CPUSeconds)
	log.Printf("B8: every CONNACK in %.2f s; all %d online on every node after %s: %.0f sessions/s (CPU: nodes %.2f s, devices %.2f s, other processes %.2f s)",
		res.Seconds, devices, all.Round(time.Millisecond), rate, nodesCPU.Seconds(), res.CPUSeconds, others)

	// Downlinks: device i is on node i%3 (Targets[i%3]); ask through node (i+1)%3.
	for i := range len(nodes) {
		var d struct{ State, ServerID string }
		mustDo(clients[(i+1)%3], http.MethodGet, "/api/v1/devices/"+b8DeviceID(i), nil, &d)
		if d.State != "online" || d.ServerID != nodes[i%3].ID() {
			log.Fatalf("B8: device %s is %s on %q, want online on %s", b8DeviceID(i), d.State, d.ServerID, nodes[i%3].ID())
		}
	}
	var errs atomic.Int64
	read := func(k int) time.Duration {
		i := (k * 7919) % devices
		var out struct {
			Success    bool
			Properties map[string]any
		}
		t := time.Now()
		_, err := clients[(i+1)%3].Do(context.Background(), http.MethodPost, "/api/v1/devices/"+b8DeviceID(i)+"/properties/read",
			map[string]any{"properties": []string{"temperature"}}, &out)
		took := time.Since(t)
		if err != nil || !out.Success || out.Properties["temperature"] != 21.5 {
			if errs.Add(1) == 1 {
				log.Printf("B8: read of %s: %v %+v", b8DeviceID(i), err, out)
			}
			return -1
		}
		return took
	}
	var seq []time.Duration
	for k := range sequential {
		if d := read(k); d >= 0 {
			seq = append(seq, d)
		}
	}
	perCaller := max(sequential/4, 25)
	var conc []time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	tc := time.Now()
	for w := range callers {
		wg.Go(func() {
			var mine []time.Duration
			for j := range perCaller {
				if d := read(sequential + w*perCaller + j); d >= 0 {
					mine = append(mine, d)
				}
			}
			mu.Lock()
			conc = append(conc, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	concRate := float64(len(conc)) / time.Since(tc).Seconds()
	seqP50, seqP99, concP50, concP99 := percentile(seq, 50), percentile(seq, 99), percentile(conc, 50), percentile(conc, 99)
	log.Printf("B8: downlinks through another node: sequential p50 %s p99 %s; %d callers p50 %s p99 %s (%.0f/s); %d errors",
		seqP50, seqP99, callers, concP50, concP99, concRate, errs.Load())

	figures := map[string]float64{
		"devices": float64(devices), "sessionsPerSecond": rate, "allOnlineSeconds": all.Seconds(), "connackSeconds": res.Seconds,
		"downlinkSeqP50Ms": ms(seqP50), "downlinkSeqP99Ms": ms(seqP99), "downlinkSeqCount": float64(len(seq)),
		"downlinkConcP50Ms": ms(concP50), "downlinkConcP99Ms": ms(concP99), "downlinkConcCount": float64(len(conc)),
		"downlinkConcPerSecond": concRate, "downlinkErrors": float64(errs.Load()),
		"nodesCPUSeconds": nodesCPU.Seconds(), "devicesCPUSeconds": res.CPUSeconds, "otherProcessesCPUSeconds": others,
	}
	for i, d := range reached {
		figures[fmt.Sprintf("online%sSeconds", nodes[i].ID())] = d.Seconds()
	}
	return Result{
		ID:      "B8",
		What:    fmt.Sprintf("connect storm: %d official MQTT devices, %d to each node of 3, until all online in every node's device list; then property reads through a node not holding the session", devices, devices/3),
		Figures: figures,
		Target:  "≥ 5,000 sessions/s cluster-wide; downlink p99 reported",
		Met:     rate >= 5000 && errs.Load() == 0,
		Notes: fmt.Sprintf("3 nodes in the bench process (default raft and gossip timings), devices in a child process: raw CONNECT (signed md5) and CONNACK with paho's packets package, "+
			"%d connects in flight, from 127.0.0.20-23; time from the go to the last node listing all online (GET /api/v1/devices?state=online&pageSize=1, polled on each node once every CONNACK is in); "+
			"reads: %d one at a time, then %d callers × %d, through node (holder+1)%%3", concurrency, sequential, callers, perCaller),
	}
}

// waitServed waits until each node admits a device of the gateway (one probe device per
// node, connected and closed), then until no node counts any device online.
func waitServed(nodes []*node.Node, clients []*client.Client, targets []string, secureID, secureKey string) {
	user, pass := official.SignMQTT(secureID, secureKey, time.Now())
	for i := range nodes {
		var c net.Conn
		waitFor("node "+nodes[i].ID()+" to admit the gateway's devices", func() bool {
			var err error
			c, err = dialDevice("", targets[i], fmt.Sprintf("b8-probe-%d", i), user, pass)
			return err == nil
		})
		c.Close()
	}
	for i := range nodes {
		waitFor("node "+nodes[i].ID()+" to count no device online", func() bool {
			n, err := deviceTotal(clients[i], "&state=online")
			return err == nil && n == 0
		})
	}
}

// officialMQTTProduct sets up what the device benchmarks share on an in-process cluster: a
// per-node MQTT_SERVER on 127.0.0.1/2/3 (one port), an official gateway "<name>-gw" on it
// and a product <name> with secure credentials. It returns a client per node (sharing one
// HTTP client with idle connections per host), the devices' MQTT targets and the product's
// secureId and secureKey.
func officialMQTTProduct(nodes []*node.Node, token, name string, idle int) (clients []*client.Client, targets []string, secureID, secureKey string) {
	clients = make([]*client.Client, len(nodes))
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: idle}, Timeout: time.Minute}
	for i, nd := range nodes {
		clients[i] = client.New(nd.HTTPAddr(), token)
		clients[i].HTTP = httpc
	}
	admin := clients[0]
	hosts := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	port := freeTCPPortOn(hosts...)
	mustDo(admin, http.MethodPost, "/api/v1/network-components", perNodeComponent(name, "MQTT_SERVER", hosts, port), nil)
	targets = make([]string, len(hosts))
	for i, h := range hosts {
		targets[i] = net.JoinHostPort(h, fmt.Sprint(port))
		waitFor("node "+nodes[i].ID()+"'s MQTT_SERVER to accept", func() bool { return dialable(targets[i]) })
	}
	mustDo(admin, http.MethodPost, "/api/v1/gateways", map[string]any{"id": name + "-gw", "name": strings.ToUpper(name), "provider": "mqtt-server-gateway",
		"channelId": name, "protocol": "official", "state": "enabled"}, nil)
	secureID, secureKey = name+"-sid", name+"-secure-key-0123"
	mustDo(admin, http.MethodPost, "/api/v1/products", map[string]any{"id": name, "name": strings.ToUpper(name) + " meters", "gatewayId": name + "-gw",
		"secureId": secureID, "secureKey": secureKey}, nil)
	return clients, targets, secureID, secureKey
}
