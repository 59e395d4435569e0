package httplistener_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/linkops/linkops/listeners"
	httplistener "github.com/linkops/linkops/listeners/http"
	"github.com/linkops/linkops/listeners/listenertest"
)

// FuzzRawRequest throws arbitrary bytes at a running listener: whatever arrives, the
// answer is an HTTP response or a close, nothing panics, and the listener keeps serving.
// (net/http parses the request; this covers what the listener does with whatever it
// lets through: bodies, paths, headers, methods.)
func FuzzRawRequest(f *testing.F) {
	for _, s := range []string{
		"POST /p/d/properties/report HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /again HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"HEAD /%00%ff HTTP/1.1\r\nHost: a\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://other/abs?x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01",
		"",
	} {
		f.Add([]byte(s))
	}
	rec := listenertest.NewRecorder()
	rec.Reply = func(fr listeners.Frame) (*listeners.Reply, error) {
		return &listeners.Reply{Payload: fr.Payload}, nil
	}
	l := httplistener.WithTimeouts(httplistener.Timeouts{ReadHeader: time.Second, Read: 2 * time.Second})
	run := listenertest.Serve(f, l, plainSpec(), rec)

	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", run.Addr)
		if err != nil {
			t.Fatalf("the listener stopped accepting: %v", err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = c.Write(in) // the server may hang up first
		_ = c.(*net.TCPConn).CloseWrite()
		out, err := io.ReadAll(io.LimitReader(c, 4<<20))
		var ne net.Error
		if err != nil && errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no answer and no close within 10 s for %q", in)
		}
		if len(out) > 0 && !bytes.HasPrefix(out, []byte("HTTP/1.")) {
			t.Fatalf("answer %q is not HTTP", out)
		}
		if n := run.Errors("panic"); n != 0 {
			t.Fatalf("the handler panicked on %q", in)
		}
	})
}
