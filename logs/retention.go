package logs

import (
	"bytes"
	"encoding/binary"

	"go.etcd.io/bbolt"
)

// victim is a record chosen for deletion. Victims are collected before anything is
// deleted because a cursor may skip a key after a delete under it (a known bbolt issue,
// etcd-io/bbolt#146, documented in its README).
type victim struct {
	k   *kind
	key recordKey
	idx [maxIndexes]string
	n   int64
}

// retainStep runs one transaction of retention: records older than MaxAge, then, once Size
// has passed MaxBytes, the oldest records across both kinds until Size is at most 90% of
// MaxBytes. It deletes at most BatchSize records, so that ingest gets the writer between
// steps, and reports whether there may be more to do.
func (s *Store) retainStep() (more bool, err error) {
	budget := s.opts.BatchSize
	size := s.size.Load()
	trimming := s.trimming
	var aged, trimmed [numKinds]int
	var cutoff [8]byte
	binary.BigEndian.PutUint64(cutoff[:], timeNanos(s.opts.Now().Add(-s.opts.MaxAge)))

	err = s.db.Update(func(tx *bbolt.Tx) error {
		var bks [numKinds]kindBuckets
		for i, k := range kinds {
			bks[i] = k.buckets(tx)
		}

		// Age first: those records go anyway, and that may already bring Size down.
		victims := make([]victim, 0, min(budget, 1024))
		for _, k := range kinds {
			c := bks[k.i].main.Cursor()
			for key, v := c.First(); key != nil && len(victims) < budget && bytes.Compare(key[:8], cutoff[:]) < 0; key, v = c.Next() {
				victims = append(victims, newVictim(k, key, v))
			}
		}
		freed, err := deleteVictims(victims, bks, &aged)
		if err != nil {
			return err
		}
		size -= freed
		budget -= len(victims)

		if size > s.opts.MaxBytes {
			trimming = true
		}
		target := s.opts.MaxBytes / 10 * 9
		if trimming && budget > 0 {
			victims = victims[:0]
			// Merge the two kinds by time, so that the oldest records go first whichever
			// kind they are.
			ca, cs := bks[accessKind.i].main.Cursor(), bks[systemKind.i].main.Cursor()
			ka, va := ca.First()
			ks, vs := cs.First()
			left := size
			for left > target && len(victims) < budget && (ka != nil || ks != nil) {
				if ks == nil || ka != nil && bytes.Compare(ka, ks) <= 0 {
					victims = append(victims, newVictim(accessKind, ka, va))
					left -= int64(len(va))
					ka, va = ca.Next()
				} else {
					victims = append(victims, newVictim(systemKind, ks, vs))
					left -= int64(len(vs))
					ks, vs = cs.Next()
				}
			}
			freed, err := deleteVictims(victims, bks, &trimmed)
			if err != nil {
				return err
			}
			size -= freed
			budget -= len(victims)
		}
		if size <= target {
			trimming = false
		}
		if size == s.size.Load() {
			return nil // nothing deleted: do not rewrite the meta page for nothing
		}
		return putSize(tx, size)
	})
	if err != nil {
		return false, err
	}
	s.trimming = trimming
	s.size.Store(size)
	s.m.bytes.Set(float64(size))
	for i := range kinds {
		s.m.age[i].Add(float64(aged[i]))
		s.m.trimmed[i].Add(float64(trimmed[i]))
	}
	return budget <= 0, nil
}

func newVictim(k *kind, key, raw []byte) victim {
	v := victim{k: k, n: int64(len(raw))}
	copy(v.key[:], key)
	// A record that no longer decodes still goes; its index entries (if any) then point
	// at nothing, which queries skip.
	v.idx, _ = k.storedIndexValues(raw)
	return v
}

// deleteVictims deletes victims, counts them per kind into counted and returns the bytes
// they held.
func deleteVictims(victims []victim, bks [numKinds]kindBuckets, counted *[numKinds]int) (freed int64, err error) {
	for i := range victims {
		v := &victims[i]
		if err := v.delete(bks[v.k.i]); err != nil {
			return freed, err
		}
		freed += v.n
		counted[v.k.i]++
	}
	return freed, nil
}

func (v *victim) delete(b kindBuckets) error {
	if err := deleteIndexes(v.k, b, v.key[:], v.idx); err != nil {
		return err
	}
	return b.main.Delete(v.key[:])
}
