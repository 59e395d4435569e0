package blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/ota/blob"
)

// fixture is one store under test and what the test needs to look behind it.
type fixture struct {
	blob.Store
	dir    string       // the file store's directory; "" for S3
	s3     *testutil.S3 // the S3 server; nil for the file store
	bucket string
}

func openFileFixture(t *testing.T) fixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "blobs") // missing: Open creates it
	st, err := blob.Open(t.Context(), "file://"+dir, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{Store: st, dir: dir}
}

func openS3Fixture(t *testing.T) fixture {
	t.Helper()
	srv := testutil.StartS3(t)
	st, err := blob.Open(t.Context(), srv.URL("firmware"), srv.Env())
	if err != nil {
		t.Fatal(err)
	}
	return fixture{Store: st, s3: srv, bucket: "firmware"}
}

// eachStore runs fn against a fresh file store and a fresh S3 store, in parallel.
func eachStore(t *testing.T, fn func(t *testing.T, f fixture)) {
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		fn(t, openFileFixture(t))
	})
	t.Run("s3", func(t *testing.T) {
		t.Parallel()
		fn(t, openS3Fixture(t))
	})
}

// leftovers lists what a failed Put could have left behind the store's back: temp files
// for the file store, unfinished multipart uploads for S3.
func (f fixture) leftovers(t *testing.T) []string {
	t.Helper()
	var out []string
	if f.s3 == nil {
		entries, err := os.ReadDir(filepath.Join(f.dir, ".tmp"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	for u := range f.minio(t).ListIncompleteUploads(t.Context(), f.bucket, "", true) {
		if u.Err != nil {
			t.Fatalf("list incomplete uploads: %v", u.Err)
		}
		out = append(out, u.Key+" "+u.UploadID)
	}
	return out
}

// minio is a plain S3 client on the fixture's server, to look at the bucket directly.
func (f fixture) minio(t *testing.T) *minio.Client {
	t.Helper()
	c, err := minio.New(f.s3.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(f.s3.AccessKey, f.s3.SecretKey, ""),
		Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	_, _ = r.Read(b)
	return b
}

// onlyReader hides every method but Read (bytes.Reader is a Seeker, WriterTo, ...), so the
// stores see what an HTTP upload gives them.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, f fixture) {
		ctx := t.Context()
		// Empty; one S3 PUT; and a multipart upload of three parts, the last short.
		for _, n := range []int{0, 1000, 11<<20 + 123} {
			for _, known := range []bool{true, false} {
				t.Run(fmt.Sprintf("%d bytes known size %v", n, known), func(t *testing.T) {
					data := randomBytes(n)
					key := fmt.Sprintf("firmwares/f%d-%v/blob", n, known)
					size := int64(-1)
					if known {
						size = int64(n)
					}
					if err := f.Put(ctx, key, onlyReader{bytes.NewReader(data)}, size); err != nil {
						t.Fatalf("Put: %v", err)
					}

					info, err := f.Stat(ctx, key)
					if err != nil {
						t.Fatalf("Stat: %v", err)
					}
					if info.Key != key || info.Size != int64(n) || info.ModTime.IsZero() {
						t.Fatalf("Stat = %+v, want key %s size %d and a time", info, key, n)
					}

					obj, oinfo, err := f.Open(ctx, key)
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					defer obj.Close()
					if oinfo.Size != int64(n) {
						t.Fatalf("Open info size %d, want %d", oinfo.Size, n)
					}
					got, err := io.ReadAll(obj)
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					if !bytes.Equal(got, data) {
						t.Fatalf("read %d bytes, not the %d stored", len(got), n)
					}
					if n == 0 {
						return
					}

					// What a download with Range does: seek, then read a slice.
					for _, r := range [][2]int64{{0, 1}, {int64(n) / 3, int64(n) / 2}, {int64(n) - 7, int64(n)}} {
						if _, err := obj.Seek(r[0], io.SeekStart); err != nil {
							t.Fatalf("Seek(%d): %v", r[0], err)
						}
						part := make([]byte, r[1]-r[0])
						if _, err := io.ReadFull(obj, part); err != nil {
							t.Fatalf("read [%d,%d): %v", r[0], r[1], err)
						}
						if !bytes.Equal(part, data[r[0]:r[1]]) {
							t.Fatalf("bytes [%d,%d) differ", r[0], r[1])
						}
					}
					if pos, err := obj.Seek(-5, io.SeekEnd); err != nil || pos != int64(n)-5 {
						t.Fatalf("Seek(-5, end) = %d, %v", pos, err)
					}
					if tail, err := io.ReadAll(obj); err != nil || !bytes.Equal(tail, data[n-5:]) {
						t.Fatalf("tail = %x, %v; want %x", tail, err, data[n-5:])
					}

					// And through http.ServeContent, as the download handler will serve it.
					req := httptest.NewRequest(http.MethodGet, "/file", nil)
					req.Header.Set("Range", "bytes=100-199")
					if n < 200 {
						req.Header.Set("Range", "bytes=10-19")
					}
					rec := httptest.NewRecorder()
					http.ServeContent(rec, req, "", oinfo.ModTime, obj)
					want := data[100:200]
					if n < 200 {
						want = data[10:20]
					}
					if rec.Code != http.StatusPartialContent || !bytes.Equal(rec.Body.Bytes(), want) {
						t.Fatalf("ServeContent Range: %d, %d bytes; want 206 and %d bytes", rec.Code, rec.Body.Len(), len(want))
					}

					if err := f.Delete(ctx, key); err != nil {
						t.Fatalf("Delete: %v", err)
					}
					if _, err := f.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
						t.Fatalf("Stat after Delete: %v, want ErrNotFound", err)
					}
				})
			}
		}

		if err := f.Delete(ctx, "firmwares/never/was"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
		if _, _, err := f.Open(ctx, "firmwares/never/was"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Open of a missing key: %v, want ErrNotFound", err)
		}
		if _, err := f.Stat(ctx, "firmwares/never/was"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Stat of a missing key: %v, want ErrNotFound", err)
		}
		if err := f.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
}

// A key's parent "directory" holds other keys: it is no blob in either store.
func TestParentOfKeyIsNoBlob(t *testing.T) {
	eachStore(t, func(t *testing.T, f fixture) {
		ctx := t.Context()
		if err := f.Put(ctx, "firmwares/f1/abc", bytes.NewReader([]byte("x")), 1); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Stat(ctx, "firmwares/f1"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Stat of a parent: %v, want ErrNotFound", err)
		}
		if _, _, err := f.Open(ctx, "firmwares/f1"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Open of a parent: %v, want ErrNotFound", err)
		}
		if err := f.Delete(ctx, "firmwares/f1"); err != nil {
			t.Fatalf("Delete of a parent: %v", err)
		}
		if _, err := f.Stat(ctx, "firmwares/f1/abc"); err != nil {
			t.Fatalf("the key under it after deleting the parent: %v", err)
		}
	})
}

var errBoom = errors.New("boom: the client went away")

// failingReader yields n bytes of data, then fails with err.
type failingReader struct {
	n   int64
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, r.err
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		p[i] = byte(i)
	}
	r.n -= int64(len(p))
	return len(p), nil
}

// errTooLarge stands for the firmware handler's --firmware-max-bytes limit.
var errTooLarge = errors.New("firmware larger than the limit")

// capReader fails with errTooLarge once r has yielded more than max bytes.
type capReader struct {
	r   io.Reader
	max int64
}

func (c *capReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.max -= int64(n)
	if c.max < 0 {
		return n, errTooLarge
	}
	return n, err
}

func TestFailedPutLeavesNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, f fixture) {
		ctx := t.Context()
		cases := []struct {
			name string
			r    io.Reader
			size int64
			want error
		}{
			{"fails early, size unknown", &failingReader{n: 100 << 10, err: errBoom}, -1, errBoom},
			{"fails early, size known", &failingReader{n: 100 << 10, err: errBoom}, 1 << 20, errBoom},
			// After one 5 MiB part is in S3: the upload must be aborted.
			{"fails after a part, size unknown", &failingReader{n: 7 << 20, err: errBoom}, -1, errBoom},
			{"fails after a part, size known", &failingReader{n: 7 << 20, err: errBoom}, 12 << 20, errBoom},
			{"over the caller's limit", &capReader{r: &failingReader{n: 9 << 20, err: io.EOF}, max: 6 << 20}, -1, errTooLarge},
			{"shorter than its size", &failingReader{n: 1000, err: io.EOF}, 2000, blob.ErrSizeMismatch},
			{"longer than its size", &failingReader{n: 3000, err: io.EOF}, 2000, blob.ErrSizeMismatch},
			{"longer than its size, multipart", &failingReader{n: 6 << 20, err: io.EOF}, 6<<20 - 1, blob.ErrSizeMismatch},
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				key := fmt.Sprintf("firmwares/fail%d/blob", i)
				err := f.Put(ctx, key, c.r, c.size)
				if !errors.Is(err, c.want) {
					t.Fatalf("Put = %v, want %v", err, c.want)
				}
				if errors.Is(err, blob.ErrUnavailable) {
					t.Fatalf("Put = %v: the reader's failure is not the store's", err)
				}
				if _, err := f.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
					t.Fatalf("Stat after a failed Put: %v, want ErrNotFound", err)
				}
				if l := f.leftovers(t); len(l) != 0 {
					t.Fatalf("a failed Put left %v", l)
				}
			})
		}

		// A cancelled upload (the client hung up) leaves nothing either.
		t.Run("cancelled", func(t *testing.T) {
			cctx, cancel := context.WithCancel(ctx)
			r := &cancelReader{r: &failingReader{n: 20 << 20, err: io.EOF}, after: 7 << 20, cancel: cancel}
			err := f.Put(cctx, "firmwares/cancelled/blob", r, -1)
			if err == nil || errors.Is(err, blob.ErrUnavailable) {
				t.Fatalf("Put with a cancelled context = %v, want the cancellation", err)
			}
			if _, err := f.Stat(ctx, "firmwares/cancelled/blob"); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("Stat after a cancelled Put: %v, want ErrNotFound", err)
			}
			if l := f.leftovers(t); len(l) != 0 {
				t.Fatalf("a cancelled Put left %v", l)
			}
		})
	})
}

