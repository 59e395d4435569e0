package coap

import (
	"bytes"
	"net/netip"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// retryAfter is the Max-Age of a 5.03 answer: when to try the upload again.
const retryAfter = 5

// body is what a request says about the size of its body.
type body struct {
	block       bool  // a block of a Block1 transfer
	first, more bool  // its first block; more blocks follow
	size        int64 // the body once this block is added, or its Size1 if larger
}

// inspect reads a request's Block1 and Size1 options (RFC 7959 §2.2, §4); options it
// cannot decode are left for go-coap to refuse.
func inspect(r *pool.Message) body {
	var b body
	if r.Body() != nil {
		if n, err := r.BodySize(); err == nil {
			b.size = n
		}
	}
	if v, err := r.GetOptionUint32(message.Block1); err == nil {
		if szx, num, more, err := blockwise.DecodeBlockOption(v); err == nil && szx <= blockwise.SZX1024 {
			b.block, b.first, b.more = true, num == 0, more
			b.size += num * szx.Size()
		}
	}
	if v, err := r.GetOptionUint32(message.Size1); err == nil {
		b.size = max(b.size, int64(v))
	}
	return b
}

// monitor sees every message a peer sends before go-coap handles it (its
// RequestMonitor): a block that would take a body past the limit is answered 4.13 and
// dropped before go-coap buffers it, and a new block-wise upload beyond MaxUploads gets
// 5.03.
func (s *server) monitor(cc *udpClient.Conn, r *pool.Message) (drop bool, _ error) {
	defer func() {
		if p := recover(); p != nil {
			s.env.Error("panic")
			s.env.Log.Error("coap request monitor panicked", "component", s.env.ComponentID, "panic", p)
			drop = true
		}
	}()
	if !isRequest(r.Code()) {
		return false, nil
	}
	b := inspect(r)
	switch {
	case b.size > s.lim.body:
		s.env.Error("oversize")
		s.uploads.end(cc)
		s.reject(cc, r, codes.RequestEntityTooLarge, "request body too large", s.lim.body)
		return true, nil
	case b.block && b.first && b.more:
		if !s.uploads.begin(cc, time.Now()) {
			s.env.Error("busy")
			s.reject(cc, r, codes.ServiceUnavailable, "too many block-wise uploads; retry later", 0)
			return true, nil
		}
	case b.block && !b.more:
		s.uploads.end(cc)
	}
	return false, nil
}

// reject answers r directly, without go-coap's handling (as go-coap answers a request
// with an unknown critical option): piggybacked on the ACK of a confirmable request.
func (s *server) reject(cc *udpClient.Conn, r *pool.Message, code codes.Code, diagnostic string, size1 int64) {
	resp := cc.AcquireMessage(cc.Context())
	defer cc.ReleaseMessage(resp)
	resp.SetCode(code)
	resp.SetToken(r.Token())
	if r.Type() == message.Confirmable {
		resp.SetType(message.Acknowledgement)
		resp.SetMessageID(r.MessageID())
	} else {
		resp.SetType(message.NonConfirmable)
		resp.SetMessageID(cc.GetMessageID())
	}
	if size1 > 0 {
		resp.SetOptionUint32(message.Size1, uint32(size1))
	}
	if code == codes.ServiceUnavailable {
		resp.SetOptionUint32(message.MaxAge, retryAfter)
	}
	resp.SetBody(bytes.NewReader(diagnosticPayload(diagnostic)))
	// Answer from the address the request came to (a listener bound to 0.0.0.0).
	if cm := r.ControlMessage(); cm != nil && len(cm.Dst) > 0 && !cm.Dst.IsMulticast() {
		resp.SetControlMessage(&coapNet.ControlMessage{IfIndex: cm.GetIfIndex(), Src: cm.Dst})
	}
	if err := cc.Session().WriteMessage(resp); err != nil {
		s.env.Log.Debug("coap: cannot answer", "component", s.env.ComponentID, "remote", cc.RemoteAddr(), "error", err)
	}
}

// uploads are the block-wise uploads being reassembled, one per peer at most (go-coap
// is told to keep one), each from its first block until its last, until its peer goes,
// or until go-coap has expired it (ttl after its first block).
type uploads struct {
	mu     sync.Mutex
	max    int
	ttl    time.Duration
	active map[*udpClient.Conn]time.Time
}

func newUploads(max int, ttl time.Duration) *uploads {
	return &uploads{max: max, ttl: ttl, active: map[*udpClient.Conn]time.Time{}}
}

// begin counts a peer's upload, unless max are under way.
func (u *uploads) begin(cc *udpClient.Conn, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.active[cc]; ok {
		return true // the first block again: a retransmission, or a restart
	}
	if len(u.active) >= u.max {
		for c, start := range u.active {
			if now.Sub(start) > u.ttl {
				delete(u.active, c)
			}
		}
		if len(u.active) >= u.max {
			return false
		}
	}
	u.active[cc] = now
	return true
}

func (u *uploads) end(cc *udpClient.Conn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.active, cc)
}

// handshakes counts DTLS handshakes in flight, in all and per IP address.
type handshakes struct {
	mu         sync.Mutex
	max, perIP int
	total      int
	byIP       map[netip.Addr]int
}

func newHandshakes(max, perIP int) *handshakes {
	return &handshakes{max: max, perIP: perIP, byIP: map[netip.Addr]int{}}
}

// begin counts a new handshake from ip, unless the limits are reached.
func (h *handshakes) begin(ip netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.total >= h.max || h.byIP[ip] >= h.perIP {
		return false
	}
	h.total++
	h.byIP[ip]++
	return true
}

func (h *handshakes) end(ip netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
	if h.byIP[ip]--; h.byIP[ip] <= 0 {
		delete(h.byIP, ip)
	}
}
