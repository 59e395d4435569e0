package api

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/resource"
)

// decodeJSON reads a JSON body into v, answering malformed JSON and wrong types with a 400
// that names the field and oversize bodies with a 413.
func decodeJSON(c echo.Context, v any) error {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if ct != "" && !strings.HasPrefix(ct, echo.MIMEApplicationJSON) && !strings.HasSuffix(strings.Split(ct, ";")[0], "+json") {
		return problem(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json (got %q)", ct)
	}
	// Sized from Content-Length when there is one, so the body is read into one buffer
	// rather than a series of growing ones.
	var buf bytes.Buffer
	if n := c.Request().ContentLength; n > 0 && n <= MaxBatchBodyBytes { // the largest JSON body a route takes
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(c.Request().Body)
	body := buf.Bytes()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return problem(http.StatusBadRequest, "bad_request", "reading the body failed: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return problem(http.StatusBadRequest, "malformed_json", "the request body is empty; send a JSON object")
	}
	// json.Unmarshal, not a Decoder: it refuses a second value after the first, and does
	// not copy the body into a buffer of its own.
	if err := json.Unmarshal(body, v); err != nil {
		return jsonProblem(err)
	}
	c.Set(rawBodyKey, body)
	return nil
}

// rawBodyKey keeps the bytes of a decoded JSON body in the request context, so that a
// handler that must decode it afresh (an update retried after a concurrent change) need not
// encode it again first.
const rawBodyKey = "linkops.rawBody"

func jsonProblem(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return problem(http.StatusBadRequest, "malformed_json", "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			p := problem(http.StatusBadRequest, "malformed_json", "the body must be a JSON %s, not %s", typ.Type.Kind(), typ.Value)
			return p
		}
		p := problem(http.StatusBadRequest, "validation_failed", "field %s has the wrong type", field)
		p.Errors = resource.Errors{{Field: field, Message: fmt.Sprintf("must be %s, not %s", jsonTypeName(typ.Type.Kind().String()), typ.Value)}}
		return p
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem(http.StatusBadRequest, "malformed_json", "the JSON body ends too early")
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return problem(http.StatusBadRequest, "malformed_json", "the body is not valid JSON: %v", err)
}

func jsonTypeName(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	if strings.HasPrefix(goKind, "int") || strings.HasPrefix(goKind, "uint") || strings.HasPrefix(goKind, "float") {
		return "a number"
	}
	return goKind
}

// newID makes a server-side id: 20 lowercase hex characters.
func newID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ifMatch parses an If-Match header into a raft index: 0 when absent or "*".
func ifMatch(c echo.Context) (uint64, error) {
	h := strings.TrimSpace(c.Request().Header.Get("If-Match"))
	if h == "" || h == "*" {
		return 0, nil
	}
	h = strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	n, err := strconv.ParseUint(h, 10, 64)
	if err != nil || n == 0 {
		return 0, problem(http.StatusPreconditionFailed, "precondition_failed", "If-Match must be an ETag returned by this API, like \"42\"")
	}
	return n, nil
}

func setETag(c echo.Context, index uint64) {
	c.Response().Header().Set("ETag", fmt.Sprintf("%q", strconv.FormatUint(index, 10)))
}
