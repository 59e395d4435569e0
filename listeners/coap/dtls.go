package coap

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	dtlsServer "github.com/plgd-dev/go-coap/v3/dtls/server"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
)

// serveDTLS serves CoAP over DTLS 1.2. The certificate is read per handshake; the
// client's certificate is asked for on every handshake and checked against the trust
// bundle of the moment, so adding or removing a trust bundle needs no restart either.
func (s *server) serveDTLS(addr *net.UDPAddr) error {
	src := s.spec.TLS
	if src == nil {
		return errors.New("coap: secure is set but no certificate is loaded")
	}
	ln, err := piondtls.ListenWithOptions("udp", addr,
		piondtls.WithGetCertificate(func(*piondtls.ClientHelloInfo) (*tls.Certificate, error) {
			return src.Certificate(), nil
		}),
		piondtls.WithClientAuth(piondtls.RequestClientCert),
		// VerifyConnection runs whether or not the client sent a certificate (pion's
		// VerifyPeerCertificate only when it did), so a missing one is refused too.
		piondtls.WithVerifyConnection(func(st *piondtls.State) error {
			return src.VerifyClient(st.PeerCertificates)
		}),
	)
	if err != nil {
		return err
	}
	l := &dtlsListener{inner: ln, s: s}
	opts := s.options()
	dtlsOpts := make([]dtlsServer.Option, 0, len(opts)+1)
	for _, o := range opts {
		dtlsOpts = append(dtlsOpts, o)
	}
	dtlsOpts = append(dtlsOpts, options.WithDTLSHandshakeTimeout(s.lim.handshakeTimeout))
	srv := dtls.NewServer(dtlsOpts...)
	stop := func() {
		srv.Stop()
		_ = l.Close() // as for UDP: in case Serve had not registered it yet
	}
	err = s.run(ln.Addr().String(), func() error { return srv.Serve(l) }, stop)
	_ = l.Close()
	return err
}

// dtlsListener hands go-coap the connections pion accepts, as long as the handshake
// limits allow; a handshake over them is closed at once.
type dtlsListener struct {
	inner  net.Listener
	s      *server
	closed atomic.Bool
}

func (l *dtlsListener) AcceptWithContext(ctx context.Context) (net.Conn, error) {
	var delay time.Duration
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := l.inner.Accept()
		if l.closed.Load() {
			if c != nil {
				_ = c.Close()
			}
			return nil, coapNet.ErrListenerIsClosed
		}
		if err != nil {
			// pion's Accept fails for one connection (its setup) or, until closed, for
			// a socket that no longer reads: back off as RetryAccept does.
			l.s.env.Error("accept")
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-ctx.Done():
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		dc, ok := c.(*piondtls.Conn)
		ip, ipOK := remoteIP(c.RemoteAddr())
		if !ok || !ipOK || !l.s.hs.begin(ip) {
			l.s.env.Error("handshake_limit")
			_ = c.Close()
			continue
		}
		return &handshakeConn{Conn: dc, s: l.s, release: func() { l.s.hs.end(ip) }}, nil
	}
}

func (l *dtlsListener) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	return l.inner.Close()
}

func remoteIP(a net.Addr) (netip.Addr, bool) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ua.IP)
	return ip.Unmap(), ok
}

// handshakeConn is a DTLS connection counted among the handshakes in flight until its
// handshake ends (go-coap runs it through HandshakeContext) or it is closed.
type handshakeConn struct {
	*piondtls.Conn
	s       *server
	once    sync.Once
	release func()
}

func (c *handshakeConn) HandshakeContext(ctx context.Context) error {
	defer c.once.Do(c.release)
	err := c.Conn.HandshakeContext(ctx)
	if err != nil {
		c.s.env.Error("tls_handshake")
	}
	return err
}

func (c *handshakeConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
