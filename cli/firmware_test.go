package cli

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
)

const testToken = "test-token"

// execCLI runs the command line against addr with the test token, as a user would.
func execCLI(t *testing.T, ctx context.Context, addr string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	t.Setenv("LINKOPS_TOKEN", testToken)
	t.Setenv("LINKOPS_TOKEN_FILE", filepath.Join(t.TempDir(), "token.json"))
	t.Setenv("LINKOPS_ADDR", "")
	var out, errOut bytes.Buffer
	root := NewRoot(strings.NewReader(""), &out, &errOut)
	root.SetArgs(append(args, "--addr", addr))
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// authorized refuses a request without the test token as the API does.
func authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		writeProblem(w, http.StatusUnauthorized, "unauthorized", "no token")
		return false
	}
	return true
}

func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "code": code, "detail": detail})
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFileSign(t *testing.T) {
	path := writeTemp(t, "abc.bin", []byte("abc"))
	for method, want := range map[string]string{
		// The FIPS 180-2 and RFC 1321 test vectors for "abc".
		"sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"md5":    "900150983cd24fb0d6963f7d28e17f72",
	} {
		sign, size, err := fileSign(path, method)
		if err != nil || sign != want || size != 3 {
			t.Errorf("fileSign(%s) = %q, %d, %v; want %q, 3", method, sign, size, err, want)
		}
	}
	if _, _, err := fileSign(path, "crc32"); !errors.Is(err, ErrSignMethod) {
		t.Errorf("fileSign(crc32): %v; want ErrSignMethod", err)
	}
}

// uploadPart is one part of a multipart request as the server read it.
type uploadPart struct {
	name, filename string
	value          string // text fields
	size           int64  // the file
	sha256, md5    string
}

// recordingUpload answers POST /api/v1/firmwares as the API does, keeping the parts in
// the order they arrived.
type recordingUpload struct {
	mu            sync.Mutex
	parts         []uploadPart
	contentLength int64
	contentType   string
}

func (u *recordingUpload) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r) {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/firmwares" {
		writeProblem(w, http.StatusNotFound, "not_found", r.Method+" "+r.URL.Path)
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.contentLength, u.contentType = r.ContentLength, r.Header.Get("Content-Type")
	mr, err := r.MultipartReader()
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "bad_form", err.Error())
		return
	}
	rec := map[string]any{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "bad_form", err.Error())
			return
		}
		got := uploadPart{name: p.FormName(), filename: p.FileName()}
		if got.name == "file" {
			s, m := sha256.New(), md5.New()
			got.size, err = io.Copy(io.MultiWriter(s, m), p)
			got.sha256, got.md5 = hex.EncodeToString(s.Sum(nil)), hex.EncodeToString(m.Sum(nil))
			rec["size"], rec["sha256"] = got.size, got.sha256
		} else {
			var b []byte
			b, err = io.ReadAll(p)
			got.value = string(b)
			rec[got.name] = got.value
		}
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "bad_form", err.Error())
			return
		}
		u.parts = append(u.parts, got)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(rec)
}