// cancelReader cancels its context once after bytes have been read, as a client hanging up
// mid-upload does to the request context.
type cancelReader struct {
	r      io.Reader
	after  int64
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.after -= int64(n)
	if c.after < 0 {
		c.cancel()
	}
	return n, err
}

func TestBadKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, f fixture) {
		ctx := t.Context()
		bad := []string{"", "/firmwares/a/b", "firmwares/../../etc/passwd", "..", "firmwares/./b",
			"firmwares//b", "firmwares/b/", `firmwares\a\b`, "firmwares/a\x00b", string(bytes.Repeat([]byte("k"), 1025))}
		if f.s3 == nil {
			bad = append(bad, ".tmp/put-123") // the file store's own temp files
		}
		for _, key := range bad {
			if err := f.Put(ctx, key, bytes.NewReader([]byte("x")), 1); !errors.Is(err, blob.ErrBadKey) {
				t.Errorf("Put(%q) = %v, want ErrBadKey", key, err)
			}
			if _, _, err := f.Open(ctx, key); !errors.Is(err, blob.ErrBadKey) {
				t.Errorf("Open(%q) = %v, want ErrBadKey", key, err)
			}
			if _, err := f.Stat(ctx, key); !errors.Is(err, blob.ErrBadKey) {
				t.Errorf("Stat(%q) = %v, want ErrBadKey", key, err)
			}
			if err := f.Delete(ctx, key); !errors.Is(err, blob.ErrBadKey) {
				t.Errorf("Delete(%q) = %v, want ErrBadKey", key, err)
			}
		}
		if f.s3 == nil {
			// Nothing escaped the store's directory.
			entries, _ := os.ReadDir(filepath.Dir(f.dir))
			if len(entries) != 1 {
				t.Errorf("the store's parent holds %d entries, want only the store", len(entries))
			}
		}
	})
}
