package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/protocol/official"
)

// A fleet is a child process (this binary with -fleet) holding many simulated official
// MQTT devices: lean clients (a raw TCP connection, a real CONNECT and CONNACK built with
// paho's packets package, at most one goroutine each). They run apart from the nodes for
// two reasons: the open-file limit (about 20,000 here) is per process, and both ends of
// every connection in one process would halve what a node can be measured with; and the
// nodes' MemStats and CPU profiles must not hold the devices.
//
// The protocol on the child's stdin and stdout is line-based: the parent writes the
// fleetSpec as one JSON line, the child answers "ready" once it is set up, the parent
// writes "go", the child dials every device and answers "connected OK FAILED SECONDS
// CPU-SECONDS FIRST-ERROR", then holds the connections (answering reads if asked) until its stdin
// closes. Meanwhile "ota FIRMWARE-ID" asks a firmware fleet what its devices did (b5.go).
type fleetSpec struct {
	ProductID, SecureID, SecureKey string
	// IDFormat formats device i's id (client id), for i in [From, From+Count).
	IDFormat    string
	From, Count int
	// Targets are MQTT addresses: device i connects to Targets[i%len(Targets)].
	Targets []string
	// Sources are local addresses to dial from, in turn: a bound source address has its
	// own ephemeral ports, so several keep 20,000 connections clear of exhaustion.
	Sources []string
	// Concurrency bounds the connects in flight (0: every device at once).
	Concurrency int
	// Answer makes each device answer properties/read with a properties/read/reply.
	Answer bool
	// Firmware makes each device upgrade itself on a firmware/upgrade push (b5.go): reply,
	// download the signed link, check the sign, report completion.
	Firmware bool
	// DownloadConns bounds the HTTP connections the fleet's downloads keep to each node
	// (0: 128).
	DownloadConns int
}

// fleetKeepalive is long enough that no device pings during a bench, and not 0, so the
// node arms its read deadline as it does for real devices.
const fleetKeepalive = 600

type fleet struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// fleetResult is what the child reports once every device has dialled.
type fleetResult struct {
	OK, Failed int
	Seconds    float64
	// CPUSeconds is the child's CPU time (user and system) so far: what the devices cost.
	CPUSeconds float64
	FirstError string
}

