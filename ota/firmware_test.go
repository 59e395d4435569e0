package ota

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/linkops/linkops/ota/blob"
	"github.com/linkops/linkops/resource"
)

func TestUploadHashesAndStores(t *testing.T) {
	w := newWorld(t)
	blobs := newBlobs(t)
	f := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: blobs, Log: discard})
	ctx := context.Background()
	for i, size := range []int{0, 1, 4095, 64<<10 + 7, 3<<20 + 1} {
		data := randomBytes(size, uint64(i))
		key := fmt.Sprintf("firmwares/f%d/r", i)
		// HalfReader: the store sees the file in pieces, as from a network body.
		up, err := f.Upload(ctx, key, iotest.HalfReader(bytes.NewReader(data)), 4<<20)
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		sum := md5.Sum(data)
		want := Upload{Key: key, Size: int64(size), MD5: hex.EncodeToString(sum[:]), SHA256: sha(data)}
		if up != want {
			t.Fatalf("%d bytes: upload = %+v, want %+v", size, up, want)
		}
		obj, info, err := blobs.Open(ctx, key)
		if err != nil {
			t.Fatalf("%d bytes: stored blob: %v", size, err)
		}
		got, err := io.ReadAll(obj)
		obj.Close()
		if err != nil || !bytes.Equal(got, data) || info.Size != int64(size) {
			t.Fatalf("%d bytes: stored %d bytes (info %d), equal %v, err %v", size, len(got), info.Size, bytes.Equal(got, data), err)
		}
	}
}

func TestUploadLimit(t *testing.T) {
	w := newWorld(t)
	blobs := newBlobs(t)
	f := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: blobs, Log: discard})
	ctx := context.Background()
	whole := func(b []byte) io.Reader { return bytes.NewReader(b) }
	oneByte := func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }
	cases := []struct {
		name   string
		max    int64
		size   int
		reader func([]byte) io.Reader
		over   bool
	}{
		{"exactly max", 1000, 1000, whole, false},
		{"exactly max, a byte at a time", 1000, 1000, oneByte, false},
		{"empty under a zero limit", 0, 0, whole, false},
		{"one byte over", 1000, 1001, whole, true},
		{"one byte over, a byte at a time", 1000, 1001, oneByte, true},
		{"far over", 1000, 1 << 20, whole, true},
		{"one byte under a zero limit", 0, 1, whole, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := randomBytes(c.size, uint64(i))
			key := fmt.Sprintf("firmwares/limit%d/r", i)
			up, err := f.Upload(ctx, key, c.reader(data), c.max)
			if !c.over {
				if err != nil {
					t.Fatalf("upload of %d bytes under a limit of %d: %v", c.size, c.max, err)
				}
				if up.Size != int64(c.size) || up.SHA256 != sha(data) {
					t.Fatalf("upload = %+v, want %d bytes sha256 %s", up, c.size, sha(data))
				}
				if info, err := blobs.Stat(ctx, key); err != nil || info.Size != int64(c.size) {
					t.Fatalf("Stat = %+v, %v", info, err)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("upload of %d bytes under a limit of %d: err = %v, want ErrTooLarge", c.size, c.max, err)
			}
			if !strings.Contains(err.Error(), strconv.FormatInt(c.max, 10)) {
				t.Fatalf("error %q does not name the limit", err)
			}
			if _, err := blobs.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("after a refused upload Stat = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestUploadReaderErrorIsNotTooLarge(t *testing.T) {
	w := newWorld(t)
	blobs := newBlobs(t)
	f := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: blobs, Log: discard})
	broken := errors.New("client went away")
	r := io.MultiReader(bytes.NewReader(randomBytes(5000, 1)), iotest.ErrReader(broken))
	_, err := f.Upload(context.Background(), "firmwares/x/r", r, 1<<20)
	if err == nil || errors.Is(err, ErrTooLarge) {
		t.Fatalf("upload of a broken body: err = %v, want the body's error, not ErrTooLarge", err)
	}
	if _, err := blobs.Stat(context.Background(), "firmwares/x/r"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("after a broken upload Stat = %v, want ErrNotFound", err)
	}
}

func TestRemove(t *testing.T) {
	w := newWorld(t)
	blobs := newBlobs(t)
	f := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: blobs, Log: discard})
	ctx := context.Background()
	up, err := f.Upload(ctx, "firmwares/f1/r", bytes.NewReader([]byte("abc")), 100)
	if err != nil {
		t.Fatal(err)
	}
	fw := firmwareOf("f1", "p", "1.0", 1, up)
	if err := f.Remove(ctx, fw); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.Stat(ctx, up.Key); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("after Remove Stat = %v", err)
	}
	// A record without a file (not uploaded yet) has nothing to remove.
	if err := f.Remove(ctx, &resource.Firmware{Meta: resource.Meta{ID: "f2"}}); err != nil {
		t.Fatalf("Remove without a blob key: %v", err)
	}
}

