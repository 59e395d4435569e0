package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/logs"
	"github.com/linkops/linkops/resource"
)

// maxLoggedBody is how much of a JSON request body the access log keeps as parameters.
const maxLoggedBody = 64 << 10

// Redacted is what the access log stores in place of a secret value.
const Redacted = "[redacted]"

// accessLog records every API request in this node's log store (SPEC §4.9): one record per
// call, on the node the client called. A request another node forwarded here (signed with
// the cluster key) was already recorded there, so it is skipped; internal calls are not API
// requests. It runs outside the route's own middleware so that 401s, 404s and 413s are
// recorded too, and it only looks at the body the handler actually read, so it never reads
// an oversize body itself.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		// Without a cluster key anyone could sign a request as forwarded and go unrecorded;
		// then a forwarded request is recorded on both nodes.
		forwarded := req.Header.Get(ForwardedHeader) != "" && s.cfg.Raft.Authenticated() && s.cfg.Raft.VerifyRequest(req) == nil
		if s.cfg.Logs == nil || strings.HasPrefix(req.URL.Path, "/internal/") || forwarded {
			return next(c)
		}
		start := s.now()
		body := &capture{r: req.Body}
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = body
		}
		resp := &errorCapture{ResponseWriter: c.Response().Writer}
		c.Response().Writer = resp
		err := next(c)
		c.Response().Writer = resp.ResponseWriter
		end := s.now()

		status := c.Response().Status
		var exception string
		if err != nil {
			p, _ := toProblem(err)
			status, exception = p.Status, p.Code+": "+p.Detail
		} else if status >= 400 {
			// A problem written by the proxy (a forwarded request's answer from the leader).
			var p Problem
			if json.Unmarshal(resp.body.Bytes(), &p) == nil && p.Code != "" {
				exception = p.Code + ": " + p.Detail
			} else {
				exception = http.StatusText(status)
			}
		}
		rec := &logs.AccessRecord{
			Action:       s.actionOf(req.Method, c.Path(), status),
			URL:          redactedURL(req.URL),
			HTTPMethod:   req.Method,
			Parameters:   parameters(req, c, body),
			IP:           c.RealIP(),
			Status:       status,
			RequestTime:  start,
			ResponseTime: end,
			DurationMs:   float64(end.Sub(start).Microseconds()) / 1000,
			Exception:    exception,
		}
		if u := currentUser(c); u != nil {
			rec.Username = u.Username
		} else if name, ok := rec.Parameters["username"].(string); ok && c.Path() == "/api/v1/auth/login" {
			rec.Username = name
		}
		s.cfg.Logs.AppendAccess(rec)
		return err
	}
}

// actionOf names a request by its route's summary, like JetLinks' 操作 column.
func (s *Server) actionOf(method, path string, status int) string {
	s.routeIndexOnce.Do(func() {
		s.routeIndex = map[string]*Route{}
		for _, r := range s.routes {
			s.routeIndex[r.Method+" "+r.Path] = r
		}
	})
	if r, ok := s.routeIndex[method+" "+path]; ok {
		return r.Summary
	}
	if status == http.StatusMethodNotAllowed {
		return "Method not allowed"
	}
	return "Unknown route"
}

// parameters are the request's query parameters and its JSON body, with every secret
// replaced by Redacted. Other bodies are described, not stored.
func parameters(req *http.Request, c echo.Context, body *capture) map[string]any {
	out := map[string]any{}
	for k, v := range req.URL.Query() {
		if isSecretName(k) {
			out[k] = Redacted
		} else if len(v) == 1 {
			out[k] = v[0]
		} else {
			out[k] = v
		}
	}
	for _, name := range c.ParamNames() {
		out[name] = c.Param(name)
	}
	n, truncated, recorded := body.snapshot()
	if n == 0 {
		return out
	}
	mt, _, _ := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	isJSON := mt == "" || mt == echo.MIMEApplicationJSON || strings.HasSuffix(mt, "+json")
	if !isJSON || truncated {
		out["body"] = map[string]any{"contentType": mt, "bytes": n, "recorded": false}
		return out
	}
	var v any
	if err := json.Unmarshal(recorded, &v); err != nil {
		out["body"] = map[string]any{"bytes": n, "recorded": false, "reason": "not valid JSON"}
		return out
	}
	v = redact(v)
	if m, ok := v.(map[string]any); ok {
		for k, val := range m {
			if _, taken := out[k]; !taken {
				out[k] = val
			}
		}
		return out
	}
	out["body"] = v
	return out
}

