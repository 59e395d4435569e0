package listeners

import (
	"errors"
	"net"
	"time"
)

// RetryAccept wraps a listener so that Accept never fails for a reason that goes away:
// too many open files, a connection reset before it was accepted, any temporary error.
// It waits with backoff (5 ms doubling to 1 s, as net/http does) and tries again, counting
// each error; only closing the listener ends Accept. mochi-mqtt's accept loop returns on
// the first error of any kind and never accepts again, so every TCP listener goes
// through this.
func RetryAccept(ln net.Listener, env *Env) net.Listener {
	return &retryListener{Listener: ln, env: env}
}

type retryListener struct {
	net.Listener
	env *Env
}

func (l *retryListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return c, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if delay == 0 {
			delay = 5 * time.Millisecond
		} else {
			delay = min(2*delay, time.Second)
		}
		if l.env != nil {
			l.env.Error("accept")
			l.env.Log.Warn("accept failed; retrying", "component", l.env.ComponentID, "error", err, "retry_in", delay)
		}
		time.Sleep(delay)
	}
}
