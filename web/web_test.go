package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlerServesTheConsoleAndPassesTheRest(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewServer(Handler(api))
	defer srv.Close()

	get := func(path string, hdr ...string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	page := get("/")
	body, _ := io.ReadAll(page.Body)
	if page.StatusCode != 200 || !strings.Contains(string(body), `src="/console/js/app.js"`) {
		t.Fatalf("GET / = %d %q", page.StatusCode, body)
	}
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("no content security policy: %q", csp)
	}
	js := get("/console/js/app.js")
	if ct := js.Header.Get("Content-Type"); js.StatusCode != 200 || !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("app.js: %d %s (a module must be served as JavaScript)", js.StatusCode, ct)
	}
	if again := get("/console/js/app.js", "If-None-Match", js.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
		t.Errorf("unchanged file revalidated with %d, want 304", again.StatusCode)
	}
	if css := get("/console/app.css"); !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") {
		t.Errorf("app.css served as %q", css.Header.Get("Content-Type"))
	}
	for _, p := range []string{"/console/nope.js", "/console/../web.go", "/console/"} {
		if r := get(p); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, r.StatusCode)
		}
	}
	for _, p := range []string{"/api/v1/health", "/metrics", "/consolex"} {
		if r := get(p); r.StatusCode != http.StatusTeapot {
			t.Errorf("GET %s = %d: not handed to the API", p, r.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", resp.StatusCode)
	}
}

// TestEveryModuleIsEmbedded: every module app.js imports is in the binary.
func TestEveryModuleIsEmbedded(t *testing.T) {
	app := string(assets["/console/js/app.js"].body)
	for _, line := range strings.Split(app, "\n") {
		if i := strings.Index(line, "from './"); i >= 0 {
			rel := line[i+len("from './"):]
			rel = rel[:strings.IndexByte(rel, '\'')]
			if _, ok := assets["/console/js/"+rel]; !ok {
				t.Errorf("app.js imports %s, which is not embedded", rel)
			}
		}
	}
}
