package fsm_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

var (
	t0 = time.Date(2024, 3, 1, 10, 0, 0, 123456789, time.UTC)
	t1 = t0.Add(90 * time.Minute)
	t2 = t1.Add(90 * time.Minute)
)

func newFSM(t testing.TB) *fsm.FSM {
	t.Helper()
	return fsm.New(slog.New(slog.DiscardHandler))
}

// apply feeds one encoded command to the FSM as raft would.
func apply(t testing.TB, f *fsm.FSM, index uint64, data []byte) any {
	t.Helper()
	return f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data})
}

func upsert(t testing.TB, f *fsm.FSM, index uint64, kind *resource.Kind, obj resource.Object, create bool, expect uint64, now time.Time) any {
	t.Helper()
	data, err := fsm.NewUpsert(kind, obj, create, expect, now)
	if err != nil {
		t.Fatalf("NewUpsert: %v", err)
	}
	return apply(t, f, index, data)
}

func del(t testing.TB, f *fsm.FSM, index uint64, kind *resource.Kind, id string, expect uint64) any {
	t.Helper()
	data, err := fsm.NewDelete(kind, id, expect)
	if err != nil {
		t.Fatalf("NewDelete: %v", err)
	}
	return apply(t, f, index, data)
}

func user(id, username, role string) *resource.User {
	return &resource.User{Meta: resource.Meta{ID: id}, Username: username, Role: role, PasswordHash: "$2a$10$hash-of-" + id}
}

// mustOK fails unless an Apply result is a stored object (not an error).
func mustOK(t testing.TB, res any) resource.Object {
	t.Helper()
	if err, ok := res.(error); ok {
		t.Fatalf("Apply returned error %v", err)
	}
	obj, ok := res.(resource.Object)
	if !ok {
		t.Fatalf("Apply returned %T (%v), want a resource.Object", res, res)
	}
	return obj
}

// mustErr fails unless an Apply result is an error matching target.
func mustErr(t testing.TB, res any, target error) error {
	t.Helper()
	err, ok := res.(error)
	if !ok {
		t.Fatalf("Apply returned %T (%v), want error %v", res, res, target)
	}
	if !errors.Is(err, target) {
		t.Fatalf("Apply returned error %v, want %v", err, target)
	}
	return err
}

func mustRule(t testing.TB, res any, code string) *fsm.RuleError {
	t.Helper()
	err, ok := res.(error)
	if !ok {
		t.Fatalf("Apply returned %T (%v), want RuleError %q", res, res, code)
	}
	re, ok := fsm.IsRuleError(err)
	if !ok {
		t.Fatalf("Apply returned %v (%T), want a RuleError %q", err, err, code)
	}
	if re.Code != code {
		t.Fatalf("RuleError code = %q (%v), want %q", re.Code, re, code)
	}
	if !strings.HasPrefix(err.Error(), code+": ") || re.Message == "" {
		t.Fatalf("RuleError text %q should be %q followed by a message", err.Error(), code+": ")
	}
	return re
}

func getUser(t testing.TB, f *fsm.FSM, id string) *resource.User {
	t.Helper()
	obj, err := f.Store().Get(resource.Users, id)
	if err != nil {
		t.Fatalf("Get user %q: %v", id, err)
	}
	return obj.(*resource.User)
}

