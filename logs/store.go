package logs

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
)

// Errors returned by the store, matched with errors.Is.
var (
	ErrNotFound = errors.New("log record not found")
	ErrClosed   = errors.New("log store closed")
)

// Options configure a Store. Zero values take the defaults listed on each field.
type Options struct {
	Path              string               // bbolt file, e.g. <data-dir>/logs.db
	ServerID          string               // this node's id; stamped into every record and its ID
	MaxAge            time.Duration        // default 7*24h
	MaxBytes          int64                // default 1 GiB: total stored record bytes across both kinds
	QueueSize         int                  // default 65536 records; when full, Append drops and counts
	BatchSize         int                  // default 4096 records per write transaction
	FlushInterval     time.Duration        // default 100ms: a partial batch is written after this long
	RetentionInterval time.Duration        // default 30s
	Registry          *prometheus.Registry // optional; metrics registered there
	Now               func() time.Time     // optional clock for tests
}

func (o *Options) setDefaults() {
	if o.MaxAge <= 0 {
		o.MaxAge = 7 * 24 * time.Hour
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 65536
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 4096
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 100 * time.Millisecond
	}
	if o.RetentionInterval <= 0 {
		o.RetentionInterval = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is a node's log store. Its methods are safe for concurrent use.
type Store struct {
	db   *bbolt.DB
	opts Options
	m    *metrics

	queue    chan item
	flushReq chan chan error
	closing  chan struct{}
	done     chan struct{}

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	seq  atomic.Uint32
	size atomic.Int64 // written only by the writer goroutine

	// Owned by the writer goroutine.
	writeErr error        // first failed commit since the last Flush
	trimming bool         // Size passed MaxBytes and has not yet come down to 90%
	arena    []byte       // keys and values of the open write transaction
	encBuf   bytes.Buffer // one record's JSON
	enc      *json.Encoder
}

// item is one queued record: exactly one of acc and sys is set.
type item struct {
	key recordKey
	acc *AccessRecord
	sys *SystemRecord
}

const numKinds = 2

// maxIndexes is the most index buckets a kind has.
const maxIndexes = 3

// kind describes how one kind of record is laid out in bbolt.
type kind struct {
	name    string
	i       int      // position in kinds, metrics arrays and per-kind state
	bucket  []byte   // records: key → JSON
	indexes [][]byte // index buckets, in the order of the record's indexValues
	// storedIndexValues recovers the index values of a stored record, so that deleting it
	// also deletes its index entries.
	storedIndexValues func(raw []byte) ([maxIndexes]string, error)
}

var (
	accessKind = &kind{
		name: Access, i: 0, bucket: []byte("access"),
		indexes: [][]byte{[]byte("access.username"), []byte("access.method"), []byte("access.status")},
		storedIndexValues: func(raw []byte) ([maxIndexes]string, error) {
			var r struct {
				Username   string `json:"username"`
				HTTPMethod string `json:"httpMethod"`
				Status     int    `json:"status"`
			}
			err := json.Unmarshal(raw, &r)
			return accessIndexValues(r.Username, r.HTTPMethod, r.Status), err
		},
	}
	systemKind = &kind{
		name: System, i: 1, bucket: []byte("system"),
		indexes: [][]byte{[]byte("system.level"), []byte("system.name")},
		storedIndexValues: func(raw []byte) ([maxIndexes]string, error) {
			var r struct {
				Level string `json:"level"`
				Name  string `json:"name"`
			}
			err := json.Unmarshal(raw, &r)
			return systemIndexValues(r.Level, r.Name), err
		},
	}
	kinds = [numKinds]*kind{accessKind, systemKind}

	metaBucket  = []byte("meta")
	metaVersion = []byte("version")
	metaSize    = []byte("size")
)

// formatVersion is stored in the meta bucket; Open refuses a file with another version
// instead of misreading it.
const formatVersion = 1

// kindBuckets are one kind's buckets inside a transaction.
type kindBuckets struct {
	main *bbolt.Bucket
	idx  [maxIndexes]*bbolt.Bucket
}

func (k *kind) buckets(tx *bbolt.Tx) kindBuckets {
	b := kindBuckets{main: tx.Bucket(k.bucket)}
	for i, name := range k.indexes {
		b.idx[i] = tx.Bucket(name)
	}
	return b
}

// Open opens (creating if needed) the store at opts.Path and starts its writer.
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("open log store: no path")
	}
	if !validNodeID(opts.ServerID) {
		return nil, fmt.Errorf("open log store: server id %q does not match ^[A-Za-z0-9_-]{1,64}$", opts.ServerID)
	}
	opts.setDefaults()
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	db, err := bbolt.Open(opts.Path, 0o600, &bbolt.Options{
		Timeout:        time.Second,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open log store %s: %w", opts.Path, err)
	}
	s := &Store{
		db:       db,
		opts:     opts,
		m:        m,
		queue:    make(chan item, opts.QueueSize),
		flushReq: make(chan chan error),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open log store %s: %w", opts.Path, err)
	}
	// A random start makes a clash with ids of an earlier run that used the same
	// nanosecond (a caller-supplied or coarse clock) as unlikely as a 32-bit collision.
	s.seq.Store(rand.Uint32())
	s.enc = json.NewEncoder(&s.encBuf)
	// Not HTML-escaping keeps '<', '>' and '&' verbatim in the stored JSON, which lets a
	// query match them on the raw bytes before decoding.
	s.enc.SetEscapeHTML(false)
	m.bytes.Set(float64(s.size.Load()))
	go s.run()
	return s, nil
}

// init creates the buckets and loads the stored size.
func (s *Store) init() error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if v := meta.Get(metaVersion); v != nil {
			if len(v) != 8 || binary.BigEndian.Uint64(v) != formatVersion {
				return fmt.Errorf("unsupported log store format %x", v)
			}
		} else if err := meta.Put(metaVersion, binary.BigEndian.AppendUint64(nil, formatVersion)); err != nil {
			return err
		}
		for _, k := range kinds {
			if _, err := tx.CreateBucketIfNotExists(k.bucket); err != nil {
				return err
			}
			for _, name := range k.indexes {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
		}
		if v := meta.Get(metaSize); len(v) == 8 {
			s.size.Store(int64(binary.BigEndian.Uint64(v)))
			return nil
		}
		// No size recorded (a new file): count it, so that Size is exact from the start.
		var size int64
		for _, k := range kinds {
			err := tx.Bucket(k.bucket).ForEach(func(_, v []byte) error {
				size += int64(len(v))
				return nil
			})
			if err != nil {
				return err
			}
		}
		s.size.Store(size)
		return meta.Put(metaSize, binary.BigEndian.AppendUint64(nil, uint64(size)))
	})
}

