package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/labstack/echo/v4"
)

// FuzzAccessLogParameters records arbitrary requests' parameters as the access log does.
// Whatever the query and body hold, recording never panics and no secret-named key keeps
// its value, at any depth, in the parameters or in the recorded URL.
func FuzzAccessLogParameters(f *testing.F) {
	for _, s := range []struct{ query, contentType, body string }{
		{"page=2&q=web", "application/json", `{"name":"n","password":"pw","configuration":{"appSecret":"s","cluster":[{"configuration":{"password":"p"}}]}}`},
		{"token=abc&Password=x", "", `[{"key":"-----BEGIN PRIVATE KEY-----"},{"aesKey":"k"}]`},
		{"", "application/merge-patch+json", `{"pasſword":"folded","PASSWORD":"upper","secureKey":{"nested":"object"}}`},
		{"a=1&a=2", "text/plain", "password=plain"},
		{"", "application/json", `"just a string"`},
		{"%zz", "application/json", `{"password":`},
	} {
		f.Add(s.query, s.contentType, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, query, contentType string, body []byte) {
		req := httptest.NewRequest("POST", "/api/v1/things", nil)
		req.URL.RawQuery = query
		req.Header.Set(echo.HeaderContentType, contentType)
		c := echo.New().NewContext(req, httptest.NewRecorder())
		capture := &capture{r: io.NopCloser(bytes.NewReader(body))}
		_, _ = io.Copy(io.Discard, capture)

		params := parameters(req, c, capture)
		if path := secretValueIn(params, "parameters"); path != "" {
			t.Fatalf("secret kept at %s: query %q, body %q", path, query, body)
		}
		// What the store receives is the JSON of the parameters.
		if _, err := json.Marshal(params); err != nil {
			t.Fatalf("parameters do not encode: %v", err)
		}
		recorded, err := url.Parse(redactedURL(req.URL))
		if err != nil {
			return // an unparsable query is recorded as its path only
		}
		for k, vs := range recorded.Query() {
			if isSecretName(k) && (len(vs) != 1 || vs[0] != Redacted) {
				t.Fatalf("secret query parameter %q kept in the URL %q", k, recorded)
			}
		}
	})
}

// secretValueIn returns the path of a secret-named key whose value is not Redacted, or "".
func secretValueIn(v any, path string) string {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if isSecretName(k) {
				if val != Redacted {
					return path + "." + k
				}
				continue
			}
			if p := secretValueIn(val, path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for _, val := range t {
			if p := secretValueIn(val, path+"[]"); p != "" {
				return p
			}
		}
	}
	return ""
}

// The fuzz target's oracle sees a secret that was not redacted, however deep.
func TestSecretValueInFindsSecrets(t *testing.T) {
	var v any
	if err := json.Unmarshal([]byte(`{"a":[{"b":{"appSecret":"s"}}]}`), &v); err != nil {
		t.Fatal(err)
	}
	if p := secretValueIn(v, "body"); p != "body.a[].b.appSecret" {
		t.Fatalf("secretValueIn = %q", p)
	}
	if p := secretValueIn(redact(v), "body"); p != "" {
		t.Fatalf("after redact: %q", p)
	}
}
