package httplistener

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/linkops/linkops/listeners"
)

// problem is an RFC 9457 problem detail, the shape of every error of the REST API
// (api.Problem, which this package must not import): code is the stable word clients
// match.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
}

func newProblem(status int, code, detail string) problem {
	return problem{Type: "urn:linkops:problem:" + code, Title: http.StatusText(status), Status: status, Detail: detail, Code: code}
}

// problemFor maps a handler's refusal to its HTTP answer (SPEC §4.3.1, §5.2). The detail
// is the error's text: the handler's words about the request, meant for the device.
func problemFor(ctx context.Context, err error) problem {
	switch {
	case errors.Is(err, listeners.ErrNoGateway):
		return newProblem(http.StatusNotFound, "no_gateway", err.Error())
	case errors.Is(err, listeners.ErrNotAuthorized):
		return newProblem(http.StatusUnauthorized, "unauthorized", err.Error())
	case errors.Is(err, listeners.ErrBadCredentials):
		return newProblem(http.StatusUnauthorized, "bad_credentials", err.Error())
	case errors.Is(err, listeners.ErrTooLarge):
		return newProblem(http.StatusRequestEntityTooLarge, "body_too_large", err.Error())
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return newProblem(http.StatusServiceUnavailable, "unavailable", "the request was cancelled: the listener is stopping")
	case errors.Is(err, listeners.ErrDropped):
		return newProblem(http.StatusBadRequest, "dropped", err.Error())
	}
	return newProblem(http.StatusBadRequest, "rejected", err.Error())
}

func writeProblem(w http.ResponseWriter, p problem) {
	b, _ := json.Marshal(p) // strings and an int: cannot fail
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(p.Status)
	_, _ = w.Write(b)
}