// Close writes what is queued, stops the writer and closes the file. Records appended
// concurrently with Close may be lost; Append after Close is ignored.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.closing)
		<-s.done
		s.closeErr = errors.Join(s.writeErr, s.db.Close())
	})
	return s.closeErr
}

// Size returns the total bytes of stored records, what Options.MaxBytes bounds.
func (s *Store) Size() int64 { return s.size.Load() }

// AppendAccess queues r to be stored. It never blocks: when the queue is full r is dropped
// and counted. It stamps r's RequestTime (if zero), ServerID and ID (if empty or not a valid
// record id); after that the store owns r and the caller must not modify it.
func (s *Store) AppendAccess(r *AccessRecord) {
	if r == nil || s.closed.Load() {
		return
	}
	if !s.tryEnqueue(s.accessItem(r)) {
		s.m.queueFull[accessKind.i].Inc()
	}
}

// AppendSystem is AppendAccess for system records; CreateTime is the record's time.
func (s *Store) AppendSystem(r *SystemRecord) {
	if r == nil || s.closed.Load() {
		return
	}
	if !s.tryEnqueue(s.systemItem(r)) {
		s.m.queueFull[systemKind.i].Inc()
	}
}

func (s *Store) accessItem(r *AccessRecord) item {
	if r.RequestTime.IsZero() {
		r.RequestTime = s.opts.Now()
	}
	if r.ServerID == "" {
		r.ServerID = s.opts.ServerID
	}
	return item{key: s.key(&r.ID, r.RequestTime), acc: r}
}