// dump is the JSON of every user, every certificate and the meta values: the whole
// user-visible state, for before/after comparisons.
func dump(t testing.TB, f *fsm.FSM) string {
	t.Helper()
	users, _ := f.Store().List(resource.Users)
	certs, _ := f.Store().List(resource.Certificates)
	b, err := json.Marshal(map[string]any{
		"users":        users,
		"certificates": certs,
		"initialized":  f.Store().Meta(fsm.MetaInitialized),
		"tokenKey":     f.Store().Meta(fsm.MetaTokenKey),
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCreateStoresObjectWithRequestTimeAndLogIndex(t *testing.T) {
	f := newFSM(t)
	in := user("u1", "alice", resource.RoleViewer)
	// Whatever the client put in the metadata is replaced by the FSM.
	in.Index, in.CreatedAt, in.UpdatedAt = 999, t2, t2

	got := mustOK(t, upsert(t, f, 7, resource.Users, in, true, 0, t0)).(*resource.User)
	for name, u := range map[string]*resource.User{"returned": got, "stored": getUser(t, f, "u1")} {
		if u.ID != "u1" || u.Username != "alice" || u.Role != resource.RoleViewer || u.PasswordHash != "$2a$10$hash-of-u1" {
			t.Errorf("%s user = %+v, fields not kept", name, u)
		}
		if !u.CreatedAt.Equal(t0) || !u.UpdatedAt.Equal(t0) {
			t.Errorf("%s createdAt/updatedAt = %v/%v, want the request's now %v", name, u.CreatedAt, u.UpdatedAt, t0)
		}
		if u.Index != 7 {
			t.Errorf("%s index = %d, want the raft log index 7", name, u.Index)
		}
	}
	if n := f.Store().Count(resource.Users); n != 1 {
		t.Errorf("Count(users) = %d, want 1", n)
	}
	if n := f.Store().Count(resource.Certificates); n != 0 {
		t.Errorf("Count(certificates) = %d, want 0", n)
	}
}

func TestCreateCertificate(t *testing.T) {
	f := newFSM(t)
	c := &resource.Certificate{Meta: resource.Meta{ID: "web"}, Name: "web cert", Cert: "PEM", Key: "KEY", DNSNames: []string{"a.example"}}
	mustOK(t, upsert(t, f, 3, resource.Certificates, c, true, 0, t0))
	obj, err := f.Store().Get(resource.Certificates, "web")
	if err != nil {
		t.Fatal(err)
	}
	got := obj.(*resource.Certificate)
	if got.Name != "web cert" || got.Index != 3 || !got.CreatedAt.Equal(t0) || len(got.DNSNames) != 1 {
		t.Errorf("stored certificate = %+v", got)
	}
	if _, err := f.Store().Get(resource.Users, "web"); !errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("a certificate id must not be visible as a user: %v", err)
	}
}

func TestCreateExistingIDIsErrExists(t *testing.T) {
	f := newFSM(t)
	mustOK(t, upsert(t, f, 1, resource.Users, user("u1", "alice", resource.RoleAdmin), true, 0, t0))
	before := dump(t, f)

	mustErr(t, upsert(t, f, 2, resource.Users, user("u1", "bob", resource.RoleViewer), true, 0, t1), fsm.ErrExists)
	if after := dump(t, f); after != before {
		t.Errorf("refused create changed the state:\nbefore %s\nafter  %s", before, after)
	}
}

func TestUpsertWithoutIDIsRefused(t *testing.T) {
	f := newFSM(t)
	res := upsert(t, f, 1, resource.Users, user("", "alice", resource.RoleAdmin), true, 0, t0)
	if _, ok := res.(error); !ok {
		t.Fatalf("create without id returned %v, want an error", res)
	}
	if n := f.Store().Count(resource.Users); n != 0 {
		t.Errorf("Count = %d after refused create", n)
	}
}

func TestUpdateMissingIsErrNotFound(t *testing.T) {
	f := newFSM(t)
	mustErr(t, upsert(t, f, 1, resource.Users, user("ghost", "ghost", resource.RoleAdmin), false, 0, t0), fsm.ErrNotFound)
	if _, err := f.Store().Get(resource.Users, "ghost"); !errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("Get after refused update: %v, want ErrNotFound", err)
	}
}

func TestUpdateKeepsCreatedAtAndBumpsIndex(t *testing.T) {
	f := newFSM(t)
	mustOK(t, upsert(t, f, 1, resource.Users, user("admin", "root", resource.RoleAdmin), true, 0, t0))
	mustOK(t, upsert(t, f, 4, resource.Users, user("u1", "alice", resource.RoleViewer), true, 0, t0))

	next := user("u1", "alice2", resource.RoleAdmin)
	next.CreatedAt = t2 // ignored
	got := mustOK(t, upsert(t, f, 9, resource.Users, next, false, 4, t1)).(*resource.User)
	stored := getUser(t, f, "u1")
	for name, u := range map[string]*resource.User{"returned": got, "stored": stored} {
		if !u.CreatedAt.Equal(t0) {
			t.Errorf("%s createdAt = %v, want the original %v", name, u.CreatedAt, t0)
		}
		if !u.UpdatedAt.Equal(t1) {
			t.Errorf("%s updatedAt = %v, want %v", name, u.UpdatedAt, t1)
		}
		if u.Index != 9 {
			t.Errorf("%s index = %d, want 9", name, u.Index)
		}
		if u.Username != "alice2" || u.Role != resource.RoleAdmin {
			t.Errorf("%s = %+v, update not applied", name, u)
		}
	}
	// The username index follows the rename.
	if _, err := f.Store().GetBy(resource.Users, "username", "alice"); !errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("GetBy old username: %v, want ErrNotFound", err)
	}
	if obj, err := f.Store().GetBy(resource.Users, "username", "alice2"); err != nil || obj.Base().ID != "u1" {
		t.Errorf("GetBy new username = %v, %v; want u1", obj, err)
	}

	// An update without ExpectIndex is unconditional.
	got = mustOK(t, upsert(t, f, 10, resource.Users, user("u1", "alice2", resource.RoleViewer), false, 0, t2)).(*resource.User)
	if got.Index != 10 || !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t2) || got.Role != resource.RoleViewer {
		t.Errorf("unconditional update = %+v", got)
	}
}

