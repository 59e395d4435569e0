package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	// tmpDirName holds uploads in progress. A key's first element may not be it, so no
	// blob can be mistaken for, or clobber, a temp file.
	tmpDirName = ".tmp"
	// staleAfter is how long a temp file must have gone unwritten before opening the store
	// removes it: long enough that an upload still running (through another store on the
	// same directory) is never pulled from under its writer.
	staleAfter = 10 * time.Minute
	// copyBufSize is the one buffer a file Put holds.
	copyBufSize = 256 << 10
)

// fileStore keeps blobs as files under dir, one per key, the key's elements as
// directories.
type fileStore struct {
	dir string // absolute
}

func openFile(url, path string) (Store, error) {
	if path == "" {
		return nil, fmt.Errorf("%w %q: file:// needs a directory", ErrBadURL, url)
	}
	if strings.ContainsRune(path, 0) || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("%w %q: file:// takes a plain path, no query or fragment", ErrBadURL, url)
	}
	dir, err := filepath.Abs(filepath.FromSlash(path))
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadURL, url, err)
	}
	s := &fileStore{dir: dir}
	// A directory that cannot be created now is reported by Check and by every call, the
	// way an unreachable S3 is; the node still starts.
	if err := os.MkdirAll(s.tmpDir(), 0o750); err == nil {
		s.removeStale(time.Now().Add(-staleAfter))
	}
	return s, nil
}

func (s *fileStore) tmpDir() string { return filepath.Join(s.dir, tmpDirName) }

// removeStale removes temp files last written before cutoff: what a crash mid-upload left.
func (s *fileStore) removeStale(cutoff time.Time) {
	entries, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			_ = os.RemoveAll(filepath.Join(s.tmpDir(), e.Name()))
		}
	}
}

func (s *fileStore) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if first, _, _ := strings.Cut(key, "/"); first == tmpDirName {
		return "", fmt.Errorf("%w %q: %s is the file store's own", ErrBadKey, key, tmpDirName)
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
}

func (s *fileStore) unavailable(op, key string, err error) error {
	return fmt.Errorf("%w: %s: %s: %w", ErrUnavailable, s, opKey(op, key), err)
}

func (s *fileStore) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	path, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.tmpDir(), 0o750); err != nil {
		return s.unavailable("put", key, err)
	}
	tmp, err := os.CreateTemp(s.tmpDir(), "put-*")
	if err != nil {
		return s.unavailable("put", key, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()

	// A loop of our own rather than io.Copy, to tell the reader's errors (the caller's)
	// from the disk's (the store's).
	lr := newLimitReader(r, size)
	buf := make([]byte, copyBufSize)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("blob put %s: %w", key, err)
		}
		n, rerr := lr.Read(buf)
		if n > 0 {
			if _, werr := tmp.Write(buf[:n]); werr != nil {
				return s.unavailable("put", key, werr)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("blob put %s: %w", key, rerr)
		}
	}
	// Durable before visible: after a crash the key names either nothing or every byte.
	if err := tmp.Sync(); err != nil {
		return s.unavailable("put", key, err)
	}
	if err := tmp.Close(); err != nil {
		return s.unavailable("put", key, err)
	}
	parent := filepath.Dir(path)
	// Twice: a Delete emptying the same parent may remove it between MkdirAll and Rename.
	for attempt := 0; ; attempt++ {
		if err = os.MkdirAll(parent, 0o750); err == nil {
			if err = os.Rename(tmp.Name(), path); err == nil {
				break
			}
		}
		if attempt == 1 || !errors.Is(err, fs.ErrNotExist) {
			return s.unavailable("put", key, err)
		}
	}
	syncDir(parent)
	return nil
}

// syncDir makes a rename in dir durable; file systems that cannot fsync a directory lose
// nothing but that guarantee.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// notExist reports errors that mean no file at the path, including a path element that is
// a file (ENOTDIR): for a key, both mean no blob.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func (s *fileStore) Open(ctx context.Context, key string) (Object, Info, error) {
	path, err := s.path(key)
	if err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		if notExist(err) {
			return nil, Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, Info{}, s.unavailable("open", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, Info{}, s.unavailable("open", key, err)
	}
	if !fi.Mode().IsRegular() { // a directory of other keys is no blob
		_ = f.Close()
		return nil, Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return f, Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (s *fileStore) Stat(ctx context.Context, key string) (Info, error) {
	path, err := s.path(key)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		if notExist(err) {
			return Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return Info{}, s.unavailable("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (s *fileStore) Delete(ctx context.Context, key string) error {
	path, err := s.path(key)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		return nil // other keys' directory, not a blob: nothing under this key to delete
	}
	if err := os.Remove(path); err != nil && !notExist(err) {
		return s.unavailable("delete", key, err)
	}
	// Remove the directories the key emptied (firmwares/<id>/), up to the store's root;
	// Remove fails harmlessly on one that still holds other keys.
	for dir := filepath.Dir(path); dir != s.dir && strings.HasPrefix(dir, s.dir+string(filepath.Separator)); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// Check proves the directory writable by creating and removing a temp file in it.
func (s *fileStore) Check(ctx context.Context) error {
	if err := os.MkdirAll(s.tmpDir(), 0o750); err != nil {
		return s.unavailable("check", "", err)
	}
	f, err := os.CreateTemp(s.tmpDir(), "check-*")
	if err != nil {
		return s.unavailable("check", "", err)
	}
	_ = f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return s.unavailable("check", "", err)
	}
	return nil
}

func (s *fileStore) Local() bool { return true }

func (s *fileStore) String() string { return "file://" + filepath.ToSlash(s.dir) }
