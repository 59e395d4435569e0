package fsm_test

import (
	"testing"

	"github.com/linkops/linkops/resource"
)

// TestViewIsOneStateAndWatchesWhatItRead: a view keeps reading the state it was opened on
// while the FSM writes, and its one watch set wakes on a change to any table it read,
// including one resource it looked up that did not exist yet.
func TestViewIsOneStateAndWatchesWhatItRead(t *testing.T) {
	f := newFSM(t)
	product := func(id string) *resource.Product {
		return &resource.Product{Meta: resource.Meta{ID: id}, Name: id, SecureID: "s", SecureKey: "keykeykey"}
	}
	mustOK(t, upsert(t, f, 1, resource.Products, product("p1"), true, 0, t0))

	v := f.Store().View()
	if got := len(v.List(resource.Products)); got != 1 {
		t.Fatalf("view lists %d products, want 1", got)
	}
	if _, err := v.Get(resource.Certificates, "later"); err == nil {
		t.Fatal("a missing certificate was found")
	}
	if fired(v.WatchSet()) {
		t.Fatal("the watch fired before anything changed")
	}
	mustOK(t, upsert(t, f, 2, resource.Products, product("p2"), true, 0, t0))
	if got := len(v.List(resource.Products)); got != 1 {
		t.Fatalf("an open view sees %d products after a write, want the 1 it was opened on", got)
	}
	waitClosed(t, v.WatchSet(), "the view's watch after a product was added")

	// A watch on one missing resource wakes when it appears, not on unrelated writes.
	v = f.Store().View()
	if _, err := v.Get(resource.Products, "p3"); err == nil {
		t.Fatal("p3 exists before it was created")
	}
	mustOK(t, upsert(t, f, 3, resource.Users, &resource.User{Meta: resource.Meta{ID: "u"}, Username: "u", PasswordHash: "x", Role: resource.RoleViewer}, true, 0, t0))
	if fired(v.WatchSet()) {
		t.Fatal("a watch on product p3 fired for a user write")
	}
	mustOK(t, upsert(t, f, 4, resource.Products, product("p3"), true, 0, t0))
	waitClosed(t, v.WatchSet(), "the watch on p3 after it was created")
}