func TestFirmwareUploadStreamsFieldsThenFile(t *testing.T) {
	u := &recordingUpload{}
	srv := httptest.NewServer(u)
	defer srv.Close()
	content := randomBytes(t, 3<<20+17)
	path := writeTemp(t, "meter-1.2.0.bin", content)
	sum := sha256.Sum256(content)

	stdout, stderr, err := execCLI(t, context.Background(), srv.URL, "firmware", "upload", path, "--product", "meter",
		"--version", "1.2.0", "--order", "120", "--id", "fw-120", "--description", "clock fix",
		"--property", "mode=full", "--property", "region=eu=west", "-o", "json")
	if err != nil {
		t.Fatalf("upload: %v\nstderr: %s", err, stderr)
	}
	if stderr != "" {
		t.Errorf("stderr is not a terminal, so it should stay empty (no progress bar); got %q", stderr)
	}
	want := []struct{ name, value string }{
		{"id", "fw-120"}, {"name", "meter-1.2.0.bin"}, {"productId", "meter"}, {"version", "1.2.0"},
		{"versionOrder", "120"}, {"signMethod", "sha256"}, {"sign", hex.EncodeToString(sum[:])},
		{"description", "clock fix"}, {"properties", `[{"id":"mode","value":"full"},{"id":"region","value":"eu=west"}]`},
		{"file", ""},
	}
	if len(u.parts) != len(want) {
		t.Fatalf("the server read %d parts %v; want %d", len(u.parts), u.parts, len(want))
	}
	for i, w := range want {
		if p := u.parts[i]; p.name != w.name || p.value != w.value {
			t.Errorf("part %d = %s=%q; want %s=%q", i, p.name, p.value, w.name, w.value)
		}
	}
	file := u.parts[len(u.parts)-1]
	if file.filename != "meter-1.2.0.bin" || file.size != int64(len(content)) || file.sha256 != hex.EncodeToString(sum[:]) {
		t.Errorf("file part: filename %q, %d bytes, sha256 %s; want meter-1.2.0.bin, %d bytes, %x", file.filename, file.size, file.sha256, len(content), sum)
	}
	// A body built in memory would carry its length; a streamed one goes chunked.
	if u.contentLength != -1 || !strings.HasPrefix(u.contentType, "multipart/form-data; boundary=") {
		t.Errorf("request Content-Length %d, Content-Type %q; want a streamed (chunked) multipart/form-data body", u.contentLength, u.contentType)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || out["id"] != "fw-120" || out["size"] != float64(len(content)) {
		t.Errorf("-o json printed %q (%v); want the created firmware", stdout, err)
	}
}

func TestFirmwareUploadMD5AndTable(t *testing.T) {
	u := &recordingUpload{}
	srv := httptest.NewServer(u)
	defer srv.Close()
	content := []byte("firmware image")
	path := writeTemp(t, "image.bin", content)

	stdout, _, err := execCLI(t, context.Background(), srv.URL, "firmware", "upload", path, "--product", "meter",
		"--version", "2.0", "--order", "2", "--name", "Image", "--sign-method", "MD5")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]string{}
	var names []string
	for _, p := range u.parts {
		byName[p.name] = p.value
		names = append(names, p.name)
	}
	if got := strings.Join(names, ","); got != "name,productId,version,versionOrder,signMethod,sign,file" {
		t.Errorf("parts %s; want the unset id, description and properties left out", got)
	}
	if sum := md5.Sum(content); byName["signMethod"] != "md5" || byName["sign"] != hex.EncodeToString(sum[:]) || byName["name"] != "Image" {
		t.Errorf("fields %v; want signMethod md5, sign %x, name Image", byName, sum)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "SIGN METHOD") || !strings.Contains(lines[1], "Image") || !strings.Contains(lines[1], "md5") {
		t.Errorf("table:\n%s", stdout)
	}
}

