package mqtt_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/linkops/linkops/listeners/mqtt"
)

// What an idle authenticated connection costs, client socket included. The heap is what
// our settings bound (mochi's defaults: 69 KiB, most of it an 8192-slot outbound
// channel); the stacks are mochi's two goroutines per client (16 KiB + 4 KiB), which no
// setting changes: SPEC §6's 10 KiB needs a read loop of our own (see the doc comment).
func TestIdleConnectionCost(t *testing.T) {
	run := serve(t, plainSpec(), admitAll{})
	cost, err := mqtt.MeasureIdleConnections(context.Background(), run.Addr, 1000, func(i int) (string, string, string) {
		return fmt.Sprintf("device-%d", i), "secure-id", "secure-key"
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(cost)
	if cost.Heap > 8<<10 || cost.Total() > 32<<10 || cost.Goroutines > 2.05 {
		t.Fatalf("%s: over 8 KiB of heap, 32 KiB in all or 2 goroutines", cost)
	}
}
