package fsm_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/klauspost/compress/zstd"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	closed    bool
	cancelled bool
	failWrite error
}

func (s *memSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failWrite != nil {
		return 0, s.failWrite
	}
	return s.buf.Write(p)
}

func (s *memSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *memSink) ID() string { return "mem-1" }

func (s *memSink) Cancel() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancelled = true
	return nil
}

// readCloser records whether Restore closed it.
type readCloser struct {
	io.Reader
	closed bool
}

func (r *readCloser) Close() error { r.closed = true; return nil }

// snapshotBytes persists f's current state into a memSink and returns the bytes.
func snapshotBytes(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("after a successful Persist the sink is closed=%v cancelled=%v; want closed only", sink.closed, sink.cancelled)
	}
	return sink.buf.Bytes()
}

func restore(t testing.TB, f *fsm.FSM, b []byte) error {
	t.Helper()
	rc := &readCloser{Reader: bytes.NewReader(b)}
	err := f.Restore(rc)
	if !rc.closed {
		t.Errorf("Restore did not close its reader")
	}
	return err
}

// populate builds a small but varied state: meta entries from init, admins and viewers,
// certificates with secrets and non-ASCII text.
func populate(t testing.TB, f *fsm.FSM) {
	t.Helper()
	mustOK(t, apply(t, f, 1, initCmd(t, []byte("token-key-0123456789-abcdefghijk"), user("admin", "admin", resource.RoleAdmin), t0)))
	mustOK(t, upsert(t, f, 2, resource.Users, user("u1", "alice", resource.RoleViewer), true, 0, t0))
	mustOK(t, upsert(t, f, 3, resource.Users, user("u2", "bob", resource.RoleAdmin), true, 0, t1))
	mustOK(t, upsert(t, f, 4, resource.Users, user("u1", "alice", resource.RoleAdmin), false, 2, t2))
	mustOK(t, upsert(t, f, 5, resource.Certificates, &resource.Certificate{
		Meta: resource.Meta{ID: "web"}, Name: "网站证书", Cert: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		Key: "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n", Description: "<html> & \"quotes\"",
		Subject: "CN=web", Issuer: "CN=ca", DNSNames: []string{"a.example", "b.example"},
		NotBefore: t0, NotAfter: t2, FingerprintSHA256: "00ff",
	}, true, 0, t1))
	mustOK(t, upsert(t, f, 6, resource.Certificates, &resource.Certificate{Meta: resource.Meta{ID: "api"}, Name: "api"}, true, 0, t1))
	if res := del(t, f, 7, resource.Certificates, "api", 0); res != nil {
		t.Fatal(res)
	}
	mustOK(t, upsert(t, f, 8, resource.Certificates, &resource.Certificate{Meta: resource.Meta{ID: "mail"}, Name: "mail"}, true, 0, t2))
}

