package api

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/linkops/linkops/auth"
	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/ota"
	"github.com/linkops/linkops/ota/blob"
	"github.com/linkops/linkops/resource"
)

// These tests drive the firmware and task routes through the real router, middleware and
// FSM, with raft reduced to applying each command in order on one node and the OTA side
// replaced by a recorder (the real one has its own tests): what they check is what the API
// decides before, instead of and after calling it.

// localRaft applies commands straight to an FSM, as a single leader would.
type localRaft struct {
	Raft // the methods these tests never reach
	mu   sync.Mutex
	fsm  *fsm.FSM
	idx  uint64
}

func (r *localRaft) Apply(_ context.Context, cmd []byte) (any, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idx++
	out := r.fsm.Apply(&raft.Log{Index: r.idx, Type: raft.LogCommand, Data: cmd})
	if err, ok := out.(error); ok {
		return nil, err
	}
	return out, nil
}

func (r *localRaft) State() raft.RaftState                     { return raft.Leader }
func (r *localRaft) Authenticated() bool                       { return false }
func (r *localRaft) VerifyRequest(*http.Request) error         { return nil }
func (r *localRaft) ReadIndex(context.Context) (uint64, error) { return r.fsm.AppliedIndex(), nil }
func (r *localRaft) WaitApplied(context.Context, uint64) error { return nil }
func (r *localRaft) LeaderReadIndex(context.Context) (uint64, error) {
	return r.fsm.AppliedIndex(), nil
}

// recordingOTA keeps blobs in memory and records what the API asked of it.
type recordingOTA struct {
	mu      sync.Mutex
	uploads int
	removed []string
	blobs   map[string][]byte
	// fail makes Upload fail after reading the file.
	fail   error
	pushed []ota.Push
}

func (o *recordingOTA) Upload(_ context.Context, key string, r io.Reader, max int64) (ota.Upload, error) {
	o.mu.Lock()
	o.uploads++
	o.mu.Unlock()
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return ota.Upload{}, err
	}
	if int64(len(b)) > max {
		return ota.Upload{}, fmt.Errorf("%w: more than %d bytes", ota.ErrTooLarge, max)
	}
	if o.fail != nil {
		return ota.Upload{}, o.fail
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.blobs == nil {
		o.blobs = map[string][]byte{}
	}
	o.blobs[key] = b
	m, s := md5.Sum(b), sha256.Sum256(b)
	return ota.Upload{Key: key, Size: int64(len(b)), MD5: hex.EncodeToString(m[:]), SHA256: hex.EncodeToString(s[:])}, nil
}

func (o *recordingOTA) Remove(_ context.Context, fw *resource.Firmware) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.removed = append(o.removed, fw.BlobKey)
	delete(o.blobs, fw.BlobKey)
	return nil
}

func (o *recordingOTA) Serve(w http.ResponseWriter, r *http.Request, fw *resource.Firmware) error {
	o.mu.Lock()
	b, ok := o.blobs[fw.BlobKey]
	o.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", blob.ErrNotFound, fw.ID)
	}
	w.Header().Set("ETag", `"`+fw.SHA256+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	return nil
}

func (o *recordingOTA) ServeBlob(w http.ResponseWriter, _ *http.Request, key string) error {
	o.mu.Lock()
	b, ok := o.blobs[key]
	o.mu.Unlock()
	if !ok {
		return blob.ErrNotFound
	}
	_, err := w.Write(b)
	return err
}

func (o *recordingOTA) CheckSignature(_, expires, signature string) error {
	switch {
	case signature != "good":
		return ota.ErrBadSignature
	case expires == "0":
		return ota.ErrExpired
	}
	return nil
}

func (o *recordingOTA) Push(_ context.Context, pushes []ota.Push) []ota.PushResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pushed = append(o.pushed, pushes...)
	out := make([]ota.PushResult, len(pushes))
	for i, p := range pushes {
		out[i] = ota.PushResult{DeviceID: p.DeviceID, Outcome: ota.PushOffline}
	}
	return out
}

