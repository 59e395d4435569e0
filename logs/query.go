package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Filter selects records. Every set field must match.
type Filter struct {
	From, To time.Time // inclusive From, exclusive To; zero = unbounded
	Level    string    // system; case-insensitive
	Name     string    // system logger; exact
	Username string    // access; exact
	Method   string    // access; case-insensitive
	Status   int       // access; exact (0 = any)
	Path     string    // access; prefix of URL's path
	// Text is a case-insensitive substring of message (+exceptionStack, fields) for system
	// and of url/action/exception/parameters for access; letters compare as in
	// strings.EqualFold, and parameters and fields match as their stored JSON.
	Text   string
	Limit  int // default 20, max 10000
	Offset int // records to skip after filtering (for page-based paging)
}

const (
	defaultLimit = 20
	maxLimit     = 10000
)

// QueryAccess returns the page of access records matching f, newest first (by time, ties
// by ID descending). A page is stable while records are appended after f.To, so paging
// with a fixed To returns every record exactly once.
func (s *Store) QueryAccess(ctx context.Context, f Filter) ([]*AccessRecord, error) {
	return query(ctx, s, accessKind, f, accessIndexValues(f.Username, f.Method, f.Status), (*matcher).access, (*storedAccess).record)
}

// QuerySystem is QueryAccess for system records.
func (s *Store) QuerySystem(ctx context.Context, f Filter) ([]*SystemRecord, error) {
	return query(ctx, s, systemKind, f, systemIndexValues(f.Level, f.Name), (*matcher).system, (*storedSystem).record)
}

