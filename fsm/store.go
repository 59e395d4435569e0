package fsm

import (
	"fmt"
	"sync"

	"github.com/hashicorp/go-memdb"

	"github.com/linkops/linkops/resource"
)

// Meta keys of the cluster-wide settings kept beside the resources.
const (
	MetaInitialized = "initialized"
	MetaTokenKey    = "tokenKey"
)

const (
	metaTable = "meta"
	// countsTable holds the counts a kind declares (Kind.Counts). It is derived data: never
	// written to a snapshot, rebuilt while one is restored.
	countsTable = "counts"
)

// countEntry is the number of resources of a kind whose field has a value.
type countEntry struct {
	Key string
	N   int
}

func countKey(kind *resource.Kind, field, value string) string {
	return kind.Name + "\x00" + field + "\x00" + value
}

// adjustCounts moves the counts of kind from old to next (either may be nil).
func adjustCounts(txn *memdb.Txn, kind *resource.Kind, old, next resource.Object) error {
	c := counter{}
	c.move(kind, old, next)
	return c.write(txn)
}

// counter accumulates count changes so that a batch or a restore writes each count once.
type counter map[string]int

// move records that a resource of kind changed from old to next (either may be nil).
func (c counter) move(kind *resource.Kind, old, next resource.Object) {
	for field, fn := range kind.Counts {
		var before, after string
		if old != nil {
			before = fn(old)
		}
		if next != nil {
			after = fn(next)
		}
		if before == after {
			continue
		}
		if before != "" {
			c[countKey(kind, field, before)]--
		}
		if after != "" {
			c[countKey(kind, field, after)]++
		}
	}
}

// write applies the accumulated changes to the counts table.
func (c counter) write(txn *memdb.Txn) error {
	for key, delta := range c {
		if delta == 0 {
			continue
		}
		n := countOf(txn, key) + delta
		var err error
		if n <= 0 {
			_, err = txn.DeleteAll(countsTable, "id", key)
		} else {
			err = txn.Insert(countsTable, &countEntry{Key: key, N: n})
		}
		if err != nil {
			return fmt.Errorf("count %s: %w", key, err)
		}
	}
	return nil
}

func countOf(txn *memdb.Txn, key string) int {
	raw, err := txn.First(countsTable, "id", key)
	if err != nil || raw == nil {
		return 0
	}
	return raw.(*countEntry).N
}

// metaEntry is one cluster-wide setting.
type metaEntry struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// Store is the in-memory state every read is served from. Objects it returns are shared
// with the store and with other readers: treat them as immutable (resource.Redacted makes a
// copy to change).
type Store struct {
	mu sync.RWMutex
	db *memdb.MemDB
	// frozen, while set, is what readers see (see freeze); thawed is closed when it ends.
	frozen *memdb.MemDB
	thawed chan struct{}
	// abandon is closed when a snapshot restore replaces the whole database, so that
	// watchers of the old one wake up and look again.
	abandon chan struct{}
}

// NewStore returns an empty store with a table per registered resource kind.
func NewStore() *Store {
	return &Store{db: newDB(), abandon: make(chan struct{})}
}

func newDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		panic(fmt.Sprintf("fsm: invalid schema: %v", err)) // a programming error
	}
	return db
}

func schema() *memdb.DBSchema {
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		metaTable: {Name: metaTable, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
		}},
		countsTable: {Name: countsTable, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
		}},
		presenceTable: presenceSchema(),
		otaTable:      otaSchema(),
	}}
	for _, k := range resource.Kinds() {
		// The id index reads Base().ID directly: memdb's StringFieldIndex looks the field up
		// by reflection on every insert, a tenth of the cost of restoring a million devices.
		t := &memdb.TableSchema{Name: k.Name, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: funcIndex(func(o resource.Object) string { return o.Base().ID })},
		}}
		for name, fn := range k.Unique {
			t.Indexes[name] = &memdb.IndexSchema{Name: name, Unique: true, AllowMissing: true, Indexer: funcIndex(fn)}
		}
		for name, fn := range k.Refs {
			t.Indexes[name] = &memdb.IndexSchema{Name: name, AllowMissing: true, Indexer: refIndex(fn)}
		}
		s.Tables[k.Name] = t
	}
	return s
}

// funcIndex indexes objects by the string a function derives from them; an empty string
// leaves the object out of the index.
type funcIndex func(resource.Object) string

func (f funcIndex) FromObject(raw any) (bool, []byte, error) {
	v := f(raw.(resource.Object))
	if v == "" {
		return false, nil, nil
	}
	return true, []byte(v + "\x00"), nil
}

