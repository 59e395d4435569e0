package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"

	"github.com/linkops/linkops/resource"
)

// Rule is a state-dependent invariant checked inside the apply transaction. For an upsert
// old is nil on create; for a delete next is nil.
type Rule func(txn *memdb.Txn, old, next resource.Object) error

var rules = map[string][]Rule{}

// AddRule registers an invariant for a kind. Rules live beside the resources they protect
// (e.g. "a certificate used by a network component cannot be deleted") and are registered
// from init functions, so the FSM applies the same rules on every replica.
func AddRule(kind *resource.Kind, r Rule) { rules[kind.Name] = append(rules[kind.Name], r) }

// FSM applies committed raft entries to the Store. It implements raft.FSM.
type FSM struct {
	store *Store
	log   *slog.Logger
	// applied is the index of the last command this FSM applied. raft's own
	// AppliedIndex moves when entries are handed to the FSM, before they are applied, so
	// read barriers wait on this one.
	applied atomic.Uint64
}

// AppliedIndex is the raft index of the last command whose effects are visible in Store.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// New returns an FSM over an empty store.
func New(log *slog.Logger) *FSM {
	return &FSM{store: NewStore(), log: log}
}

// Store is the state the FSM maintains.
func (f *FSM) Store() *Store { return f.store }

// Apply applies one committed entry. It returns the stored resource, nil, or an error that
// the proposer matches; errors here are per-command outcomes, not node failures.
func (f *FSM) Apply(l *raft.Log) any {
	defer f.applied.Store(l.Index)
	if len(l.Data) == 0 {
		return nil
	}
	t := MessageType(l.Data[0])
	ignorable := t&IgnoreUnknownTypeFlag != 0
	t &^= IgnoreUnknownTypeFlag
	body := l.Data[1:]
	switch t {
	case UpsertType:
		return decodeThen(l.Index, "upsert", body, func(r *UpsertRequest) any { return f.applyUpsert(l.Index, r, ignorable) })
	case DeleteType:
		return decodeThen(l.Index, "delete", body, func(r *DeleteRequest) any { return f.applyDelete(l.Index, r, ignorable) })
	case InitType:
		return decodeThen(l.Index, "init", body, func(r *InitRequest) any { return f.applyInit(l.Index, r) })
	case SetStateType:
		return decodeThen(l.Index, "set-state", body, func(r *SetStateRequest) any { return f.applySetState(l.Index, r, ignorable) })
	case BatchCreateType:
		return decodeThen(l.Index, "batch create", body, func(r *BatchCreateRequest) any { return f.applyBatchCreate(l.Index, r, ignorable) })
	case PresenceType:
		return decodeThen(l.Index, "presence", body, func(r *PresenceRequest) any { return f.applyPresence(l.Index, r) })
	case OTAType:
		return decodeThen(l.Index, "ota", body, func(r *OTARequest) any { return f.applyOTA(l.Index, r) })
	}
	return f.unknown(l.Index, fmt.Sprintf("type %d", t), ignorable)
}

// decodeThen decodes a command body and applies it. A body that does not decode changes
// nothing on any replica, so it is the proposer's error, not a reason to stop.
func decodeThen[T any](index uint64, what string, body []byte, apply func(*T) any) any {
	var req T
	if err := json.Unmarshal(body, &req); err != nil {
		return fmt.Errorf("decode %s at index %d: %w", what, index, err)
	}
	return apply(&req)
}

// unknown handles a command this version cannot apply. Skipping a state change would let
// this replica diverge from the others, so unless the writer marked it ignorable, stop.
func (f *FSM) unknown(index uint64, what string, ignorable bool) any {
	if ignorable {
		f.log.Warn("ignoring an unknown command marked ignorable", "command", what, "index", index)
		return nil
	}
	panic(fmt.Errorf("%w: %s at raft index %d: this node is older than the cluster; upgrade it", ErrUnknownCommand, what, index))
}