func TestExpectIndexMismatchLeavesStateUnchanged(t *testing.T) {
	f := newFSM(t)
	mustOK(t, upsert(t, f, 1, resource.Users, user("admin", "root", resource.RoleAdmin), true, 0, t0))
	mustOK(t, upsert(t, f, 5, resource.Users, user("u1", "alice", resource.RoleViewer), true, 0, t0))
	before := dump(t, f)

	// Stale If-Match on an update.
	mustErr(t, upsert(t, f, 6, resource.Users, user("u1", "mallory", resource.RoleAdmin), false, 4, t1), fsm.ErrIndexMismatch)
	// Stale If-Match on a delete.
	mustErr(t, del(t, f, 7, resource.Users, "u1", 6), fsm.ErrIndexMismatch)
	// If-Match on a resource that does not exist yet.
	mustErr(t, upsert(t, f, 8, resource.Users, user("u2", "bob", resource.RoleViewer), true, 3, t1), fsm.ErrIndexMismatch)

	if after := dump(t, f); after != before {
		t.Errorf("refused commands changed the state:\nbefore %s\nafter  %s", before, after)
	}
	u := getUser(t, f, "u1")
	if u.Index != 5 || u.Username != "alice" || !u.UpdatedAt.Equal(t0) {
		t.Errorf("u1 = %+v, want unchanged at index 5", u)
	}
}

func TestDelete(t *testing.T) {
	f := newFSM(t)
	mustOK(t, upsert(t, f, 1, resource.Users, user("admin", "root", resource.RoleAdmin), true, 0, t0))
	mustOK(t, upsert(t, f, 2, resource.Users, user("u1", "alice", resource.RoleViewer), true, 0, t0))
	mustOK(t, upsert(t, f, 3, resource.Users, user("u2", "bob", resource.RoleViewer), true, 0, t0))

	if res := del(t, f, 4, resource.Users, "u1", 0); res != nil {
		t.Fatalf("delete returned %v, want nil", res)
	}
	if _, err := f.Store().Get(resource.Users, "u1"); !errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("Get after delete: %v, want ErrNotFound", err)
	}
	if _, err := f.Store().GetBy(resource.Users, "username", "alice"); !errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("GetBy username after delete: %v, want ErrNotFound", err)
	}
	// Deleting what is gone is ErrNotFound.
	mustErr(t, del(t, f, 5, resource.Users, "u1", 0), fsm.ErrNotFound)
	// A delete with the right If-Match succeeds.
	if res := del(t, f, 6, resource.Users, "u2", 3); res != nil {
		t.Fatalf("delete with matching index returned %v, want nil", res)
	}
	if n := f.Store().Count(resource.Users); n != 1 {
		t.Errorf("Count(users) = %d, want 1 (only admin left)", n)
	}
	// The username of a deleted user can be taken again.
	mustOK(t, upsert(t, f, 7, resource.Users, user("u3", "alice", resource.RoleViewer), true, 0, t1))
}

