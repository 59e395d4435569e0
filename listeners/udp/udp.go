package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/linkops/linkops/listeners"
)

// Tunables. They are variables so tests can shrink them; Serve reads them once, at start.
var (
	// IdleTimeout forgets a peer (plain) or closes an association (DTLS) that sent nothing
	// for this long: UDP has no disconnect, so silence is the only end there is.
	IdleTimeout = 10 * time.Minute
	// MaxPeers caps the peers (plain) or associations (DTLS) remembered at once. When it is
	// reached the one idle longest is forgotten to make room (counted as peers_full), so a
	// flood of spoofed source addresses costs a bounded table, never unbounded memory.
	MaxPeers = 100_000
	// HandshakeTimeout ends a DTLS handshake that has not completed: pion/dtls itself
	// retransmits forever, so without it a client that goes silent mid-handshake (or a
	// spoofed ClientHello, which never answers the HelloVerifyRequest) would hold its
	// association and goroutines until the listener stops.
	HandshakeTimeout = 5 * time.Second
	// MaxHandshakes and MaxHandshakesPerIP cap the DTLS handshakes in progress, in total
	// and per source IP (new ones over either are dropped, counted as handshake_limit).
	MaxHandshakes      = 512
	MaxHandshakesPerIP = 32
)

// maxDatagram is the largest UDP payload there is (65,535 minus the 8-byte header, and
// less over IPv4): a buffer this big never truncates a datagram.
const maxDatagram = 64 << 10

// socketBuffer is the receive buffer asked of the kernel.
const socketBuffer = 4 << 20

// Listener serves UDP components: plain datagrams, or DTLS when the spec is secure.
type Listener struct{}

var _ listeners.Listener = Listener{}

// Serve binds the socket, serves until ctx ends, then closes the socket and every peer
// or association, waits for its goroutines and returns nil.
func (Listener) Serve(ctx context.Context, spec listeners.Spec, env *listeners.Env) error {
	if spec.Config.Secure && spec.TLS == nil {
		return fmt.Errorf("udp %s: secure (DTLS) needs a certificate, and none is loaded", spec.ComponentID)
	}
	addr := net.JoinHostPort(spec.Config.Host, strconv.Itoa(spec.Config.Port))
	pc, err := (&net.ListenConfig{}).ListenPacket(ctx, "udp", addr)
	if err != nil {
		return err // "listen udp 127.0.0.1:5683: bind: address already in use"
	}
	sock := pc.(*net.UDPConn)
	// One goroutine reads for every peer: a deeper kernel queue rides out bursts while a
	// handler call runs (Linux caps it at net.core.rmem_max; a smaller one is no error).
	_ = sock.SetReadBuffer(socketBuffer)
	s := &server{ctx: ctx, env: env, sock: sock, idle: IdleTimeout}
	var m mode
	if spec.Config.Secure {
		m = newDTLSMode(s, spec.TLS)
	} else {
		m = newPlainMode(s)
	}
	env.Bound(sock.LocalAddr().String())

	var wg sync.WaitGroup
	stopSweep := make(chan struct{})
	wg.Go(func() {
		<-ctx.Done()
		// Peers first, while the socket can still carry a DTLS close_notify.
		m.closeAll("listener stopped")
		_ = sock.Close()
	})
	wg.Go(func() { s.sweep(m, stopSweep) })
	s.read(m)
	close(stopSweep)
	wg.Wait()
	m.closeAll("listener stopped") // any that arrived while the first round ran
	m.wait()
	return nil
}

// mode is what the socket's datagrams mean: plain messages, or DTLS records.
type mode interface {
	// datagram handles one datagram; b is only valid during the call.
	datagram(from netip.AddrPort, b []byte)
	// forgetIdle ends the peers silent since before.
	forgetIdle(before time.Time)
	// closeAll ends every peer.
	closeAll(reason string)
	// wait waits for the goroutines the mode started.
	wait()
}

// server is one running UDP socket.
type server struct {
	ctx  context.Context
	env  *listeners.Env
	sock *net.UDPConn
	idle time.Duration
}

// read hands every datagram to m until the socket is closed. One buffer serves every
// datagram: what a mode keeps beyond the call, it copies.
func (s *server) read(m mode) {
	buf := make([]byte, maxDatagram)
	var delay time.Duration
	for {
		n, from, err := s.sock.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Unconnected UDP sockets rarely fail a read (ICMP errors are not reported
			// without IP_RECVERR); whatever it is, it must not end the listener.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.env.Error("read")
			s.env.Log.Warn("udp read failed; retrying", "component", s.env.ComponentID, "error", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		// A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; one peer, one key.
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		m.datagram(from, buf[:n])
	}
}

// sweep forgets idle peers until stop is closed.
func (s *server) sweep(m mode, stop <-chan struct{}) {
	t := time.NewTicker(min(max(s.idle/8, 5*time.Millisecond), 30*time.Second))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			m.forgetIdle(now.Add(-s.idle))
		}
	}
}

// closesConn reports whether a handler's refusal of a message ends the connection: an
// unauthorized device or an oversize message does (listeners.Session), a dropped one not.
func closesConn(err error) bool {
	return errors.Is(err, listeners.ErrNotAuthorized) || errors.Is(err, listeners.ErrBadCredentials) ||
		errors.Is(err, listeners.ErrTooLarge)
}
