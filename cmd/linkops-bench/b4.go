package main

import (
	"bytes"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	mochilisteners "github.com/mochi-mqtt/server/v2/listeners"
	mochipackets "github.com/mochi-mqtt/server/v2/packets"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/protocol/official"
)

const (
	b4Product = "b4"
	b4Gateway = "b4-gw"
	// b4Burst is how many PUBLISH packets a publisher writes per syscall: the publisher side
	// must cost far less than what it measures (the sink round shows its ceiling).
	b4Burst = 64
)

func b4DeviceID(i int) string { return fmt.Sprintf("b4-%05d", i) }

// benchB4: (a) official property reports at QoS 0 from publishers connected as devices to
// one node's MQTT_SERVER with an enabled official gateway, decoded messages/s counted by
// linkops_device_messages_total, against the same load on a bare mochi broker (default
// options, allow-all auth, no subscribers) in this run, rounds interleaved; (b) memory per
// idle authenticated device connection through that gateway (heap and stacks from
// runtime.MemStats after GC, the node in this process, the devices in a child process), at
// 1,000, 5,000 and as many as the open-file limit leaves.
func benchB4(dir string, publishers int, window time.Duration) Result {
	limit := raiseFileLimit()
	most := limit - 300
	log.Printf("B4: %d publishers, %s windows; idle connections up to %d (open-file limit %d)", publishers, window, most, limit)
	nodes, token := startInProcess(dir, 1)
	defer shutdownAll(nodes)
	c := client.New(nodes[0].HTTPAddr(), token)

	port := freeTCPPortOn("127.0.0.1")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	mustDo(c, http.MethodPost, "/api/v1/network-components", perNodeComponent("b4", "MQTT_SERVER", []string{"127.0.0.1"}, port), nil)
	waitFor("the MQTT_SERVER to accept", func() bool { return dialable(addr) })
	mustDo(c, http.MethodPost, "/api/v1/gateways", map[string]any{"id": b4Gateway, "name": "B4", "provider": "mqtt-server-gateway",
		"channelId": "b4", "protocol": "official", "state": "enabled"}, nil)
	secureID, secureKey := "b4-sid", "b4-secure-key-0123"
	mustDo(c, http.MethodPost, "/api/v1/products", map[string]any{"id": b4Product, "name": "B4 meters", "gatewayId": b4Gateway,
		"secureId": secureID, "secureKey": secureKey}, nil)
	createDevices(c, b4Product, max(most, publishers), b4DeviceID)
	user, pass := official.SignMQTT(secureID, secureKey, time.Now())

	// (a) Throughput. The same bytes go to every target: official reports of each device.
	bufs := make([][]byte, publishers)
	for p := range publishers {
		bufs[p] = reportBurst(p)
	}
	msgSize := float64(len(bufs[0])) / b4Burst
	bareAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPortOn("127.0.0.1"))
	bare := startBareMochi(bareAddr)
	defer bare.Close()
	sink := startSink()
	defer sink.ln.Close()

	dialAll := func(target string, connect bool) []net.Conn {
		conns := make([]net.Conn, publishers)
		for p := range publishers {
			var err error
			if connect {
				// Retried: the gateway is served once the node has applied it.
				deadline := time.Now().Add(30 * time.Second)
				for {
					conns[p], err = dialDevice("", target, b4DeviceID(p), user, pass)
					if err == nil || time.Now().After(deadline) {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			} else {
				conns[p], err = net.Dial("tcp", target)
			}
			check(err)
		}
		return conns
	}
	upCount := func() float64 {
		v, err := metricSum(c, "linkops_device_messages_total", `direction="up"`)
		check(err)
		return v
	}
	ceiling := publishLoad(dialAll(sink.ln.Addr().String(), false), bufs, time.Second, window/2,
		func() float64 { return float64(sink.bytes.Load()) / msgSize }, "")
	log.Printf("B4: publisher ceiling (a sink that discards): %.0f msg/s, %.3f µs CPU a message", ceiling.rate, ceiling.cpuPerMsg*1e6)
	var linkopsRuns, mochiRuns []load
	for round := range 2 {
		prof := func(name string) string {
			if profileDir == "" || round > 0 {
				return ""
			}
			return filepath.Join(profileDir, name)
		}
		r := publishLoad(dialAll(bareAddr, true), bufs, 2*time.Second, window,
			func() float64 { return float64(atomic.LoadInt64(&bare.Info.MessagesReceived)) }, prof("b4-mochi.pprof"))
		mochiRuns = append(mochiRuns, r)
		waitFor("bare mochi to drop the publishers", func() bool { return atomic.LoadInt64(&bare.Info.ClientsConnected) == 0 })
		log.Printf("B4 round %d: bare mochi %.0f msg/s, %.2f µs CPU a message, other processes %.2f cores", round+1, r.rate, r.cpuPerMsg*1e6, r.others)

		r = publishLoad(dialAll(addr, true), bufs, 2*time.Second, window, upCount, prof("b4-linkops.pprof"))
		linkopsRuns = append(linkopsRuns, r)
		waitMetric(c, "the node to drop the publishers", time.Minute, "linkops_gateway_sessions", func(v float64) bool { return v == 0 })
		log.Printf("B4 round %d: linkops official gateway %.0f msg/s, %.2f µs CPU a message, other processes %.2f cores", round+1, r.rate, r.cpuPerMsg*1e6, r.others)
	}
	avg := func(runs []load, f func(load) float64) float64 {
		var s float64
		for _, r := range runs {
			s += f(r)
		}
		return s / float64(len(runs))
	}
	rate := func(l load) float64 { return l.rate }
	cpu := func(l load) float64 { return l.cpuPerMsg * 1e6 }
	others := func(l load) float64 { return l.others }
	linkopsRate, mochiRate := avg(linkopsRuns, rate), avg(mochiRuns, rate)
	ratio := linkopsRate / mochiRate
	log.Printf("B4: linkops %.0f msg/s, bare mochi %.0f msg/s: %.2f× (CPU a message: linkops %.2f µs, mochi %.2f µs)",
		linkopsRate, mochiRate, ratio, avg(linkopsRuns, cpu), avg(mochiRuns, cpu))

	// (b) Idle memory. Every device has connected once first, so its presence record (the
	// device's, not the connection's) exists before any measurement.
	most = min(most, limit-openFiles()-100)
	log.Printf("B4: connecting %d devices once, so that each has its presence record", most)
	idleRound(c, addr, most, secureID, secureKey, nil)
	figures := map[string]float64{
		"linkopsMsgsPerSecond": linkopsRate, "mochiMsgsPerSecond": mochiRate, "ratio": ratio,
		"linkopsCPUMicrosPerMsg": avg(linkopsRuns, cpu), "mochiCPUMicrosPerMsg": avg(mochiRuns, cpu),
		"cpuRatio": avg(mochiRuns, cpu) / avg(linkopsRuns, cpu), "otherProcessesCores": avg(append(linkopsRuns, mochiRuns...), others),
		"publisherCeilingMsgsPerSecond": ceiling.rate, "publisherCPUMicrosPerMsg": ceiling.cpuPerMsg * 1e6,
		"publishers": float64(publishers), "messageBytes": msgSize,
	}
	var last idleCost
	for _, n := range []int{1000, 5000, most} {
		if n > most {
			continue
		}
		cost := idleRound(c, addr, n, secureID, secureKey, &last)
		log.Printf("B4: %s", cost)
		figures[fmt.Sprintf("kib_per_conn_at_%d", n)] = cost.total() / 1024
	}
	figures["heap_kib_per_conn"] = last.heap / 1024
	figures["stack_kib_per_conn"] = last.stack / 1024
	figures["goroutines_per_conn"] = last.goroutines
	figures["idleConnections"] = float64(last.conns)
	return Result{
		ID: "B4",
		What: fmt.Sprintf("official property reports (QoS 0, %d publishers) decoded through an MQTT_SERVER gateway vs a bare mochi broker in the same run; "+
			"memory per idle authenticated device connection up to %d (the open-file limit)", publishers, last.conns),
		Figures: figures,
		Target:  "≥ 0.8× bare mochi; ≤ 10 KiB per idle connection",
		Met:     ratio >= 0.8 && last.total() <= 10*1024,
		Notes: fmt.Sprintf("node in the bench process, publishers there too (raw QoS 0 PUBLISH writes, %d a syscall, after a real CONNECT; the sink round is their ceiling); "+
			"rates are the mean of 2 interleaved %s windows each (linkops %.0f/%.0f, mochi %.0f/%.0f); cpuRatio is mochi's CPU a message over linkops's (the bench process's, publishers included), steadier than rates on a shared machine; bare mochi: mochi.New with default options but an error-level logger (it warns of every EOF), "+
			"AllowHook, one TCP listener; idle devices in a child process (signed md5 CONNECT, keepalive %d s) from 127.0.0.10-13, measured after 3 GCs with every device's presence record already made",
			b4Burst, window, linkopsRuns[0].rate, linkopsRuns[1].rate, mochiRuns[0].rate, mochiRuns[1].rate, fleetKeepalive),
	}
}

// reportBurst is b4Burst PUBLISH packets of official property reports of publisher p's
// device, each with its own messageId.
func reportBurst(p int) []byte {
	var buf bytes.Buffer
	id := b4DeviceID(p)
	for k := range b4Burst {
		m := protocol.Message{Type: protocol.TypeReportProperty, MessageID: fmt.Sprintf("%d-%d", p, k), DeviceID: id,
			Timestamp: time.Now().UnixMilli(), Properties: map[string]any{"temperature": 21.5 + float64(k)/10, "humidity": 40 + k%7, "state": "ok"}}
		topic, payload, err := official.EncodeUpJSON(b4Product, m)
		check(err)
		pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		pub.TopicName, pub.Payload = topic, payload
		check(pub.Write(&buf))
	}
	return buf.Bytes()
}

// publishLoad has one goroutine per connection write its burst in a loop; after warm, it
// counts for window and returns count's growth per second. It closes the connections.
// With profile, the window's CPU profile of this process is saved there.
func publishLoad(conns []net.Conn, bufs [][]byte, warm, window time.Duration, count func() float64, profile string) load {
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			for !stop.Load() {
				if _, err := c.Write(bufs[i]); err != nil {
					return
				}
			}
		})
	}
	time.Sleep(warm)
	if profile != "" {
		check(os.MkdirAll(filepath.Dir(profile), 0o755))
		f, err := os.Create(profile)
		check(err)
		defer f.Close()
		check(pprof.StartCPUProfile(f))
	}
	cpu0, machine0 := processCPU(), machineCPU()
	c0, t0 := count(), time.Now()
	time.Sleep(window)
	c1, t1 := count(), time.Now()
	cpu, machine := processCPU()-cpu0, machineCPU()-machine0
	if profile != "" {
		pprof.StopCPUProfile()
		log.Printf("B4: CPU profile saved to %s", profile)
	}
	stop.Store(true)
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	return load{rate: (c1 - c0) / t1.Sub(t0).Seconds(), cpuPerMsg: cpu.Seconds() / (c1 - c0), others: max(0, (machine-cpu).Seconds()) / t1.Sub(t0).Seconds()}
}

