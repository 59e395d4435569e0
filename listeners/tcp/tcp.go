package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/linkops/linkops/listeners"
)

const (
	// readSize is each connection's read buffer, and so the largest DIRECT message: the
	// most plaintext one TLS record carries, so a read means the same with and without TLS.
	readSize = 16 << 10
	// handshakeTimeout bounds a TLS handshake, so a client that connects and says nothing
	// holds its descriptor no longer than this.
	handshakeTimeout = 10 * time.Second
	// writeTimeout bounds one downlink write: a device that stops reading loses its
	// connection rather than blocking its handler.
	writeTimeout = 10 * time.Second
)

// Listener serves TCP_SERVER components. It is stateless: one value serves every one.
type Listener struct{}

var _ listeners.Listener = Listener{}

// Serve binds spec's address and serves until ctx ends (see listeners.Listener).
func (Listener) Serve(ctx context.Context, spec listeners.Spec, env *listeners.Env) error {
	framing, err := NewFraming(spec.Config)
	if err != nil {
		return fmt.Errorf("tcp server %s: %w", spec.ComponentID, err)
	}
	s := &server{env: env, framing: framing, conns: map[*conn]struct{}{}}
	if spec.Config.Secure {
		if spec.TLS == nil {
			return fmt.Errorf("tcp server %s: secure, but no certificate is loaded", spec.ComponentID)
		}
		s.tls = spec.TLS.ServerConfig()
	}
	if spec.Config.KeepAliveTimeout > 0 {
		s.keepAlive = time.Duration(spec.Config.KeepAliveTimeout) * time.Second
	}
	var lc net.ListenConfig // never SO_REUSEPORT: a taken address must fail, honestly
	raw, err := lc.Listen(ctx, "tcp", net.JoinHostPort(spec.Config.Host, strconv.Itoa(spec.Config.Port)))
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it could bind
		}
		return err // the OS message, as the status shows it
	}
	ln := listeners.RetryAccept(raw, env)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	env.Bound(raw.Addr().String())

	for {
		nc, err := ln.Accept()
		if err != nil {
			// RetryAccept returns only once the listener is closed.
			if !errors.Is(err, net.ErrClosed) {
				env.Log.Warn("tcp accept loop ended", "component", env.ComponentID, "error", err)
			}
			break
		}
		c := s.track(nc)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(ctx, c)
		}()
	}
	ln.Close()
	s.closeAll("listener stopped")
	s.wg.Wait()
	return nil
}

// server is one running TCP_SERVER.
type server struct {
	env       *listeners.Env
	framing   *Framing
	tls       *tls.Config
	keepAlive time.Duration
	wg        sync.WaitGroup

	mu    sync.Mutex
	conns map[*conn]struct{} // every connection accepted and not yet ended
}

// track registers a connection as it is accepted, so that stopping closes it whatever
// stage it is in.
func (s *server) track(nc net.Conn) *conn {
	c := &conn{raw: nc, nc: nc, info: listeners.ConnInfo{Transport: listeners.TransportTCP, Remote: nc.RemoteAddr().String()}}
	if s.tls != nil {
		c.nc, c.info.TLS = tls.Server(nc, s.tls), true
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return c
}

func (s *server) closeAll(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close(reason)
	}
}

// serve runs one connection from handshake to close.
func (s *server) serve(ctx context.Context, c *conn) {
	defer func() {
		c.Close("done")
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	if tc, ok := c.nc.(*tls.Conn); ok {
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.env.Error("tls_handshake")
				s.env.Log.Debug("tls handshake failed", "component", s.env.ComponentID, "remote", c.info.Remote, "error", err)
			}
			return
		}
	}
	sess, err := s.env.Open(ctx, c)
	if err != nil {
		// Counted and shown on the debug stream by Env.Open.
		c.Close("refused: " + err.Error())
		return
	}
	sess.Closed(s.read(ctx, c, sess))
}