func TestDownloadLinks(t *testing.T) {
	w := newWorld(t)
	w.init("cluster-token-key")
	clk := newClock(t0)
	n1 := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: newBlobs(t), PublicURL: "https://n1.example:8443", Now: clk.Now, Log: discard})
	fw := fakeFirmware("fw-1", "p", "1.0", 1)
	expires := t0.Add(time.Hour)
	link := n1.DownloadURL(fw, expires)
	if want := "https://n1.example:8443/api/v1/firmwares/fw-1/download?expires=" + strconv.FormatInt(expires.Unix(), 10) + "&signature="; !strings.HasPrefix(link, want) {
		t.Fatalf("link %q, want it to start with %q", link, want)
	}
	id, exp, sig := linkParts(t, link)
	if err := n1.CheckSignature(id, exp, sig); err != nil {
		t.Fatalf("the link built is refused: %v", err)
	}

	flip := func(s string) string {
		b := []byte(s)
		if b[0] == '0' {
			b[0] = '1'
		} else {
			b[0] = '0'
		}
		return string(b)
	}
	expNum, _ := strconv.ParseInt(exp, 10, 64)
	for name, c := range map[string][3]string{
		"altered signature":      {id, exp, flip(sig)},
		"truncated signature":    {id, exp, sig[:len(sig)-2]},
		"signature not hex":      {id, exp, "zz" + sig[2:]},
		"no signature":           {id, exp, ""},
		"altered id":             {"fw-2", exp, sig},
		"later expiry":           {id, strconv.FormatInt(expNum+1, 10), sig},
		"earlier expiry":         {id, strconv.FormatInt(expNum-1, 10), sig},
		"expires not a number":   {id, "tomorrow", sig},
		"expires empty":          {id, "", sig},
		"expires with fractions": {id, exp + ".5", sig},
	} {
		if err := n1.CheckSignature(c[0], c[1], c[2]); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: CheckSignature = %v, want ErrBadSignature", name, err)
		}
	}

	// Valid through its expiry second, expired after it.
	clk.Set(expires)
	if err := n1.CheckSignature(id, exp, sig); err != nil {
		t.Fatalf("at its expiry the link is refused: %v", err)
	}
	clk.Set(expires.Add(time.Second))
	if err := n1.CheckSignature(id, exp, sig); !errors.Is(err, ErrExpired) {
		t.Fatalf("after its expiry CheckSignature = %v, want ErrExpired", err)
	}
	// An expired link that was also altered is a bad signature, not merely expired.
	if err := n1.CheckSignature("fw-2", exp, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("an altered expired link: %v, want ErrBadSignature", err)
	}
}