func (o *recordingOTA) state() (uploads int, removed []string, blobs int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.uploads, append([]string(nil), o.removed...), len(o.blobs)
}

type otaHarness struct {
	t     *testing.T
	s     *Server
	raft  *localRaft
	ota   *recordingOTA
	token string
}

// newOTAHarness builds a server on an initialized FSM with product p1 and devices d1, d2.
// A nil o leaves the server without an OTA side.
func newOTAHarness(t *testing.T, o *recordingOTA, mutate ...func(*Config)) *otaHarness {
	t.Helper()
	f := fsm.New(slog.New(slog.DiscardHandler))
	r := &localRaft{fsm: f}
	now := time.Now().UTC()
	key := auth.NewKey()
	h := &otaHarness{t: t, raft: r, ota: o}
	h.apply(fsm.Encode(fsm.InitType, fsm.InitRequest{TokenKey: key, Now: now,
		Admin: &resource.User{Meta: resource.Meta{ID: "admin"}, Username: "admin", Role: resource.RoleAdmin, PasswordSetAt: now}}))
	h.apply(fsm.NewUpsert(resource.Products, &resource.Product{Meta: resource.Meta{ID: "p1"}, Name: "P1"}, true, 0, now))
	for _, id := range []string{"d1", "d2"} {
		h.apply(fsm.NewUpsert(resource.Devices, &resource.Device{Meta: resource.Meta{ID: id}, Name: id, ProductID: "p1"}, true, 0, now))
	}
	cfg := Config{NodeID: "n1", Raft: r, Store: f.Store(), Logger: slog.New(slog.DiscardHandler),
		Registry: prometheus.NewRegistry(), FirmwareMaxBytes: 64 << 20}
	if o != nil {
		cfg.OTA = o
	}
	for _, m := range mutate {
		m(&cfg)
	}
	h.s = New(cfg)
	var err error
	if h.token, _, err = auth.Issue(key, "admin", now, now, time.Hour); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *otaHarness) apply(cmd []byte, err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.raft.Apply(context.Background(), cmd); err != nil {
		h.t.Fatal(err)
	}
}

// answer is a response as a client reads it.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", a.status, err, a.body)
	}
	return m
}

// fields lists the problem's error fields.
func (a answer) fields(t *testing.T) []string {
	var p Problem
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatalf("answer %d is not a problem: %s", a.status, a.body)
	}
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	return out
}

func (a answer) code(t *testing.T) string {
	t.Helper()
	var p Problem
	_ = json.Unmarshal(a.body, &p)
	return p.Code
}

func (h *otaHarness) do(method, path, contentType string, body io.Reader, token bool) answer {
	h.t.Helper()
	req := httptest.NewRequest(method, "http://iot.example:8844"+path, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	rec := httptest.NewRecorder()
	h.s.Handler().ServeHTTP(rec, req)
	return answer{rec.Code, rec.Header(), rec.Body.Bytes()}
}

func (h *otaHarness) doJSON(method, path string, body any) answer {
	h.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	return h.do(method, path, "application/json", r, true)
}

// form is a multipart upload: fields in order, then the file part when file is not nil,
// then any trailing fields.
type form struct {
	fields   [][2]string
	file     []byte
	trailing [][2]string
}

func (f form) encode(t *testing.T) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, kv := range f.fields {
		_ = w.WriteField(kv[0], kv[1])
	}
	if f.file != nil {
		fw, err := w.CreateFormFile("file", "fw.bin")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write(f.file)
	}
	for _, kv := range f.trailing {
		_ = w.WriteField(kv[0], kv[1])
	}
	_ = w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

// countingReader counts what the server read of a body.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (h *otaHarness) upload(f form) (answer, *countingReader) {
	h.t.Helper()
	body, ct := f.encode(h.t)
	cr := &countingReader{r: bytes.NewReader(body)}
	return h.do(http.MethodPost, "/api/v1/firmwares", ct, cr, true), cr
}