func (f *FSM) applyUpsert(index uint64, req *UpsertRequest, ignorable bool) any {
	kind, ok := resource.KindByName(req.Kind)
	if !ok {
		return f.unknown(index, fmt.Sprintf("resource kind %q", req.Kind), ignorable)
	}
	obj := kind.New()
	if err := json.Unmarshal(req.Object, obj); err != nil {
		return fmt.Errorf("decode %s: %w", kind.Name, err)
	}
	db := f.store.writeDB()
	txn := db.Txn(true)
	defer txn.Abort()
	counts := counter{}
	if err := upsert(txn, kind, obj, req.Create, req.ExpectIndex, req.Now, index, counts); err != nil {
		return err
	}
	if err := counts.write(txn); err != nil {
		return err
	}
	txn.Commit()
	return obj
}

// upsert stores obj inside txn after checking existence, If-Match, unique indexes and the
// kind's rules; the caller writes the count changes it records in counts.
func upsert(txn *memdb.Txn, kind *resource.Kind, obj resource.Object, create bool, expectIndex uint64, now time.Time, index uint64, counts counter) error {
	old, err := check(txn, kind, obj, create, expectIndex)
	if err != nil {
		return err
	}
	return store(txn, kind, obj, old, now, index, counts)
}

// check decides whether obj may be stored, reading the state through read, and returns the
// version it replaces (nil for a new one).
func check(read *memdb.Txn, kind *resource.Kind, obj resource.Object, create bool, expectIndex uint64) (resource.Object, error) {
	meta := obj.Base()
	if meta.ID == "" {
		return nil, fmt.Errorf("upsert %s without id", kind.Name)
	}
	if _, builtin := kind.Builtin(meta.ID); builtin {
		return nil, refuseBuiltin(kind, meta.ID)
	}
	raw, err := read.First(kind.Name, "id", meta.ID)
	if err != nil {
		return nil, err
	}
	var old resource.Object
	if raw != nil {
		old = raw.(resource.Object)
	}
	switch {
	case create && old != nil:
		return nil, ErrExists
	case !create && old == nil:
		return nil, ErrNotFound
	case expectIndex != 0 && (old == nil || old.Base().Index != expectIndex):
		return nil, ErrIndexMismatch
	}
	if kind.Stateful && old != nil {
		// Only the enable and disable commands change a state; an update keeps it.
		obj.(resource.Switchable).SwitchRef().State = old.(resource.Switchable).SwitchRef().State
	}
	for idx, fn := range kind.Unique {
		v := fn(obj)
		if v == "" {
			continue
		}
		other, err := read.First(kind.Name, idx, v)
		if err != nil {
			return nil, err
		}
		if other != nil && other.(resource.Object).Base().ID != meta.ID {
			return nil, Refuse(idx+"_taken", "%s %q is already used by %s %q", idx, v, kind.Name, other.(resource.Object).Base().ID)
		}
	}
	for _, r := range rules[kind.Name] {
		if err := r(read, old, obj); err != nil {
			return nil, err
		}
	}
	return old, nil
}

// store writes a checked obj, stamping its times and raft index.
func store(txn *memdb.Txn, kind *resource.Kind, obj, old resource.Object, now time.Time, index uint64, counts counter) error {
	meta := obj.Base()
	meta.CreatedAt, meta.UpdatedAt, meta.Index = now, now, index
	if old != nil {
		meta.CreatedAt = old.Base().CreatedAt
	}
	counts.move(kind, old, obj)
	if err := txn.Insert(kind.Name, obj); err != nil {
		return fmt.Errorf("store %s %q: %w", kind.Name, meta.ID, err)
	}
	return nil
}

// existing returns the stored resource with id, or ErrNotFound.
func existing(txn *memdb.Txn, kind *resource.Kind, id string) (resource.Object, error) {
	raw, err := txn.First(kind.Name, "id", id)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, ErrNotFound
	}
	return raw.(resource.Object), nil
}

// refuseBuiltin is the answer to any change of a built-in resource.
func refuseBuiltin(kind *resource.Kind, id string) error {
	return Refuse(strings.TrimSuffix(kind.Name, "s")+"_builtin", "%s %q is built in and cannot be changed or deleted", strings.TrimSuffix(kind.Name, "s"), id)
}

