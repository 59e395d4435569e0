package fsm_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

// FuzzApply feeds arbitrary log entries to an FSM holding some state. Whatever an entry
// holds, Apply answers instead of panicking, and the state stays one that a snapshot
// captures and restores exactly: no command can leave a record that breaks the next
// snapshot, and so every follower that must install one.
func FuzzApply(f *testing.F) {
	for _, cmd := range [][]byte{
		mustCmd(fsm.NewUpsert(resource.Users, user("u3", "carol", resource.RoleViewer), true, 0, t2)),
		mustCmd(fsm.NewUpsert(resource.Certificates, &resource.Certificate{Meta: resource.Meta{ID: "web"}, Name: "w"}, false, 5, t2)),
		mustCmd(fsm.NewUpsert(resource.NetworkComponents, &resource.NetworkComponent{Meta: resource.Meta{ID: "n1"}, Name: "n", Type: "TCP_SERVER",
			Configuration: &resource.NetworkConfig{Host: "0.0.0.0", Port: 1883, CertID: "web"}}, true, 0, t2)),
		mustCmd(fsm.NewDelete(resource.Certificates, "web", 0)),
		mustCmd(fsm.NewSetState(resource.NetworkComponents, "n1", resource.StateEnabled, t2)),
		mustCmd(fsm.NewBatchCreate(resource.Devices, []*resource.Device{{Meta: resource.Meta{ID: "d1"}, Name: "d", ProductID: "p"}}, t2)),
		mustCmd(fsm.Encode(fsm.InitType, fsm.InitRequest{TokenKey: []byte("k"), Admin: user("root", "root", resource.RoleAdmin), Now: t2})),
	} {
		f.Add(cmd)
	}
	f.Add([]byte{byte(fsm.UpsertType), '{', '}'})
	f.Add([]byte{byte(fsm.UpsertType), 'n', 'u', 'l', 'l'})
	f.Add([]byte{byte(fsm.UpsertType | fsm.IgnoreUnknownTypeFlag)})
	f.Add([]byte{200, '{'})
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		m := newFSM(t)
		populate(t, m)
		if stopped := applyOrStop(t, m, 9, data); stopped {
			return // by design (DESIGN.md, "Safety across versions")
		}
		if m.AppliedIndex() != 9 {
			t.Fatalf("applied index %d after the entry at 9", m.AppliedIndex())
		}
		want := dump(t, m)
		snap := snapshotBytes(t, m)
		if _, err := fsm.VerifySnapshot(bytes.NewReader(snap)); err != nil {
			t.Fatalf("the state after %q does not verify as a snapshot: %v", data, err)
		}
		back := newFSM(t)
		if err := restore(t, back, snap); err != nil {
			t.Fatalf("the state after %q does not restore: %v", data, err)
		}
		if got := dump(t, back); got != want {
			t.Fatalf("restored state differs after %q:\nwant %s\ngot  %s", data, want, got)
		}
	})
}

// FuzzSnapshotRecords feeds arbitrary snapshot contents, with a correct checksum so that
// the records themselves are read. Verifying never panics, and it agrees with restoring:
// the API verifies an uploaded snapshot before restoring it, so a snapshot that verifies
// and then fails to restore (or the reverse) would be a bug an operator meets mid-restore.
func FuzzSnapshotRecords(f *testing.F) {
	good := newFSM(f)
	populate(f, good)
	ls := lines(f, snapshotBytes(f, good))
	body := strings.Join(ls[:len(ls)-1], "\n")
	f.Add(body)
	f.Add(strings.Replace(body, `"username":"alice"`, `"username":"bob"`, 1))
	f.Add(strings.Replace(body, `"id":"web"`, `"id":""`, 1))
	f.Add(ls[0])
	f.Add(ls[0] + "\n" + `{"kind":"devices","object":{"id":"d","productId":"nope"}}`)
	f.Add(ls[0] + "\n" + `{"kind":"certificates","object":[]}`)
	f.Add(`{"format":1,"counts":{"users":1}}` + "\n" + `{"kind":"users","object":{"id":"x"}}`)

	f.Fuzz(func(t *testing.T, body string) {
		ls := append(strings.Split(body, "\n"), "")
		snap := compress(t, withChecksum(ls))
		_, verr := fsm.VerifySnapshot(bytes.NewReader(snap))
		m := newFSM(t)
		populate(t, m)
		before := dump(t, m)
		rerr := restore(t, m, snap)
		if (verr == nil) != (rerr == nil) {
			t.Fatalf("verify says %v but restore says %v for\n%s", verr, rerr, body)
		}
		if rerr != nil {
			if got := dump(t, m); got != before {
				t.Fatalf("a refused restore (%v) changed the state:\nwant %s\ngot  %s", rerr, before, got)
			}
			return
		}
		// A restored state snapshots and restores again to itself.
		want := dump(t, m)
		again := newFSM(t)
		if err := restore(t, again, snapshotBytes(t, m)); err != nil {
			t.Fatalf("the restored state does not restore again: %v", err)
		}
		if got := dump(t, again); got != want {
			t.Fatalf("second restore differs:\nwant %s\ngot  %s", want, got)
		}
	})
}

// applyOrStop applies data and reports whether the FSM stopped the node, as it must for a
// command of a type or resource kind it does not know (a newer version's). Any other panic
// fails the test. Any answer (a result or an error) is fine.
func applyOrStop(t *testing.T, m *fsm.FSM, index uint64, data []byte) (stopped bool) {
	defer func() {
		if v := recover(); v != nil {
			err, ok := v.(error)
			if !ok || !errors.Is(err, fsm.ErrUnknownCommand) {
				panic(v)
			}
			stopped = true
		}
	}()
	apply(t, m, index, data)
	return false
}

func mustCmd(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