// startFleet starts a fleet child and waits until it is ready to dial.
func startFleet(spec fleetSpec) *fleet {
	exe, err := os.Executable()
	check(err)
	cmd := exec.Command(exe, "-fleet")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	check(err)
	stdout, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	f := &fleet{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	b, _ := json.Marshal(spec)
	_, err = fmt.Fprintf(stdin, "%s\n", b)
	check(err)
	if line := f.line(); line != "ready" {
		log.Fatalf("fleet: %q instead of ready", line)
	}
	return f
}

func (f *fleet) line() string {
	if !f.out.Scan() {
		log.Fatalf("fleet: the child ended: %v", f.out.Err())
	}
	return f.out.Text()
}

// dial has the child connect every device, and waits until it has.
func (f *fleet) dial() fleetResult {
	_, err := io.WriteString(f.stdin, "go\n")
	check(err)
	fields := strings.SplitN(f.line(), " ", 6)
	if len(fields) < 5 || fields[0] != "connected" {
		log.Fatalf("fleet: unexpected answer %q", strings.Join(fields, " "))
	}
	var r fleetResult
	r.OK, _ = strconv.Atoi(fields[1])
	r.Failed, _ = strconv.Atoi(fields[2])
	r.Seconds, _ = strconv.ParseFloat(fields[3], 64)
	r.CPUSeconds, _ = strconv.ParseFloat(fields[4], 64)
	if len(fields) == 6 {
		r.FirstError = fields[5]
	}
	return r
}

// close ends the child, which closes every connection.
func (f *fleet) close() {
	f.stdin.Close()
	if err := f.cmd.Wait(); err != nil {
		log.Printf("fleet: %v", err)
	}
}

// runFleet is the child's side.
func runFleet() {
	raiseFileLimit()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), 16<<20)
	if !in.Scan() {
		log.Fatal("fleet: no spec on stdin")
	}
	var spec fleetSpec
	check(json.Unmarshal(in.Bytes(), &spec))
	fmt.Println("ready")
	if !in.Scan() || in.Text() != "go" {
		return
	}
	conns, res := dialFleet(spec)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("connected %d %d %.6f %.6f %s\n", res.OK, res.Failed, res.Seconds, cpu.Seconds(), res.FirstError)
	for in.Scan() { // until stdin closes
		if fw, ok := strings.CutPrefix(in.Text(), "ota "); ok && fleetOTA != nil {
			fmt.Println(fleetOTA.stats(fw))
		}
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

func dialFleet(spec fleetSpec) ([]net.Conn, fleetResult) {
	// The signature covers "secureId|timestamp|secureKey" only: every device of the product
	// can send the same one, valid for MaxClockSkew.
	user, pass := official.SignMQTT(spec.SecureID, spec.SecureKey, time.Now())
	conns := make([]net.Conn, spec.Count)
	var (
		failed   atomic.Int64
		firstErr sync.Once
		errText  string
		wg       sync.WaitGroup
	)
	conc := spec.Concurrency
	if conc <= 0 || conc > spec.Count {
		conc = spec.Count
	}
	if spec.Firmware {
		fleetOTA = newOTAFleet(spec)
	}
	next := make(chan int, spec.Count)
	for i := range spec.Count {
		next <- i
	}
	close(next)
	t0 := time.Now()
	for range conc {
		wg.Go(func() {
			for k := range next {
				i := spec.From + k
				id := fmt.Sprintf(spec.IDFormat, i)
				src := ""
				if len(spec.Sources) > 0 {
					src = spec.Sources[i%len(spec.Sources)]
				}
				c, err := dialDevice(src, spec.Targets[i%len(spec.Targets)], id, user, pass)
				if err != nil {
					failed.Add(1)
					firstErr.Do(func() { errText = fmt.Sprintf("device %s: %v", id, err) })
					continue
				}
				conns[k] = c
				switch {
				case spec.Firmware:
					go fleetOTA.serve(c, k, id)
				case spec.Answer:
					go answerReads(c, spec.ProductID, id)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(t0)
	return conns, fleetResult{OK: spec.Count - int(failed.Load()), Failed: int(failed.Load()), Seconds: took.Seconds(), FirstError: errText}
}

// dialDevice connects one device from src (empty: any) to addr and waits for an accepting
// CONNACK.
func dialDevice(src, addr, id, user, pass string) (net.Conn, error) {
	d := net.Dialer{Timeout: time.Minute}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		d.Control = bindNoPort
	}
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.CleanSession, cp.Keepalive = "MQTT", 4, true, fleetKeepalive
	cp.ClientIdentifier = id
	cp.UsernameFlag, cp.Username = true, user
	cp.PasswordFlag, cp.Password = true, []byte(pass)
	var buf bytes.Buffer
	_ = cp.Write(&buf)
	if _, err := c.Write(buf.Bytes()); err != nil {
		c.Close()
		return nil, err
	}
	p, err := packets.ReadPacket(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("no CONNACK: %w", err)
	}
	ack, ok := p.(*packets.ConnackPacket)
	if !ok || ack.ReturnCode != packets.Accepted {
		c.Close()
		return nil, fmt.Errorf("refused: %v", p)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT (linux/in.h; not in package
// syscall).
const ipBindAddressNoPort = 24

// bindNoPort lets the kernel choose a bound source address's port at connect rather than at
// bind: at bind it must be free for every destination, and searching for one among the
// thousands an earlier run left in TIME_WAIT cost the fleet more CPU than the nodes (seen:
// 19 s for 15,000 connects); at connect only the 4-tuple must be unique.
func bindNoPort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1) })
	if err != nil {
		return err
	}
	return serr
}

// answerReads answers every properties/read on c as a device would, with the same
// messageId and a value for each name asked.
func answerReads(c net.Conn, productID, deviceID string) {
	r := bufio.NewReaderSize(c, 512)
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
		if err != nil || m.Type != protocol.TypeReadProperty {
			continue
		}
		reply := protocol.Message{Type: protocol.TypeReadPropertyReply, MessageID: m.MessageID, DeviceID: deviceID,
			Success: protocol.Bool(true), Properties: map[string]any{}}
		for _, k := range m.PropertyNames {
			reply.Properties[k] = 21.5
		}
		topic, payload, err := official.EncodeUpJSON(productID, reply)
		if err != nil {
			continue
		}
		out := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		out.TopicName, out.Payload = topic, payload
		var buf bytes.Buffer
		_ = out.Write(&buf)
		if _, err := c.Write(buf.Bytes()); err != nil {
			return
		}
	}
}