func (f *FSM) applySetState(index uint64, req *SetStateRequest, ignorable bool) any {
	kind, ok := resource.KindByName(req.Kind)
	if !ok {
		return f.unknown(index, fmt.Sprintf("resource kind %q", req.Kind), ignorable)
	}
	if !kind.Stateful {
		return fmt.Errorf("%s cannot be enabled or disabled", kind.Name)
	}
	if req.State != resource.StateEnabled && req.State != resource.StateDisabled {
		return fmt.Errorf("set-state %s %q: unknown state %q", kind.Name, req.ID, req.State)
	}
	db := f.store.writeDB()
	txn := db.Txn(true)
	defer txn.Abort()
	raw, err := existing(txn, kind, req.ID)
	if err != nil {
		return err
	}
	old := raw.(resource.Switchable)
	if old.SwitchRef().State == req.State {
		return old
	}
	next := resource.Copy(old)
	next.SwitchRef().State = req.State
	for _, r := range rules[kind.Name] {
		if err := r(txn, old, next); err != nil {
			return err
		}
	}
	next.Base().UpdatedAt, next.Base().Index = req.Now, index
	if err := txn.Insert(kind.Name, next); err != nil {
		return fmt.Errorf("store %s %q: %w", kind.Name, req.ID, err)
	}
	txn.Commit()
	return next
}

// applyBatchCreate creates every object or, if one is refused, none.
// Rule errors name the entry by its position, like "[3].productId".
func (f *FSM) applyBatchCreate(index uint64, req *BatchCreateRequest, ignorable bool) any {
	kind, ok := resource.KindByName(req.Kind)
	if !ok {
		return f.unknown(index, fmt.Sprintf("resource kind %q", req.Kind), ignorable)
	}
	// A memdb transaction that inserts more than a few thousand keys notifies watchers by
	// walking the whole index (go-immutable-radix's slowNotify): with a million devices
	// that walk would dominate every batch. So a large batch is written in chunks, while
	// readers keep seeing the state from before it, and it becomes visible all at once.
	chunked := len(req.Objects) > batchChunk
	if chunked {
		f.store.freeze()
	}
	out, err := applyBatch(f.store.writeDB(), kind, req, index)
	if chunked {
		f.store.thaw()
	}
	if err != nil {
		return err
	}
	return out
}

// batchChunk is how many entries of a batch one memdb transaction writes.
const batchChunk = 2000

func applyBatch(db *memdb.MemDB, kind *resource.Kind, req *BatchCreateRequest, index uint64) ([]resource.Object, error) {
	// Every entry is checked against the state before the batch (and ids against each
	// other) before anything is written, so writing never stops halfway. Rules therefore
	// do not see the batch's own entries; a device batch's rules do not need to.
	read := db.Txn(false)
	objs := make([]resource.Object, len(req.Objects))
	olds := make([]resource.Object, len(req.Objects))
	seen := make(map[string]bool, len(req.Objects))
	for i, raw := range req.Objects {
		obj := kind.New()
		if err := json.Unmarshal(raw, obj); err != nil {
			return nil, fmt.Errorf("decode %s [%d]: %w", kind.Name, i, err)
		}
		if seen[obj.Base().ID] {
			return nil, batchEntryError(kind, i, obj, ErrExists)
		}
		seen[obj.Base().ID] = true
		old, err := check(read, kind, obj, true, 0)
		if err != nil {
			return nil, batchEntryError(kind, i, obj, err)
		}
		objs[i], olds[i] = obj, old
	}
	for start := 0; start < len(objs); start += batchChunk {
		txn := db.Txn(true)
		counts := counter{}
		for i := start; i < len(objs) && i < start+batchChunk; i++ {
			if err := store(txn, kind, objs[i], olds[i], req.Now, index, counts); err != nil {
				txn.Abort()
				return nil, err
			}
		}
		if err := counts.write(txn); err != nil {
			txn.Abort()
			return nil, err
		}
		txn.Commit()
	}
	return objs, nil
}