// TestFirmwareUploadRefused shows the API's refusals as the other commands do, whether the
// node read the file first (sign_mismatch) or refused before it (413, 503, 401).
func TestFirmwareUploadRefused(t *testing.T) {
	content := randomBytes(t, 4<<20)
	path := writeTemp(t, "big.bin", content)
	for _, tc := range []struct {
		status   int
		code     string
		readBody bool
	}{
		{http.StatusBadRequest, "sign_mismatch", true},
		{http.StatusConflict, "version_order_exists", false},
		{http.StatusRequestEntityTooLarge, "body_too_large", false},
		{http.StatusServiceUnavailable, "blob_store_unavailable", false},
		{http.StatusServiceUnavailable, "blob_store_unavailable", true},
	} {
		t.Run(fmt.Sprintf("%d %s read=%v", tc.status, tc.code, tc.readBody), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.readBody {
					_, _ = io.Copy(io.Discard, r.Body)
				}
				writeProblem(w, tc.status, tc.code, "refused by the test")
			}))
			defer srv.Close()
			_, _, err := execCLI(t, context.Background(), srv.URL, "firmware", "upload", path, "--product", "p", "--version", "1", "--order", "1")
			var p *client.Problem
			if !errors.As(err, &p) || p.Status != tc.status || p.Code != tc.code {
				t.Fatalf("error %v; want the problem %d %s", err, tc.status, tc.code)
			}
			if want := fmt.Sprintf("%d %s: refused by the test", tc.status, tc.code); err.Error() != want {
				t.Errorf("error text %q; want %q", err.Error(), want)
			}
		})
	}
	t.Run("no token", func(t *testing.T) {
		srv := httptest.NewServer(&recordingUpload{})
		defer srv.Close()
		t.Setenv("LINKOPS_TOKEN", "")
		var out, errOut bytes.Buffer
		t.Setenv("LINKOPS_TOKEN_FILE", filepath.Join(t.TempDir(), "none.json"))
		root := NewRoot(strings.NewReader(""), &out, &errOut)
		root.SetArgs([]string{"firmware", "upload", path, "--product", "p", "--version", "1", "--order", "1", "--addr", srv.URL})
		var p *client.Problem
		if err := root.Execute(); !errors.As(err, &p) || p.Status != http.StatusUnauthorized {
			t.Fatalf("error %v; want 401", err)
		}
	})
}