// redact replaces the value of every secret-named key, at any depth.
func redact(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if isSecretName(k) {
				t[k] = Redacted
			} else {
				t[k] = redact(val)
			}
		}
	case []any:
		for i := range t {
			t[i] = redact(t[i])
		}
	}
	return v
}

func redactedURL(u *url.URL) string {
	q := u.Query()
	if len(q) == 0 {
		return u.Path
	}
	for k := range q {
		if isSecretName(k) {
			q[k] = []string{Redacted}
		}
	}
	return u.Path + "?" + q.Encode()
}

var (
	secretNamesOnce sync.Once
	secretNames     map[string]bool
)

// isSecretName reports whether a parameter of this name holds a secret: every field tagged
// secret in any resource, and the names of credentials in general. Names compare as
// encoding/json matches them (Unicode case folding: "pasſword" decodes into Password).
func isSecretName(name string) bool {
	secretNamesOnce.Do(func() {
		secretNames = map[string]bool{"password": true, "token": true, "key": true, "privatekey": true, "secret": true,
			"authorization": true, "accesstoken": true, "secretkey": true,
			"signature": true} // a firmware download link's: whoever reads it may download until it expires
		for _, k := range resource.Kinds() {
			collectSecretNames(reflect.TypeOf(k.New()).Elem(), secretNames)
		}
	})
	if secretNames[strings.ToLower(name)] {
		return true
	}
	for secret := range secretNames {
		if strings.EqualFold(secret, name) {
			return true
		}
	}
	return false
}

func collectSecretNames(t reflect.Type, into map[string]bool) {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice:
		collectSecretNames(t.Elem(), into)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Tag.Get("secret") == "true" {
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				into[strings.ToLower(name)] = true
				continue
			}
			if f.Type != reflect.TypeOf(time.Time{}) {
				collectSecretNames(f.Type, into)
			}
		}
	}
}

// capture keeps the first maxLoggedBody bytes of what the handler reads from the body.
// A forwarded request's body may still be read by the proxy's transport after the leader
// has answered (an upload refused before its file was read), so it is locked.
type capture struct {
	r         io.ReadCloser
	mu        sync.Mutex
	buf       bytes.Buffer
	n         int64
	truncated bool
}

// snapshot returns what was read so far.
func (c *capture) snapshot() (n int64, truncated bool, recorded []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.truncated, bytes.Clone(c.buf.Bytes())
}

func (c *capture) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > 0 {
		c.n += int64(n)
		if room := maxLoggedBody - c.buf.Len(); room > 0 {
			c.buf.Write(p[:min(n, room)])
		}
		if c.n > maxLoggedBody {
			c.truncated = true
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		c.truncated = true
	}
	return n, err
}

func (c *capture) Close() error { return c.r.Close() }

// errorCapture keeps the start of an error response's body, so that a problem relayed from
// the leader is recorded with its code.
type errorCapture struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *errorCapture) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (w *errorCapture) Write(p []byte) (int, error) {
	if w.status >= 400 && w.body.Len() < 4096 {
		w.body.Write(p[:min(len(p), 4096-w.body.Len())])
	}
	return w.ResponseWriter.Write(p)
}

// Flush and Unwrap keep streaming responses and http.ResponseController working.
func (w *errorCapture) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *errorCapture) Unwrap() http.ResponseWriter { return w.ResponseWriter }