func TestSnapshotRoundTrip(t *testing.T) {
	src := newFSM(t)
	populate(t, src)
	want := dump(t, src)
	b := snapshotBytes(t, src)

	dst := newFSM(t)
	abandon := dst.Store().AbandonCh()
	_, usersWatch := dst.Store().List(resource.Users)
	if err := restore(t, dst, b); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := dump(t, dst); got != want {
		t.Errorf("restored state differs:\nwant %s\ngot  %s", want, got)
	}
	// The restored FSM knows which index its state reflects, and a snapshot of it is
	// byte-identical: replicas agree.
	if dst.AppliedIndex() != 8 {
		t.Errorf("restored applied index %d, want 8", dst.AppliedIndex())
	}
	if b2 := snapshotBytes(t, dst); !bytes.Equal(b, b2) {
		t.Error("snapshot of the restored state differs from the original snapshot")
	}
	if !bytes.Equal(dst.Store().Meta(fsm.MetaTokenKey), []byte("token-key-0123456789-abcdefghijk")) {
		t.Errorf("token key = %q", dst.Store().Meta(fsm.MetaTokenKey))
	}
	if string(dst.Store().Meta(fsm.MetaInitialized)) != "true" {
		t.Errorf("initialized = %q", dst.Store().Meta(fsm.MetaInitialized))
	}
	// Restoring replaces the state: watchers of the old one are told.
	waitClosed(t, memdb.WatchSet{abandon: struct{}{}}, "AbandonCh after Restore")
	waitClosed(t, usersWatch, "List watch after Restore")
	if isClosed(dst.Store().AbandonCh()) {
		t.Error("the new AbandonCh is already closed")
	}

	// Secondary indexes are rebuilt and the rules see the restored state.
	if obj, err := dst.Store().GetBy(resource.Users, "username", "bob"); err != nil || obj.Base().ID != "u2" {
		t.Errorf("GetBy bob after restore = %v, %v", obj, err)
	}
	mustRule(t, upsert(t, dst, 9, resource.Users, user("u9", "alice", resource.RoleViewer), true, 0, t2), "username_taken")
	mustErr(t, upsert(t, dst, 9, resource.Users, user("u1", "x", resource.RoleViewer), true, 0, t2), fsm.ErrExists)
	mustErr(t, upsert(t, dst, 9, resource.Users, user("u1", "alice", resource.RoleViewer), false, 3, t2), fsm.ErrIndexMismatch)
	mustErr(t, apply(t, dst, 9, initCmd(t, []byte("k"), user("x", "x", resource.RoleAdmin), t2)), fsm.ErrAlreadyInitialized)

	// Refused commands still count as applied: the index moves on.
	if dst.AppliedIndex() != 9 {
		t.Errorf("applied index %d after refused commands at 9", dst.AppliedIndex())
	}

	// Restoring an empty snapshot empties the state.
	empty := snapshotBytes(t, newFSM(t))
	if err := restore(t, dst, empty); err != nil {
		t.Fatalf("Restore empty: %v", err)
	}
	if dst.Store().Count(resource.Users) != 0 || dst.Store().Count(resource.Certificates) != 0 || dst.Store().Meta(fsm.MetaInitialized) != nil {
		t.Errorf("state after restoring an empty snapshot: %s", dump(t, dst))
	}
}

func TestVerifySnapshotCounts(t *testing.T) {
	f := newFSM(t)
	populate(t, f)
	b := snapshotBytes(t, f)
	before := dump(t, f)

	sum, err := fsm.VerifySnapshot(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("VerifySnapshot: %v", err)
	}
	if sum.Format != fsm.SnapshotFormat {
		t.Errorf("format = %d, want %d", sum.Format, fsm.SnapshotFormat)
	}
	if sum.Counts["users"] != 3 || sum.Counts["certificates"] != 2 {
		t.Errorf("counts = %v, want users:3 certificates:2", sum.Counts)
	}
	if after := dump(t, f); after != before {
		t.Error("VerifySnapshot changed the live state")
	}

	sum, err = fsm.VerifySnapshot(bytes.NewReader(snapshotBytes(t, newFSM(t))))
	if err != nil {
		t.Fatalf("VerifySnapshot of an empty state: %v", err)
	}
	if sum.Counts["users"] != 0 || sum.Counts["certificates"] != 0 {
		t.Errorf("empty counts = %v", sum.Counts)
	}
}

