package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
	"github.com/klauspost/compress/zstd"

	"github.com/linkops/linkops/resource"
)

// SnapshotFormat is the version of the snapshot layout written by this code. A reader
// refuses formats newer than it knows.
const SnapshotFormat = 1

// maxSnapshotLine bounds one record (a protocol package of 4 MiB is ~5.4 MiB of JSON).
const maxSnapshotLine = 64 << 20

// A snapshot is a zstd stream of JSON lines: a header, then one line per meta entry and per
// resource (kinds in name order, resources in id order), then a trailer holding the SHA-256
// of every line before it. The checksum lets a restore refuse a truncated or altered file
// before it touches the state.
type snapshotHeader struct {
	Format int            `json:"format"`
	Counts map[string]int `json:"counts"`
	// Index is the last command applied when the snapshot was taken.
	Index uint64 `json:"index,omitempty"`
}

type snapshotRecord struct {
	Meta     *metaEntry      `json:"meta,omitempty"`
	Presence *Presence       `json:"presence,omitempty"`
	OTA      *OTARecord      `json:"ota,omitempty"`
	Kind     string          `json:"kind,omitempty"`
	Object   json.RawMessage `json:"object,omitempty"`
	Checksum string          `json:"checksum,omitempty"`
}

type snapshot struct {
	txn   *memdb.Txn
	index uint64
}

// Persist writes the snapshot to the sink, cancelling it on any error.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.txn, s.index); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// writeSnapshot writes the state visible to txn in the snapshot format.
func writeSnapshot(w io.Writer, txn *memdb.Txn, index uint64) error {
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return err
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(zw, h), 1<<20)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)

	header := snapshotHeader{Format: SnapshotFormat, Counts: map[string]int{}, Index: index}
	for _, k := range resource.Kinds() {
		it, err := txn.Get(k.Name, "id")
		if err != nil {
			return err
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			header.Counts[k.Name]++
		}
	}
	if err := enc.Encode(header); err != nil {
		return err
	}
	it, err := txn.Get(metaTable, "id")
	if err != nil {
		return err
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if err := enc.Encode(snapshotRecord{Meta: raw.(*metaEntry)}); err != nil {
			return err
		}
	}
	// Presence is kept, so a restarted node knows which sessions it held and releases them.
	it, err = txn.Get(presenceTable, "id")
	if err != nil {
		return err
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if err := enc.Encode(snapshotRecord{Presence: raw.(*Presence)}); err != nil {
			return err
		}
	}
	it, err = txn.Get(otaTable, "id")
	if err != nil {
		return err
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if err := enc.Encode(snapshotRecord{OTA: raw.(*OTARecord)}); err != nil {
			return err
		}
	}
	for _, k := range resource.Kinds() {
		it, err := txn.Get(k.Name, "id")
		if err != nil {
			return err
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			b, err := json.Marshal(raw)
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", k.Name, err)
			}
			if err := enc.Encode(snapshotRecord{Kind: k.Name, Object: b}); err != nil {
				return err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	trailer, _ := json.Marshal(snapshotRecord{Checksum: hex.EncodeToString(h.Sum(nil))})
	if _, err := zw.Write(append(trailer, '\n')); err != nil {
		return err
	}
	return zw.Close()
}

// SnapshotSummary describes a verified snapshot.
type SnapshotSummary struct {
	Format int            `json:"format"`
	Counts map[string]int `json:"counts"`
	Index  uint64         `json:"index"`
}

// VerifySnapshot reads a whole snapshot and checks its structure, every record, unique ids,
// the per-kind counts and the checksum, without changing any state or building a second
// copy of the state in memory.
func VerifySnapshot(r io.Reader) (SnapshotSummary, error) {
	return readSnapshot(r, &verifySink{ids: map[string]map[string]struct{}{}})
}

// snapshotSink receives the decoded records of a snapshot.
type snapshotSink interface {
	meta(e *metaEntry) error
	presence(p *Presence) error
	ota(r *OTARecord) error
	object(kind *resource.Kind, obj resource.Object) error
	// done checks the header's per-kind counts against what was received.
	done(counts map[string]int) error
}

// txnSink loads a snapshot into a memdb transaction (Restore), rebuilding the counts.
type txnSink struct {
	txn    *memdb.Txn
	counts counter
}

func (s txnSink) meta(e *metaEntry) error { return s.txn.Insert(metaTable, e) }

func (s txnSink) presence(p *Presence) error { return s.txn.Insert(presenceTable, p) }

func (s txnSink) ota(r *OTARecord) error { return s.txn.Insert(otaTable, r) }

func (s txnSink) object(kind *resource.Kind, obj resource.Object) error {
	s.counts.move(kind, nil, obj)
	return s.txn.Insert(kind.Name, obj)
}

func (s txnSink) done(counts map[string]int) error {
	if err := s.counts.write(s.txn); err != nil {
		return err
	}
	return checkCounts(s.txn, counts)
}

// verifySink only checks: every id once per kind, and the counts.
type verifySink struct {
	ids map[string]map[string]struct{}
}

func (s *verifySink) meta(*metaEntry) error { return nil }

func (s *verifySink) presence(p *Presence) error {
	if p.DeviceID == "" {
		return fmt.Errorf("a presence record without a device id")
	}
	return nil
}

func (s *verifySink) ota(r *OTARecord) error {
	if r.TaskID == "" || r.DeviceID == "" {
		return fmt.Errorf("an OTA record without a task or device id")
	}
	return nil
}

func (s *verifySink) object(kind *resource.Kind, obj resource.Object) error {
	ids := s.ids[kind.Name]
	if ids == nil {
		ids = map[string]struct{}{}
		s.ids[kind.Name] = ids
	}
	id := obj.Base().ID
	if _, dup := ids[id]; dup || id == "" {
		return fmt.Errorf("%s id %q is empty or appears twice", kind.Name, id)
	}
	ids[id] = struct{}{}
	return nil
}

func (s *verifySink) done(counts map[string]int) error {
	for name, want := range counts {
		if _, ok := resource.KindByName(name); !ok {
			return fmt.Errorf("%w: unknown resource kind %q", ErrBadSnapshot, name)
		}
		if got := len(s.ids[name]); got != want {
			return fmt.Errorf("%w: header promises %d %s, found %d", ErrBadSnapshot, want, name, got)
		}
	}
	return nil
}

// readSnapshot decodes a snapshot into sink, verifying it on the way.
func readSnapshot(r io.Reader, sink snapshotSink) (SnapshotSummary, error) {
	var sum SnapshotSummary
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return sum, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	defer zr.Close()
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 1<<20), maxSnapshotLine)
	h := sha256.New()
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if line == 1 {
			var hdr snapshotHeader
			if err := json.Unmarshal(b, &hdr); err != nil || hdr.Format == 0 {
				return sum, fmt.Errorf("%w: missing header (not a linkops snapshot?)", ErrBadSnapshot)
			}
			if hdr.Format > SnapshotFormat {
				return sum, fmt.Errorf("%w: format %d is newer than this node understands (%d); upgrade the node", ErrBadSnapshot, hdr.Format, SnapshotFormat)
			}
			sum.Format, sum.Counts, sum.Index = hdr.Format, hdr.Counts, hdr.Index
			hashLine(h, b)
			continue
		}
		var rec snapshotRecord
		if kind, obj, ok := splitObjectLine(b); ok {
			// Fast path for the million-device case: the object is decoded once, by its
			// kind, instead of once as a raw message and then again.
			rec.Kind, rec.Object = kind, obj
		} else if err := json.Unmarshal(b, &rec); err != nil {
			return sum, fmt.Errorf("%w: line %d: %v", ErrBadSnapshot, line, err)
		}
		switch {
		case rec.Checksum != "":
			if got := hex.EncodeToString(h.Sum(nil)); got != rec.Checksum {
				return sum, fmt.Errorf("%w: checksum mismatch (file altered or corrupt)", ErrBadSnapshot)
			}
			if sc.Scan() && len(bytes.TrimSpace(sc.Bytes())) > 0 {
				return sum, fmt.Errorf("%w: data after the trailer", ErrBadSnapshot)
			}
			return sum, sink.done(sum.Counts)
		case rec.Meta != nil:
			if err := sink.meta(rec.Meta); err != nil {
				return sum, fmt.Errorf("%w: line %d: %v", ErrBadSnapshot, line, err)
			}
		case rec.Presence != nil:
			if err := sink.presence(rec.Presence); err != nil {
				return sum, fmt.Errorf("%w: line %d: %v", ErrBadSnapshot, line, err)
			}
		case rec.OTA != nil:
			if err := sink.ota(rec.OTA); err != nil {
				return sum, fmt.Errorf("%w: line %d: %v", ErrBadSnapshot, line, err)
			}
		default:
			kind, ok := resource.KindByName(rec.Kind)
			if !ok {
				return sum, fmt.Errorf("%w: line %d: unknown resource kind %q (snapshot from a newer version?)", ErrBadSnapshot, line, rec.Kind)
			}
			obj := kind.New()
			if err := json.Unmarshal(rec.Object, obj); err != nil {
				return sum, fmt.Errorf("%w: line %d: %v", ErrBadSnapshot, line, err)
			}
			if err := sink.object(kind, obj); err != nil {
				return sum, fmt.Errorf("%w: line %d: %v", ErrBadSnapshot, line, err)
			}
		}
		hashLine(h, b)
	}
	if err := sc.Err(); err != nil {
		return sum, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	return sum, fmt.Errorf("%w: truncated (no trailer after %d lines)", ErrBadSnapshot, line)
}