func (s *Store) systemItem(r *SystemRecord) item {
	if r.CreateTime.IsZero() {
		r.CreateTime = s.opts.Now()
	}
	if r.ServerID == "" {
		r.ServerID = s.opts.ServerID
	}
	return item{key: s.key(&r.ID, r.CreateTime), sys: r}
}

// key returns the record key named by *id, assigning a new id for time t if *id is not a
// valid record id.
func (s *Store) key(id *string, t time.Time) recordKey {
	if *id != "" {
		if _, k, ok := parseID(*id); ok {
			return k
		}
	}
	k := makeKey(t, s.seq.Add(1))
	*id = formatID(s.opts.ServerID, k)
	return k
}

func (s *Store) tryEnqueue(it item) bool {
	select {
	case s.queue <- it:
		return true
	default:
		return false
	}
}

// Flush waits until every record appended before the call is committed (durable and
// queryable), and reports a failed commit since the previous Flush.
func (s *Store) Flush(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	req := make(chan error, 1)
	select {
	case s.flushReq <- req:
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// The writer always answers a request it has taken.
	select {
	case err := <-req:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closedChan is always ready: selecting on it means "there is more retention work".
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// run is the writer goroutine: the only one that writes to bbolt.
func (s *Store) run() {
	defer close(s.done)
	bs := s.opts.BatchSize
	batch := make([]item, 0, bs)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false // timer runs: the batch holds records waiting for FlushInterval
	ticker := time.NewTicker(s.opts.RetentionInterval)
	defer ticker.Stop()
	// Sweep at start: the node may have been down for longer than MaxAge.
	retain := true

	commit := func() {
		if len(batch) > 0 {
			s.write(batch)
			clear(batch) // let the records be collected
			batch = batch[:0]
		}
		if armed {
			timer.Stop()
			armed = false
		}
		if s.size.Load() > s.opts.MaxBytes {
			retain = true
		}
	}
	// take moves n queued records into the batch, committing each full one.
	take := func(n int) {
		for range n {
			batch = append(batch, <-s.queue)
			if len(batch) >= bs {
				commit()
			}
		}
	}

	for {
		var retainNow chan struct{}
		if retain {
			// Ready at once, but select picks at random among ready cases, so a long
			// retention run is interleaved with ingest instead of stalling it.
			retainNow = closedChan
		}
		select {
		case it := <-s.queue:
			batch = append(batch, it)
			take(min(len(s.queue), bs-len(batch)))
			if len(batch) >= bs {
				commit()
			} else if len(batch) > 0 && !armed {
				timer.Reset(s.opts.FlushInterval)
				armed = true
			}
		case <-timer.C:
			armed = false
			commit()
		case req := <-s.flushReq:
			// Everything appended before Flush was called is in the queue by now; records
			// appended later may be taken too, which does no harm.
			take(len(s.queue))
			commit()
			req <- s.writeErr
			s.writeErr = nil
		case <-ticker.C:
			retain = true
		case <-retainNow:
			var err error
			retain, err = s.retainStep()
			if err != nil && s.writeErr == nil {
				s.writeErr = fmt.Errorf("log retention: %w", err)
			}
		case <-s.closing:
			take(len(s.queue))
			commit()
			return
		}
	}
}

// write commits one batch of records in a single transaction.
func (s *Store) write(batch []item) {
	size := s.size.Load()
	var n, bad [numKinds]int
	err := s.db.Update(func(tx *bbolt.Tx) error {
		var bks [numKinds]kindBuckets
		for i, k := range kinds {
			bks[i] = k.buckets(tx)
			// Keys are times, so records mostly arrive in key order, and an index value's
			// entries arrive at the end of that value's range. The page left behind by a
			// split is then rarely written again: splitting it 90/10 instead of bbolt's
			// default 50/50 leaves it nearly full (the file for 1,000,000 bench records
			// shrank from 731 to 633 MB).
			bks[i].main.FillPercent = 0.9
			for _, b := range bks[i].idx[:len(k.indexes)] {
				b.FillPercent = 0.9
			}
		}
		// bbolt keeps references to keys and values until commit, so they are carved out
		// of one arena instead of allocated one by one.
		s.arena = s.arena[:0]
		for i := range batch {
			it := &batch[i]
			k, val, idx, ok := s.encode(it)
			if !ok {
				bad[k.i]++
				continue
			}
			b := bks[k.i]
			key := it.key[:]
			if old := b.main.Get(key); old != nil {
				// Same id appended twice (or a clash of time and sequence): the new record
				// replaces the old one, which must leave Size and the indexes exact.
				freed, err := deleteRecord(k, b, key, old)
				if err != nil {
					return err
				}
				size -= freed
			}
			if err := b.main.Put(key, val); err != nil {
				return err
			}
			for j, v := range idx[:len(k.indexes)] {
				if v == "" {
					continue
				}
				start := len(s.arena)
				s.arena = append(s.arena, v...)
				s.arena = append(s.arena, 0)
				s.arena = append(s.arena, key...)
				if err := b.idx[j].Put(s.arena[start:len(s.arena):len(s.arena)], []byte{}); err != nil {
					return err
				}
			}
			size += int64(len(val))
			n[k.i]++
		}
		return putSize(tx, size)
	})
	if cap(s.arena) > 64<<20 {
		s.arena = nil // do not pin the memory of one huge batch forever
	}
	if err != nil {
		for i := range batch {
			if batch[i].acc != nil {
				s.m.writeErr[accessKind.i].Inc()
			} else {
				s.m.writeErr[systemKind.i].Inc()
			}
		}
		if s.writeErr == nil {
			s.writeErr = fmt.Errorf("write log records: %w", err)
		}
		return
	}
	s.size.Store(size)
	s.m.bytes.Set(float64(size))
	for i := range kinds {
		s.m.written[i].Add(float64(n[i]))
		s.m.writeErr[i].Add(float64(bad[i]))
	}
}

func putSize(tx *bbolt.Tx, size int64) error {
	return tx.Bucket(metaBucket).Put(metaSize, binary.BigEndian.AppendUint64(nil, uint64(size)))
}

// encode renders it as JSON into the arena and returns its kind and index values. A
// record that JSON cannot represent (a NaN, a channel in Parameters) is stored without the
// offending parts rather than lost: ok is false only if even that fails.
func (s *Store) encode(it *item) (k *kind, val []byte, idx [maxIndexes]string, ok bool) {
	var v any
	if it.acc != nil {
		k, v, idx = accessKind, it.acc, it.acc.indexValues()
	} else {
		k, v, idx = systemKind, it.sys, it.sys.indexValues()
	}
	s.encBuf.Reset()
	if err := s.enc.Encode(v); err != nil {
		s.encBuf.Reset()
		if err := s.enc.Encode(encodable(it, err)); err != nil {
			return k, nil, idx, false
		}
	}
	b := s.encBuf.Bytes()
	b = b[:len(b)-1] // Encode appends a newline
	start := len(s.arena)
	s.arena = append(s.arena, b...)
	return k, s.arena[start:len(s.arena):len(s.arena)], idx, true
}

// encodable returns a copy of the record in it with the free-form map replaced by a note
// of the encoding error and non-finite numbers zeroed.
func encodable(it *item, err error) any {
	note := map[string]any{"encodingError": err.Error()}
	if it.acc != nil {
		r := *it.acc
		r.Parameters = note
		if math.IsNaN(r.DurationMs) || math.IsInf(r.DurationMs, 0) {
			r.DurationMs = 0
		}
		return &r
	}
	r := *it.sys
	r.Fields = note
	return &r
}

// deleteRecord deletes one record and its index entries and returns its size. raw is the
// stored value; it is decoded before anything is deleted, while it is still valid.
func deleteRecord(k *kind, b kindBuckets, key, raw []byte) (int64, error) {
	v := newVictim(k, key, raw)
	return v.n, v.delete(b)
}

func deleteIndexes(k *kind, b kindBuckets, key []byte, idx [maxIndexes]string) error {
	var buf [maxIndexValue + 1 + keyLen]byte
	for j, v := range idx[:len(k.indexes)] {
		if v == "" {
			continue
		}
		ik := append(append(append(buf[:0], v...), 0), key...)
		if err := b.idx[j].Delete(ik); err != nil {
			return err
		}
	}
	return nil
}
