package mqtt

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/linkops/linkops/listeners"
)

// wire is the net.Conn mochi reads and writes.
type wire struct {
	net.Conn               // the TLS connection when secure, else raw
	raw      net.Conn      // the TCP socket
	in       *socketReader // reads raw when plain; nil under TLS (tls.Conn buffers a record itself)
	c        *conn
}

func (w *wire) Read(p []byte) (int, error) {
	if w.in != nil {
		return w.in.Read(p)
	}
	return w.Conn.Read(p)
}

// SetDeadline sets the read deadline only: mochi sets both from the keepalive before
// each read, which would let a client with keepalive 0 block a write forever. Writes get
// their own deadline.
func (w *wire) SetDeadline(t time.Time) error { return w.Conn.SetReadDeadline(t) }

func (w *wire) Write(b []byte) (int, error) {
	_ = w.Conn.SetWriteDeadline(time.Now().Add(w.c.s.writeTimeout))
	return w.Conn.Write(b)
}

// Close closes the socket without a TLS close_notify, which is a write that could block.
func (w *wire) Close() error { return w.raw.Close() }

// conn is one client as the Handler holds it (listeners.Conn).
type conn struct {
	s       *server
	w       wire
	info    listeners.ConnInfo
	session listeners.Session // set and used on the connection's own goroutine only
	id      string            // the client id it is registered under (server.byID), under server.mu
	// deadlineSet is when the read deadline was last moved (unix nanoseconds), on the
	// connection's own goroutine only.
	deadlineSet int64

	mu      sync.Mutex
	cl      *mochi.Client // from the CONNECT on
	opening bool          // env.Open is running
	up      bool          // CONNACK sent
	ended   bool
	refused bool
	reason  string        // why Close was called
	ready   chan struct{} // closed once up or ended
}

func newConn(s *server, raw net.Conn) *conn {
	c := &conn{s: s, ready: make(chan struct{})}
	c.w = wire{Conn: raw, raw: raw, c: c}
	return c
}

const takenOverReason = "session taken over by a new connection with the same client id"

// connOf returns the conn behind a mochi client of ours.
func connOf(cl *mochi.Client) *conn {
	if w, ok := cl.Net.Conn.(*wire); ok {
		return w.c
	}
	return nil
}

func (c *conn) Info() listeners.ConnInfo { return c.info }

func (c *conn) client() *mochi.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cl
}

// errNotConnected: Send was called from inside Open, before the CONNACK that it decides.
var errNotConnected = errors.New("mqtt: the client is not connected yet (Send called before Open returned)")

// Send publishes f to this client only, at QoS 0, whether or not it subscribed to the
// topic (as JetLinks' MQTT server does: devices that never subscribe still get their
// commands). While the connection is being admitted it waits for the CONNACK, except
// during Open itself, where it fails at once (the CONNACK waits for Open to return).
func (c *conn) Send(f listeners.Frame) error {
	if f.Topic == "" || strings.ContainsAny(f.Topic, "+#") {
		return fmt.Errorf("mqtt: downlink topic %q is not a topic name", f.Topic)
	}
	cl, err := c.connected()
	if err != nil {
		return err
	}
	err = cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   f.Topic,
		Payload:     f.Payload,
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, packets.ErrPacketTooLarge):
		return fmt.Errorf("mqtt: %d-byte downlink to %s: %w (over the client's maximum packet size)", len(f.Payload), cl.ID, listeners.ErrTooLarge)
	case errors.Is(err, mochi.ErrConnectionClosed):
		return fmt.Errorf("mqtt: downlink to %s: %w", cl.ID, net.ErrClosed)
	}
	// A failed write may have sent part of a packet: the stream is lost.
	c.Close("downlink failed: " + err.Error())
	return fmt.Errorf("mqtt: downlink to %s: %w", cl.ID, err)
}

// connected waits until the CONNACK was sent (bounded by the connect timeout).
func (c *conn) connected() (*mochi.Client, error) {
	c.mu.Lock()
	cl, up, ended, opening := c.cl, c.up, c.ended, c.opening
	c.mu.Unlock()
	switch {
	case up && !ended:
		return cl, nil
	case ended:
		return nil, fmt.Errorf("mqtt: downlink: %w", net.ErrClosed)
	case opening:
		return nil, errNotConnected
	}
	select {
	case <-c.ready:
		return c.connected()
	case <-time.After(c.s.connectTimeout):
		return nil, errors.New("mqtt: downlink: the client did not finish connecting")
	}
}

// Close disconnects the client; its session's Closed gets reason.
func (c *conn) Close(reason string) {
	c.mu.Lock()
	if c.reason == "" {
		c.reason = reason
	}
	cl := c.cl
	c.mu.Unlock()
	if cl != nil {
		cl.Stop(packets.ErrAdministrativeAction)
	}
	c.w.raw.Close()
}

// beginOpen and endOpen bracket env.Open.
func (c *conn) beginOpen(cl *mochi.Client) {
	c.mu.Lock()
	c.cl, c.opening = cl, true
	c.mu.Unlock()
}

func (c *conn) endOpen(refused bool) {
	c.mu.Lock()
	c.opening, c.refused = false, refused
	c.mu.Unlock()
}

// connacked marks the connection usable for downlinks.
func (c *conn) connacked() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.up && !c.ended {
		c.up = true
		close(c.ready)
	}
}

// finish runs once, when mochi is done with the connection: it counts what went wrong
// and closes the session, if one was opened.
func (c *conn) finish(err error) {
	c.mu.Lock()
	if !c.up {
		close(c.ready)
	}
	c.ended = true
	cl, reason, refused := c.cl, c.reason, c.refused
	c.mu.Unlock()
	if refused {
		return // env.Open counted and showed it
	}
	if cl != nil && cl.StopCause() != nil {
		err = cl.StopCause() // the first cause; the read error that followed says less
	}
	why, metric := endReason(err, cl != nil, c.s)
	if metric != "" {
		c.s.env.Error(metric)
	}
	if reason == "" {
		reason = why
	}
	if c.session != nil {
		c.session.Closed(reason)
	}
}

// endReason describes why a connection ended, and names the error metric it counts as.
func endReason(err error, connected bool, s *server) (reason, metric string) {
	var code packets.Code
	switch {
	case err == nil, errors.Is(err, packets.CodeDisconnect):
		return "client disconnected", ""
	case errors.Is(err, packets.ErrPacketTooLarge):
		return fmt.Sprintf("packet over maxMessageSize (%d bytes)", s.limit), "oversize"
	case errors.Is(err, packets.ErrSessionTakenOver):
		return takenOverReason, ""
	case errors.Is(err, packets.ErrAdministrativeAction):
		return "closed by the server", ""
	case errors.Is(err, os.ErrDeadlineExceeded) && !connected:
		return fmt.Sprintf("no CONNECT within %s", s.connectTimeout), "timeout"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "keepalive timeout", "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection closed", ""
	case errors.As(err, &code) && code.Code >= packets.ErrUnspecifiedError.Code:
		return "protocol error: " + code.Reason, "garbage"
	case strings.Contains(err.Error(), "invalid packet type"), strings.Contains(err.Error(), "no valid packet"):
		return "protocol error: " + err.Error(), "garbage"
	}
	return err.Error(), ""
}