func TestSnapshotIsPointInTime(t *testing.T) {
	f := newFSM(t)
	populate(t, f)
	want := dump(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()

	// Changes applied after Snapshot (while raft persists it) are not in it.
	mustOK(t, upsert(t, f, 20, resource.Users, user("late", "late", resource.RoleViewer), true, 0, t2))
	if res := del(t, f, 21, resource.Certificates, "web", 0); res != nil {
		t.Fatal(res)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	dst := newFSM(t)
	if err := restore(t, dst, sink.buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, dst); got != want {
		t.Errorf("snapshot is not the state at Snapshot time:\nwant %s\ngot  %s", want, got)
	}
}

func TestPersistCancelsSinkOnWriteError(t *testing.T) {
	f := newFSM(t)
	populate(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	sink := &memSink{failWrite: boom}
	if err := snap.Persist(sink); err == nil {
		t.Fatal("Persist into a failing sink succeeded")
	}
	if !sink.cancelled || sink.closed {
		t.Errorf("sink cancelled=%v closed=%v; want cancelled only", sink.cancelled, sink.closed)
	}
}

// lines decompresses a snapshot into its JSON lines (without newlines).
func lines(t testing.TB, b []byte) []string {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("decompress snapshot: %v", err)
	}
	if !bytes.HasSuffix(raw, []byte("\n")) {
		t.Fatalf("snapshot does not end with a newline: %q", raw)
	}
	return strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
}

// compress joins lines and compresses them as a snapshot file.
func compress(t testing.TB, ls []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if _, err := io.WriteString(zw, l+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withChecksum replaces the trailer of ls with a correct one for the lines before it.
func withChecksum(ls []string) []string {
	h := sha256.New()
	for _, l := range ls[:len(ls)-1] {
		io.WriteString(h, l+"\n")
	}
	out := append([]string{}, ls[:len(ls)-1]...)
	return append(out, fmt.Sprintf(`{"checksum":%q}`, hex.EncodeToString(h.Sum(nil))))
}

func TestSnapshotLayout(t *testing.T) {
	f := newFSM(t)
	populate(t, f)
	ls := lines(t, snapshotBytes(t, f))
	// header, 2 meta, 3 users, 2 certificates, trailer
	if len(ls) != 9 {
		t.Fatalf("snapshot has %d lines, want 9:\n%s", len(ls), strings.Join(ls, "\n"))
	}
	var hdr struct {
		Format int            `json:"format"`
		Counts map[string]int `json:"counts"`
	}
	if err := json.Unmarshal([]byte(ls[0]), &hdr); err != nil || hdr.Format != fsm.SnapshotFormat {
		t.Errorf("header %q: %v", ls[0], err)
	}
	// The trailer is the SHA-256 of every line before it.
	if got := withChecksum(ls); got[len(got)-1] != ls[len(ls)-1] {
		t.Errorf("trailer = %s, want %s", ls[len(ls)-1], got[len(got)-1])
	}
	// Kinds in name order, ids in order within a kind.
	var order []string
	for _, l := range ls[3:8] {
		var rec struct {
			Kind   string `json:"kind"`
			Object struct {
				ID string `json:"id"`
			} `json:"object"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		order = append(order, rec.Kind+"/"+rec.Object.ID)
	}
	if got, want := strings.Join(order, ","), "certificates/mail,certificates/web,users/admin,users/u1,users/u2"; got != want {
		t.Errorf("record order = %s, want %s", got, want)
	}
	// Re-encoding the same lines gives a valid snapshot (the test helpers are sound).
	if _, err := fsm.VerifySnapshot(bytes.NewReader(compress(t, ls))); err != nil {
		t.Errorf("recompressed snapshot: %v", err)
	}
}

// badSnapshots derives broken snapshots from a good one; each must be refused with a
// message containing the given text.
func badSnapshots(t testing.TB, good []byte) map[string]struct {
	data []byte
	want string
} {
	t.Helper()
	ls := lines(t, good)
	mid := -1
	for i, l := range ls {
		if strings.Contains(l, `"username":"alice"`) {
			mid = i
		}
	}
	if mid <= 0 || mid >= len(ls)-1 {
		t.Fatalf("no object line with alice in\n%s", strings.Join(ls, "\n"))
	}
	flipped := append([]string{}, ls...)
	flipped[mid] = strings.Replace(flipped[mid], `"username":"alice"`, `"username":"alicf"`, 1)

	truncated := ls[:len(ls)-1]
	halfway := ls[:len(ls)/2]

	newer := append([]string{}, ls...)
	newer[0] = strings.Replace(newer[0], fmt.Sprintf(`"format":%d`, fsm.SnapshotFormat), fmt.Sprintf(`"format":%d`, fsm.SnapshotFormat+1), 1)
	newer = withChecksum(newer)

	// A consistent checksum but a header that promises more users than follow.
	lying := append([]string{}, ls...)
	lying[0] = strings.Replace(lying[0], `"users":3`, `"users":4`, 1)
	lying = withChecksum(lying)

	unknownKind := append([]string{}, ls[:len(ls)-1]...)
	unknownKind = append(unknownKind, `{"kind":"spaceships","object":{"id":"x"}}`, "")
	unknownKind = withChecksum(unknownKind)

	afterTrailer := append(append([]string{}, ls...), `{"kind":"users","object":{"id":"extra"}}`)

	zgood := good[:len(good)-len(good)/3]

	return map[string]struct {
		data []byte
		want string
	}{
		"flipped byte":         {compress(t, flipped), "checksum"},
		"truncated":            {compress(t, truncated), "truncated"},
		"truncated halfway":    {compress(t, halfway), "truncated"},
		"truncated zstd":       {zgood, ""},
		"not zstd":             {[]byte("this is not a zstd stream, just text\n"), ""},
		"empty":                {nil, ""},
		"zstd of other data":   {compress(t, []string{"hello world"}), "header"},
		"newer format":         {compress(t, newer), "newer"},
		"count mismatch":       {compress(t, lying), "promises"},
		"unknown kind":         {compress(t, unknownKind), "spaceships"},
		"data after trailer":   {compress(t, afterTrailer), "after the trailer"},
		"not json":             {compress(t, append([]string{ls[0], "{{{"}, ls[1:]...)), "line 2"},
		"raw snapshot text":    {[]byte(strings.Join(ls, "\n") + "\n"), ""},
		"trailer only":         {compress(t, ls[len(ls)-1:]), "header"},
		"header without lines": {compress(t, ls[:1]), "truncated"},
	}
}

func TestCorruptSnapshotsAreRefused(t *testing.T) {
	src := newFSM(t)
	populate(t, src)
	good := snapshotBytes(t, src)

	for name, tc := range badSnapshots(t, good) {
		t.Run(name, func(t *testing.T) {
			_, err := fsm.VerifySnapshot(bytes.NewReader(tc.data))
			if !errors.Is(err, fsm.ErrBadSnapshot) {
				t.Fatalf("VerifySnapshot = %v, want ErrBadSnapshot", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("VerifySnapshot error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestFailedRestoreKeepsPreviousState(t *testing.T) {
	src := newFSM(t)
	populate(t, src)
	good := snapshotBytes(t, src)

	// The live FSM has a different state from the snapshot's.
	live := newFSM(t)
	mustOK(t, apply(t, live, 1, initCmd(t, []byte("live-key"), user("root", "root", resource.RoleAdmin), t1)))
	mustOK(t, upsert(t, live, 2, resource.Users, user("u1", "zed", resource.RoleViewer), true, 0, t1))
	mustOK(t, upsert(t, live, 3, resource.Certificates, &resource.Certificate{Meta: resource.Meta{ID: "own"}, Name: "own"}, true, 0, t1))
	before := dump(t, live)
	abandon := live.Store().AbandonCh()

	for name, tc := range badSnapshots(t, good) {
		t.Run(name, func(t *testing.T) {
			err := restore(t, live, tc.data)
			if !errors.Is(err, fsm.ErrBadSnapshot) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot", err)
			}
			if after := dump(t, live); after != before {
				t.Errorf("failed Restore changed the state:\nbefore %s\nafter  %s", before, after)
			}
			if isClosed(abandon) {
				t.Error("failed Restore woke watchers")
			}
		})
	}
	// The live FSM still works and can still be restored properly.
	mustOK(t, upsert(t, live, 4, resource.Users, user("u5", "eve", resource.RoleViewer), true, 0, t2))
	if err := restore(t, live, good); err != nil {
		t.Fatal(err)
	}
	if got, want := dump(t, live), dump(t, src); got != want {
		t.Errorf("state after a good restore:\nwant %s\ngot  %s", want, got)
	}
}

func TestLargeSnapshotRoundTrip(t *testing.T) {
	const n = 10000
	src := newFSM(t)
	mustOK(t, apply(t, src, 1, initCmd(t, []byte("k"), user("admin", "admin", resource.RoleAdmin), t0)))
	now := t0
	for i := range n {
		c := &resource.Certificate{Meta: resource.Meta{ID: fmt.Sprintf("c%05d", i)}, Name: fmt.Sprintf("cert %d", i)}
		mustOK(t, upsert(t, src, uint64(i+2), resource.Certificates, c, true, 0, now))
		now = now.Add(time.Millisecond)
	}
	b := snapshotBytes(t, src)

	sum, err := fsm.VerifySnapshot(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Counts["certificates"] != n || sum.Counts["users"] != 1 {
		t.Errorf("counts = %v", sum.Counts)
	}
	dst := newFSM(t)
	if err := restore(t, dst, b); err != nil {
		t.Fatal(err)
	}
	if dst.Store().Count(resource.Certificates) != n {
		t.Fatalf("restored %d certificates, want %d", dst.Store().Count(resource.Certificates), n)
	}
	if got, want := dump(t, dst), dump(t, src); got != want {
		t.Error("restored state of 10,000 certificates differs")
	}
	obj, err := dst.Store().Get(resource.Certificates, "c09999")
	if err != nil {
		t.Fatal(err)
	}
	if c := obj.(*resource.Certificate); c.Index != n+1 || c.Name != "cert 9999" || !c.CreatedAt.Equal(t0.Add((n-1)*time.Millisecond)) {
		t.Errorf("last certificate = %+v", c)
	}
}
