package pubsub_test

import (
	"testing"

	"github.com/linkops/linkops/internal/pubsub"
)

// TestSlowSubscriberLosesEventsAndIsTold: a full subscriber drops events and counts them;
// other keys and other subscribers are unaffected; a closed subscription gets nothing.
func TestSlowSubscriberLosesEventsAndIsTold(t *testing.T) {
	h := pubsub.New[int]()
	slow, fast, other := h.Subscribe("k", 1), h.Subscribe("k", 10), h.Subscribe("o", 10)
	if !h.Watched("k") || h.Watched("nobody") {
		t.Fatal("Watched is wrong")
	}
	for i := range 5 {
		h.Publish("k", i)
	}
	if len(slow.C) != 1 || slow.Dropped() != 4 || slow.Dropped() != 0 {
		t.Fatal("the slow subscriber's losses are not counted once")
	}
	if len(fast.C) != 5 || len(other.C) != 0 {
		t.Fatalf("fast got %d, other %d", len(fast.C), len(other.C))
	}
	slow.Close()
	fast.Close()
	if h.Watched("k") {
		t.Fatal("closed subscriptions still watch")
	}
	h.Publish("k", 9)
}
