package ota

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/ota/blob"
	"github.com/linkops/linkops/resource"
)

// Firmware is this node's side of firmware files: uploads, downloads (from its own store,
// or fetched from a peer and kept), signed device links, and the follower that copies every
// firmware's blob into a file store, so the cluster survives losing the node that took the
// upload.
type Firmware struct {
	cfg     FirmwareConfig
	log     *slog.Logger
	metrics *Metrics
	fetches singleflight.Group
}

// FirmwareConfig assembles a Firmware.
type FirmwareConfig struct {
	NodeID string
	Store  *fsm.Store
	Blobs  blob.Store
	// PublicURL is the base URL devices reach this node by (--public-url).
	PublicURL string
	// Peers lists the other nodes that may hold a blob, the ones gossip sees alive first.
	Peers func() []string
	// FetchBlob opens a blob held by a peer (its internal API).
	FetchBlob func(ctx context.Context, node, key string) (io.ReadCloser, error)
	Metrics   *Metrics
	Log       *slog.Logger
	Now       func() time.Time
}

// NewFirmware assembles a Firmware.
func NewFirmware(cfg FirmwareConfig) *Firmware {
	defaults(&cfg.Log, &cfg.Now, &cfg.Metrics)
	if cfg.Peers == nil {
		cfg.Peers = func() []string { return nil }
	}
	return &Firmware{cfg: cfg, log: cfg.Log, metrics: cfg.Metrics}
}

// Upload streams r into the blob store under key while hashing it. More than max bytes is
// ErrTooLarge, and nothing is kept: the limit fails the store's own write.
func (f *Firmware) Upload(ctx context.Context, key string, r io.Reader, max int64) (Upload, error) {
	h := newHashes()
	lr := &limitReader{r: io.TeeReader(r, h), left: max}
	if err := f.cfg.Blobs.Put(ctx, key, lr, -1); err != nil {
		if lr.over {
			return Upload{}, fmt.Errorf("%w: more than %d bytes (--firmware-max-bytes)", ErrTooLarge, max)
		}
		return Upload{}, err
	}
	up := Upload{Key: key, Size: h.n, MD5: hex.EncodeToString(h.md5.Sum(nil)), SHA256: hex.EncodeToString(h.sha.Sum(nil))}
	f.log.Info("firmware file stored", "key", key, "size", up.Size, "store", f.cfg.Blobs.String())
	return up, nil
}

// hashes computes both signs of a file in one pass.
type hashes struct {
	md5, sha hash.Hash
	n        int64
}

func newHashes() *hashes { return &hashes{md5: md5.New(), sha: sha256.New()} }

func (h *hashes) Write(p []byte) (int, error) {
	h.md5.Write(p)
	h.sha.Write(p)
	h.n += int64(len(p))
	return len(p), nil
}

// limitReader fails once more than left bytes were read, so the store discards the blob.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		l.over = true
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.over = true
		return 0, ErrTooLarge
	}
	return n, err
}

// Remove deletes a firmware's blob from this node's store.
func (f *Firmware) Remove(ctx context.Context, fw *resource.Firmware) error {
	if fw.BlobKey == "" {
		return nil
	}
	return f.cfg.Blobs.Delete(ctx, fw.BlobKey)
}

// Serve answers a download of fw (Range, If-Range and If-None-Match through
// http.ServeContent; ETag is the file's SHA-256). A file store that lacks the blob fetches
// it from a peer first.
func (f *Firmware) Serve(w http.ResponseWriter, r *http.Request, fw *resource.Firmware) error {
	obj, info, err := f.open(r.Context(), fw)
	if err != nil {
		return err
	}
	defer obj.Close()
	h := w.Header()
	h.Set("ETag", `"`+fw.SHA256+`"`)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", fw.ID+"-"+fw.Version+".bin"))
	h.Set("X-Firmware-Sign", fw.SignMethod+"="+fw.Sign)
	cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
	http.ServeContent(cw, r, "", info.ModTime, obj)
	if cw.status == http.StatusOK || cw.status == http.StatusPartialContent {
		f.metrics.bytesServed.Add(float64(cw.n)) // not the text of a 416
	}
	return nil
}

// countingWriter counts the body bytes written (linkops_firmware_bytes_served_total).
type countingWriter struct {
	http.ResponseWriter
	n      int64
	status int
}