func fwFields(id string, order int, extra ...[2]string) [][2]string {
	out := [][2]string{{"id", id}, {"name", "Firmware " + id}, {"productId", "p1"}, {"version", "1." + fmt.Sprint(order)},
		{"versionOrder", fmt.Sprint(order)}, {"signMethod", "md5"}}
	return append(out, extra...)
}

func md5hex(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

// TestFirmwareFieldsCheckedBeforeTheFile: every refusal the fields alone decide comes
// before the file is read, so a large upload with a bad field fails at once, with the
// fields named, and the blob store never sees it.
func TestFirmwareFieldsCheckedBeforeTheFile(t *testing.T) {
	o := &recordingOTA{}
	h := newOTAHarness(t, o)
	file := bytes.Repeat([]byte("firmware"), 1<<20) // 8 MiB
	if a, _ := h.upload(form{fields: fwFields("taken", 7), file: []byte("x")}); a.status != http.StatusCreated {
		t.Fatalf("seed upload: %d %s", a.status, a.body)
	}
	for name, tc := range map[string]struct {
		fields [][2]string
		status int
		code   string
		want   []string
	}{
		"bad fields": {[][2]string{{"productId", "p1"}, {"version", "1.0"}, {"versionOrder", "seven"}, {"signMethod", "crc32"}, {"properties", "{not json"}},
			400, "validation_failed", []string{"versionOrder", "properties", "name", "signMethod"}},
		"bad sign":        {fwFields("f1", 1, [2]string{"sign", "xyz"}), 400, "validation_failed", []string{"sign"}},
		"unknown field":   {fwFields("f1", 1, [2]string{"size", "12"}), 400, "validation_failed", []string{"size"}},
		"id exists":       {fwFields("taken", 8), 409, "already_exists", nil},
		"no such product": {append(fwFields("f1", 1), [2]string{"productId", "nope"}), 400, "validation_failed", []string{"productId"}},
		"order taken":     {fwFields("f1", 7), 409, "version_order_exists", []string{"versionOrder"}},
	} {
		t.Run(name, func(t *testing.T) {
			a, read := h.upload(form{fields: tc.fields, file: file})
			if a.status != tc.status || a.code(t) != tc.code {
				t.Fatalf("answer %d %s, want %d %s", a.status, a.body, tc.status, tc.code)
			}
			if got := a.fields(t); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("fields %v, want %v", got, tc.want)
			}
			if read.n > 1<<20 {
				t.Errorf("the server read %d bytes of the body before refusing it", read.n)
			}
		})
	}
	if uploads, _, _ := o.state(); uploads != 1 {
		t.Errorf("Upload called %d times; only the seed upload should reach the store", uploads)
	}

	// Not a form, and a form without its file.
	a := h.doJSON(http.MethodPost, "/api/v1/firmwares", map[string]any{"name": "x"})
	if a.status != http.StatusUnsupportedMediaType || a.code(t) != "unsupported_media_type" || !strings.Contains(a.json(t)["detail"].(string), "file") {
		t.Errorf("JSON create: %d %s", a.status, a.body)
	}
	a, _ = h.upload(form{fields: fwFields("f2", 2)})
	if a.status != http.StatusBadRequest || fmt.Sprint(a.fields(t)) != "[file]" {
		t.Errorf("no file part: %d %s", a.status, a.body)
	}
	if uploads, _, _ := o.state(); uploads != 1 {
		t.Errorf("Upload called %d times", uploads)
	}
}