func TestUniqueUsername(t *testing.T) {
	f := newFSM(t)
	mustOK(t, upsert(t, f, 1, resource.Users, user("u1", "alice", resource.RoleAdmin), true, 0, t0))
	mustOK(t, upsert(t, f, 2, resource.Users, user("u2", "bob", resource.RoleViewer), true, 0, t0))
	before := dump(t, f)

	re := mustRule(t, upsert(t, f, 3, resource.Users, user("u3", "alice", resource.RoleViewer), true, 0, t1), "username_taken")
	if !strings.Contains(re.Message, "alice") || !strings.Contains(re.Message, "u1") {
		t.Errorf("message %q should name the username and its owner", re.Message)
	}
	// Renaming another user onto a taken name is refused too.
	mustRule(t, upsert(t, f, 4, resource.Users, user("u2", "alice", resource.RoleViewer), false, 0, t1), "username_taken")
	if after := dump(t, f); after != before {
		t.Errorf("refused commands changed the state:\nbefore %s\nafter  %s", before, after)
	}
	// A user may keep its own username on update.
	mustOK(t, upsert(t, f, 5, resource.Users, user("u1", "alice", resource.RoleAdmin), false, 0, t1))
	// Once renamed, the old name is free.
	mustOK(t, upsert(t, f, 6, resource.Users, user("u1", "alice-old", resource.RoleAdmin), false, 0, t1))
	mustOK(t, upsert(t, f, 7, resource.Users, user("u2", "alice", resource.RoleViewer), false, 0, t1))
	if obj, err := f.Store().GetBy(resource.Users, "username", "alice"); err != nil || obj.Base().ID != "u2" {
		t.Errorf("GetBy alice = %v, %v; want u2", obj, err)
	}
}

func TestLastAdminCannotBeDeletedOrDemoted(t *testing.T) {
	f := newFSM(t)
	mustOK(t, upsert(t, f, 1, resource.Users, user("a1", "root", resource.RoleAdmin), true, 0, t0))
	mustOK(t, upsert(t, f, 2, resource.Users, user("v1", "viewer", resource.RoleViewer), true, 0, t0))
	before := dump(t, f)

	re := mustRule(t, del(t, f, 3, resource.Users, "a1", 0), "last_admin")
	if !strings.Contains(re.Message, "root") {
		t.Errorf("message %q should name the user", re.Message)
	}
	mustRule(t, upsert(t, f, 4, resource.Users, user("a1", "root", resource.RoleViewer), false, 0, t1), "last_admin")
	if after := dump(t, f); after != before {
		t.Errorf("refused commands changed the state:\nbefore %s\nafter  %s", before, after)
	}
	// Viewers are not protected.
	if res := del(t, f, 5, resource.Users, "v1", 0); res != nil {
		t.Fatalf("delete viewer: %v", res)
	}

	// With a second admin, the first may be demoted...
	mustOK(t, upsert(t, f, 6, resource.Users, user("a2", "second", resource.RoleAdmin), true, 0, t1))
	mustOK(t, upsert(t, f, 7, resource.Users, user("a1", "root", resource.RoleViewer), false, 0, t1))
	// ...after which the second is the last admin.
	mustRule(t, del(t, f, 8, resource.Users, "a2", 0), "last_admin")
	mustRule(t, upsert(t, f, 9, resource.Users, user("a2", "second", resource.RoleViewer), false, 0, t1), "last_admin")
	// Promote a1 back: now either admin may be deleted.
	mustOK(t, upsert(t, f, 10, resource.Users, user("a1", "root", resource.RoleAdmin), false, 0, t2))
	if res := del(t, f, 11, resource.Users, "a2", 0); res != nil {
		t.Fatalf("delete of a non-last admin: %v", res)
	}
	if u := getUser(t, f, "a1"); u.Role != resource.RoleAdmin {
		t.Errorf("a1 role = %q", u.Role)
	}
	// An admin may always be updated while staying admin.
	mustOK(t, upsert(t, f, 12, resource.Users, user("a1", "root2", resource.RoleAdmin), false, 0, t2))
}

