package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

var (
	// ErrNotFound: no blob under the key.
	ErrNotFound = errors.New("blob not found")
	// ErrUnavailable: the store itself failed or cannot be reached; wrapped with its message.
	ErrUnavailable = errors.New("blob store unavailable")
	// ErrBadKey: a key that is empty or could name something outside its store.
	ErrBadKey = errors.New("bad blob key")
	// ErrSizeMismatch: Put was given a size and the reader yielded more or fewer bytes.
	ErrSizeMismatch = errors.New("blob size mismatch")
	// ErrBadURL: a --blob-store value that is not a store URL this package understands.
	ErrBadURL = errors.New("bad blob store URL")
)

// Info describes a stored blob.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Object is an open blob. It is seekable so that http.ServeContent can answer Range
// requests; it is not safe for concurrent use.
type Object interface {
	io.ReadSeekCloser
}

// Store is one blob store. All methods are safe for concurrent use.
type Store interface {
	// Put stores exactly what r yields under key (size: the byte count when known, -1 when
	// not). It never leaves a partial blob under key: on any error (r's own error included,
	// e.g. the caller's limit) nothing is left. It streams; memory stays bounded (a few MiB)
	// whatever the size.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Open opens the blob under key for reading: ErrNotFound, ErrUnavailable. The object
	// reads with ctx, so cancelling ctx ends its reads too.
	Open(ctx context.Context, key string) (Object, Info, error)
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the blob under key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Check reports whether the store is reachable and usable (nil) or ErrUnavailable.
	Check(ctx context.Context) error
	// Local reports whether the store is this node's own (file://): then peers may lack a
	// blob and fetch it from each other.
	Local() bool
	// String names the store for logs and errors, without secrets.
	String() string
}

// Open parses a --blob-store URL: file://DIR (created if missing) or
// s3://BUCKET?endpoint=HOST:PORT&secure=false&region=R, with the credentials read through
// getenv (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). A store that
// cannot be reached now is still returned, so the node starts and its firmware calls
// answer 503 until the store comes back; only a malformed URL is an error (ErrBadURL).
func Open(ctx context.Context, url string, getenv func(string) string) (Store, error) {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return nil, fmt.Errorf("%w %q: want file://DIR or s3://BUCKET?endpoint=HOST:PORT", ErrBadURL, url)
	}
	switch strings.ToLower(scheme) {
	case "file":
		return openFile(url, rest)
	case "s3":
		return openS3(ctx, url, getenv)
	default:
		return nil, fmt.Errorf("%w %q: unknown scheme %q (want file:// or s3://)", ErrBadURL, redact(url), scheme)
	}
}

// maxKeyLen is S3's limit on an object key, applied to every store so that a key that
// works on one works on all.
const maxKeyLen = 1024

// checkKey refuses keys that are empty, too long, or could step outside their store or
// mean different things to a file system and to S3: absolute keys, empty, "." and ".."
// elements, backslashes and NUL.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrBadKey)
	case len(key) > maxKeyLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrBadKey, maxKeyLen)
	case strings.ContainsAny(key, "\\\x00"):
		return fmt.Errorf("%w %q: backslash or NUL", ErrBadKey, key)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("%w %q: absolute", ErrBadKey, key)
	}
	for _, elem := range strings.Split(key, "/") {
		switch elem {
		case "", ".", "..":
			return fmt.Errorf("%w %q: empty, \".\" or \"..\" element", ErrBadKey, key)
		}
	}
	return nil
}

// limitReader is what a store reads instead of the caller's reader. It keeps the first
// error r returned, so that Put can return it as itself whatever the store's client
// wrapped it in, and when the size is known it fails rather than let the store commit
// more or fewer bytes than promised.
type limitReader struct {
	r    io.Reader
	size int64 // -1: unknown
	n    int64 // bytes yielded so far
	err  error // r's first error other than io.EOF, or ErrSizeMismatch
}

func newLimitReader(r io.Reader, size int64) *limitReader {
	if size < 0 {
		size = -1
	}
	return &limitReader{r: r, size: size}
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if l.size >= 0 {
		left := l.size - l.n
		if left == 0 {
			return 0, l.atEnd()
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	switch {
	case err == io.EOF:
		if l.size >= 0 && l.n < l.size {
			l.err = fmt.Errorf("%w: the reader ended after %d of %d bytes", ErrSizeMismatch, l.n, l.size)
			return n, l.err
		}
		return n, io.EOF
	case err != nil:
		l.err = err
		return n, err
	case l.size >= 0 && l.n == l.size:
		// The last promised byte: a store client that reads exactly size bytes never looks
		// further, so look now, before it commits.
		return n, l.atEnd()
	}
	return n, nil
}

// atEnd reports io.EOF when r has nothing past the promised size.
func (l *limitReader) atEnd() error {
	var b [1]byte
	for range 100 { // io.Reader allows (0, nil); a reader that only says that is broken
		n, err := l.r.Read(b[:])
		if n > 0 {
			l.err = fmt.Errorf("%w: the reader yields more than %d bytes", ErrSizeMismatch, l.size)
			return l.err
		}
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			l.err = err
			return err
		}
	}
	l.err = io.ErrNoProgress
	return l.err
}

// callerGone reports whether err comes from the caller cancelling ctx rather than from the
// store: such errors are returned as they are, not as ErrUnavailable.
func callerGone(ctx context.Context, err error) bool {
	return errors.Is(ctx.Err(), context.Canceled) && errors.Is(err, context.Canceled)
}

// opKey names an operation in an error message: "put firmwares/f1/x", "check".
func opKey(op, key string) string {
	if key == "" {
		return op
	}
	return op + " " + key
}
