package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

const (
	// minPartSize is S3's smallest part, and the part an upload of unknown size uses: minio
	// holds one part in memory per upload (NumThreads 1), and with PartSize 0 it would size
	// parts for a 5 TiB object, about 528 MiB each.
	minPartSize = 5 << 20
	// maxParts is S3's limit on parts per upload.
	maxParts = 10000
	// s3Retries bounds minio's retries (its default is 10, several seconds of backoff), so
	// that a store that is down is reported as such within about a second.
	s3Retries = 3
	// openTimeout bounds the bucket check at Open, so that a node never waits long for
	// a store it will retry anyway.
	openTimeout = 10 * time.Second
)

// s3Store keeps blobs as objects in one bucket, the key as the object name.
type s3Store struct {
	client   *minio.Client
	bucket   string
	endpoint string
	region   string

	mu    sync.Mutex  // serialises bucket creation
	ready atomic.Bool // the bucket is known to exist
}

var s3Params = map[string]bool{"endpoint": true, "secure": true, "region": true}

func openS3(ctx context.Context, raw string, getenv func(string) string) (Store, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrBadURL, redact(raw), fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // its message would repeat the URL unredacted
		}
		return nil, bad("%v", err)
	}
	if u.User != nil {
		return nil, bad("credentials go in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, not in the URL")
	}
	bucket := u.Host
	if bucket == "" {
		return nil, bad("no bucket: want s3://BUCKET?endpoint=HOST:PORT&secure=false&region=R")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, bad("a path after the bucket is not supported")
	}
	if u.Fragment != "" {
		return nil, bad("a fragment is not supported")
	}
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return nil, bad("bucket %q: %v", bucket, err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, bad("query: %v", err)
	}
	for k, v := range q {
		if !s3Params[k] {
			return nil, bad("unknown parameter %q (want endpoint, secure, region)", k)
		}
		if len(v) != 1 {
			return nil, bad("parameter %q given %d times", k, len(v))
		}
	}
	endpoint := q.Get("endpoint")
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	if strings.Contains(endpoint, "/") {
		return nil, bad("endpoint %q: want HOST[:PORT] (no scheme; secure=false for http)", endpoint)
	}
	secure := true
	if v, ok := q["secure"]; ok {
		if secure, err = strconv.ParseBool(v[0]); err != nil {
			return nil, bad("secure=%q: want true or false", v[0])
		}
	}
	region := q.Get("region")
	if region == "" {
		region = "us-east-1"
	}

	transport, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, bad("%v", err)
	}
	// A refused connection fails at once; an unroutable one would otherwise hold a call
	// for minio's 30 s per attempt.
	transport.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	client, err := minio.New(endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN")),
		Secure:     secure,
		Region:     region, // known, so minio never asks the server for the bucket's location
		Transport:  transport,
		MaxRetries: s3Retries,
	})
	if err != nil {
		return nil, bad("endpoint %q: %v", endpoint, err)
	}
	s := &s3Store{client: client, bucket: bucket, endpoint: endpoint, region: region}
	// Create the bucket now if the store answers (SPEC §4.7); if it does not, every later
	// call tries again until one succeeds.
	octx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	_ = s.ensureBucket(octx)
	return s, nil
}

// redact drops the user info from a URL that is about to be quoted in an error.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if scheme, rest, ok := strings.Cut(raw, "://"); ok && strings.Contains(rest, "@") {
			return scheme + "://(redacted)"
		}
		return raw
	}
	u.User = nil
	return u.String()
}

func (s *s3Store) String() string { return fmt.Sprintf("s3://%s (%s)", s.bucket, s.endpoint) }

func (s *s3Store) Local() bool { return false }

// fail turns a minio error into this package's: a missing object is ErrNotFound, the
// caller's own cancellation stays itself, and everything else the store said or failed
// to say is ErrUnavailable with its message.
func (s *s3Store) fail(ctx context.Context, op, key string, err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch {
		case resp.Code == minio.NoSuchKey || (resp.StatusCode == http.StatusNotFound && resp.Code == "NotFound"):
			return fmt.Errorf("%w: %s", ErrNotFound, key)
		case resp.Code == minio.NoSuchBucket:
			s.ready.Store(false) // someone removed it: the next call creates it again
		}
	}
	if callerGone(ctx, err) {
		return fmt.Errorf("blob %s: %w", opKey(op, key), err)
	}
	return fmt.Errorf("%w: %s: %s: %w", ErrUnavailable, s, opKey(op, key), err)
}

// ensureBucket creates the bucket unless it is known to exist.
func (s *s3Store) ensureBucket(ctx context.Context) error {
	if s.ready.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready.Load() {
		return nil
	}
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s.fail(ctx, "bucket", s.bucket, err)
	}
	if !exists {
		if err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: s.region}); err != nil {
			// Another node may have created it since we looked; what counts is whether
			// we can use it now.
			if exists, err2 := s.client.BucketExists(ctx, s.bucket); err2 != nil || !exists {
				return s.fail(ctx, "create bucket", s.bucket, err)
			}
		}
	}
	s.ready.Store(true)
	return nil
}

