package httplistener_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/resource"
)

func plainSpec() listeners.Spec {
	return listeners.Spec{Type: resource.TypeHTTPServer, Config: resource.NetworkConfig{Host: "127.0.0.1"}}
}

// problemBody is the RFC 9457 document a refusal carries.
type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// checkProblem asserts that resp is problem JSON with status and code, and returns it.
func checkProblem(t *testing.T, resp *http.Response, body []byte, status int, code string) problemBody {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p problemBody
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	want := problemBody{Type: "urn:linkops:problem:" + code, Title: http.StatusText(status), Status: status, Code: code, Detail: p.Detail}
	if p != want || p.Detail == "" {
		t.Fatalf("problem %+v, want %+v with a detail", p, want)
	}
	return p
}

// dial opens a raw TCP connection to the listener; it is closed when the test ends.
func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

// roundTrip writes req on c and reads the response from br (one reader per connection).
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func newRequest(t *testing.T, method, path, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://device.example"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// do sends one request with a fresh client and returns the response and its body.
func do(t *testing.T, client *http.Client, method, url, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// newClient is a client whose idle connections are closed when the test ends (so
// goroutine counts can come back to the baseline).
func newClient(t *testing.T, tr *http.Transport) *http.Client {
	if tr == nil {
		tr = &http.Transport{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// readAll reads until the server closes the connection (or the deadline passes).
func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c)
	var ne net.Error
	if err != nil && !(strings.Contains(err.Error(), "reset by peer")) {
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server did not close the connection; read %q", b)
		}
	}
	return string(b)
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
