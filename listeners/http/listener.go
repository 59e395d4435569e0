package httplistener

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/linkops/linkops/listeners"
)

// MaxBody is the largest request body, the REST API's limit (SPEC §3): far more than any
// device message, small enough that a connection never makes the server hold more.
const MaxBody = 1 << 20

// Listener is HTTP_SERVER: each request is one message (see the package documentation).
type Listener struct {
	// timeouts is zero outside tests (the defaults).
	timeouts Timeouts
}

// Serve implements listeners.Listener.
func (l Listener) Serve(ctx context.Context, spec listeners.Spec, env *listeners.Env) error {
	s := &Server{Handler: handler{env: env}, Timeouts: l.timeouts, TrackConns: true}
	return s.Serve(ctx, spec, env)
}

type handler struct{ env *listeners.Env }

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > MaxBody {
		// Refused before reading: no 100 Continue, no megabyte read for nothing.
		h.tooLarge(w)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mbe):
			h.tooLarge(w)
		case errors.As(err, &ne) && ne.Timeout():
			h.env.Error("timeout")
			writeProblem(w, newProblem(http.StatusRequestTimeout, "timeout", "the request body did not arrive in time"))
		default:
			h.env.Error("truncated")
			writeProblem(w, newProblem(http.StatusBadRequest, "bad_body", "the request body could not be read: "+err.Error()))
		}
		return
	}
	c := &request{info: listeners.ConnInfo{
		Transport: listeners.TransportHTTP,
		Remote:    r.RemoteAddr,
		Method:    r.Method,
		Path:      r.URL.Path,
		Query:     r.URL.Query(),    // a fresh map: the handler may keep it
		Header:    r.Header.Clone(), // the handler may keep it; net/http owns r.Header
		TLS:       r.TLS != nil,
	}}
	reply, err := h.env.Request(r.Context(), c, listeners.Frame{Topic: r.URL.Path, Payload: body})
	if c.closed.Load() {
		w.Header().Set("Connection", "close")
	}
	h.respond(w, r, reply, err)
}

func (h handler) tooLarge(w http.ResponseWriter) {
	h.env.Error("oversize")
	writeProblem(w, newProblem(http.StatusRequestEntityTooLarge, "body_too_large",
		fmt.Sprintf("the request body exceeds the limit of %d bytes", MaxBody)))
}

// respond writes the handler's answer: its Reply if it gave one, else problem JSON for
// its error, else an empty 200.
func (h handler) respond(w http.ResponseWriter, r *http.Request, reply *listeners.Reply, err error) {
	status := http.StatusOK
	if err != nil {
		p := problemFor(r.Context(), err)
		if p.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", "Bearer") // RFC 9110 §15.5.2: a 401 names a scheme
		}
		if reply == nil {
			writeProblem(w, p)
			return
		}
		status = p.Status
	}
	if reply == nil {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(status)
		return
	}
	if reply.Code != 0 {
		status = reply.Code
	}
	if status < 200 || status > 599 {
		// WriteHeader would panic on some of these, or send an interim response.
		h.env.Error("handler")
		h.env.Log.Warn("handler answered with an invalid HTTP status", "component", h.env.ComponentID, "code", reply.Code)
		writeProblem(w, newProblem(http.StatusInternalServerError, "bad_reply",
			fmt.Sprintf("the gateway answered with HTTP status %d", reply.Code)))
		return
	}
	if status == http.StatusNoContent || status == http.StatusNotModified {
		w.WriteHeader(status) // no body allowed, nor its headers
		return
	}
	ct := reply.ContentType
	if ct == "" && len(reply.Payload) > 0 {
		ct = "application/octet-stream" // the handler's bytes, not a guess from sniffing
	}
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(reply.Payload)))
	w.WriteHeader(status)
	_, _ = w.Write(reply.Payload) // a client gone away is not our problem to report
}

// errNoDownlink: HTTP devices poll; there is no channel to push a downlink on.
var errNoDownlink = fmt.Errorf("HTTP_SERVER: %w: a request cannot carry a downlink", errors.ErrUnsupported)

// request is the Conn of one HTTP request.
type request struct {
	info   listeners.ConnInfo
	closed atomic.Bool
}

func (c *request) Info() listeners.ConnInfo { return c.info }

func (c *request) Send(listeners.Frame) error { return errNoDownlink }

// Close makes the response end the TCP connection (a handler's Close after the response
// was written has no effect: net/http already decided).
func (c *request) Close(string) { c.closed.Store(true) }
