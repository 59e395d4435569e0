package coap

import (
	"time"

	"github.com/plgd-dev/go-coap/v3/message/pool"
)

// Limits are the limits a test shrinks; zero fields keep the package's.
type Limits struct {
	Body, Peers      int64
	Uploads          int
	Idle             time.Duration
	HandshakeTimeout time.Duration
	HandshakesPerIP  int
}

// WithLimits is a listener with some limits changed.
func WithLimits(c Limits) Listener {
	l := defaultLimits
	set := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	set(&l.body, c.Body)
	set(&l.peers, c.Peers)
	if c.Uploads != 0 {
		l.uploads = c.Uploads
	}
	if c.Idle != 0 {
		l.idle = c.Idle
	}
	if c.HandshakeTimeout != 0 {
		l.handshakeTimeout = c.HandshakeTimeout
	}
	if c.HandshakesPerIP != 0 {
		l.handshakesPerIP = c.HandshakesPerIP
	}
	return Listener{lim: &l}
}

// Inspect is inspect with its result spelled out.
func Inspect(m *pool.Message) (block, first, more bool, size int64) {
	b := inspect(m)
	return b.block, b.first, b.more, b.size
}

var DiagnosticPayload = diagnosticPayload

const (
	MaxDiagnostic = maxDiagnostic
	RetryAfter    = retryAfter
)
