package session

import (
	"sync"

	"github.com/linkops/linkops/protocol"
)

// replies are the downlinks waiting for their device's answer, by device and messageId.
type replies struct {
	mu      sync.Mutex
	waiting map[string]map[string]chan *protocol.Message
}

func (r *replies) init() { r.waiting = map[string]map[string]chan *protocol.Message{} }

// expect registers a wait; cancel removes it.
func (r *replies) expect(deviceID, messageID string) (<-chan *protocol.Message, func()) {
	ch := make(chan *protocol.Message, 1)
	r.mu.Lock()
	byID := r.waiting[deviceID]
	if byID == nil {
		byID = map[string]chan *protocol.Message{}
		r.waiting[deviceID] = byID
	}
	byID[messageID] = ch
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if byID := r.waiting[deviceID]; byID != nil && byID[messageID] == ch {
			delete(byID, messageID)
			if len(byID) == 0 {
				delete(r.waiting, deviceID)
			}
		}
	}
}

// deliver hands a reply to the downlink waiting for it (none: it is only streamed).
func (r *replies) deliver(deviceID string, m *protocol.Message) {
	r.mu.Lock()
	ch := r.waiting[deviceID][m.MessageID]
	if ch != nil {
		delete(r.waiting[deviceID], m.MessageID)
	}
	r.mu.Unlock()
	if ch != nil {
		ch <- m
	}
}

// fail ends every wait of a device that went offline.
func (r *replies) fail(deviceID string) {
	r.mu.Lock()
	byID := r.waiting[deviceID]
	delete(r.waiting, deviceID)
	r.mu.Unlock()
	for _, ch := range byID {
		close(ch)
	}
}
