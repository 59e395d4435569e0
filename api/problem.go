package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/cluster"
	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/session"
)

// Problem is an RFC 9457 problem detail. Code is the stable snake_case word clients match.
type Problem struct {
	Type   string                `json:"type"`
	Title  string                `json:"title"`
	Status int                   `json:"status"`
	Detail string                `json:"detail,omitempty"`
	Code   string                `json:"code"`
	Errors []resource.FieldError `json:"errors,omitempty"`
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Code, p.Detail) }

// problem builds a Problem; the title is the HTTP status text.
func problem(status int, code, format string, args ...any) *Problem {
	return &Problem{
		Type:   "urn:linkops:problem:" + code,
		Title:  http.StatusText(status),
		Status: status,
		Code:   code,
		Detail: fmt.Sprintf(format, args...),
	}
}

// invalid is the 400 for a body whose fields failed validation.
func invalid(errs resource.Errors) *Problem {
	p := problem(http.StatusBadRequest, "validation_failed", "%d field(s) are invalid", len(errs))
	p.Errors = errs
	return p
}

// toProblem maps every error a handler can return to one problem response. Errors that
// are not recognised are internal: their text is logged, not shown.
func toProblem(err error) (p *Problem, internal bool) {
	var he *echo.HTTPError
	var re *fsm.RuleError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &p):
		return p, false
	case errors.As(err, &mbe):
		return problem(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds the limit of %d bytes", mbe.Limit), false
	case errors.As(err, &he):
		switch he.Code {
		case http.StatusNotFound:
			return problem(he.Code, "not_found", "no such route"), false
		case http.StatusMethodNotAllowed:
			return problem(he.Code, "method_not_allowed", "method not allowed on this route"), false
		case http.StatusRequestEntityTooLarge:
			return problem(he.Code, "body_too_large", "request body is too large"), false
		case http.StatusUnsupportedMediaType:
			return problem(he.Code, "unsupported_media_type", "%v", he.Message), false
		}
		return problem(he.Code, "http_error", "%v", he.Message), he.Code >= 500
	case errors.Is(err, fsm.ErrNotFound):
		return problem(http.StatusNotFound, "not_found", "resource not found"), false
	case errors.Is(err, fsm.ErrExists):
		return problem(http.StatusConflict, "already_exists", "a resource with this id already exists"), false
	case errors.Is(err, fsm.ErrIndexMismatch):
		return problem(http.StatusPreconditionFailed, "precondition_failed", "If-Match does not match the stored index: the resource changed since it was read"), false
	case errors.As(err, &re):
		status := re.Status
		if status == 0 {
			status = http.StatusConflict
		}
		p := problem(status, re.Code, "%s", re.Message)
		if re.Field != "" {
			p.Errors = resource.Errors{{Field: re.Field, Message: re.Message}}
		}
		return p, false
	case errors.Is(err, errDeviceOffline), errors.Is(err, session.ErrOffline):
		return problem(http.StatusConflict, "device_offline", "the device is offline or has never connected"), false
	case errors.Is(err, errDeviceTimeout), errors.Is(err, session.ErrTimeout):
		return problem(http.StatusGatewayTimeout, "device_timeout", "the device did not answer in time"), false
	case errors.Is(err, session.ErrNoDownlink):
		return problem(http.StatusConflict, "device_no_downlink", "%v: the device can only send", err), false
	case errors.Is(err, cluster.ErrOutcomeUnknown):
		return problem(http.StatusServiceUnavailable, "outcome_unknown", "the write may or may not have been applied: leadership changed while it was in flight; read the resource before retrying"), false
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrNotLeader):
		return problem(http.StatusServiceUnavailable, "no_leader", "the cluster has no leader reachable from this node; retry shortly"), false
	case errors.Is(err, cluster.ErrShutdown):
		return problem(http.StatusServiceUnavailable, "shutting_down", "this node is shutting down"), false
	}
	return problem(http.StatusInternalServerError, "internal_error", "internal error; see the node's system log"), true
}

// errorHandler renders every error as problem JSON.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p, internal := toProblem(err)
	if internal {
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "error", err)
	}
	writeProblem(c.Response(), c.Request(), p)
}

func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	b, _ := json.Marshal(p)
	w.Header().Set(echo.HeaderContentType, "application/problem+json")
	w.WriteHeader(p.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}
