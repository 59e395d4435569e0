// Package pubsub owns the one shape of in-process event fan-out the node uses for live
// streams (a component's debug events, a device's messages): subscribers by key, and a
// publisher that never blocks. It must not know what the events are.
package pubsub

import (
	"sync"
	"sync/atomic"
)

// Hub fans events out to the subscribers of their key. A slow subscriber loses events
// (and is told how many), never slows the publisher: publishing is one non-blocking send
// per subscriber, and nothing is done for keys nobody follows.
type Hub[E any] struct {
	mu   sync.RWMutex
	subs map[string]map[*Subscription[E]]struct{}
	// n counts every subscription, so that publishers on the hot path skip the lock
	// while nobody follows anything.
	n atomic.Int64
}

// New returns a hub with no subscribers.
func New[E any]() *Hub[E] { return &Hub[E]{subs: map[string]map[*Subscription[E]]struct{}{}} }

// Subscription receives the events of one key.
type Subscription[E any] struct {
	C       chan E
	dropped atomic.Int64
	hub     *Hub[E]
	key     string
}

// Dropped returns and resets the number of events lost since the last call.
func (s *Subscription[E]) Dropped() int64 { return s.dropped.Swap(0) }

// Close ends the subscription.
func (s *Subscription[E]) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if set := s.hub.subs[s.key]; set != nil {
		if _, ok := set[s]; ok {
			s.hub.n.Add(-1)
		}
		delete(set, s)
		if len(set) == 0 {
			delete(s.hub.subs, s.key)
		}
	}
}

// Subscribe follows key; buffer bounds how many events may wait for the reader.
func (h *Hub[E]) Subscribe(key string, buffer int) *Subscription[E] {
	s := &Subscription[E]{C: make(chan E, buffer), hub: h, key: key}
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[key]
	if set == nil {
		set = map[*Subscription[E]]struct{}{}
		h.subs[key] = set
	}
	set[s] = struct{}{}
	h.n.Add(1)
	return s
}

// Watched reports whether anyone follows key, so a publisher can skip preparing events
// nobody reads.
func (h *Hub[E]) Watched(key string) bool {
	if h.n.Load() == 0 {
		return false
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs[key]) > 0
}

// Publish hands e to every subscriber of key that has room for it.
func (h *Hub[E]) Publish(key string, e E) {
	if h.n.Load() == 0 {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs[key] {
		select {
		case s.C <- e:
		default:
			s.dropped.Add(1)
		}
	}
}