// TestFirmwareUpload: a good upload is recorded with its computed sign and file fields, is
// shown with its URL and without its blob key, keeps its file across a PUT, and takes its
// blob along when deleted.
func TestFirmwareUpload(t *testing.T) {
	o := &recordingOTA{}
	h := newOTAHarness(t, o)
	file := []byte("the firmware image")
	props := `[{"id":"mode","name":"Mode","value":"fast"}]`
	a, _ := h.upload(form{fields: fwFields("f1", 1, [2]string{"properties", props}, [2]string{"description", "first"}), file: file})
	if a.status != http.StatusCreated {
		t.Fatalf("upload: %d %s", a.status, a.body)
	}
	got := a.json(t)
	if got["sign"] != md5hex(file) || got["size"] != float64(len(file)) || got["url"] != "http://iot.example:8844/api/v1/firmwares/f1/file" {
		t.Errorf("created %v", got)
	}
	stored, _ := h.s.cfg.Store.Get(resource.Firmwares, "f1")
	fw := stored.(*resource.Firmware)
	if bytes.Contains(a.body, []byte("blobKey")) || bytes.Contains(a.body, []byte(fw.BlobKey)) {
		t.Errorf("the answer shows the blob key: %s", a.body)
	}
	if fw.URL != "" || !strings.HasPrefix(fw.BlobKey, "firmwares/f1/") || len(fw.Properties) != 1 {
		t.Errorf("stored %+v", fw)
	}
	for _, path := range []string{"/api/v1/firmwares/f1", "/api/v1/firmwares?productId=p1"} {
		a := h.do(http.MethodGet, path, "", nil, true)
		if a.status != 200 || !bytes.Contains(a.body, []byte(`"url":"http://iot.example:8844/api/v1/firmwares/f1/file"`)) || bytes.Contains(a.body, []byte(fw.BlobKey)) {
			t.Errorf("GET %s: %d %s", path, a.status, a.body)
		}
	}

	// A PUT of the fields alone edits them and keeps the file's.
	a = h.doJSON(http.MethodPut, "/api/v1/firmwares/f1", map[string]any{"name": "Renamed", "productId": "p1", "version": "1.1", "versionOrder": 1, "size": 1, "sign": "00"})
	if got := a.json(t); a.status != 200 || got["name"] != "Renamed" || got["sign"] != md5hex(file) || got["size"] != float64(len(file)) || got["md5"] != md5hex(file) {
		t.Errorf("PUT: %d %s", a.status, a.body)
	}
	if a := h.do(http.MethodPut, "/api/v1/firmwares/f1", "multipart/form-data; boundary=x", strings.NewReader("--x--"), true); a.status != http.StatusUnsupportedMediaType {
		t.Errorf("multipart PUT: %d %s", a.status, a.body)
	}

	// The token-holder's download and the device's signed link.
	a = h.do(http.MethodGet, "/api/v1/firmwares/f1/file", "", nil, true)
	if a.status != 200 || !bytes.Equal(a.body, file) {
		t.Errorf("download: %d %q", a.status, a.body)
	}
	if a := h.do(http.MethodGet, "/api/v1/firmwares/f1/file", "", nil, false); a.status != http.StatusUnauthorized {
		t.Errorf("download without a token: %d", a.status)
	}
	for query, want := range map[string]struct {
		status int
		code   string
	}{
		"?expires=9999999999&signature=good": {200, ""},
		"?expires=9999999999&signature=bad":  {403, "bad_signature"},
		"":                                   {403, "bad_signature"},
		"?expires=0&signature=good":          {403, "link_expired"},
	} {
		a := h.do(http.MethodGet, "/api/v1/firmwares/f1/download"+query, "", nil, false)
		if a.status != want.status || (want.code != "" && a.code(t) != want.code) || (want.status == 200 && !bytes.Equal(a.body, file)) {
			t.Errorf("device download %q: %d %s, want %d %s", query, a.status, a.body, want.status, want.code)
		}
	}
	if a := h.do(http.MethodGet, "/api/v1/firmwares/nope/download?expires=9999999999&signature=good", "", nil, false); a.status != 404 {
		t.Errorf("device download of a missing firmware: %d", a.status)
	}

	// Delete: the record, then its blob.
	if a := h.do(http.MethodDelete, "/api/v1/firmwares/f1", "", nil, true); a.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", a.status, a.body)
	}
	if _, removed, blobs := o.state(); len(removed) != 1 || removed[0] != fw.BlobKey || blobs != 0 {
		t.Errorf("after DELETE: removed %v, %d blobs left", removed, blobs)
	}
	if a := h.do(http.MethodGet, "/api/v1/firmwares/f1", "", nil, true); a.status != 404 {
		t.Errorf("GET after DELETE: %d", a.status)
	}
}