func TestFirmwareUploadFlags(t *testing.T) {
	path := writeTemp(t, "x.bin", []byte("x"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--version", "1", "--order", "1"}, `required flag(s) "product" not set`},
		{[]string{"--product", "p", "--version", "1", "--order", "1", "--sign-method", "crc"}, "--sign-method must be md5 or sha256"},
		{[]string{"--product", "p", "--version", "1", "--order", "1", "--property", "novalue"}, `--property "novalue": want id=value`},
	} {
		_, _, err := execCLI(t, context.Background(), "http://127.0.0.1:1", append([]string{"firmware", "upload", path}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("upload %v: %v; want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// firmwareFileServer serves one firmware's file as the API does (Range, ETag the sha256)
// and its record, remembering the Range of each file request.
type firmwareFileServer struct {
	content     []byte
	etag        string // what the ETag says; the content's sha256 unless set
	ignoreRange bool

	mu     sync.Mutex
	ranges []string
}

func (s *firmwareFileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r) {
		return
	}
	sum := sha256.Sum256(s.content)
	switch r.URL.Path {
	case "/api/v1/firmwares/fw1":
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "fw1", "size": len(s.content), "sha256": hex.EncodeToString(sum[:])})
	case "/api/v1/firmwares/fw1/file":
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.mu.Unlock()
		etag := s.etag
		if etag == "" {
			etag = `"` + hex.EncodeToString(sum[:]) + `"`
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/octet-stream")
		if s.ignoreRange {
			_, _ = w.Write(s.content)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.content))
	default:
		writeProblem(w, http.StatusNotFound, "not_found", r.URL.Path)
	}
}

func TestFirmwareDownload(t *testing.T) {
	content := randomBytes(t, 1<<20+3)
	for _, tc := range []struct {
		name        string
		partial     []byte // the file before the download; nil: none
		resume      bool
		ignoreRange bool
		wantRange   string
	}{
		{name: "fresh", wantRange: ""},
		{name: "fresh over an old file", partial: []byte("old content"), wantRange: ""},
		{name: "resume", partial: content[:1000], resume: true, wantRange: "bytes=1000-"},
		{name: "resume without a file", resume: true, wantRange: ""},
		{name: "resume a whole file", partial: content, resume: true, wantRange: fmt.Sprintf("bytes=%d-", len(content))},
		{name: "resume where the server sends it all", partial: content[:1000], resume: true, ignoreRange: true, wantRange: "bytes=1000-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := &firmwareFileServer{content: content, ignoreRange: tc.ignoreRange}
			srv := httptest.NewServer(fs)
			defer srv.Close()
			path := filepath.Join(t.TempDir(), "fw.bin")
			if tc.partial != nil {
				if err := os.WriteFile(path, tc.partial, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"firmware", "download", "fw1", "-o", path}
			if tc.resume {
				args = append(args, "--resume")
			}
			stdout, _, err := execCLI(t, context.Background(), srv.URL, args...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("file holds %d bytes (%v); want the firmware's %d", len(got), err, len(content))
			}
			if len(fs.ranges) != 1 || fs.ranges[0] != tc.wantRange {
				t.Errorf("file requests with Range %q; want one with %q", fs.ranges, tc.wantRange)
			}
			if sum := sha256.Sum256(content); !strings.Contains(stdout, hex.EncodeToString(sum[:])) {
				t.Errorf("stdout %q; want it to name the checked sha256", stdout)
			}
		})
	}
}

func TestFirmwareDownloadToStdout(t *testing.T) {
	content := randomBytes(t, 70000)
	srv := httptest.NewServer(&firmwareFileServer{content: content})
	defer srv.Close()
	stdout, _, err := execCLI(t, context.Background(), srv.URL, "firmware", "download", "fw1")
	if err != nil || stdout != string(content) {
		t.Fatalf("download to stdout: %d bytes, %v; want the %d bytes of the firmware", len(stdout), err, len(content))
	}
	if _, _, err := execCLI(t, context.Background(), srv.URL, "firmware", "download", "fw1", "--resume"); err == nil {
		t.Error("--resume to standard output: no error; want one asking for -o FILE")
	}
}

// TestFirmwareDownloadMismatch fails a file whose sha256 is not the server's, whether the
// bytes sent or the partial file kept were wrong. A file the download wrote to is removed;
// one it did not touch (nothing was left to fetch) is left as it was.
func TestFirmwareDownloadMismatch(t *testing.T) {
	content := randomBytes(t, 50000)
	other := sha256.Sum256([]byte("another firmware"))
	for _, tc := range []struct {
		name    string
		etag    string
		partial []byte
	}{
		{name: "wrong bytes sent", etag: `"` + hex.EncodeToString(other[:]) + `"`},
		{name: "damaged partial file", partial: append([]byte("XXXX"), content[4:2000]...)},
		{name: "whole file damaged", partial: append([]byte("XXXX"), content[4:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&firmwareFileServer{content: content, etag: tc.etag})
			defer srv.Close()
			path := filepath.Join(t.TempDir(), "fw.bin")
			args := []string{"firmware", "download", "fw1", "-o", path}
			if tc.partial != nil {
				if err := os.WriteFile(path, tc.partial, 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--resume")
			}
			_, _, err := execCLI(t, context.Background(), srv.URL, args...)
			if !errors.Is(err, ErrChecksumMismatch) {
				t.Fatalf("error %v; want ErrChecksumMismatch", err)
			}
			_, statErr := os.Stat(path)
			if untouched := tc.name == "whole file damaged"; untouched != (statErr == nil) {
				t.Errorf("file after the failed check: %v (untouched by the download: %v); error %v", statErr, untouched, err)
			}
		})
	}
}

func TestFirmwareListFilter(t *testing.T) {
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		_ = json.NewEncoder(w).Encode(map[string]any{"items": []any{map[string]any{"id": "fw1", "name": "meter", "productId": "meter",
			"version": "1.2.0", "versionOrder": 120, "size": 1024, "signMethod": "sha256"}}, "total": 1, "page": 1, "pageSize": 20})
	}))
	defer srv.Close()
	stdout, _, err := execCLI(t, context.Background(), srv.URL, "firmware", "list", "--product", "meter")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(query, "productId=meter") {
		t.Errorf("query %q; want productId=meter", query)
	}
	for _, want := range []string{"ID", "NAME", "PRODUCT", "VERSION", "ORDER", "SIZE", "SIGN METHOD", "1.2.0", "120", "1024"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
}
