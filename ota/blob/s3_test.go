package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/ota/blob"
)

// wantUnavailable asserts err is the store's failure, naming the store.
func wantUnavailable(t *testing.T, what string, err error, st blob.Store) {
	t.Helper()
	if !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("%s = %v, want ErrUnavailable", what, err)
	}
	if !strings.Contains(err.Error(), st.String()) {
		t.Fatalf("%s: %q does not name the store %s", what, err, st)
	}
}

func TestS3GoesAwayAndComesBack(t *testing.T) {
	t.Parallel()
	f := openS3Fixture(t)
	ctx := t.Context()
	data := []byte("firmware v1")
	if err := f.Put(ctx, "firmwares/f1/a", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	obj, _, err := f.Open(ctx, "firmwares/f1/a")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()

	f.s3.Stop()
	wantUnavailable(t, "Check", f.Check(ctx), f)
	wantUnavailable(t, "Put", f.Put(ctx, "firmwares/f1/b", bytes.NewReader(data), -1), f)
	_, _, err = f.Open(ctx, "firmwares/f1/a")
	wantUnavailable(t, "Open", err, f)
	_, err = f.Stat(ctx, "firmwares/f1/a")
	wantUnavailable(t, "Stat", err, f)
	wantUnavailable(t, "Delete", f.Delete(ctx, "firmwares/f1/a"), f)
	_, err = io.ReadAll(obj) // opened before, read after: the GET fails
	wantUnavailable(t, "Read", err, f)
	if !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Read: %q does not carry the store's own message", err)
	}

	f.s3.Start()
	testutil.WaitFor(t, 30*time.Second, "the store to answer again", func() bool { return f.Check(ctx) == nil })
	if err := f.Put(ctx, "firmwares/f1/b", bytes.NewReader(data), -1); err != nil {
		t.Fatalf("Put after S3 came back: %v", err)
	}
	if _, err := obj.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after S3 came back: %q, %v", got, err)
	}
}

// The node starts without its S3 (SPEC §4.7): Open gives a store that says it is
// unavailable, and creates the bucket once the server answers.
func TestOpenS3ThatIsDown(t *testing.T) {
	t.Parallel()
	srv := testutil.StartS3(t)
	srv.Stop()
	ctx := t.Context()
	st, err := blob.Open(ctx, srv.URL("late-bucket"), srv.Env())
	if err != nil {
		t.Fatalf("Open with S3 down: %v, want a store", err)
	}
	if st.Local() {
		t.Fatal("an S3 store is not local")
	}
	if want := "s3://late-bucket (" + srv.Endpoint + ")"; st.String() != want {
		t.Fatalf("String() = %q, want %q", st.String(), want)
	}
	wantUnavailable(t, "Check", st.Check(ctx), st)
	wantUnavailable(t, "Put", st.Put(ctx, "firmwares/x/y", strings.NewReader("x"), 1), st)

	srv.Start()
	testutil.WaitFor(t, 30*time.Second, "the bucket to be created", func() bool { return st.Check(ctx) == nil })
	if err := st.Put(ctx, "firmwares/x/y", strings.NewReader("x"), 1); err != nil {
		t.Fatalf("Put once S3 is up: %v", err)
	}
}

// A bucket removed behind the store's back is created again rather than failing forever.
func TestS3BucketRecreated(t *testing.T) {
	t.Parallel()
	f := openS3Fixture(t)
	ctx := t.Context()
	mc := f.minio(t)
	if ok, err := mc.BucketExists(ctx, f.bucket); err != nil || !ok {
		t.Fatalf("the bucket after Open: exists %v, %v; want created at Open", ok, err)
	}
	if err := mc.RemoveBucket(ctx, f.bucket); err != nil {
		t.Fatal(err)
	}
	if err := f.Check(ctx); err != nil {
		t.Fatalf("Check after the bucket was removed: %v", err)
	}
	if err := f.Put(ctx, "firmwares/a/b", strings.NewReader("x"), 1); err != nil {
		t.Fatalf("Put after the bucket was recreated: %v", err)
	}
}

func TestS3WrongCredentials(t *testing.T) {
	t.Parallel()
	srv := testutil.StartS3(t)
	env := func(k string) string {
		if k == "AWS_SECRET_ACCESS_KEY" {
			return "not-the-secret"
		}
		return srv.Env()(k)
	}
	ctx := t.Context()
	st, err := blob.Open(ctx, srv.URL("firmware"), env)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Check(ctx)
	wantUnavailable(t, "Check with a wrong secret", err, st)
	if strings.Contains(err.Error(), "not-the-secret") || strings.Contains(st.String(), srv.AccessKey) {
		t.Fatalf("a credential leaked into %q / %q", err, st)
	}
}

func TestOpenURLErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ url, want string }{
		{"ftp://host/dir", `unknown scheme "ftp"`},
		{"/var/lib/blobs", "want file://DIR or s3://"},
		{"file://", "needs a directory"},
		{"s3://", "no bucket"},
		{"s3://?endpoint=127.0.0.1:9000", "no bucket"},
		{"s3://fwb?endpoint=127.0.0.1:9000&secure=maybe", `secure="maybe": want true or false`},
		{"s3://fwb?endpoint=127.0.0.1:9000&scure=false", `unknown parameter "scure"`},
		{"s3://fwb?endpoint=http://127.0.0.1:9000", "no scheme"},
		{"s3://fwb/prefix?endpoint=127.0.0.1:9000", "path after the bucket"},
		{"s3://Bad_Bucket?endpoint=127.0.0.1:9000", `bucket "Bad_Bucket"`},
		{"s3://AKIAXXX:topsecret@fwb?endpoint=127.0.0.1:9000", "credentials go in AWS_ACCESS_KEY_ID"},
	}
	for _, c := range cases {
		_, err := blob.Open(context.Background(), c.url, func(string) string { return "" })
		if !errors.Is(err, blob.ErrBadURL) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want ErrBadURL mentioning %q", c.url, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("Open(%q): the error %q repeats the secret", c.url, err)
		}
	}
}