// query walks kind newest first through the best index for f, keeping the records that
// pass every filter, after skipping f.Offset of them, until f.Limit are found.
func query[S any, R any](ctx context.Context, s *Store, k *kind, f Filter, idx [maxIndexes]string,
	keep func(*matcher, *S) bool, record func(*S) (R, error)) ([]R, error) {
	defer s.observeQuery(k, time.Now())
	m := newMatcher(f)
	limit, offset := page(f)
	out := make([]R, 0, min(limit, 64))
	skipped := 0
	err := s.scan(ctx, k, f, idx, func(raw []byte) bool {
		if !m.prefilter(raw) {
			return false
		}
		// A record that does not decode is skipped: one damaged record must not make
		// every query over it fail.
		var sr S
		if json.Unmarshal(raw, &sr) != nil || !keep(m, &sr) {
			return false
		}
		if skipped < offset {
			skipped++
			return false
		}
		r, err := record(&sr)
		if err != nil {
			return false
		}
		out = append(out, r)
		return len(out) >= limit
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) observeQuery(k *kind, start time.Time) {
	s.m.query[k.i].Observe(time.Since(start).Seconds())
}

func page(f Filter) (limit, offset int) {
	limit = f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	return min(limit, maxLimit), max(f.Offset, 0)
}

// GetAccess returns the access record with the given id, or ErrNotFound.
func (s *Store) GetAccess(id string) (*AccessRecord, error) {
	r := new(AccessRecord)
	if err := s.get(accessKind, id, r, &r.ID); err != nil {
		return nil, err
	}
	return r, nil
}

// GetSystem returns the system record with the given id, or ErrNotFound.
func (s *Store) GetSystem(id string) (*SystemRecord, error) {
	r := new(SystemRecord)
	if err := s.get(systemKind, id, r, &r.ID); err != nil {
		return nil, err
	}
	return r, nil
}

// get decodes the record with the given id into dst. The key holds only time and
// sequence, so the decoded id (*gotID) must also match: an id with another node's prefix
// names a record this store does not have.
func (s *Store) get(k *kind, id string, dst any, gotID *string) error {
	_, key, ok := parseID(id)
	if !ok {
		return ErrNotFound
	}
	if s.closed.Load() {
		return ErrClosed
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(k.bucket).Get(key[:])
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, dst)
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	if err == nil && *gotID != id {
		return ErrNotFound
	}
	return err
}

// scan calls fn with the stored JSON of each candidate record in the time range of f,
// newest first, until fn returns true. With indexed filters (non-empty idx values) the
// candidates are the intersection of those indexes; otherwise every record in the range.
// Candidates are only a superset: fn checks every filter itself.
func (s *Store) scan(ctx context.Context, k *kind, f Filter, idx [maxIndexes]string, fn func(raw []byte) bool) error {
	if s.closed.Load() {
		return ErrClosed
	}
	var lo, hi recordKey
	for i := range hi {
		hi[i] = 0xff
	}
	if !f.From.IsZero() {
		lo = makeKey(f.From, 0)
	}
	if !f.To.IsZero() {
		// To is exclusive: the highest key allowed is the one just below (To, 0).
		hi = makeKey(f.To, 0)
		if !decrement(&hi) {
			return nil
		}
	}
	if bytes.Compare(hi[:], lo[:]) < 0 {
		return nil
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		main := tx.Bucket(k.bucket)
		steps := 0
		// Cancellation is checked every so many cursor steps: often enough for a request
		// timeout to stop a long text scan, rarely enough to cost nothing.
		cancelled := func() error {
			steps++
			if steps&255 == 0 {
				return ctx.Err()
			}
			return nil
		}

		var curs []*rangeCursor
		for j, v := range idx[:len(k.indexes)] {
			if v != "" {
				prefix := append([]byte(v), 0)
				curs = append(curs, &rangeCursor{c: tx.Bucket(k.indexes[j]).Cursor(), prefix: prefix})
			}
		}

		switch len(curs) {
		case 0:
			c := &rangeCursor{c: main.Cursor()}
			for key, v := c.seekLE(hi[:]); key != nil && bytes.Compare(key, lo[:]) >= 0; key, v = c.prev() {
				if err := cancelled(); err != nil {
					return err
				}
				if fn(v) {
					return nil
				}
			}
			return nil
		case 1:
			c := curs[0]
			for key, _ := c.seekLE(hi[:]); key != nil && bytes.Compare(key, lo[:]) >= 0; key, _ = c.prev() {
				if err := cancelled(); err != nil {
					return err
				}
				if v := main.Get(key); v != nil && fn(v) {
					return nil
				}
			}
			return nil
		}

		// Leapfrog join: each cursor in turn seeks to the newest key not after the current
		// target; a cursor that lands below it lowers the target, and when every cursor
		// agrees the target is in all indexes. The work follows the sparsest index, not
		// the first one.
		target := hi
		agree := 0
		for i := 0; ; i = (i + 1) % len(curs) {
			if err := cancelled(); err != nil {
				return err
			}
			key, _ := curs[i].seekLE(target[:])
			if key == nil || bytes.Compare(key, lo[:]) < 0 {
				return nil
			}
			if bytes.Equal(key, target[:]) {
				agree++
			} else {
				copy(target[:], key)
				agree = 1
			}
			if agree < len(curs) {
				continue
			}
			if v := main.Get(target[:]); v != nil && fn(v) {
				return nil
			}
			if !decrement(&target) {
				return nil
			}
			agree = 0
		}
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// rangeCursor walks the keys "prefix + record key" of one bucket backwards; with an empty
// prefix it walks a records bucket.
type rangeCursor struct {
	c      *bbolt.Cursor
	prefix []byte
	buf    []byte
}

// seekLE moves to the highest key not above prefix+target and returns its record key and
// value, or nil when no key with the prefix is that low.
func (rc *rangeCursor) seekLE(target []byte) (key, value []byte) {
	rc.buf = append(append(rc.buf[:0], rc.prefix...), target...)
	k, v := rc.c.Seek(rc.buf)
	if k != nil && bytes.Equal(k, rc.buf) {
		return rc.strip(k, v)
	}
	// Seek lands on the first key after the target (or past the end): step back once.
	if k == nil {
		k, v = rc.c.Last()
	} else {
		k, v = rc.c.Prev()
	}
	return rc.strip(k, v)
}

func (rc *rangeCursor) prev() (key, value []byte) {
	return rc.strip(rc.c.Prev())
}

// strip returns the record key of k, or nil once the cursor has left the prefix's range.
// Index values never contain a NUL (see indexValue), so every key in the range has exactly
// the prefix's length plus a record key.
func (rc *rangeCursor) strip(k, v []byte) ([]byte, []byte) {
	if k == nil || len(k) != len(rc.prefix)+keyLen || !bytes.HasPrefix(k, rc.prefix) {
		return nil, nil
	}
	return k[len(rc.prefix):], v
}

// decrement sets k to the key just below it, and reports false if k was the lowest key.
func decrement(k *recordKey) bool {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] > 0 {
			k[i]--
			return true
		}
		k[i] = 0xff
	}
	return false
}
