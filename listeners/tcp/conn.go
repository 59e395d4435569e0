package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/protocol"
)

// conn is one device connection: the listeners.Conn its handler holds.
type conn struct {
	raw  net.Conn // the TCP socket
	nc   net.Conn // what is read and written: raw, or TLS over it
	info listeners.ConnInfo

	wmu    sync.Mutex // one downlink at a time, each under its own write deadline
	once   sync.Once
	reason atomic.Pointer[string] // why the connection was closed, once it was
}

func (c *conn) Info() listeners.ConnInfo { return c.info }

// Send writes a downlink. It is safe for concurrent use, with itself and with the reads.
func (c *conn) Send(f listeners.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if r := c.reason.Load(); r != nil {
		return fmt.Errorf("send to %s: %w (%s)", c.info.Remote, net.ErrClosed, *r)
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return fmt.Errorf("send to %s: %w", c.info.Remote, err)
	}
	if _, err := c.nc.Write(f.Payload); err != nil {
		c.Close("write failed: " + err.Error())
		return fmt.Errorf("send to %s: %w", c.info.Remote, err)
	}
	return nil
}

// Close disconnects the device; the first reason given is the one reported.
func (c *conn) Close(reason string) {
	c.once.Do(func() {
		c.reason.Store(&reason)
		c.raw.Close()
	})
}

// refusal is a session's answer that ends the connection (already counted by the Env).
type refusal struct{ err error }

func (r refusal) Error() string { return "refused: " + r.err.Error() }

// read frames the connection's stream into the session until the connection ends, and
// returns why it ended.
func (s *server) read(ctx context.Context, c *conn, sess listeners.Session) string {
	emit := func(msg []byte) error {
		if c.reason.Load() != nil {
			// Closed by the handler (or the listener) while this read was being framed.
			return refusal{net.ErrClosed}
		}
		_, err := sess.Receive(ctx, listeners.Frame{Payload: msg})
		switch {
		case err == nil, errors.Is(err, listeners.ErrDropped):
			return nil
		case errors.Is(err, listeners.ErrNotAuthorized), errors.Is(err, listeners.ErrBadCredentials),
			errors.Is(err, listeners.ErrTooLarge):
			return refusal{err}
		}
		s.env.Log.Debug("tcp message not handled", "component", s.env.ComponentID, "remote", c.info.Remote, "error", err)
		return nil
	}
	framer := s.framing.NewFramer()
	buf := make([]byte, readSize)
	for {
		if s.keepAlive > 0 {
			if err := c.nc.SetReadDeadline(time.Now().Add(s.keepAlive)); err != nil {
				return c.end(err.Error())
			}
		}
		n, err := c.nc.Read(buf)
		if n > 0 {
			if ferr := framer.Feed(ctx, buf[:n], emit); ferr != nil {
				var r refusal
				if !errors.As(ferr, &r) && ctx.Err() == nil {
					s.env.Error(reasonOf(ferr))
					s.env.Log.Debug("tcp framing closed a connection", "component", s.env.ComponentID, "remote", c.info.Remote, "error", ferr)
				}
				return c.end(ferr.Error())
			}
		}
		switch {
		case err == nil:
		case c.reason.Load() != nil:
			return c.end("")
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.env.Error("timeout")
			return c.end(fmt.Sprintf("keepalive timeout: silent for %v", s.keepAlive))
		case errors.Is(err, io.EOF):
			return c.end("closed by the device")
		default:
			return c.end("read: " + err.Error())
		}
	}
}

// end closes the connection with reason, unless it was closed already, and returns the
// reason it was closed with.
func (c *conn) end(reason string) string {
	c.Close(reason)
	return *c.reason.Load()
}

// reasonOf names a framing error for linkops_listener_errors_total.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, listeners.ErrTooLarge):
		return "oversize"
	case errors.Is(err, ErrGarbage):
		return "garbage"
	case errors.Is(err, protocol.ErrTimeout):
		return "script_timeout"
	case errors.Is(err, ErrScript):
		return "script"
	}
	return "framing"
}
