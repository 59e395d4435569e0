package coarse_test

import (
	"testing"
	"time"

	"github.com/linkops/linkops/internal/coarse"
)

// TestNowFollowsTheClock: the coarse clock moves with the real one, within a generous
// bound (the machine is shared; only staleness of whole seconds would be a bug).
func TestNowFollowsTheClock(t *testing.T) {
	first := coarse.Now()
	if d := time.Since(first); d < -time.Second || d > time.Second {
		t.Fatalf("coarse time is %v off", d)
	}
	time.Sleep(50 * time.Millisecond)
	if !coarse.Now().After(first) {
		t.Fatal("the coarse clock did not move")
	}
}
