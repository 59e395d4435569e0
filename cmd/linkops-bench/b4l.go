package main

import (
	"context"
	"fmt"
	"log"
	"syscall"
	"time"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/mqtt"
	"github.com/linkops/linkops/resource"
)

// admitAll is a handler that admits every connection and ignores its messages: B4L
// measures the listener, not a gateway.
type admitAll struct{}

func (admitAll) Open(context.Context, listeners.Conn) (listeners.Session, error) { return idle{}, nil }

type idle struct{}

func (idle) Receive(context.Context, listeners.Frame) (*listeners.Reply, error) { return nil, nil }
func (idle) Closed(string)                                                      {}

// benchB4L: memory per idle authenticated connection of the MQTT_SERVER listener, run in
// this process (so the figure is the listener's own), at growing counts up to what the
// open-file limit allows (two descriptors a connection: both ends are here).
func benchB4L() Result {
	var lim syscall.Rlimit
	check(syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	lim.Cur = lim.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	most := int(lim.Cur-200) / 2
	log.Printf("B4L: MQTT listener memory per idle connection, up to %d connections", most)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bound := make(chan string, 1)
	env := listeners.NewEnv("b4l", "bench", admitAll{}, nil, nil, nil, func(a string) { bound <- a })
	done := make(chan error, 1)
	go func() {
		done <- mqtt.Listener{}.Serve(ctx, listeners.Spec{ComponentID: "b4l", Type: resource.TypeMQTTServer,
			Config: resource.NetworkConfig{Host: "127.0.0.1", MaxMessageSize: resource.DefaultMaxMessageSize}}, env)
	}()
	var addr string
	select {
	case addr = <-bound:
	case err := <-done:
		log.Fatalf("B4L: listener: %v", err)
	}
	figures := map[string]float64{}
	var last mqtt.IdleCost
	for _, n := range []int{1000, 5000, most} {
		if n > most {
			continue
		}
		cost, err := mqtt.MeasureIdleConnections(ctx, addr, n, func(i int) (string, string, string) {
			return fmt.Sprintf("dev-%d", i), "secure-id", "secure-key"
		})
		check(err)
		log.Printf("B4L: %s", cost)
		figures[fmt.Sprintf("kib_per_conn_at_%d", n)] = cost.Total() / 1024
		last = cost
		time.Sleep(time.Second) // let the closed connections go before the next count
	}
	figures["heap_kib_per_conn"] = last.Heap / 1024
	figures["stack_kib_per_conn"] = last.Stack / 1024
	figures["goroutines_per_conn"] = last.Goroutines
	return Result{ID: "B4L", What: fmt.Sprintf("MQTT_SERVER listener: memory per idle authenticated connection, up to %d connections (the open-file limit)", last.Conns),
		Figures: figures, Target: "≤ 10 KiB per connection", Met: last.Total() <= 10*1024,
		Notes: "one goroutine per client (our loop on mochi's packet functions) idling on a 4 KiB stack, ~3.3 KiB of heap; both ends of each connection are in this process"}
}