// splitObjectLine recognises a resource line exactly as writeSnapshot encodes it,
// {"kind":"<name>","object":{...}}, and returns its parts without decoding the object. Any
// other shape is left to the general decoder.
func splitObjectLine(b []byte) (kind string, obj []byte, ok bool) {
	const prefix, sep = `{"kind":"`, `","object":`
	if !bytes.HasPrefix(b, []byte(prefix)) || len(b) < len(prefix)+len(sep)+3 || b[len(b)-1] != '}' {
		return "", nil, false
	}
	rest := b[len(prefix):]
	i := bytes.IndexByte(rest, '"')
	if i <= 0 || !bytes.HasPrefix(rest[i:], []byte(sep)) {
		return "", nil, false
	}
	obj = rest[i+len(sep) : len(rest)-1]
	if len(obj) == 0 || obj[0] != '{' {
		return "", nil, false
	}
	return string(rest[:i]), obj, true
}

func hashLine(h hash.Hash, b []byte) {
	h.Write(b)
	h.Write([]byte{'\n'})
}

func checkCounts(txn *memdb.Txn, counts map[string]int) error {
	for name, want := range counts {
		it, err := txn.Get(name, "id")
		if err != nil {
			return fmt.Errorf("%w: unknown resource kind %q", ErrBadSnapshot, name)
		}
		got := 0
		for raw := it.Next(); raw != nil; raw = it.Next() {
			got++
		}
		if got != want {
			return fmt.Errorf("%w: header promises %d %s, found %d", ErrBadSnapshot, want, name, got)
		}
	}
	return nil
}