func TestDownloadLinksAcrossNodes(t *testing.T) {
	w := newWorld(t)
	w.init("cluster-token-key")
	n1 := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: newBlobs(t), PublicURL: "http://n1", Now: func() time.Time { return t0 }, Log: discard})
	n2 := NewFirmware(FirmwareConfig{NodeID: "n2", Store: w.store(), Blobs: newBlobs(t), PublicURL: "http://n2", Now: func() time.Time { return t0 }, Log: discard})
	// A replica: another FSM that applied the same init.
	replica := newWorld(t)
	replica.init("cluster-token-key")
	n3 := NewFirmware(FirmwareConfig{NodeID: "n3", Store: replica.store(), Blobs: newBlobs(t), PublicURL: "http://n3", Now: func() time.Time { return t0 }, Log: discard})
	// Another cluster.
	other := newWorld(t)
	other.init("another-cluster-key")
	x := NewFirmware(FirmwareConfig{NodeID: "x", Store: other.store(), Blobs: newBlobs(t), PublicURL: "http://x", Now: func() time.Time { return t0 }, Log: discard})

	fw := fakeFirmware("fw-1", "p", "1.0", 1)
	for _, signer := range []*Firmware{n1, n2, n3} {
		id, exp, sig := linkParts(t, signer.DownloadURL(fw, t0.Add(time.Hour)))
		for _, checker := range []*Firmware{n1, n2, n3} {
			if err := checker.CheckSignature(id, exp, sig); err != nil {
				t.Errorf("a link of %s refused by %s: %v", signer.cfg.NodeID, checker.cfg.NodeID, err)
			}
		}
		if err := x.CheckSignature(id, exp, sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("a link of %s checked under another token key: %v, want ErrBadSignature", signer.cfg.NodeID, err)
		}
	}
	id, exp, sig := linkParts(t, x.DownloadURL(fw, t0.Add(time.Hour)))
	if err := n1.CheckSignature(id, exp, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another cluster's link: %v, want ErrBadSignature", err)
	}
}

// download serves fw from f the way the API route does.
func downloadServer(t *testing.T, f *Firmware, fw *resource.Firmware) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if err := f.Serve(rw, r, fw); err != nil {
			http.Error(rw, err.Error(), http.StatusBadGateway)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestServe(t *testing.T) {
	w := newWorld(t)
	w.product("p")
	blobs := newBlobs(t)
	m := NewMetrics(nil, nil)
	f := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: blobs, Metrics: m, Log: discard})
	data := randomBytes(10000, 7)
	up, err := f.Upload(context.Background(), "firmwares/fw1/r", bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	fw := firmwareOf("fw1", "p", "1.2.0", 1, up)
	w.putFirmware(fw)
	srv := downloadServer(t, f, fw)
	etag := `"` + up.SHA256 + `"`

	resp, body := get(t, srv, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("GET: %d, %d bytes, want 200 and the file", resp.StatusCode, len(body))
	}
	for k, want := range map[string]string{"ETag": etag, "Content-Length": "10000", "Content-Type": "application/octet-stream",
		"X-Firmware-Sign": "sha256=" + up.SHA256, "Content-Disposition": `attachment; filename="fw1-1.2.0.bin"`, "Accept-Ranges": "bytes"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	resp, body = get(t, srv, map[string]string{"Range": "bytes=100-199"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[100:200]) {
		t.Fatalf("Range: %d, %d bytes, want 206 and bytes 100-199", resp.StatusCode, len(body))
	}
	if got := resp.Header.Get("Content-Range"); got != "bytes 100-199/10000" {
		t.Fatalf("Content-Range = %q", got)
	}
	if resp.Header.Get("ETag") != etag {
		t.Fatalf("ETag of a range = %q", resp.Header.Get("ETag"))
	}

	resp, body = get(t, srv, map[string]string{"Range": "bytes=9990-"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[9990:]) {
		t.Fatalf("open-ended Range: %d, %d bytes", resp.StatusCode, len(body))
	}

	// A resumed download of the same file continues; of a changed file it starts over.
	resp, body = get(t, srv, map[string]string{"Range": "bytes=5000-", "If-Range": etag})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[5000:]) {
		t.Fatalf("If-Range matching: %d, %d bytes, want 206", resp.StatusCode, len(body))
	}
	resp, body = get(t, srv, map[string]string{"Range": "bytes=5000-", "If-Range": `"other"`})
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("If-Range not matching: %d, %d bytes, want 200 and the whole file", resp.StatusCode, len(body))
	}

	resp, body = get(t, srv, map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("If-None-Match: %d, %d bytes, want 304 and no body", resp.StatusCode, len(body))
	}
	resp, _ = get(t, srv, map[string]string{"If-None-Match": `"` + strings.Repeat("0", 64) + `"`})
	if resp.StatusCode != 200 {
		t.Fatalf("If-None-Match of another file: %d, want 200", resp.StatusCode)
	}

	// File bytes only: 10000 + 100 + 10 + 5000 + 10000 + 10000. The handler counts after
	// ServeContent returns, which may be just after the client has read the last body.
	for deadline := time.Now().Add(5 * time.Second); value(t, m.bytesServed) != 35110 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := value(t, m.bytesServed); got != 35110 {
		t.Fatalf("bytes served = %v, want 35110", got)
	}

	// (Checked after the counter: ServeContent's 416 text goes through the counting writer
	// and is counted as firmware bytes, 33 of them.)
	resp, _ = get(t, srv, map[string]string{"Range": "bytes=20000-"})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("Range past the end: %d, want 416", resp.StatusCode)
	}
}