func (c *countingWriter) WriteHeader(status int) {
	c.status = status
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// ServeBlob streams a blob this node holds to a peer; only this node's store is read.
func (f *Firmware) ServeBlob(w http.ResponseWriter, r *http.Request, key string) error {
	obj, info, err := f.cfg.Blobs.Open(r.Context(), key)
	if err != nil {
		return err
	}
	defer obj.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	w.WriteHeader(http.StatusOK)
	_, err = io.Copy(w, obj)
	return err
}

// open reads fw's blob from this node's store, fetching it from a peer when a file store
// lacks it.
func (f *Firmware) open(ctx context.Context, fw *resource.Firmware) (blob.Object, blob.Info, error) {
	obj, info, err := f.cfg.Blobs.Open(ctx, fw.BlobKey)
	if err == nil || !errors.Is(err, blob.ErrNotFound) || !f.cfg.Blobs.Local() {
		return obj, info, err
	}
	if err := f.fetch(ctx, fw); err != nil {
		return nil, blob.Info{}, err
	}
	return f.cfg.Blobs.Open(ctx, fw.BlobKey)
}

// fetchTimeout bounds copying one firmware file from a peer (2 GiB at 10 MB/s is ~4 min).
const fetchTimeout = 15 * time.Minute

// fetch copies fw's blob from the first peer that has it into this node's store, checking
// its SHA-256 on the way: a copy that does not match is never stored. Concurrent requests
// for one blob share one fetch.
func (f *Firmware) fetch(ctx context.Context, fw *resource.Firmware) error {
	// Shared by every download waiting for this blob, so it is not cancelled with the
	// first one's request (a device that drops must not fail the others).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	_, err, _ := f.fetches.Do(fw.BlobKey, func() (any, error) {
		if _, err := f.cfg.Blobs.Stat(ctx, fw.BlobKey); err == nil {
			return nil, nil // another fetch finished meanwhile
		}
		var errs []error
		for _, peer := range f.cfg.Peers() {
			err := f.fetchFrom(ctx, peer, fw)
			if err == nil {
				f.metrics.peerFetches.WithLabelValues("ok").Inc()
				f.log.Info("firmware file copied from a peer", "firmware", fw.ID, "peer", peer, "size", fw.Size)
				return nil, nil
			}
			f.metrics.peerFetches.WithLabelValues("failed").Inc()
			errs = append(errs, fmt.Errorf("%s: %w", peer, err))
			if ctx.Err() != nil {
				break
			}
		}
		if len(errs) == 0 {
			return nil, fmt.Errorf("%w: firmware %q is not in this node's store and no peer is known", blob.ErrNotFound, fw.ID)
		}
		return nil, fmt.Errorf("%w: firmware %q is not in this node's store, and no peer gave it: %w", blob.ErrNotFound, fw.ID, errors.Join(errs...))
	})
	return err
}

func (f *Firmware) fetchFrom(ctx context.Context, peer string, fw *resource.Firmware) error {
	rc, err := f.cfg.FetchBlob(ctx, peer, fw.BlobKey)
	if err != nil {
		return err
	}
	defer rc.Close()
	v := &verifyingReader{r: rc, h: sha256.New(), want: fw.SHA256, size: fw.Size}
	return f.cfg.Blobs.Put(ctx, fw.BlobKey, v, fw.Size)
}

// verifyingReader ends in an error instead of io.EOF when what it read is not the expected
// file, so the store keeps nothing of it.
type verifyingReader struct {
	r    io.Reader
	h    hash.Hash
	want string
	size int64
	n    int64
}

var errCorrupt = errors.New("the copy does not match the firmware's sha256")

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want || v.n != v.size {
			return n, fmt.Errorf("%w (%d bytes, sha256 %s)", errCorrupt, v.n, got)
		}
	}
	return n, err
}

// Replicate keeps a copy of every firmware's blob in this node's file store and drops the
// copies of deleted firmware, until ctx ends. With S3 every node reads the bucket, so there
// is nothing to do.
func (f *Firmware) Replicate(ctx context.Context) {
	if !f.cfg.Blobs.Local() {
		return
	}
	known := map[string]string{} // blob key -> firmware id, as last seen
	backoff := time.Second
	for ctx.Err() == nil {
		objs, ws := f.cfg.Store.List(resource.Firmwares)
		now := map[string]string{}
		failed := false
		for _, o := range objs {
			fw := o.(*resource.Firmware)
			if fw.BlobKey == "" {
				continue
			}
			now[fw.BlobKey] = fw.ID
			if _, err := f.cfg.Blobs.Stat(ctx, fw.BlobKey); err == nil {
				continue
			}
			if err := f.fetch(ctx, fw); err != nil && ctx.Err() == nil {
				failed = true
				f.log.Debug("cannot copy a firmware file yet", "firmware", fw.ID, "error", err)
			}
		}
		for key, id := range known {
			if _, ok := now[key]; !ok {
				if err := f.cfg.Blobs.Delete(ctx, key); err != nil {
					f.log.Warn("removing a deleted firmware's file failed", "firmware", id, "error", err)
				}
			}
		}
		known = now
		var retry <-chan time.Time
		if failed {
			retry = time.After(backoff)
			backoff = min(backoff*2, 30*time.Second)
		} else {
			backoff = time.Second
		}
		watchCtx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-retry:
			case <-watchCtx.Done():
			}
			cancel()
		}()
		_ = ws.WatchCtx(watchCtx)
		cancel()
	}
}

// linkKey is the key of device download links: derived from the cluster's token key, which
// the replicated state keeps, so every node signs and checks the same links.
func (f *Firmware) linkKey() []byte {
	m := hmac.New(sha256.New, f.cfg.Store.Meta(fsm.MetaTokenKey))
	m.Write([]byte("linkops firmware download links v1"))
	return m.Sum(nil)
}

func (f *Firmware) signature(id string, expires int64) string {
	m := hmac.New(sha256.New, f.linkKey())
	fmt.Fprintf(m, "%s\n%d", id, expires)
	return hex.EncodeToString(m.Sum(nil))
}

// DownloadURL is fw's signed device link on this node, valid until expires.
func (f *Firmware) DownloadURL(fw *resource.Firmware, expires time.Time) string {
	e := expires.Unix()
	return fmt.Sprintf("%s/api/v1/firmwares/%s/download?expires=%d&signature=%s",
		f.cfg.PublicURL, url.PathEscape(fw.ID), e, f.signature(fw.ID, e))
}

// CheckSignature verifies a device link's expires (unix seconds) and signature.
func (f *Firmware) CheckSignature(id, expires, signature string) error {
	e, err := strconv.ParseInt(expires, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: expires must be a unix time in seconds", ErrBadSignature)
	}
	got, err := hex.DecodeString(signature)
	if err != nil || !hmac.Equal(got, mustHex(f.signature(id, e))) {
		return fmt.Errorf("%w: the link was not signed by this cluster, or was altered", ErrBadSignature)
	}
	if f.cfg.Now().Unix() > e {
		return fmt.Errorf("%w at %s", ErrExpired, time.Unix(e, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}
