package udp

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5/deadline"
)

// pipeDepth is how many datagrams may wait for one association's reader. pion/dtls
// drains them as they come, so a full queue means a peer sending faster than it is
// decrypted: the excess is dropped, as the network would.
const pipeDepth = 32

// pionReadSize is the buffer pion/dtls reads a datagram into (its inboundBufferSize):
// a larger datagram cannot be a record it would accept.
const pionReadSize = 8192

// pipe is the net.PacketConn of one DTLS association: the listener's read loop routes
// the peer's datagrams into it, and writes go out of the shared socket to the peer. It
// is what lets every association get its own pion/dtls configuration (see doc.go).
type pipe struct {
	sock     *net.UDPConn
	addr     netip.AddrPort
	raddr    *net.UDPAddr
	in       chan []byte
	done     chan struct{}
	once     sync.Once
	deadline *deadline.Deadline

	mu   sync.Mutex
	open bool     // the handshake completed: application data goes through
	held [][]byte // application data that came before

	serverHello atomic.Bool // pion sent a ServerHello: the client answered its cookie
}

func newPipe(sock *net.UDPConn, addr netip.AddrPort) *pipe {
	return &pipe{sock: sock, addr: addr, raddr: net.UDPAddrFromAddrPort(addr),
		in: make(chan []byte, pipeDepth), done: make(chan struct{}), deadline: deadline.New()}
}

// deliver queues a copy of b without ever blocking the read loop; it reports whether
// the datagram was queued.
//
// Application data is held back until the handshake completed: a client sends it as
// soon as it has the server's Finished, and pion/dtls, until it has marked its own
// handshake done a moment later, keeps one such record and silently drops the rest
// (Conn.handleIncomingPacket). A device's first messages would be lost.
func (p *pipe) deliver(b []byte) bool {
	if p.closed() {
		return false
	}
	d := append([]byte(nil), b...)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.open && len(d) > 0 && d[0] == contentApplicationData {
		if len(p.held) >= pipeDepth {
			return false
		}
		p.held = append(p.held, d)
		return true
	}
	select {
	case p.in <- d:
		return true
	default:
		return false
	}
}

// established lets application data through, what was held first.
func (p *pipe) established() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = true
	for _, d := range p.held {
		select {
		case p.in <- d:
		default: // full: dropped, as a full queue drops
		}
	}
	p.held = nil
}

// ReadFrom returns the next datagram routed to the association. pion/dtls cancels a
// read by setting a deadline in the past (netctx), which the deadline channel honours.
func (p *pipe) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case d := <-p.in:
		return copy(b, d), p.raddr, nil
	case <-p.done:
		return 0, nil, net.ErrClosed
	case <-p.deadline.Done():
		return 0, nil, os.ErrDeadlineExceeded
	}
}

// WriteTo sends to the association's peer, whatever addr says (it is the same peer).
func (p *pipe) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-p.done:
		return 0, net.ErrClosed
	default:
	}
	if !p.serverHello.Load() && hasServerHello(b) {
		p.serverHello.Store(true)
	}
	n, err := p.sock.WriteToUDPAddrPort(b, p.addr)
	if err != nil {
		return n, fmt.Errorf("dtls send to %s: %w", p.addr, err)
	}
	return n, nil
}

// Close ends the association's reads; the shared socket stays open.
func (p *pipe) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

// verified reports whether the handshake got past the cookie exchange: the peer is
// really at the address it sends from.
func (p *pipe) verified() bool { return p.serverHello.Load() }

func (p *pipe) closed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *pipe) LocalAddr() net.Addr               { return p.sock.LocalAddr() }
func (p *pipe) SetDeadline(t time.Time) error     { return p.SetReadDeadline(t) }
func (p *pipe) SetReadDeadline(t time.Time) error { p.deadline.Set(t); return nil }
func (p *pipe) SetWriteDeadline(time.Time) error  { return nil } // a UDP write does not wait
