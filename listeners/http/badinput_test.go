package httplistener_test

import (
	"bufio"
	"bytes"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	httplistener "github.com/linkops/linkops/listeners/http"
	"github.com/linkops/linkops/listeners/listenertest"
)

// A body over MaxBody is refused with 413 problem JSON whether or not it announces its
// length, never reaches the handler, and is counted; a body of exactly MaxBody arrives.
func TestOversizeBody(t *testing.T) {
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, httplistener.Listener{}, plainSpec(), rec)
	client := newClient(t, nil)
	url := "http://" + run.Addr + "/up"
	big := strings.Repeat("x", httplistener.MaxBody+1)

	resp, body := do(t, client, http.MethodPost, url, big) // Content-Length
	p := checkProblem(t, resp, body, http.StatusRequestEntityTooLarge, "body_too_large")
	if !strings.Contains(p.Detail, strconv.Itoa(httplistener.MaxBody)) {
		t.Errorf("detail %q does not name the limit", p.Detail)
	}
	req, _ := http.NewRequest(http.MethodPost, url, struct{ *strings.Reader }{strings.NewReader(big)}) // chunked
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	checkProblem(t, resp, buf.Bytes(), http.StatusRequestEntityTooLarge, "body_too_large")

	resp, _ = do(t, client, http.MethodPost, url, big[:httplistener.MaxBody])
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a body of exactly MaxBody: %d", resp.StatusCode)
	}
	if f := rec.Frames(); len(f) != 1 || len(f[0].Payload) != httplistener.MaxBody {
		t.Fatalf("%d frames; want only the one of MaxBody bytes", len(f))
	}
	if got := run.Errors("oversize"); got != 2 {
		t.Fatalf("oversize errors %v, want 2", got)
	}
	client.Transport.(*http.Transport).CloseIdleConnections()
	run.Stop(t)
	listenertest.Goroutines(t, base, 1)
}

// What net/http refuses by itself (garbage, a truncated or oversized header, a header
// that never ends) gets its plain answer or a close, reaches no handler, and is counted
// as bad_request; a truncated body gets problem JSON and is counted as truncated.
func TestBadInput(t *testing.T) {
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	l := httplistener.WithTimeouts(httplistener.Timeouts{ReadHeader: 200 * time.Millisecond})
	run := listenertest.Serve(t, l, plainSpec(), rec)

	cases := []struct {
		name, send, answer string
	}{
		{"garbage", "\x16\x03\x01\x00\xff garbage \x00\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"binary", string(bytes.Repeat([]byte{0, 1, 2, 0xfe}, 300)) + "\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"bad header", "POST /x HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"header too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 2*httplistener.MaxHeaderBytes) + "\r\n\r\n",
			"HTTP/1.1 431 Request Header Fields Too Large"},
		{"truncated header", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Le", "HTTP/1.1 400 Bad Request"},
	}
	for i, c := range cases {
		conn := dial(t, run.Addr)
		if _, err := conn.Write([]byte(c.send)); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		conn.CloseWrite()
		if got := readAll(t, conn); !strings.HasPrefix(got, c.answer) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.answer)
		}
		run.WaitErrors(t, "bad_request", float64(i+1))
	}

	// A header that never ends is cut by ReadHeaderTimeout.
	slow := dial(t, run.Addr)
	slow.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n"))
	readAll(t, slow)
	run.WaitErrors(t, "bad_request", float64(len(cases)+1))

	if got := run.Errors("bad_request"); got != float64(len(cases)+1) {
		t.Errorf("bad_request errors %v, want %d", got, len(cases)+1)
	}

	// A body shorter than its Content-Length.
	short := dial(t, run.Addr)
	short.Write([]byte("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly ten b"))
	short.CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(short), nil)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	checkProblem(t, resp, body.Bytes(), http.StatusBadRequest, "bad_body")
	if got := run.Errors("truncated"); got != 1 {
		t.Errorf("truncated errors %v, want 1", got)
	}

	if f := rec.Frames(); len(f) != 0 {
		t.Fatalf("bad input reached the handler: %q", f)
	}
	run.Stop(t)
	listenertest.Goroutines(t, base, 1)
}
