package listeners

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestSlowSubscriberLosesEventsNotTheListener: publishing never blocks; a subscriber
// whose buffer is full loses the newer events and is told how many, and a message event
// carries at most MaxDebugPayload bytes with its real size.
func TestSlowSubscriberLosesEventsNotTheListener(t *testing.T) {
	h := NewHub()
	slow := h.Subscribe("c", 2)
	defer slow.Close()
	other := h.Subscribe("other", 2)
	defer other.Close()
	for range 10 {
		h.publish("c", Event{Kind: EventConnect, ServerID: "n1"}) // must not block
	}
	if got := len(slow.C); got != 2 {
		t.Fatalf("%d events buffered, want 2", got)
	}
	if n := slow.Dropped(); n != 8 {
		t.Fatalf("Dropped = %d, want 8", n)
	}
	if n := slow.Dropped(); n != 0 {
		t.Fatalf("Dropped is not reset: %d", n)
	}
	if len(other.C) != 0 {
		t.Fatal("another component's subscriber got the events")
	}

	big := bytes.Repeat([]byte{0xAB}, MaxDebugPayload+100)
	<-slow.C
	<-slow.C
	h.publish("c", Event{Kind: EventMessage, ServerID: "n1", Topic: "/t", Payload: big})
	big[0] = 0 // the listener reuses its buffer: the event must hold a copy
	var d struct {
		PayloadHex string `json:"payloadHex"`
		Size       int    `json:"size"`
		Topic      string `json:"topic"`
	}
	if err := json.Unmarshal((<-slow.C).Data(), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.PayloadHex) != 2*MaxDebugPayload || d.Size != len(big) || d.PayloadHex[:2] != "ab" || d.Topic != "/t" {
		t.Fatalf("message event: %d hex chars, size %d, starts %q", len(d.PayloadHex), d.Size, d.PayloadHex[:2])
	}
}
