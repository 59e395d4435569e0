package blob_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/linkops/linkops/ota/blob"
)

func TestFileStore(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "blobs")
	tmp := filepath.Join(dir, ".tmp")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		t.Fatal(err)
	}
	// What a crash mid-upload left, and an upload that another store on the same
	// directory is writing right now.
	stale, fresh := filepath.Join(tmp, "put-crashed"), filepath.Join(tmp, "put-running")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	st, err := blob.Open(t.Context(), "file://"+dir, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a stale temp file survived Open: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("Open removed a temp file still being written: %v", err)
	}
	if !st.Local() {
		t.Error("a file store is local")
	}
	if want := "file://" + filepath.ToSlash(dir); st.String() != want {
		t.Errorf("String() = %q, want %q", st.String(), want)
	}

	ctx := t.Context()
	if err := st.Put(ctx, "firmwares/f1/abc", bytes.NewReader([]byte("hello")), 5); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "firmwares", "f1", "abc")); err != nil || string(b) != "hello" {
		t.Fatalf("the blob on disk: %q, %v", b, err)
	}
	obj, _, err := st.Open(ctx, "firmwares/f1/abc")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := obj.(*os.File); !ok {
		t.Errorf("Open returned %T, want *os.File", obj)
	}
	_ = obj.Close()

	// Deleting a firmware's only blob leaves no empty firmwares/<id>/ behind.
	if err := st.Delete(ctx, "firmwares/f1/abc"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "firmwares")); !os.IsNotExist(err) {
		t.Errorf("the emptied directories remain: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the store's own directory went too: %v", err)
	}
}

// A relative file:// path (the default is file://./data/blobs) is taken from the working
// directory, as --data-dir is.
func TestFileStoreRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	st, err := blob.Open(t.Context(), "file://./data/blobs", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if want := "file://" + filepath.ToSlash(filepath.Join(wd, "data", "blobs")); st.String() != want {
		t.Fatalf("String() = %q, want %q", st.String(), want)
	}
	if err := st.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A directory the node cannot write still gives a store, which reports itself unavailable.
func TestFileStoreUnusable(t *testing.T) {
	t.Parallel()
	parent := filepath.Join(t.TempDir(), "file-not-dir")
	if err := os.WriteFile(parent, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := blob.Open(t.Context(), "file://"+parent+"/blobs", os.Getenv)
	if err != nil {
		t.Fatalf("Open of an unusable directory: %v, want a store", err)
	}
	wantUnavailable(t, "Check", st.Check(t.Context()), st)
	wantUnavailable(t, "Put", st.Put(t.Context(), "firmwares/a/b", bytes.NewReader([]byte("x")), 1), st)
}
