package fsm

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/linkops/linkops/resource"
)

// View is one consistent reading of the state: every List and Get through it sees the
// same raft index, and each adds what it read to one watch set, so a reader that needs
// several tables (a listener reads components and certificates) sees one state and wakes
// when any of them changes (Nomad passes a memdb.WatchSet through its state reads the
// same way). A View is cheap (a memdb read transaction) and must not be kept: take a new
// one after the watch set fires.
type View struct {
	txn *memdb.Txn
	ws  memdb.WatchSet
	// frozen: the view reads a large batch's pre-batch state, whose channels close as the
	// batch is written; watching them would wake the reader again and again until the
	// batch is visible, so the view waits for the thaw instead.
	frozen bool
}

// View opens a consistent read of the current state. Its watch set already holds the
// channel that fires when a snapshot restore replaces the whole state.
func (s *Store) View() *View {
	db, abandon := s.current()
	v := &View{txn: db.Txn(false), ws: memdb.NewWatchSet()}
	if thawed := s.thawedCh(); thawed != nil {
		v.frozen = true
		v.ws.Add(thawed)
	}
	v.ws.Add(abandon)
	return v
}

// WatchSet fires when anything this view has read changes.
func (v *View) WatchSet() memdb.WatchSet { return v.ws }

func (v *View) watch(ch <-chan struct{}) {
	if !v.frozen {
		v.ws.Add(ch)
	}
}

// List returns every resource of a kind (built-in ones first, then the stored ones in id
// order) and watches the collection.
func (v *View) List(kind *resource.Kind) []resource.Object {
	it, err := v.txn.Get(kind.Name, "id")
	if err != nil {
		panic(fmt.Sprintf("fsm: list %s: %v", kind.Name, err)) // table from the schema: cannot fail
	}
	out := append([]resource.Object(nil), kind.Builtins...)
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(resource.Object))
	}
	v.watch(it.WatchCh())
	return out
}

// Get returns one resource (a built-in one too), or ErrNotFound, and watches it: the
// watch fires when it is created, changed or deleted.
func (v *View) Get(kind *resource.Kind, id string) (resource.Object, error) {
	if b, ok := kind.Builtin(id); ok {
		return b, nil
	}
	ch, raw, err := v.txn.FirstWatch(kind.Name, "id", id)
	if err != nil {
		return nil, fmt.Errorf("get %s %q: %w", kind.Name, id, err)
	}
	v.watch(ch)
	if raw == nil {
		return nil, ErrNotFound
	}
	return raw.(resource.Object), nil
}
