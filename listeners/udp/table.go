package udp

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// table remembers the peers of one socket by source address, in order of their last
// datagram, so the idle ones are found (and, when the table is full, the longest idle is
// evicted) without scanning it.
type table[P comparable] struct {
	mu     sync.Mutex
	max    int
	byAddr map[netip.AddrPort]*list.Element
	lru    list.List // of *slot[P]; front: the most recently heard from
}

type slot[P comparable] struct {
	addr netip.AddrPort
	peer P
	last time.Time
}

func newTable[P comparable](max int) *table[P] {
	return &table[P]{max: max, byAddr: map[netip.AddrPort]*list.Element{}}
}

// touch returns the peer at addr and notes that it was just heard from.
func (t *table[P]) touch(addr netip.AddrPort, now time.Time) (p P, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byAddr[addr]
	if !ok {
		return p, false
	}
	sl := e.Value.(*slot[P])
	sl.last = now
	t.lru.MoveToFront(e)
	return sl.peer, true
}

// add remembers p at addr (which must be absent) and returns the peers evicted to make
// room; the caller ends them.
func (t *table[P]) add(addr netip.AddrPort, p P, now time.Time) (evicted []P) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.lru.Len() >= max(t.max, 1) {
		evicted = append(evicted, t.unlink(t.lru.Back()))
	}
	t.byAddr[addr] = t.lru.PushFront(&slot[P]{addr: addr, peer: p, last: now})
	return evicted
}

// remove forgets addr if it still holds p (a new peer may have taken the address since).
func (t *table[P]) remove(addr netip.AddrPort, p P) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.byAddr[addr]; ok && e.Value.(*slot[P]).peer == p {
		t.unlink(e)
	}
}

// replace puts p in old's slot at addr, keeping its place; it fails if the slot no
// longer holds old.
func (t *table[P]) replace(addr netip.AddrPort, old, p P) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byAddr[addr]
	if !ok || e.Value.(*slot[P]).peer != old {
		return false
	}
	e.Value.(*slot[P]).peer = p
	return true
}

// idle forgets and returns the peers not heard from since before.
func (t *table[P]) idle(before time.Time) (gone []P) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for e := t.lru.Back(); e != nil && e.Value.(*slot[P]).last.Before(before); e = t.lru.Back() {
		gone = append(gone, t.unlink(e))
	}
	return gone
}

// drain forgets and returns every peer.
func (t *table[P]) drain() (all []P) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for e := t.lru.Back(); e != nil; e = t.lru.Back() {
		all = append(all, t.unlink(e))
	}
	return all
}

// len is the number of peers remembered.
func (t *table[P]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}

func (t *table[P]) unlink(e *list.Element) P {
	sl := t.lru.Remove(e).(*slot[P])
	delete(t.byAddr, sl.addr)
	return sl.peer
}

// handshakes counts the DTLS handshakes in progress, in total and per source IP.
type handshakes struct {
	mu       sync.Mutex
	max      int
	maxPerIP int
	total    int
	perIP    map[netip.Addr]int
}

func newHandshakes(max, maxPerIP int) *handshakes {
	return &handshakes{max: max, maxPerIP: maxPerIP, perIP: map[netip.Addr]int{}}
}

// acquire takes a handshake slot for ip, or reports that none is free.
func (h *handshakes) acquire(ip netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.total >= h.max || h.perIP[ip] >= h.maxPerIP {
		return false
	}
	h.total++
	h.perIP[ip]++
	return true
}

// release gives back a slot acquire took.
func (h *handshakes) release(ip netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
	if h.perIP[ip]--; h.perIP[ip] <= 0 {
		delete(h.perIP, ip)
	}
}
