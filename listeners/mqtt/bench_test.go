package mqtt_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/linkops/linkops/listeners/mqtt"
)

// What an idle authenticated connection costs, client socket included: SPEC §6 B4's
// 10 KiB at most. One goroutine per connection, whose stack the GC has shrunk to 4 KiB
// (8 KiB under the race detector) whatever depth its CONNECT reached, and about 3.5 KiB
// of heap (mochi's Client is most of it; no read buffer is held while idle).
func TestIdleConnectionCost(t *testing.T) {
	run := serve(t, plainSpec(), admitAll{})
	cost, err := mqtt.MeasureIdleConnections(context.Background(), run.Addr, 1000, func(i int) (string, string, string) {
		return fmt.Sprintf("device-%d", i), "secure-id", "secure-key"
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(cost)
	stack := 4.5 * 1024
	if raceDetector {
		stack = 8.5 * 1024
	}
	if cost.Goroutines > 1.05 || cost.Stack > stack || cost.Heap > 5<<10 {
		t.Fatalf("%s: want at most 1 goroutine, %.0f B of stack and 5 KiB of heap each", cost, stack)
	}
	if !raceDetector && cost.Total() > 10<<10 {
		t.Fatalf("%s: over SPEC §6 B4's 10 KiB", cost)
	}
}