// TestFirmwareUploadRefusals: what the file or the store decides leaves neither blob nor
// record.
func TestFirmwareUploadRefusals(t *testing.T) {
	file := []byte("0123456789abcdef")
	count := func(h *otaHarness) int { return h.s.cfg.Store.Count(resource.Firmwares) }

	t.Run("sign mismatch", func(t *testing.T) {
		o := &recordingOTA{}
		h := newOTAHarness(t, o)
		wrong := strings.Repeat("ab", 16)
		a, _ := h.upload(form{fields: fwFields("f1", 1, [2]string{"sign", strings.ToUpper(wrong)}), file: file})
		if a.status != 400 || a.code(t) != "sign_mismatch" || fmt.Sprint(a.fields(t)) != "[sign]" {
			t.Fatalf("answer %d %s", a.status, a.body)
		}
		msg := a.json(t)["errors"].([]any)[0].(map[string]any)["message"].(string)
		if want := "the file's md5 is " + md5hex(file) + ", not " + wrong; msg != want {
			t.Errorf("message %q, want %q", msg, want)
		}
		if _, removed, blobs := o.state(); len(removed) != 1 || !strings.HasPrefix(removed[0], "firmwares/f1/") || blobs != 0 {
			t.Errorf("removed %v, %d blobs left", removed, blobs)
		}
		if count(h) != 0 {
			t.Error("a record remains")
		}
		// The right sign, in any case, is accepted.
		a, _ = h.upload(form{fields: fwFields("f1", 1, [2]string{"sign", strings.ToUpper(md5hex(file))}), file: file})
		if a.status != http.StatusCreated || a.json(t)["sign"] != md5hex(file) {
			t.Errorf("right sign: %d %s", a.status, a.body)
		}
	})
	t.Run("too large", func(t *testing.T) {
		o := &recordingOTA{}
		h := newOTAHarness(t, o, func(c *Config) { c.FirmwareMaxBytes = 10 })
		a, _ := h.upload(form{fields: fwFields("f1", 1), file: file})
		if a.status != http.StatusRequestEntityTooLarge || a.code(t) != "firmware_too_large" || !strings.Contains(a.json(t)["detail"].(string), "--firmware-max-bytes") {
			t.Errorf("answer %d %s", a.status, a.body)
		}
		if _, _, blobs := o.state(); blobs != 0 || count(h) != 0 {
			t.Errorf("%d blobs, %d records", blobs, count(h))
		}
	})
	t.Run("store unavailable", func(t *testing.T) {
		o := &recordingOTA{fail: fmt.Errorf("%w: put firmwares/f1/x: dial tcp 10.0.0.9:9000: connection refused", blob.ErrUnavailable)}
		h := newOTAHarness(t, o)
		a, _ := h.upload(form{fields: fwFields("f1", 1), file: file})
		if a.status != http.StatusServiceUnavailable || a.code(t) != "blob_store_unavailable" || !strings.Contains(a.json(t)["detail"].(string), "connection refused") {
			t.Errorf("answer %d %s", a.status, a.body)
		}
		if count(h) != 0 {
			t.Error("a record remains")
		}
	})
	t.Run("field after the file", func(t *testing.T) {
		o := &recordingOTA{}
		h := newOTAHarness(t, o)
		a, _ := h.upload(form{fields: fwFields("f1", 1), file: file, trailing: [][2]string{{"description", "late"}}})
		if a.status != 400 || fmt.Sprint(a.fields(t)) != "[description]" {
			t.Errorf("answer %d %s", a.status, a.body)
		}
		if _, removed, blobs := o.state(); len(removed) != 1 || blobs != 0 || count(h) != 0 {
			t.Errorf("removed %v, %d blobs, %d records", removed, blobs, count(h))
		}
	})
	t.Run("file missing everywhere", func(t *testing.T) {
		o := &recordingOTA{}
		h := newOTAHarness(t, o)
		if a, _ := h.upload(form{fields: fwFields("f1", 1), file: file}); a.status != http.StatusCreated {
			t.Fatalf("upload: %d %s", a.status, a.body)
		}
		o.mu.Lock()
		o.blobs = nil
		o.mu.Unlock()
		a := h.do(http.MethodGet, "/api/v1/firmwares/f1/file", "", nil, true)
		if a.status != 404 || a.code(t) != "firmware_file_missing" || !strings.Contains(a.json(t)["detail"].(string), "no node holds") {
			t.Errorf("answer %d %s", a.status, a.body)
		}
	})
	t.Run("no OTA side", func(t *testing.T) {
		h := newOTAHarness(t, nil, func(c *Config) { c.PublicURL = "https://iot.example.com/" })
		a, _ := h.upload(form{fields: fwFields("f1", 1), file: file})
		if a.status != http.StatusServiceUnavailable || a.code(t) != "blob_store_unavailable" {
			t.Errorf("upload: %d %s", a.status, a.body)
		}
		if a := h.do(http.MethodGet, InternalBlobsPath+"firmwares/f1/x", "", nil, false); a.status != http.StatusServiceUnavailable {
			t.Errorf("internal blob: %d %s", a.status, a.body)
		}
	})
}

