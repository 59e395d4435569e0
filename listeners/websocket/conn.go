package websocket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/linkops/linkops/listeners"
)

// conn is one upgraded connection. Its read loop runs in the request's goroutine and
// owns the session; writes (downlinks, pings, the close frame) may come from anywhere.
type conn struct {
	ws      *websocket.Conn
	info    listeners.ConnInfo
	every   time.Duration // ping interval
	timeout time.Duration // silence that ends the connection

	wmu sync.Mutex // gorilla allows one writer of data messages at a time

	mu     sync.Mutex
	reason string      // why we closed it; set once, then no deadline is extended
	ping   *time.Timer // the next ping
	done   bool        // the read loop is over: no more pings
}

func newConn(ws *websocket.Conn, info listeners.ConnInfo, every time.Duration) *conn {
	return &conn{ws: ws, info: info, every: every, timeout: 2 * every}
}

func (c *conn) Info() listeners.ConnInfo { return c.info }

// Send writes one downlink message (text or binary: see isText).
func (c *conn) Send(f listeners.Frame) error {
	if r := c.closing(); r != "" {
		return fmt.Errorf("websocket %s: %w (%s)", c.info.Remote, net.ErrClosed, r)
	}
	kind := websocket.BinaryMessage
	if isText(f.Payload) {
		kind = websocket.TextMessage
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	if err := c.ws.WriteMessage(kind, f.Payload); err != nil {
		// A failed write leaves gorilla's connection unusable: hang up so the device
		// reconnects rather than waits for downlinks that cannot come.
		c.abort("downlink failed: " + err.Error())
		return fmt.Errorf("websocket send to %s: %w", c.info.Remote, err)
	}
	return nil
}

// Close sends a normal close frame with reason; see close.
func (c *conn) Close(reason string) { c.close(websocket.CloseNormalClosure, reason) }

// close sends a close frame and gives the device closeWait to answer with its own, after
// which the read loop ends and closes the socket. Closing the socket at once could lose
// the close frame to a reset if the device is still sending. Only the first call counts.
func (c *conn) close(code int, reason string) {
	if c.setReason(reason) {
		c.sendClose(code, reason)
	}
}

// sendClose writes the close frame of a connection whose reason is set.
func (c *conn) sendClose(code int, reason string) {
	// Bounded by closeWait: a device that cannot take 100 bytes in that time is gone.
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, closeText(reason)), time.Now().Add(closeWait))
	c.mu.Lock()
	_ = c.ws.NetConn().SetReadDeadline(time.Now().Add(closeWait))
	c.mu.Unlock()
}

// abort closes the socket without a close frame (the write side is broken).
func (c *conn) abort(reason string) {
	c.setReason(reason)
	_ = c.ws.Close()
}

func (c *conn) setReason(reason string) bool {
	if reason == "" {
		reason = "closed"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason != "" {
		return false
	}
	c.reason = reason
	return true
}

func (c *conn) closing() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// serve hands the connection to the handler and reads it until it ends.
func (c *conn) serve(ctx context.Context, env *listeners.Env) {
	c.ws.SetReadLimit(MaxMessage) // gorilla answers a larger message with 1009 itself
	c.ws.SetPongHandler(func(string) error { c.extend(); return nil })
	c.ws.SetPingHandler(func(data string) error { c.extend(); return c.pong(data) })
	c.extend()
	c.schedulePing()

	s, err := env.Open(ctx, c)
	if err != nil {
		code := websocket.CloseInternalServerErr
		if errors.Is(err, listeners.ErrNotAuthorized) || errors.Is(err, listeners.ErrBadCredentials) || errors.Is(err, listeners.ErrNoGateway) {
			code = websocket.ClosePolicyViolation
		}
		c.close(code, err.Error())
		c.drain()
		c.end()
		return
	}
	reason := "the session panicked"
	defer func() {
		c.end()
		s.Closed(reason)
	}()
	reason = c.read(ctx, env, s)
}

// read delivers messages until the connection ends and says why it ended.
func (c *conn) read(ctx context.Context, env *listeners.Env, s listeners.Session) string {
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return c.ended(env, err)
		}
		c.extend()
		p, err := io.ReadAll(r) // at most MaxMessage: the read limit holds
		if err != nil {
			return c.ended(env, err)
		}
		if c.closing() != "" {
			continue // we are closing: what the device still sends is not delivered
		}
		_, err = s.Receive(ctx, listeners.Frame{Topic: c.info.Path, Payload: p})
		switch {
		case err == nil:
		case errors.Is(err, listeners.ErrNotAuthorized), errors.Is(err, listeners.ErrBadCredentials):
			c.close(websocket.ClosePolicyViolation, err.Error())
		case errors.Is(err, listeners.ErrTooLarge):
			c.close(websocket.CloseMessageTooBig, err.Error())
		}
		// Env counted the refusal; anything else costs only this message.
	}
}

// ended turns the error that ended the read loop into the session's close reason,
// counting the problems.
func (c *conn) ended(env *listeners.Env, err error) string {
	if r := c.closing(); r != "" {
		return r // our close: the error is the device's answer, or closeWait passing
	}
	var ce *websocket.CloseError
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure:
		return fmt.Sprintf("closed by the device: %d %s", ce.Code, ce.Text)
	case errors.Is(err, websocket.ErrReadLimit):
		env.Error("oversize")
		return fmt.Sprintf("message over %d bytes", MaxMessage)
	case errors.As(err, &ne) && ne.Timeout():
		env.Error("timeout")
		return fmt.Sprintf("nothing received for %s", c.timeout)
	case errors.As(err, &ce), errors.As(err, &oe), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection lost: " + err.Error()
	}
	// gorilla's protocol errors (bad opcode, unmasked frame, invalid UTF-8 …): it has
	// sent the device 1002 with the same words.
	env.Error("garbage")
	return "bad frame: " + err.Error()
}

// drain reads until the device answers our close frame or closeWait passes.
func (c *conn) drain() {
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			return
		}
	}
}

// end stops the pings and closes the socket.
func (c *conn) end() {
	c.mu.Lock()
	c.done = true
	if c.ping != nil {
		c.ping.Stop()
	}
	c.mu.Unlock()
	_ = c.ws.Close()
}

// extend pushes the read deadline out: the device has shown it is alive.
func (c *conn) extend() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason == "" {
		_ = c.ws.NetConn().SetReadDeadline(time.Now().Add(c.timeout))
	}
}

func (c *conn) schedulePing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		c.ping = time.AfterFunc(c.every, c.sendPing)
	}
}

func (c *conn) sendPing() {
	if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
		return // closing, or the device is stuck: the read deadline ends it
	}
	c.schedulePing()
}

// pong answers a device's ping, as gorilla's default handler does.
func (c *conn) pong(data string) error {
	err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
	var ne net.Error
	if err == nil || errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
		return nil
	}
	return err
}
