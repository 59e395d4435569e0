package mqtt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"time"
)

// IdleClient says what the i-th idle connection sends in its CONNECT.
type IdleClient func(i int) (clientID, username, password string)

// IdleCost is what idle connections cost the process they run in, per connection.
type IdleCost struct {
	Conns int
	// Heap is the growth of HeapAlloc after a GC; Stack of StackInuse (goroutine
	// stacks are not heap); Goroutines of runtime.NumGoroutine.
	Heap, Stack, Goroutines float64
}

// Total is heap and stacks together: what one more idle device costs.
func (c IdleCost) Total() float64 { return c.Heap + c.Stack }

func (c IdleCost) String() string {
	return fmt.Sprintf("%d idle connections: %.0f B heap + %.0f B stack = %.1f KiB each, %.1f goroutines each",
		c.Conns, c.Heap, c.Stack, c.Total()/1024, c.Goroutines)
}

// idleKeepalive is the keepalive the idle clients announce: long enough that none times
// out while thousands connect, and not 0, so that the broker arms its read deadline as it
// does for real devices.
const idleKeepalive = 600

// MeasureIdleConnections opens n MQTT 3.1.1 connections to addr (plain TCP), each a
// CONNECT built from client(i) answered by an accepting CONNACK, then measures this
// process with all of them open and idle, and closes them. The listener must run in this
// process, with a handler that admits these clients (the bench's own, or a gateway with
// n devices); the caller raises RLIMIT_NOFILE: each connection takes two descriptors
// here. The figures include the client ends: a *net.TCPConn each, a few hundred bytes.
func MeasureIdleConnections(ctx context.Context, addr string, n int, client IdleClient) (IdleCost, error) {
	if n <= 0 {
		return IdleCost{}, errors.New("mqtt: measure: n must be positive")
	}
	before := settledMemStats()
	goroutines := runtime.NumGoroutine()

	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := dialAll(ctx, addr, conns, client); err != nil {
		return IdleCost{}, err
	}
	// Let the broker's goroutines reach their idle read before measuring.
	time.Sleep(200 * time.Millisecond)
	after := settledMemStats()
	f := float64(n)
	return IdleCost{
		Conns:      n,
		Heap:       (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / f,
		Stack:      (float64(after.StackInuse) - float64(before.StackInuse)) / f,
		Goroutines: float64(runtime.NumGoroutine()-goroutines) / f,
	}, nil
}

func settledMemStats() runtime.MemStats {
	var m runtime.MemStats
	for range 3 { // later cycles collect what finalizers freed and shrink stacks further
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m
}

// dialAll connects every slot of conns, 32 at a time; the first failure stops the rest.
func dialAll(ctx context.Context, addr string, conns []net.Conn, client IdleClient) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(32, len(conns)) {
		wg.Go(func() {
			for i := range next {
				id, user, pass := client(i)
				c, err := dialIdle(ctx, addr, id, user, pass)
				if err != nil {
					cancel(fmt.Errorf("mqtt: measure: connection %d: %w", i, err))
					continue
				}
				conns[i] = c
			}
		})
	}
feed:
	for i := range conns {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

func dialIdle(ctx context.Context, addr string, id, user, pass string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(connectPacket(id, user, pass, idleKeepalive)); err != nil {
		c.Close()
		return nil, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("no CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("CONNACK % x: refused", ack)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// connectPacket encodes an MQTT 3.1.1 CONNECT with a clean session; an empty user or
// password is left out.
func connectPacket(id, user, pass string, keepalive uint16) []byte {
	flags := byte(0x02)
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0} // protocol name, level 4, flags
	body = binary.BigEndian.AppendUint16(body, keepalive)
	body = appendString(body, id)
	if user != "" {
		flags |= 0x80
		body = appendString(body, user)
	}
	if pass != "" {
		flags |= 0x40
		body = appendString(body, pass)
	}
	body[7] = flags
	return append(appendLength([]byte{0x10}, len(body)), body...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

// appendLength appends MQTT's variable byte integer.
func appendLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}