func TestServeFetchesFromPeer(t *testing.T) {
	w := newWorld(t)
	w.product("p")
	a := newPeer(t, w)
	data := randomBytes(300<<10, 3)
	fw := a.upload(t, w, "fw1", "1.0", 1, data)

	local := newBlobs(t)
	m := NewMetrics(nil, nil)
	var calls atomic.Int32
	b := NewFirmware(FirmwareConfig{NodeID: "b", Store: w.store(), Blobs: local, Metrics: m, Log: discard,
		Peers: func() []string { return []string{"a"} },
		FetchBlob: func(ctx context.Context, node, key string) (io.ReadCloser, error) {
			calls.Add(1)
			if node != "a" {
				t.Errorf("fetched from %q", node)
			}
			return a.fetch(ctx, key)
		}})
	srv := downloadServer(t, b, fw)
	resp, body := get(t, srv, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("download from a node without the file: %d, %d bytes", resp.StatusCode, len(body))
	}
	if info, err := local.Stat(context.Background(), fw.BlobKey); err != nil || info.Size != fw.Size {
		t.Fatalf("the copy is not kept: %+v, %v", info, err)
	}
	if got := value(t, m.peerFetches.WithLabelValues("ok")); got != 1 {
		t.Fatalf("peer fetches ok = %v, want 1", got)
	}
	// The second download reads the kept copy.
	resp, body = get(t, srv, map[string]string{"Range": "bytes=0-9"})
	if resp.StatusCode != 206 || !bytes.Equal(body, data[:10]) {
		t.Fatalf("second download: %d %q", resp.StatusCode, body)
	}
	if calls.Load() != 1 {
		t.Fatalf("FetchBlob called %d times, want 1", calls.Load())
	}
}