// batchEntryError names the refused entry by its position, like "[3].productId".
func batchEntryError(kind *resource.Kind, i int, obj resource.Object, err error) error {
	if errors.Is(err, ErrExists) {
		err = &RuleError{Code: "already_exists", Status: 409, Field: "id", Message: fmt.Sprintf("%s %q already exists", strings.TrimSuffix(kind.Name, "s"), obj.Base().ID)}
	}
	re, ok := IsRuleError(err)
	if !ok {
		return err
	}
	cp := *re
	if cp.Field != "" {
		cp.Field = fmt.Sprintf("[%d].%s", i, cp.Field)
	}
	cp.Message = fmt.Sprintf("entry %d: %s", i, cp.Message)
	return &cp
}

func (f *FSM) applyDelete(index uint64, req *DeleteRequest, ignorable bool) any {
	kind, ok := resource.KindByName(req.Kind)
	if !ok {
		return f.unknown(index, fmt.Sprintf("resource kind %q", req.Kind), ignorable)
	}
	if _, builtin := kind.Builtin(req.ID); builtin {
		return refuseBuiltin(kind, req.ID)
	}
	db := f.store.writeDB()
	txn := db.Txn(true)
	defer txn.Abort()
	old, err := existing(txn, kind, req.ID)
	if err != nil {
		return err
	}
	if req.ExpectIndex != 0 && old.Base().Index != req.ExpectIndex {
		return ErrIndexMismatch
	}
	for _, r := range rules[kind.Name] {
		if err := r(txn, old, nil); err != nil {
			return err
		}
	}
	if err := adjustCounts(txn, kind, old, nil); err != nil {
		return err
	}
	if err := txn.Delete(kind.Name, old); err != nil {
		return fmt.Errorf("delete %s %q: %w", kind.Name, req.ID, err)
	}
	switch kind {
	case resource.Devices:
		if err := deletePresence(txn, req.ID); err != nil {
			return err
		}
		if err := cancelDeviceRecords(txn, index, req.ID, req.Now); err != nil {
			return err
		}
	case resource.UpgradeTasks:
		if err := deleteTaskRecords(txn, req.ID); err != nil {
			return err
		}
	}
	txn.Commit()
	return nil
}

func (f *FSM) applyInit(index uint64, req *InitRequest) any {
	db := f.store.writeDB()
	txn := db.Txn(true)
	defer txn.Abort()
	if raw, _ := txn.First(metaTable, "id", MetaInitialized); raw != nil {
		return ErrAlreadyInitialized
	}
	admin := req.Admin
	if admin == nil || admin.ID == "" {
		return fmt.Errorf("init at index %d without an admin user", index)
	}
	admin.CreatedAt, admin.UpdatedAt, admin.Index = req.Now, req.Now, index
	for _, e := range []*metaEntry{{Key: MetaInitialized, Value: []byte("true")}, {Key: MetaTokenKey, Value: req.TokenKey}} {
		if err := txn.Insert(metaTable, e); err != nil {
			return err
		}
	}
	if err := txn.Insert(resource.Users.Name, admin); err != nil {
		return err
	}
	txn.Commit()
	return admin
}

// Snapshot captures the state at this point; Persist writes it out while applies go on
// (memdb transactions are immutable views).
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	db := f.store.writeDB()
	return &snapshot{txn: db.Txn(false), index: f.applied.Load()}, nil
}

// Restore replaces the whole state with a snapshot's, after verifying it completely:
// a corrupt snapshot leaves the current state in place.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	db := newDB()
	txn := db.Txn(true)
	sum, err := readSnapshot(rc, txnSink{txn: txn, counts: counter{}})
	if err != nil {
		txn.Abort()
		return err
	}
	txn.Commit()
	f.store.replace(db)
	if sum.Index > f.applied.Load() {
		f.applied.Store(sum.Index)
	}
	return nil
}

// IsRuleError reports whether err is a business-rule refusal and returns it.
func IsRuleError(err error) (*RuleError, bool) {
	var re *RuleError
	ok := errors.As(err, &re)
	return re, ok
}
