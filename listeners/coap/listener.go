package coap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	dtlsServer "github.com/plgd-dev/go-coap/v3/dtls/server"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
	udpServer "github.com/plgd-dev/go-coap/v3/udp/server"

	"github.com/linkops/linkops/listeners"
)

// Limits of one COAP_SERVER listener (see the package comment for why each exists).
const (
	// MaxBodySize is the largest request body, block-wise transfers included.
	MaxBodySize = 1 << 20
	// MaxUploads is how many block-wise uploads are reassembled at once.
	MaxUploads = 64
	// UploadTimeout is how long a block-wise upload may take from its first block.
	UploadTimeout = 60 * time.Second
	// MaxPeers is how many peers (source addresses or DTLS sessions) are kept at once.
	MaxPeers = 16384
	// PeerIdleTimeout forgets a silent peer; it is longer than the 16 s a CoAP client
	// waits between its last two retransmissions (RFC 7252 §4.8.2), so a retransmission
	// still finds its response in the peer's deduplication cache.
	PeerIdleTimeout = 30 * time.Second
	// HandshakeTimeout ends a DTLS handshake that has not completed (go-coap's default
	// is 30 s, long enough for spoofed ClientHellos to pile up).
	HandshakeTimeout = 5 * time.Second
	// MaxHandshakes is how many DTLS handshakes may be in flight at once.
	MaxHandshakes = 1024
	// MaxHandshakesPerIP is how many of those may come from one IP address.
	MaxHandshakesPerIP = 8
)

// Listener serves COAP_SERVER components. The zero value uses the package limits.
type Listener struct {
	lim *limits // tests shrink the limits
}

type limits struct {
	body, peers                 int64
	uploads                     int
	uploadTimeout, idle         time.Duration
	handshakeTimeout            time.Duration
	handshakes, handshakesPerIP int
}

var defaultLimits = limits{
	body: MaxBodySize, peers: MaxPeers, uploads: MaxUploads, uploadTimeout: UploadTimeout,
	idle: PeerIdleTimeout, handshakeTimeout: HandshakeTimeout,
	handshakes: MaxHandshakes, handshakesPerIP: MaxHandshakesPerIP,
}

// tick is how often idle peers and expired transfers are looked for.
func (l *limits) tick() time.Duration {
	return min(max(l.idle/8, 20*time.Millisecond), 2*time.Second)
}

// server is one Serve call's state.
type server struct {
	ctx     context.Context
	spec    listeners.Spec
	env     *listeners.Env
	lim     *limits
	uploads *uploads
	hs      *handshakes

	peers atomic.Int64 // peers kept now

	mu      sync.Mutex
	stopped bool
	busy    sync.WaitGroup // handler calls and the periodic runner
}

// Serve binds spec.Config.Host:Port (UDP) and serves CoAP, or CoAP over DTLS when
// spec.Config.Secure, until ctx ends.
func (l Listener) Serve(ctx context.Context, spec listeners.Spec, env *listeners.Env) error {
	lim := &defaultLimits
	if l.lim != nil {
		lim = l.lim
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &server{ctx: ctx, spec: spec, env: env, lim: lim,
		uploads: newUploads(lim.uploads, lim.uploadTimeout),
		hs:      newHandshakes(lim.handshakes, lim.handshakesPerIP)}
	addr := net.JoinHostPort(spec.Config.Host, strconv.Itoa(spec.Config.Port))
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return fmt.Errorf("coap: %w", err)
	}
	if spec.Config.Secure {
		err = s.serveDTLS(ua)
	} else {
		err = s.serveUDP(ua)
	}
	cancel()
	s.stop()
	return err
}

func (s *server) serveUDP(addr *net.UDPAddr) error {
	pc, err := net.ListenUDP("udp", addr)
	if err != nil {
		return err
	}
	conn := coapNet.NewUDPConn("udp", pc)
	defer conn.Close()
	opts := s.options()
	udpOpts := make([]udpServer.Option, len(opts))
	for i, o := range opts {
		udpOpts[i] = o
	}
	srv := udp.NewServer(udpOpts...)
	stop := func() {
		srv.Stop()
		// Stop closes only a socket Serve has registered: a stop that comes first would
		// leave Serve reading forever.
		_ = conn.Close()
	}
	return s.run(pc.LocalAddr().String(), func() error { return srv.Serve(conn) }, stop)
}

// run serves until ctx ends or serve fails; a failure after ctx ended is not one.
func (s *server) run(bound string, serve func() error, stop func()) error {
	done := make(chan error, 1)
	go func() { done <- serve() }()
	s.env.Bound(bound)
	var err error
	select {
	case <-s.ctx.Done():
		stop()
		<-done
	case err = <-done:
		if s.ctx.Err() != nil {
			err = nil
		} else if err == nil {
			err = errors.New("coap: the server stopped serving")
		}
	}
	return err
}

// option is a go-coap option that both the UDP and the DTLS server take.
type option interface {
	udpServer.Option
	dtlsServer.Option
}

func (s *server) options() []option {
	return []option{
		options.WithContext(s.ctx),
		options.WithHandlerFunc(s.handle),
		options.WithErrors(s.libraryError),
		options.WithOnNewConn(s.admit),
		options.WithRequestMonitor(s.monitor),
		options.WithInactivityMonitor(s.lim.idle, func(cc *udpClient.Conn) { _ = cc.Close() }),
		options.WithPeriodicRunner(s.periodic),
		options.WithBlockwise(true, blockwise.SZX1024, s.lim.uploadTimeout),
		// One reassembly per peer (go-coap's default is 4096).
		options.WithBlockwiseReceivingMessagesCacheMaxEntries(1),
	}
}

// periodic runs go-coap's expiry checks (idle peers, stale transfers) on our own
// goroutine, which ends with ctx: go-coap's default sleeps 4 s between checks and would
// outlive Serve by as much.
func (s *server) periodic(f func(time.Time) bool) {
	s.busy.Add(1)
	go func() {
		defer s.busy.Done()
		t := time.NewTicker(s.lim.tick())
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case now := <-t.C:
				if !f(now) {
					return
				}
			}
		}
	}()
}

// enter admits a handler call unless Serve is returning.
func (s *server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.busy.Add(1)
	return true
}

func (s *server) leave() { s.busy.Done() }

// stop refuses new handler calls and waits for those running and the periodic runner:
// go-coap's per-peer goroutines may still hand over a queued request after its Serve
// returned.
func (s *server) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.busy.Wait()
}

// admit keeps a new peer unless MaxPeers are kept; it is go-coap's OnNewConn. A peer
// counts as one of the component's connections (env.Track) while it is kept: that is
// what the status shows for CoAP, which has no sessions.
func (s *server) admit(cc *udpClient.Conn) {
	if s.peers.Add(1) > s.lim.peers {
		s.peers.Add(-1)
		s.env.Error("peer_limit")
		_ = cc.Close()
		return
	}
	s.env.Track(1)
	cc.AddOnClose(func() {
		s.peers.Add(-1)
		s.env.Track(-1)
		s.uploads.end(cc)
	})
}

// libraryError counts what go-coap reports; malformed datagrams are garbage, the rest is
// logged for debugging (go-coap reports every expired exchange too).
func (s *server) libraryError(err error) {
	var malformed *udpClient.MalformedMessageError
	if errors.As(err, &malformed) {
		s.env.Error("garbage")
	}
	s.env.Log.Debug("coap", "component", s.env.ComponentID, "error", err)
}
