package udp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"

	"github.com/pion/dtls/v3"

	"github.com/linkops/linkops/listeners"
)

// assoc is one DTLS association, as the handler holds it once its handshake completed.
type assoc struct {
	m    *dtlsMode
	addr netip.AddrPort
	pipe *pipe
	info listeners.ConnInfo
	prev *assoc // the association this one is to replace (see dtlsMode.route), or nil

	mu     sync.Mutex
	conn   *dtls.Conn // set once the handshake completed
	next   *assoc     // a new handshake from the same address, not yet complete
	reason string     // why it ends, first one wins
}

// run owns the association: the handshake, then the session until the association ends.
func (a *assoc) run() {
	conn, err := a.handshake()
	a.m.hs.release(a.addr.Addr())
	if err != nil {
		a.m.assocs.remove(a.addr, a)
		if a.prev != nil {
			a.prev.disown(a)
		}
		if a.closedBy() == "" { // not ended by us (stop, eviction)
			a.m.env.Error("tls_handshake")
			a.m.env.Log.Debug("dtls handshake failed", "component", a.m.env.ComponentID, "remote", a.info.Remote, "error", err)
		}
		return
	}
	defer conn.Close()
	a.mu.Lock()
	a.conn = conn
	a.mu.Unlock()
	if a.prev != nil && !a.m.takeOver(a) {
		a.Close("the association it was to replace ended")
	}
	if a.pipe.closed() {
		a.m.assocs.remove(a.addr, a)
		return
	}
	a.pipe.established()
	s, err := a.m.env.Open(a.m.ctx, a)
	if err != nil {
		a.Close("refused") // counted by env.Open
		return
	}
	a.serve(conn, s)
}

func (a *assoc) handshake() (*dtls.Conn, error) {
	conn, err := dtls.ServerWithOptions(a.pipe, a.pipe.raddr, a.m.options()...)
	if err != nil {
		_ = a.pipe.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(a.m.ctx, a.m.hsTimeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		_ = a.pipe.Close()
		return nil, err
	}
	return conn, nil
}

// serve hands every record to the session until the association ends.
func (a *assoc) serve(conn *dtls.Conn, s listeners.Session) {
	// Every record comes out of one pion datagram buffer, so this size always suffices.
	buf := make([]byte, pionReadSize)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if a.pipe.closed() || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				break
			}
			// A record that does not decrypt, a warning alert: pion keeps the
			// association, so do we.
			a.m.env.Error("garbage")
			continue
		}
		if _, err := s.Receive(a.m.ctx, listeners.Frame{Payload: buf[:n]}); err != nil && closesConn(err) {
			a.Close("refused: " + err.Error())
		}
	}
	a.m.assocs.remove(a.addr, a)
	reason := a.closedBy()
	if reason == "" {
		reason = "closed by peer"
	}
	s.Closed(reason)
}

func (a *assoc) Info() listeners.ConnInfo { return a.info }

// Send writes the frame as one DTLS record to the peer.
func (a *assoc) Send(f listeners.Frame) error {
	a.mu.Lock()
	conn := a.conn
	a.mu.Unlock()
	if conn == nil || a.pipe.closed() {
		return fmt.Errorf("dtls send to %s: %w", a.info.Remote, net.ErrClosed)
	}
	if _, err := conn.Write(f.Payload); err != nil {
		return fmt.Errorf("dtls send to %s: %w", a.info.Remote, err)
	}
	return nil
}

// Close ends the association (with a close_notify once the handshake completed) and any
// successor it has; run then closes the session with reason.
func (a *assoc) Close(reason string) {
	a.mu.Lock()
	if a.reason == "" {
		a.reason = reason
	}
	conn, next := a.conn, a.next
	a.next = nil
	a.mu.Unlock()
	a.m.assocs.remove(a.addr, a)
	if next != nil {
		next.Close(reason)
	}
	if conn != nil {
		_ = conn.Close()
	}
	_ = a.pipe.Close()
}

// closedBy is the reason the listener or the handler gave for ending the association
// ("" if neither did).
func (a *assoc) closedBy() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reason
}

func (a *assoc) established() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conn != nil
}

func (a *assoc) successor() *assoc {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.next
}

// adopt records next as the successor, unless the association is ending.
func (a *assoc) adopt(next *assoc) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reason != "" || a.next != nil {
		return false
	}
	a.next = next
	return true
}

// disown forgets next as the successor; it reports whether next was it.
func (a *assoc) disown(next *assoc) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next != next {
		return false
	}
	a.next = nil
	return true
}
