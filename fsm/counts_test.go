package fsm_test

import (
	"testing"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

// TestDeviceCountsSurviveASnapshot: devices per product are counted, not indexed; the
// counts are derived data, rebuilt when a snapshot is restored, so the product_has_devices
// rule holds on a restored node too.
func TestDeviceCountsSurviveASnapshot(t *testing.T) {
	f := newFSM(t)
	mustOK(t, upsert(t, f, 1, resource.Products, &resource.Product{Meta: resource.Meta{ID: "p"}, Name: "p", SecureID: "s", SecureKey: "keykeykey"}, true, 0, t0))
	for i, id := range []string{"d1", "d2"} {
		mustOK(t, upsert(t, f, uint64(2+i), resource.Devices, &resource.Device{Meta: resource.Meta{ID: id}, Name: id, ProductID: "p"}, true, 0, t0))
	}
	if n := f.Store().CountOf(resource.Devices, "productId", "p"); n != 2 {
		t.Fatalf("count = %d, want 2", n)
	}
	restored := newFSM(t)
	if err := restore(t, restored, snapshotBytes(t, f)); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*fsm.FSM{f, restored} {
		if re, ok := fsm.IsRuleError(asErr(del(t, g, 10, resource.Products, "p", 0))); !ok || re.Code != "product_has_devices" {
			t.Fatalf("delete of a product with devices: %v, want product_has_devices", re)
		}
		del(t, g, 11, resource.Devices, "d1", 0)
		del(t, g, 12, resource.Devices, "d2", 0)
		if n := g.Store().CountOf(resource.Devices, "productId", "p"); n != 0 {
			t.Fatalf("count after deleting both = %d", n)
		}
		if res := del(t, g, 13, resource.Products, "p", 0); res != nil {
			t.Fatalf("delete of an empty product: %v", res)
		}
	}
}

func asErr(v any) error {
	err, _ := v.(error)
	return err
}