func TestServeRefusesCorruptCopies(t *testing.T) {
	w := newWorld(t)
	w.product("p")
	a := newPeer(t, w)
	data := randomBytes(100<<10, 4)
	fw := a.upload(t, w, "fw1", "1.0", 1, data)
	corrupt := bytes.Clone(data)
	corrupt[len(corrupt)/2] ^= 0xff

	local := newBlobs(t)
	m := NewMetrics(nil, nil)
	var mu sync.Mutex
	peers := []string{"bad"}
	var asked []string
	b := NewFirmware(FirmwareConfig{NodeID: "b", Store: w.store(), Blobs: local, Metrics: m, Log: discard,
		Peers: func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), peers...) },
		FetchBlob: func(ctx context.Context, node, key string) (io.ReadCloser, error) {
			mu.Lock()
			asked = append(asked, node)
			mu.Unlock()
			switch node {
			case "bad":
				return io.NopCloser(bytes.NewReader(corrupt)), nil
			case "short":
				return io.NopCloser(bytes.NewReader(data[:len(data)-1])), nil
			case "long":
				return io.NopCloser(io.MultiReader(bytes.NewReader(data), strings.NewReader("x"))), nil
			case "empty":
				return nil, fmt.Errorf("%w: no such blob", blob.ErrNotFound)
			}
			return a.fetch(ctx, key)
		}})
	ctx := context.Background()
	serve := func() (*httptest.ResponseRecorder, error) {
		rec := httptest.NewRecorder()
		return rec, b.Serve(rec, httptest.NewRequest(http.MethodGet, "/download", nil), fw)
	}

	_, err := serve()
	if !errors.Is(err, blob.ErrNotFound) || !errors.Is(err, errCorrupt) {
		t.Fatalf("only a corrupting peer: err = %v, want ErrNotFound wrapping errCorrupt", err)
	}
	if _, err := local.Stat(ctx, fw.BlobKey); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("a corrupt copy was kept: Stat = %v", err)
	}
	if got := value(t, m.peerFetches.WithLabelValues("failed")); got != 1 {
		t.Fatalf("failed peer fetches = %v, want 1", got)
	}

	// Copies a byte short or long are refused too; the peer that has it is tried next.
	mu.Lock()
	peers, asked = []string{"short", "long", "empty", "bad", "a"}, nil
	mu.Unlock()
	rec, err := serve()
	if err != nil {
		t.Fatalf("with a good peer last: %v", err)
	}
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), data) {
		t.Fatalf("download: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	mu.Lock()
	if got := strings.Join(asked, ","); got != "short,long,empty,bad,a" {
		t.Fatalf("peers asked %s", got)
	}
	mu.Unlock()
	if got := value(t, m.peerFetches.WithLabelValues("failed")); got != 5 {
		t.Fatalf("failed peer fetches = %v, want 5", got)
	}
	if got := value(t, m.peerFetches.WithLabelValues("ok")); got != 1 {
		t.Fatalf("ok peer fetches = %v, want 1", got)
	}
	obj, _, err := local.Open(ctx, fw.BlobKey)
	if err != nil {
		t.Fatal(err)
	}
	kept, _ := io.ReadAll(obj)
	obj.Close()
	if sha(kept) != fw.SHA256 {
		t.Fatal("the kept copy is not the file")
	}
}

func TestServeWithoutPeers(t *testing.T) {
	w := newWorld(t)
	b := NewFirmware(FirmwareConfig{NodeID: "b", Store: w.store(), Blobs: newBlobs(t), Log: discard})
	err := b.Serve(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/download", nil), fakeFirmware("fw1", "p", "1.0", 1))
	if !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("no file and no peer: %v, want ErrNotFound", err)
	}
}

func TestServeConcurrentMissesFetchOnce(t *testing.T) {
	w := newWorld(t)
	w.product("p")
	a := newPeer(t, w)
	data := randomBytes(200<<10, 5)
	fw := a.upload(t, w, "fw1", "1.0", 1, data)

	var calls atomic.Int32
	entered := make(chan struct{})
	release := make(chan struct{})
	b := NewFirmware(FirmwareConfig{NodeID: "b", Store: w.store(), Blobs: newBlobs(t), Log: discard,
		Peers: func() []string { return []string{"a"} },
		FetchBlob: func(ctx context.Context, node, key string) (io.ReadCloser, error) {
			if calls.Add(1) == 1 {
				close(entered)
				<-release
			}
			return a.fetch(ctx, key)
		}})
	srv := downloadServer(t, b, fw)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, data) {
				errs <- fmt.Errorf("download: %d, %d bytes, %v", resp.StatusCode, len(body), err)
			}
		}()
	}
	<-entered
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("%d concurrent downloads of a missing file called FetchBlob %d times, want 1", n, got)
	}
}

