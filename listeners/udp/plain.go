package udp

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/linkops/linkops/listeners"
)

// plainMode: each datagram is one message of the Conn of its source address.
type plainMode struct {
	*server
	peers *table[*peer]
}

func newPlainMode(s *server) *plainMode {
	return &plainMode{server: s, peers: newTable[*peer](MaxPeers)}
}

// datagram runs on the read loop: the handler sees b only during Receive (the harness
// and the debug hub copy what they keep), so one buffer serves every datagram.
func (m *plainMode) datagram(from netip.AddrPort, b []byte) {
	now := time.Now()
	p, ok := m.peers.touch(from, now)
	if !ok {
		if p = m.open(from, now); p == nil {
			return
		}
	}
	s := p.session()
	if s == nil {
		return
	}
	if _, err := s.Receive(m.ctx, listeners.Frame{Payload: b}); err != nil && closesConn(err) {
		p.Close("refused: " + err.Error())
	}
}

// open admits a new peer; a refused one is not remembered (its next datagram asks again).
func (m *plainMode) open(from netip.AddrPort, now time.Time) *peer {
	p := &peer{m: m, addr: from, info: listeners.ConnInfo{Transport: listeners.TransportUDP, Remote: from.String()}}
	s, err := m.env.Open(m.ctx, p)
	if err != nil {
		return nil // counted by env.Open
	}
	if !p.admit(s) {
		return nil // the handler closed it while opening
	}
	for _, old := range m.peers.add(from, p, now) {
		m.env.Error("peers_full")
		old.end("evicted: too many peers")
	}
	if p.session() == nil { // the handler closed it between admit and add
		m.peers.remove(from, p)
		return nil
	}
	return p
}

func (m *plainMode) forgetIdle(before time.Time) {
	for _, p := range m.peers.idle(before) {
		p.end("idle")
	}
}

func (m *plainMode) closeAll(reason string) {
	for _, p := range m.peers.drain() {
		p.end(reason)
	}
}

func (m *plainMode) wait() {} // plain peers run on the read loop

// peer is one source address of a plain UDP socket, as the handler holds it.
type peer struct {
	m    *plainMode
	addr netip.AddrPort
	info listeners.ConnInfo

	mu     sync.Mutex
	sess   listeners.Session
	ended  bool
	reason string
}

func (p *peer) Info() listeners.ConnInfo { return p.info }

// Send writes one datagram to the peer's address (the sender's: replies go back to
// where the device sent from, which is what NAT lets through).
func (p *peer) Send(f listeners.Frame) error {
	p.mu.Lock()
	ended := p.ended
	p.mu.Unlock()
	if ended {
		return fmt.Errorf("udp send to %s: %w", p.info.Remote, net.ErrClosed)
	}
	if _, err := p.m.sock.WriteToUDPAddrPort(f.Payload, p.addr); err != nil {
		return fmt.Errorf("udp send to %s: %w", p.info.Remote, err)
	}
	return nil
}

// Close forgets the peer; a later datagram from it opens a new Conn.
func (p *peer) Close(reason string) {
	p.m.peers.remove(p.addr, p)
	p.end(reason)
}

// admit records the session env.Open returned, unless the handler closed the peer
// meanwhile (then the session is closed at once).
func (p *peer) admit(s listeners.Session) bool {
	p.mu.Lock()
	if p.ended {
		reason := p.reason
		p.mu.Unlock()
		s.Closed(reason)
		return false
	}
	p.sess = s
	p.mu.Unlock()
	return true
}

func (p *peer) session() listeners.Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return nil
	}
	return p.sess
}

// end closes the session, once, whoever ends the peer first.
func (p *peer) end(reason string) {
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return
	}
	p.ended, p.reason = true, reason
	s := p.sess
	p.mu.Unlock()
	if s != nil {
		s.Closed(reason)
	}
}