// TestFirmwarePublicURL: --public-url, not the request's host, names the file.
func TestFirmwarePublicURL(t *testing.T) {
	h := newOTAHarness(t, &recordingOTA{}, func(c *Config) { c.PublicURL = "https://iot.example.com/base/" })
	a, _ := h.upload(form{fields: fwFields("f1", 1), file: []byte("x")})
	if a.status != http.StatusCreated || a.json(t)["url"] != "https://iot.example.com/base/api/v1/firmwares/f1/file" {
		t.Errorf("answer %d %s", a.status, a.body)
	}
}

// TestUpgradeTaskRoutes: validation names the fields, the FSM's refusals become problems,
// and the device list and actions answer from the records.
func TestUpgradeTaskRoutes(t *testing.T) {
	h := newOTAHarness(t, &recordingOTA{})
	if a, _ := h.upload(form{fields: fwFields("f1", 1), file: []byte("x")}); a.status != http.StatusCreated {
		t.Fatalf("upload: %d %s", a.status, a.body)
	}
	a := h.doJSON(http.MethodPost, "/api/v1/upgrade-tasks", map[string]any{"mode": "broadcast", "timeoutSeconds": -1, "deviceIds": []string{"d1", "d1"}, "abort": map[string]any{"failurePercent": 0}})
	if a.status != 400 || a.code(t) != "validation_failed" {
		t.Fatalf("invalid task: %d %s", a.status, a.body)
	}
	if got, want := fmt.Sprint(a.fields(t)), "[name firmwareId mode timeoutSeconds deviceIds[1] abort.failurePercent abort.minFinished]"; got != want {
		t.Errorf("fields %s, want %s", got, want)
	}
	a = h.doJSON(http.MethodPost, "/api/v1/upgrade-tasks", map[string]any{"name": "T", "firmwareId": "nope", "mode": "push"})
	if a.status != 400 || fmt.Sprint(a.fields(t)) != "[firmwareId]" {
		t.Errorf("unknown firmware: %d %s", a.status, a.body)
	}
	a = h.doJSON(http.MethodPost, "/api/v1/upgrade-tasks", map[string]any{"name": "T", "firmwareId": "f1", "mode": "push", "deviceIds": []string{"d1", "d9"}})
	if a.status != 400 || fmt.Sprint(a.fields(t)) != "[deviceIds[1]]" {
		t.Errorf("unknown device: %d %s", a.status, a.body)
	}

	a = h.doJSON(http.MethodPost, "/api/v1/upgrade-tasks", map[string]any{"id": "t1", "name": "T", "firmwareId": "f1", "mode": "push", "state": "completed"})
	task := a.json(t)
	if a.status != http.StatusCreated || task["state"] != "running" || task["productId"] != "p1" || task["counts"].(map[string]any)["waiting"] != float64(2) ||
		task["responseTimeoutSeconds"] != float64(30) || a.header.Get("ETag") == "" {
		t.Fatalf("created %d %s", a.status, a.body)
	}
	a = h.doJSON(http.MethodPost, "/api/v1/upgrade-tasks", map[string]any{"name": "T2", "firmwareId": "f1", "mode": "push", "deviceIds": []string{"d2"}})
	if a.status != 409 || a.code(t) != "device_in_task" {
		t.Errorf("second push task: %d %s", a.status, a.body)
	}

	for query, want := range map[string]struct {
		status int
		total  float64
		items  int
	}{
		"":                   {200, 2, 2},
		"?state=waiting":     {200, 2, 2},
		"?state=success":     {200, 0, 0},
		"?pageSize=1&page=2": {200, 2, 1},
		"?state=bogus":       {400, 0, 0},
		"?pageSize=501":      {400, 0, 0},
	} {
		a := h.do(http.MethodGet, "/api/v1/upgrade-tasks/t1/devices"+query, "", nil, true)
		if a.status != want.status {
			t.Errorf("devices%s: %d %s", query, a.status, a.body)
			continue
		}
		if want.status == 400 {
			if query == "?state=bogus" && fmt.Sprint(a.fields(t)) != "[state]" {
				t.Errorf("devices%s: fields %v", query, a.fields(t))
			}
			continue
		}
		var list List[*fsm.OTARecord]
		_ = json.Unmarshal(a.body, &list)
		if list.Total != int(want.total) || len(list.Items) != want.items {
			t.Errorf("devices%s: %s", query, a.body)
		}
	}
	if a := h.do(http.MethodGet, "/api/v1/upgrade-tasks/nope/devices", "", nil, true); a.status != 404 {
		t.Errorf("devices of a missing task: %d", a.status)
	}
	if a := h.do(http.MethodGet, "/api/v1/upgrade-tasks?mode=push&firmwareId=f1", "", nil, true); a.status != 200 || a.json(t)["total"] != float64(1) {
		t.Errorf("list: %d %s", a.status, a.body)
	}

	// A PUT edits the settings, never the campaign.
	a = h.doJSON(http.MethodPut, "/api/v1/upgrade-tasks/t1", map[string]any{"name": "Renamed", "timeoutSeconds": 60, "state": "stopped"})
	if got := a.json(t); a.status != 200 || got["name"] != "Renamed" || got["state"] != "running" || got["firmwareId"] != "f1" || got["mode"] != "push" {
		t.Errorf("PUT: %d %s", a.status, a.body)
	}

	if a := h.do(http.MethodDelete, "/api/v1/upgrade-tasks/t1", "", nil, true); a.status != 409 || a.code(t) != "task_running" {
		t.Errorf("delete a running task: %d %s", a.status, a.body)
	}
	if a := h.do(http.MethodDelete, "/api/v1/firmwares/f1", "", nil, true); a.status != 409 || a.code(t) != "firmware_has_tasks" {
		t.Errorf("delete a firmware with tasks: %d %s", a.status, a.body)
	}
	if _, removed, _ := h.ota.state(); len(removed) != 0 {
		t.Errorf("a refused delete removed blobs %v", removed)
	}
	a = h.doJSON(http.MethodPost, "/api/v1/upgrade-tasks/t1/stop", nil)
	if got := a.json(t); a.status != 200 || got["state"] != "stopped" || got["counts"].(map[string]any)["canceled"] != float64(2) {
		t.Errorf("stop: %d %s", a.status, a.body)
	}
	a = h.doJSON(http.MethodPost, "/api/v1/upgrade-tasks/t1/resume", nil)
	if got := a.json(t); a.status != 200 || got["state"] != "running" || got["counts"].(map[string]any)["waiting"] != float64(2) {
		t.Errorf("resume: %d %s", a.status, a.body)
	}
	if a := h.doJSON(http.MethodPost, "/api/v1/upgrade-tasks/t1/retry", nil); a.status != 200 {
		t.Errorf("retry: %d %s", a.status, a.body)
	}
	if a := h.doJSON(http.MethodPost, "/api/v1/upgrade-tasks/nope/stop", nil); a.status != 404 {
		t.Errorf("stop a missing task: %d %s", a.status, a.body)
	}
	a = h.doJSON(http.MethodPost, "/api/v1/upgrade-tasks", map[string]any{"id": "t2", "name": "Pull", "firmwareId": "f1", "mode": "pull"})
	if a.status != http.StatusCreated {
		t.Fatalf("pull task: %d %s", a.status, a.body)
	}
	if a := h.doJSON(http.MethodPost, "/api/v1/upgrade-tasks/t2/retry", nil); a.status != 409 || a.code(t) != "retry_push_only" {
		t.Errorf("retry a pull task: %d %s", a.status, a.body)
	}
	h.doJSON(http.MethodPost, "/api/v1/upgrade-tasks/t1/stop", nil)
	if a := h.do(http.MethodDelete, "/api/v1/upgrade-tasks/t1", "", nil, true); a.status != http.StatusNoContent {
		t.Errorf("delete a stopped task: %d %s", a.status, a.body)
	}
	if a := h.do(http.MethodGet, "/api/v1/upgrade-tasks/t1/devices", "", nil, true); a.status != 404 {
		t.Errorf("devices of a deleted task: %d", a.status)
	}
}

