package tcp_test

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/tcp"
	"github.com/linkops/linkops/resource"
)

func parser(typ string, pc resource.ParserConfig) resource.NetworkConfig {
	return resource.NetworkConfig{ParserType: typ, ParserConfiguration: &pc}
}

// tcpSpec is a TCP_SERVER on 127.0.0.1 port 0 with the given parser.
func tcpSpec(cfg resource.NetworkConfig) listeners.Spec {
	cfg.Host, cfg.Port = "127.0.0.1", 0
	return listeners.Spec{ComponentID: "test", Type: resource.TypeTCPServer, Config: cfg}
}

// serve starts the listener with a new recorder.
func serve(t *testing.T, spec listeners.Spec) (*listenertest.Running, *listenertest.Recorder) {
	t.Helper()
	rec := listenertest.NewRecorder()
	return listenertest.Serve(t, tcp.Listener{}, spec, rec), rec
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// writeChunks writes data in writes of the given sizes (cycled).
func writeChunks(c net.Conn, data []byte, sizes []int) error {
	for i := 0; len(data) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(data))
		if _, err := c.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// timedOut reports whether any of these sessions was closed because a script ran out of
// time.
func timedOut(reasons []string) bool {
	for _, r := range reasons {
		if strings.Contains(r, "did not finish within") {
			return true
		}
	}
	return false
}

// patiently runs attempt until it returns true, at most 5 times. An attempt returns false
// when a script that does not loop ran out of time: the sandbox's limit is wall-clock
// time, which a machine this busy can exceed on any call. Any other failure fails the
// test at once.
func patiently(t *testing.T, attempt func() bool) {
	t.Helper()
	for i := 1; i <= 5; i++ {
		if attempt() {
			return
		}
		t.Logf("attempt %d: a script that does not loop timed out; trying again", i)
	}
	t.Fatal("a script that does not loop timed out in 5 attempts")
}

// waitUntil polls cond for up to 10 s, failing the test otherwise.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

// waitClosed reads until the server closes c (EOF or a reset), failing after 10 s.
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the server did not close the connection within 10 s")
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			t.Logf("connection ended with %v", err) // a reset, when unread bytes were discarded
		}
		return
	}
}

// stillOpen shows that c is open: nothing to read within a short wait, and no EOF. The
// wait cannot make the test fail wrongly: a closed connection reports EOF at once.
func stillOpen(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection read %d bytes, %v; want it open and quiet", n, err)
	}
}

func payloads(frames []listeners.Frame) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = string(f.Payload)
	}
	return out
}
