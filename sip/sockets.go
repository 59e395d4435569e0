package sip

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// retryBackoff bounds the wait after a socket error that may go away (5 ms doubling to
// 1 s, as net/http's accept loop does).
func retryBackoff(delay time.Duration) time.Duration {
	if delay == 0 {
		return 5 * time.Millisecond
	}
	return min(2*delay, time.Second)
}

// packetConn keeps sipgo's UDP read loop alive: that loop returns on the first read error
// of any kind and the socket is then deaf. Only closing the socket ends ReadFrom here.
type packetConn struct {
	net.PacketConn
	log *slog.Logger
}

func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	var delay time.Duration
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err == nil || errors.Is(err, net.ErrClosed) {
			return n, addr, err
		}
		delay = retryBackoff(delay)
		c.log.Warn("SIP UDP read failed; retrying", "error", err, "retry_in", delay)
		time.Sleep(delay)
	}
}

// listener keeps sipgo's TCP accept loop alive (it returns on the first Accept error) and
// gives every connection an idle read deadline (sipgo sets none by default).
type listener struct {
	net.Listener
	idle time.Duration
	log  *slog.Logger
}

func (l *listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return &idleConn{Conn: c, idle: l.idle}, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		delay = retryBackoff(delay)
		l.log.Warn("SIP TCP accept failed; retrying", "error", err, "retry_in", delay)
		time.Sleep(delay)
	}
}

// idleConn closes a TCP connection silent for idle: a device keeps its connection busy
// with keepalives, and a peer that sends nothing must not hold a goroutine forever.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}