func initCmd(t testing.TB, key []byte, admin *resource.User, now time.Time) []byte {
	t.Helper()
	data, err := fsm.Encode(fsm.InitType, fsm.InitRequest{TokenKey: key, Admin: admin, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestInitAppliesOnce(t *testing.T) {
	f := newFSM(t)
	if v := f.Store().Meta(fsm.MetaInitialized); v != nil {
		t.Fatalf("fresh store initialized = %q", v)
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	got := mustOK(t, apply(t, f, 2, initCmd(t, key, user("admin", "admin", resource.RoleAdmin), t0))).(*resource.User)
	if got.Index != 2 || !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0) {
		t.Errorf("init admin meta = %+v", got.Meta)
	}
	if string(f.Store().Meta(fsm.MetaInitialized)) != "true" {
		t.Errorf("Meta(initialized) = %q, want true", f.Store().Meta(fsm.MetaInitialized))
	}
	if !bytes.Equal(f.Store().Meta(fsm.MetaTokenKey), key) {
		t.Errorf("Meta(tokenKey) = %q, want %q", f.Store().Meta(fsm.MetaTokenKey), key)
	}
	if obj, err := f.Store().GetBy(resource.Users, "username", "admin"); err != nil || obj.Base().ID != "admin" {
		t.Errorf("admin by username = %v, %v", obj, err)
	}
	before := dump(t, f)

	mustErr(t, apply(t, f, 3, initCmd(t, []byte("another key, another key, 32 b.."), user("admin2", "other", resource.RoleAdmin), t1)), fsm.ErrAlreadyInitialized)
	if after := dump(t, f); after != before {
		t.Errorf("second init changed the state:\nbefore %s\nafter  %s", before, after)
	}
	// The initial admin is protected like any other last admin.
	mustRule(t, del(t, f, 4, resource.Users, "admin", 0), "last_admin")
}

func TestUnknownIgnorableTypeIsSkipped(t *testing.T) {
	f := newFSM(t)
	mustOK(t, upsert(t, f, 1, resource.Users, user("u1", "alice", resource.RoleAdmin), true, 0, t0))
	before := dump(t, f)
	for _, typ := range []fsm.MessageType{fsm.IgnoreUnknownTypeFlag | 42, fsm.IgnoreUnknownTypeFlag | 100, 255} {
		data := append([]byte{byte(typ)}, `{"kind":"users","object":{"id":"u9"}}`...)
		if res := apply(t, f, 2, data); res != nil {
			t.Errorf("type %d with the ignore flag returned %v, want nil", typ, res)
		}
	}
	if after := dump(t, f); after != before {
		t.Errorf("ignored command changed the state:\nbefore %s\nafter  %s", before, after)
	}
}

func TestUnknownTypeWithoutFlagPanics(t *testing.T) {
	f := newFSM(t)
	mustOK(t, upsert(t, f, 1, resource.Users, user("u1", "alice", resource.RoleAdmin), true, 0, t0))
	before := dump(t, f)

	for _, typ := range []byte{0, 42, 127} {
		t.Run(fmt.Sprint(typ), func(t *testing.T) {
			var recovered any
			func() {
				defer func() { recovered = recover() }()
				apply(t, f, 77, append([]byte{typ}, `{"kind":"users"}`...))
				t.Errorf("Apply of unknown type %d returned instead of panicking", typ)
			}()
			err, ok := recovered.(error)
			if !ok {
				t.Fatalf("panic value = %#v, want an error", recovered)
			}
			if !errors.Is(err, fsm.ErrUnknownCommand) {
				t.Errorf("panic error %v does not wrap ErrUnknownCommand", err)
			}
			if !strings.Contains(err.Error(), "77") {
				t.Errorf("panic error %q should name the raft index", err)
			}
		})
	}
	if after := dump(t, f); after != before {
		t.Errorf("unknown command changed the state:\nbefore %s\nafter  %s", before, after)
	}
}

func TestApplyMalformedCommands(t *testing.T) {
	f := newFSM(t)
	if res := apply(t, f, 1, nil); res != nil {
		t.Errorf("empty entry returned %v, want nil", res)
	}
	for name, data := range map[string][]byte{
		"upsert bad json": append([]byte{byte(fsm.UpsertType)}, "{"...),
		"delete bad json": append([]byte{byte(fsm.DeleteType)}, "nope"...),
		"init bad json":   append([]byte{byte(fsm.InitType)}, "["...),
		"object mismatch": append([]byte{byte(fsm.UpsertType)}, `{"kind":"users","object":{"id":5},"create":true}`...),
	} {
		if _, ok := apply(t, f, 2, data).(error); !ok {
			t.Errorf("%s: Apply did not return an error", name)
		}
	}
	if f.Store().Count(resource.Users) != 0 || f.Store().Meta(fsm.MetaInitialized) != nil {
		t.Errorf("malformed commands changed the state: %s", dump(t, f))
	}
}

func TestEncodeLayout(t *testing.T) {
	data, err := fsm.NewDelete(resource.Users, "u1", 3)
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != byte(fsm.DeleteType) {
		t.Fatalf("first byte = %d, want %d", data[0], fsm.DeleteType)
	}
	var req fsm.DeleteRequest
	if err := json.Unmarshal(data[1:], &req); err != nil {
		t.Fatal(err)
	}
	if req != (fsm.DeleteRequest{Kind: "users", ID: "u1", ExpectIndex: 3}) {
		t.Errorf("decoded %+v", req)
	}
	// NewUpsert stores the proposer's time in UTC.
	data, err = fsm.NewUpsert(resource.Users, user("u1", "a", resource.RoleAdmin), true, 0, t0.In(time.FixedZone("X", 3600)))
	if err != nil {
		t.Fatal(err)
	}
	var up fsm.UpsertRequest
	if err := json.Unmarshal(data[1:], &up); err != nil {
		t.Fatal(err)
	}
	if !up.Now.Equal(t0) || up.Now.Location() != time.UTC || up.Kind != "users" || !up.Create {
		t.Errorf("decoded upsert %+v", up)
	}
	if _, err := fsm.Encode(fsm.UpsertType, func() {}); err == nil {
		t.Error("Encode of an unencodable body succeeded")
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// fired reports whether a watch set fires within a short moment.
func fired(ws memdb.WatchSet) bool { return !ws.Watch(time.After(20 * time.Millisecond)) }

func waitClosed(t testing.TB, ws memdb.WatchSet, what string) {
	t.Helper()
	if ws.Watch(time.After(2 * time.Second)) {
		t.Fatalf("%s: watch did not fire", what)
	}
}

func ids(objs []resource.Object) []string {
	out := []string{}
	for _, o := range objs {
		out = append(out, o.Base().ID)
	}
	return out
}

func TestListOrderAndWatch(t *testing.T) {
	f := newFSM(t)
	st := f.Store()
	objs, watch := st.List(resource.Users)
	if len(objs) != 0 {
		t.Fatalf("empty store lists %v", ids(objs))
	}
	if fired(watch) {
		t.Fatal("watch channel closed before any change")
	}
	mustOK(t, upsert(t, f, 1, resource.Users, user("c", "carol", resource.RoleAdmin), true, 0, t0))
	waitClosed(t, watch, "first create")

	mustOK(t, upsert(t, f, 2, resource.Users, user("a", "alice", resource.RoleAdmin), true, 0, t0))
	mustOK(t, upsert(t, f, 3, resource.Users, user("B", "bob", resource.RoleAdmin), true, 0, t0))
	mustOK(t, upsert(t, f, 4, resource.Users, user("b", "bert", resource.RoleAdmin), true, 0, t0))

	objs, watch = st.List(resource.Users)
	if got, want := strings.Join(ids(objs), ","), "B,a,b,c"; got != want {
		t.Errorf("List order = %s, want %s", got, want)
	}
	if st.Count(resource.Users) != 4 {
		t.Errorf("Count = %d", st.Count(resource.Users))
	}

	// A change to another kind does not wake watchers of users.
	mustOK(t, upsert(t, f, 5, resource.Certificates, &resource.Certificate{Meta: resource.Meta{ID: "x"}, Name: "x"}, true, 0, t0))
	if fired(watch) {
		t.Error("users watch closed by a certificate change")
	}
	// Refused commands do not wake watchers either.
	mustErr(t, upsert(t, f, 6, resource.Users, user("a", "alice", resource.RoleAdmin), true, 0, t0), fsm.ErrExists)
	if fired(watch) {
		t.Error("users watch closed by a refused command")
	}

	// An update closes it.
	mustOK(t, upsert(t, f, 7, resource.Users, user("b", "bert2", resource.RoleAdmin), false, 0, t1))
	waitClosed(t, watch, "update")

	// So does a delete.
	_, watch = st.List(resource.Users)
	if fired(watch) {
		t.Fatal("fresh watch channel already closed")
	}
	if res := del(t, f, 8, resource.Users, "c", 0); res != nil {
		t.Fatal(res)
	}
	waitClosed(t, watch, "delete")
	objs, _ = st.List(resource.Users)
	if got, want := strings.Join(ids(objs), ","), "B,a,b"; got != want {
		t.Errorf("List after delete = %s, want %s", got, want)
	}
}

func TestStoreGetErrors(t *testing.T) {
	f := newFSM(t)
	if _, err := f.Store().Get(resource.Users, "nobody"); !errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("Get missing: %v", err)
	}
	if _, err := f.Store().GetBy(resource.Users, "username", "nobody"); !errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("GetBy missing: %v", err)
	}
	if _, err := f.Store().GetBy(resource.Users, "no-such-index", "x"); err == nil || errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("GetBy on an unknown index: %v, want a non-NotFound error", err)
	}
	if v := f.Store().Meta("nope"); v != nil {
		t.Errorf("Meta(nope) = %q", v)
	}
}

// TestUnknownKindStopsTheNodeUnlessIgnorable: a resource kind from a newer version is a
// state change this node cannot make, exactly like an unknown type.
func TestUnknownKindStopsTheNodeUnlessIgnorable(t *testing.T) {
	f := newFSM(t)
	body := fsm.UpsertRequest{Kind: "widgets", Object: json.RawMessage(`{"id":"w1"}`), Create: true, Now: t0}
	for _, typ := range []fsm.MessageType{fsm.UpsertType, fsm.DeleteType} {
		var req any = body
		if typ == fsm.DeleteType {
			req = fsm.DeleteRequest{Kind: "widgets", ID: "w1"}
		}
		data, err := fsm.Encode(typ, req)
		if err != nil {
			t.Fatal(err)
		}
		var recovered any
		func() {
			defer func() { recovered = recover() }()
			apply(t, f, 9, data)
		}()
		if err, ok := recovered.(error); !ok || !errors.Is(err, fsm.ErrUnknownCommand) || !strings.Contains(err.Error(), "widgets") {
			t.Errorf("type %d with unknown kind: panic %v, want ErrUnknownCommand naming the kind", typ, recovered)
		}
		data, _ = fsm.Encode(typ|fsm.IgnoreUnknownTypeFlag, req)
		if res := apply(t, f, 10, data); res != nil {
			t.Errorf("ignorable type %d with unknown kind: %v, want nil", typ, res)
		}
	}
}

// TestIgnorableFlagOnAKnownTypeStillApplies: the flag only says what an older node may do;
// a node that knows the type applies it.
func TestIgnorableFlagOnAKnownTypeStillApplies(t *testing.T) {
	f := newFSM(t)
	raw, _ := json.Marshal(user("u1", "alice", resource.RoleAdmin))
	data, err := fsm.Encode(fsm.UpsertType|fsm.IgnoreUnknownTypeFlag, fsm.UpsertRequest{Kind: "users", Object: raw, Create: true, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, apply(t, f, 1, data))
	if u := getUser(t, f, "u1"); u.Username != "alice" {
		t.Fatalf("stored %+v", u)
	}
}

func TestInitWithoutAdminIsRefused(t *testing.T) {
	f := newFSM(t)
	data, _ := fsm.Encode(fsm.InitType, fsm.InitRequest{TokenKey: []byte("k"), Now: t0})
	if _, ok := apply(t, f, 1, data).(error); !ok {
		t.Fatal("init without admin accepted")
	}
	if f.Store().Meta(fsm.MetaInitialized) != nil {
		t.Fatal("init without admin marked the cluster initialized")
	}
}
