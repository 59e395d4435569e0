package udp

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/logging"

	"github.com/linkops/linkops/listeners"
)

// pionLogs silences pion/dtls: what matters is counted (tls_handshake, garbage) and logged
// here at debug level, and a flood must not turn into a flood of log lines.
var pionLogs = quietLogs{logging.NewDefaultLeveledLoggerForScope("dtls", logging.LogLevelDisabled, io.Discard)}

type quietLogs struct{ l logging.LeveledLogger }

func (q quietLogs) NewLogger(string) logging.LeveledLogger { return q.l }

// dtlsMode: each source address that starts with a ClientHello gets a DTLS association;
// once its handshake completes it is one Conn and each record is one message.
type dtlsMode struct {
	*server
	src       *listeners.TLSSource
	assocs    *table[*assoc]
	hs        *handshakes
	hsTimeout time.Duration
	wg        sync.WaitGroup
}

func newDTLSMode(s *server, src *listeners.TLSSource) *dtlsMode {
	return &dtlsMode{server: s, src: src, assocs: newTable[*assoc](MaxPeers),
		hs: newHandshakes(MaxHandshakes, MaxHandshakesPerIP), hsTimeout: HandshakeTimeout}
}

func (m *dtlsMode) datagram(from netip.AddrPort, b []byte) {
	if len(b) > pionReadSize {
		m.env.Error("oversize")
		return
	}
	now := time.Now()
	if a, ok := m.assocs.touch(from, now); ok {
		m.deliver(m.route(a, b), b)
		return
	}
	if !isClientHello(b) {
		m.env.Error("garbage")
		return
	}
	a := m.newAssoc(from, nil)
	if a == nil {
		return
	}
	for _, old := range m.assocs.add(from, a, now) {
		m.env.Error("peers_full")
		old.Close("evicted: too many peers")
	}
	m.deliver(a, b)
	m.wg.Go(a.run)
}

// route picks the association a datagram from a's address is for (nil: none, dropped).
//
// A ClientHello on an established association is a device that restarted and kept its
// ip:port (RFC 6347 §4.2.8): it starts a successor, which gets the epoch-0 records, and
// every record once it has sent a ServerHello (pion does only after the client returned
// its cookie, so the client is really at that address); the successor replaces a when
// its handshake completes. Until then a keeps its records: a spoofed or stale ClientHello
// costs a handshake slot, never a live association.
func (m *dtlsMode) route(a *assoc, b []byte) *assoc {
	if next := a.successor(); next != nil {
		if next.pipe.verified() || epochZero(b) {
			return next
		}
		return a
	}
	if !a.established() || !isClientHello(b) {
		return a
	}
	next := m.newAssoc(a.addr, a)
	if next == nil {
		return nil
	}
	if !a.adopt(next) { // a is ending
		m.hs.release(a.addr.Addr())
		return nil
	}
	m.wg.Go(next.run)
	return next
}

func (m *dtlsMode) deliver(a *assoc, b []byte) {
	if a != nil && !a.pipe.deliver(b) {
		m.env.Error("queue_full")
	}
}

// newAssoc takes a handshake slot for a new association from addr (nil: none free).
func (m *dtlsMode) newAssoc(addr netip.AddrPort, prev *assoc) *assoc {
	if !m.hs.acquire(addr.Addr()) {
		m.env.Error("handshake_limit")
		return nil
	}
	return &assoc{m: m, addr: addr, prev: prev, pipe: newPipe(m.sock, addr),
		info: listeners.ConnInfo{Transport: listeners.TransportUDP, Remote: addr.String(), TLS: true}}
}

// takeOver installs a successor whose handshake completed in place of its predecessor,
// and closes the predecessor. It fails if the predecessor ended meanwhile.
func (m *dtlsMode) takeOver(next *assoc) bool {
	prev := next.prev
	if !prev.disown(next) || !m.assocs.replace(next.addr, prev, next) {
		return false
	}
	prev.Close("replaced: the device handshook again")
	return true
}

func (m *dtlsMode) forgetIdle(before time.Time) {
	for _, a := range m.assocs.idle(before) {
		a.Close("idle")
	}
}

func (m *dtlsMode) closeAll(reason string) {
	for _, a := range m.assocs.drain() {
		a.Close(reason)
	}
}

func (m *dtlsMode) wait() { m.wg.Wait() }

// options configure one association's handshake. They are built per association, so a
// trust bundle added or removed applies to the next handshake; the certificate itself is
// read from the TLSSource when the ClientHello is negotiated.
func (m *dtlsMode) options() []dtls.ServerOption {
	src := m.src
	opts := []dtls.ServerOption{
		dtls.WithGetCertificate(func(*dtls.ClientHelloInfo) (*tls.Certificate, error) { return src.Certificate(), nil }),
		dtls.WithLoggerFactory(pionLogs),
	}
	if src.ClientCAs() != nil {
		// RequireAnyClientCert, not RequireAndVerifyClientCert: pion's ClientCAs would be
		// fixed for the association, VerifyClient reads the current bundle (and checks
		// the client-auth key usage).
		opts = append(opts, dtls.WithClientAuth(dtls.RequireAnyClientCert),
			dtls.WithVerifyPeerCertificate(func(raw [][]byte, _ [][]*x509.Certificate) error { return src.VerifyClient(raw) }))
	}
	return opts
}
