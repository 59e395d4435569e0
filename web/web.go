package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed console
var files embed.FS

// Prefix is where the console's files are served; "/" serves its page.
const Prefix = "/console/"

// asset is one embedded file with what its response needs.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// assets are read once: the files never change while the binary runs, and a content hash
// is a better ETag than the zero modification time embed gives every file.
var assets = mustLoad()

func mustLoad() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(files, "console", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		out["/"+p] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("web: embedded console unreadable: " + err.Error())
	}
	return out
}

// contentSecurity keeps the console to its own origin: scripts, styles and API calls
// come only from the node that served it (no inline script an injected value could run).
const contentSecurity = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Handler serves the console's page at "/" and its files under Prefix, and hands every
// other request to next (the API).
func Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p != "/" && p != "/index.html" && !strings.HasPrefix(p, Prefix) {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if p == "/" || p == "/index.html" {
			p = Prefix + "index.html"
		}
		a, ok := assets[path.Clean(p)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("ETag", a.etag)
		// Revalidated on every load, so a node upgraded in place serves its new console at
		// once; an unchanged file costs a 304.
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", contentSecurity)
		h.Set("Referrer-Policy", "no-referrer")
		if match := r.Header.Get("If-None-Match"); match != "" && match == a.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(a.body)
	})
}