// load is what a publishLoad window measured: messages/s, this process's CPU seconds per
// message (broker and publishers, but the publishers' share is what the sink round
// shows), and the cores other processes kept busy meanwhile.
type load struct{ rate, cpuPerMsg, others float64 }

// startBareMochi is the anchor: a mochi v2 broker as its README starts one (default
// options, allow-all auth, one TCP listener), with only its logger quietened.
func startBareMochi(addr string) *mochi.Server {
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	check(srv.AddHook(new(allowAll), nil))
	check(srv.AddListener(mochilisteners.NewTCP(mochilisteners.Config{ID: "bare", Address: addr})))
	check(srv.Serve())
	return srv
}

// allowAll is mochi's hooks/auth.AllowHook, method for method: that package also pulls in
// a YAML module this one does not otherwise need.
type allowAll struct{ mochi.HookBase }

func (*allowAll) ID() string { return "allow-all-auth" }

func (*allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mochi.Client, mochipackets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mochi.Client, string, bool) bool { return true }

// sink accepts connections and discards what they send, counting the bytes: the most
// the publishers can write here.
type sink struct {
	ln    net.Listener
	bytes atomic.Int64
}

func startSink() *sink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	s := &sink{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					s.bytes.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

// idleCost is what idle connections cost this process, per connection.
type idleCost struct {
	conns                   int
	heap, stack, goroutines float64
}

func (c idleCost) total() float64 { return c.heap + c.stack }

func (c idleCost) String() string {
	return fmt.Sprintf("%d idle authenticated devices: %.0f B heap + %.0f B stack = %.1f KiB each, %.2f goroutines each",
		c.conns, c.heap, c.stack, c.total()/1024, c.goroutines)
}

// idleRound connects n devices from a fleet, waits until the node holds them all and has
// written their presence (the device list counts them online; linkops_presence_queue is
// set only when a change is queued, so it does not show the queue draining), and (with out) measures this process; then it closes them and
// waits until the node has let them go.
func idleRound(c *client.Client, addr string, n int, secureID, secureKey string, out *idleCost) idleCost {
	var before runtime.MemStats
	var goroutines int
	if out != nil {
		before = settledMemStats()
		goroutines = runtime.NumGoroutine()
	}
	f := startFleet(fleetSpec{ProductID: b4Product, SecureID: secureID, SecureKey: secureKey, IDFormat: "b4-%05d", Count: n,
		Targets: []string{addr}, Sources: []string{"127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13"}, Concurrency: 64})
	defer func() {
		f.close()
		waitMetric(c, "the node to drop the idle devices", 2*time.Minute, "linkops_gateway_sessions", func(v float64) bool { return v == 0 })
		waitOnline(c, 0)
		time.Sleep(time.Second)
	}()
	res := f.dial()
	if res.Failed > 0 {
		log.Fatalf("B4: %d of %d idle devices failed to connect: %s", res.Failed, n, res.FirstError)
	}
	waitMetric(c, "the node to hold the idle devices", 2*time.Minute, "linkops_gateway_sessions", func(v float64) bool { return v == float64(n) })
	waitOnline(c, n)
	if out == nil {
		return idleCost{}
	}
	time.Sleep(time.Second) // let the connections' goroutines reach their idle read
	after := settledMemStats()
	fn := float64(n)
	*out = idleCost{conns: n,
		heap:       (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / fn,
		stack:      (float64(after.StackInuse) - float64(before.StackInuse)) / fn,
		goroutines: float64(runtime.NumGoroutine()-goroutines) / fn,
	}
	return *out
}

func settledMemStats() runtime.MemStats {
	var m runtime.MemStats
	for range 3 { // later cycles collect what finalizers freed and shrink stacks further
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m
}

// waitFor polls cond for up to a minute.
func waitFor(what string, cond func() bool) {
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			log.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialable reports whether a TCP connect to addr succeeds.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// waitOnline waits until the device list through c counts n devices online.
func waitOnline(c *client.Client, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := deviceTotal(c, "&state=online")
		if err == nil && got == n {
			return
		}
		if time.Now().After(deadline) {
			log.Fatalf("timed out after 2m waiting for %d devices online: %d (%v)", n, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