// partSize is the smallest part that fits size in maxParts, rounded up to a MiB, at least
// minPartSize; an unknown size gets minPartSize.
func partSize(size int64) uint64 {
	p := int64(minPartSize)
	if size > p*maxParts {
		p = (size + maxParts - 1) / maxParts
		p = (p + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return uint64(p)
}

func (s *s3Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.ensureBucket(ctx); err != nil {
		return err
	}
	lr := newLimitReader(r, size)
	_, err := s.client.PutObject(ctx, s.bucket, key, lr, lr.size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    partSize(lr.size),
		NumThreads:  1, // and no ConcurrentStreamParts: one part buffer per upload
	})
	// On error minio has aborted a multipart upload (on a context of its own, so even when
	// ctx is done): no parts linger.
	if err == nil {
		return nil
	}
	if lr.err != nil {
		return fmt.Errorf("blob put %s: %w", key, lr.err)
	}
	return s.fail(ctx, "put", key, err)
}

func (s *s3Store) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	if err := s.ensureBucket(ctx); err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.fail(ctx, "stat", key, err)
	}
	return Info{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Open stats the object first, so that a missing key is ErrNotFound here and not at the
// first Read, and so that Seek knows the size without asking the server.
func (s *s3Store) Open(ctx context.Context, key string) (Object, Info, error) {
	if err := checkKey(key); err != nil {
		return nil, Info{}, err
	}
	if err := s.ensureBucket(ctx); err != nil {
		return nil, Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return nil, Info{}, s.fail(ctx, "open", key, err)
	}
	info := Info{Key: key, Size: oi.Size, ModTime: oi.LastModified}
	return &s3Object{ctx: ctx, s: s, key: key, etag: oi.ETag, size: oi.Size}, info, nil
}

func (s *s3Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.ensureBucket(ctx); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if err := s.fail(ctx, "delete", key, err); !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// Check asks the server about the bucket every time (a HEAD, which also proves the
// credentials), and creates the bucket if it is missing.
func (s *s3Store) Check(ctx context.Context) error {
	if s.ready.Load() {
		exists, err := s.client.BucketExists(ctx, s.bucket)
		if err != nil {
			return fmt.Errorf("%w: %s: check: %w", ErrUnavailable, s, err)
		}
		if exists {
			return nil
		}
		s.ready.Store(false)
	}
	if err := s.ensureBucket(ctx); err != nil {
		if !errors.Is(err, ErrUnavailable) {
			return fmt.Errorf("%w: %s: check: %w", ErrUnavailable, s, err)
		}
		return err
	}
	return nil
}

// s3Object reads an object by ranged GETs: Seek only moves the offset, and the next Read
// starts a GET from there unless the open response is already at it. So
// http.ServeContent's Seek to the end and back costs nothing, and a Range request one GET.
type s3Object struct {
	ctx  context.Context
	s    *s3Store
	key  string
	etag string // pins the reads to the object Open found
	size int64

	pos     int64         // where the next Read starts
	body    io.ReadCloser // an open GET, or nil
	bodyPos int64         // the offset of body's next byte
	closed  bool
}

func (o *s3Object) Read(p []byte) (int, error) {
	if o.closed {
		return 0, os.ErrClosed
	}
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if o.body != nil && o.bodyPos != o.pos {
		_ = o.body.Close()
		o.body = nil
	}
	if o.body == nil {
		var opts minio.GetObjectOptions
		if o.etag != "" {
			_ = opts.SetMatchETag(o.etag)
		}
		if o.pos > 0 {
			_ = opts.SetRange(o.pos, 0)
		}
		body, _, _, err := minio.Core{Client: o.s.client}.GetObject(o.ctx, o.s.bucket, o.key, opts)
		if err != nil {
			return 0, o.s.fail(o.ctx, "read", o.key, err)
		}
		o.body, o.bodyPos = body, o.pos
	}
	n, err := o.body.Read(p)
	o.pos += int64(n)
	o.bodyPos += int64(n)
	switch {
	case err == io.EOF && o.pos >= o.size:
		return n, io.EOF
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
		fallthrough
	case err != nil:
		_ = o.body.Close()
		o.body = nil
		if callerGone(o.ctx, err) {
			return n, fmt.Errorf("blob read %s: %w", o.key, err)
		}
		return n, fmt.Errorf("%w: %s: read %s: %w", ErrUnavailable, o.s, o.key, err)
	}
	return n, nil
}

func (o *s3Object) Seek(offset int64, whence int) (int64, error) {
	if o.closed {
		return 0, os.ErrClosed
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.pos + offset
	case io.SeekEnd:
		abs = o.size + offset
	default:
		return 0, fmt.Errorf("blob seek %s: invalid whence %d", o.key, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("blob seek %s: negative position %d", o.key, abs)
	}
	o.pos = abs
	return abs, nil
}

func (o *s3Object) Close() error {
	if o.closed {
		return os.ErrClosed
	}
	o.closed = true
	if o.body != nil {
		_ = o.body.Close()
		o.body = nil
	}
	return nil
}