func TestReplicate(t *testing.T) {
	w := newWorld(t)
	w.product("p")
	a := newPeer(t, w)
	data1, data2 := randomBytes(50<<10, 11), randomBytes(70<<10, 12)
	fw1 := a.upload(t, w, "fw1", "1.0", 1, data1)
	fw2 := a.upload(t, w, "fw2", "2.0", 2, data2)

	local := newBlobs(t)
	m := NewMetrics(nil, nil)
	b := NewFirmware(FirmwareConfig{NodeID: "b", Store: w.store(), Blobs: local, Metrics: m, Log: discard,
		Peers:     func() []string { return []string{"a"} },
		FetchBlob: func(ctx context.Context, node, key string) (io.ReadCloser, error) { return a.fetch(ctx, key) }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Replicate(ctx) }()
	defer func() { cancel(); <-done }()

	has := func(fw *resource.Firmware) bool {
		_, err := local.Stat(ctx, fw.BlobKey)
		return err == nil
	}
	eventually(t, "both files copied", func() bool { return has(fw1) && has(fw2) })
	for _, c := range []struct {
		fw   *resource.Firmware
		data []byte
	}{{fw1, data1}, {fw2, data2}} {
		obj, _, err := local.Open(ctx, c.fw.BlobKey)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(obj)
		obj.Close()
		if !bytes.Equal(got, c.data) {
			t.Fatalf("copy of %s differs", c.fw.ID)
		}
	}

	// A firmware uploaded later is copied too: the replicator follows the table.
	data3 := randomBytes(10<<10, 13)
	fw3 := a.upload(t, w, "fw3", "3.0", 3, data3)
	eventually(t, "the later file copied", func() bool { return has(fw3) })

	// Deleting a record deletes this node's copy, and only that one.
	w.deleteFirmware("fw1")
	eventually(t, "the deleted firmware's copy removed", func() bool { return !has(fw1) })
	if !has(fw2) || !has(fw3) {
		t.Fatal("removing fw1's copy removed another")
	}
	if _, err := a.blobs.Stat(ctx, fw1.BlobKey); err != nil {
		t.Fatalf("the replicator touched the peer's store: %v", err)
	}

	// A record whose file no peer has yet is retried (after a backoff) until one does.
	data4 := randomBytes(1000, 14)
	fw4 := firmwareOf("fw4", "p", "4.0", 4, Upload{Key: "firmwares/fw4/r1", Size: 1000, SHA256: sha(data4)})
	failedBefore := value(t, m.peerFetches.WithLabelValues("failed"))
	w.putFirmware(fw4)
	eventually(t, "a failed copy of fw4", func() bool { return value(t, m.peerFetches.WithLabelValues("failed")) > failedBefore })
	if err := a.blobs.Put(ctx, fw4.BlobKey, bytes.NewReader(data4), 1000); err != nil {
		t.Fatal(err)
	}
	eventually(t, "fw4 copied once the peer has it", func() bool { return has(fw4) })

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Replicate did not end with its context")
	}
}

// Service.Run runs the replicator and the report flusher, and ends with its context.
func TestServiceRun(t *testing.T) {
	w := newWorld(t)
	f := NewFirmware(FirmwareConfig{NodeID: "n1", Store: w.store(), Blobs: newBlobs(t), Log: discard})
	d := NewDevices(DevicesConfig{Store: w.store(), Propose: w.propose, Firmware: f, Log: discard})
	s := &Service{Firmware: f, Devices: d}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Service.Run did not end with its context")
	}
}