func (f funcIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("want one argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("argument must be a string: %#v", args[0])
	}
	return []byte(s + "\x00"), nil
}

// refIndex indexes objects by every id they refer to through one field (non-unique).
type refIndex func(resource.Object) []string

func (f refIndex) FromObject(raw any) (bool, [][]byte, error) {
	ids := f(raw.(resource.Object))
	if len(ids) == 0 {
		return false, nil, nil
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = []byte(id + "\x00")
	}
	return true, out, nil
}

func (f refIndex) FromArgs(args ...any) ([]byte, error) { return funcIndex(nil).FromArgs(args...) }

// current is the database readers see: the live one, or while a large batch is being
// applied in several transactions, the state from before the batch.
func (s *Store) current() (*memdb.MemDB, chan struct{}) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.frozen != nil {
		return s.frozen, s.abandon
	}
	return s.db, s.abandon
}

// thawedCh is closed when the current freeze ends (nil when there is none).
func (s *Store) thawedCh() chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.thawed
}

// writeDB is the database the FSM writes to.
func (s *Store) writeDB() *memdb.MemDB {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db
}

// freeze makes readers see the current state until thaw, while the FSM goes on writing.
func (s *Store) freeze() {
	s.mu.Lock()
	s.frozen, s.thawed = s.db.Snapshot(), make(chan struct{})
	s.mu.Unlock()
}

// thaw ends a freeze: readers see everything written meanwhile at once, and watchers that
// waited for the freeze to end look again.
func (s *Store) thaw() {
	s.mu.Lock()
	thawed := s.thawed
	s.frozen, s.thawed = nil, nil
	s.mu.Unlock()
	close(thawed)
}

// replace swaps in a restored database and wakes every watcher of the old one.
func (s *Store) replace(db *memdb.MemDB) {
	s.mu.Lock()
	old := s.abandon
	s.db, s.abandon = db, make(chan struct{})
	s.mu.Unlock()
	close(old)
}

// AbandonCh is closed when the whole state is replaced by a snapshot restore.
func (s *Store) AbandonCh() <-chan struct{} {
	_, ch := s.current()
	return ch
}

// Get returns one resource (a built-in one too), or ErrNotFound.
func (s *Store) Get(kind *resource.Kind, id string) (resource.Object, error) {
	if b, ok := kind.Builtin(id); ok {
		return b, nil
	}
	db, _ := s.current()
	raw, err := db.Txn(false).First(kind.Name, "id", id)
	if err != nil {
		return nil, fmt.Errorf("get %s %q: %w", kind.Name, id, err)
	}
	if raw == nil {
		return nil, ErrNotFound
	}
	return raw.(resource.Object), nil
}

// GetBy returns the resource whose unique index idx has value v, or ErrNotFound.
func (s *Store) GetBy(kind *resource.Kind, idx, v string) (resource.Object, error) {
	db, _ := s.current()
	raw, err := db.Txn(false).First(kind.Name, idx, v)
	if err != nil {
		return nil, fmt.Errorf("get %s by %s: %w", kind.Name, idx, err)
	}
	if raw == nil {
		return nil, ErrNotFound
	}
	return raw.(resource.Object), nil
}

// List returns every resource of a kind (built-in ones first, then the stored ones in id
// order), and a watch set that fires when the collection next changes or the whole state
// is replaced by a restore. A reader of several kinds should take one View instead.
func (s *Store) List(kind *resource.Kind) ([]resource.Object, memdb.WatchSet) {
	v := s.View()
	return v.List(kind), v.WatchSet()
}

// Count returns the number of stored resources of a kind.
func (s *Store) Count(kind *resource.Kind) int {
	db, _ := s.current()
	it, err := db.Txn(false).Get(kind.Name, "id")
	if err != nil {
		return 0
	}
	n := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		n++
	}
	return n
}

// CountOf is the number of resources of kind whose counted field has value.
func (s *Store) CountOf(kind *resource.Kind, field, value string) int {
	db, _ := s.current()
	return countOf(db.Txn(false), countKey(kind, field, value))
}

func referrers(txn *memdb.Txn, kind *resource.Kind, idx, id string) []resource.Object {
	it, err := txn.Get(kind.Name, idx, id)
	if err != nil {
		panic(fmt.Sprintf("fsm: %s by %s: %v", kind.Name, idx, err)) // index from the schema
	}
	var out []resource.Object
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(resource.Object))
	}
	return out
}

// Meta returns a cluster-wide setting, or nil.
func (s *Store) Meta(key string) []byte {
	db, _ := s.current()
	raw, _ := db.Txn(false).First(metaTable, "id", key)
	if raw == nil {
		return nil
	}
	return raw.(*metaEntry).Value
}
