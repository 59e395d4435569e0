package udp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestTableEvictsLongestIdle(t *testing.T) {
	addr := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port) }
	tb := newTable[int](3)
	t0 := time.Now()
	for i := 1; i <= 3; i++ {
		if ev := tb.add(addr(uint16(i)), i, t0.Add(time.Duration(i)*time.Second)); len(ev) != 0 {
			t.Fatalf("evicted %v below the cap", ev)
		}
	}
	tb.touch(addr(1), t0.Add(4*time.Second)) // 2 is now the longest idle
	if ev := tb.add(addr(4), 4, t0.Add(5*time.Second)); !slices.Equal(ev, []int{2}) {
		t.Errorf("evicted %v, want [2]", ev)
	}
	if _, ok := tb.touch(addr(2), t0); ok {
		t.Error("an evicted peer is still found")
	}
	tb.remove(addr(3), 99) // another peer took nothing: 3 stays
	if tb.len() != 3 {
		t.Errorf("len %d after removing a stranger, want 3", tb.len())
	}
	if gone := tb.idle(t0.Add(4500 * time.Millisecond)); !slices.Equal(gone, []int{3, 1}) {
		t.Errorf("idle %v, want [3 1] (longest idle first)", gone)
	}
	if all := tb.drain(); !slices.Equal(all, []int{4}) || tb.len() != 0 {
		t.Errorf("drain %v, len %d", all, tb.len())
	}
}

func TestHandshakeLimits(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	h := newHandshakes(3, 2)
	if !h.acquire(a) || !h.acquire(a) {
		t.Fatal("the first two from one address were refused")
	}
	if h.acquire(a) {
		t.Error("a third from one address was admitted over the per-address cap")
	}
	if !h.acquire(b) || h.acquire(b) {
		t.Error("the total cap did not hold")
	}
	h.release(a)
	if !h.acquire(b) {
		t.Error("a released slot was not reusable")
	}
	h.release(a)
	h.release(b)
	h.release(b)
	if h.total != 0 || len(h.perIP) != 0 {
		t.Errorf("after releasing all: total %d, per address %v", h.total, h.perIP)
	}
}