// TestOTAInternalRoutes: a peer fetches a blob by its key, and the leader's pushes reach
// the OTA side and come back with their outcomes.
func TestOTAInternalRoutes(t *testing.T) {
	o := &recordingOTA{blobs: map[string][]byte{"firmwares/f1/abc": []byte("bytes")}}
	h := newOTAHarness(t, o)
	if a := h.do(http.MethodGet, InternalBlobsPath+"firmwares/f1/abc", "", nil, false); a.status != 200 || string(a.body) != "bytes" {
		t.Errorf("blob: %d %s", a.status, a.body)
	}
	if a := h.do(http.MethodGet, InternalBlobsPath+"firmwares/f1/none", "", nil, false); a.status != 404 {
		t.Errorf("missing blob: %d %s", a.status, a.body)
	}
	body, _ := json.Marshal(OTAPushRequest{Pushes: []ota.Push{{TaskID: "t1", DeviceID: "d1", FirmwareID: "f1"}}})
	a := h.do(http.MethodPost, InternalOTAPushPath, "application/json", bytes.NewReader(body), false)
	var res OTAPushResponse
	_ = json.Unmarshal(a.body, &res)
	if a.status != 200 || len(res.Results) != 1 || res.Results[0].DeviceID != "d1" || res.Results[0].Outcome != ota.PushOffline || len(o.pushed) != 1 {
		t.Errorf("push: %d %s", a.status, a.body)
	}
}

// TestDownloadLinkNotLogged: a signed link is a credential until it expires, so the access
// log records its signature redacted.
func TestDownloadLinkNotLogged(t *testing.T) {
	u, _ := url.Parse("/api/v1/firmwares/f1/download?expires=9999999999&signature=0123abcd")
	if got := redactedURL(u); strings.Contains(got, "0123abcd") || !strings.Contains(got, "expires=9999999999") {
		t.Errorf("logged as %s", got)
	}
}
