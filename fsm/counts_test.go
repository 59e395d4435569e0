package fsm_test

import (
	"fmt"
	"testing"
	"time"

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

// TestLargeBatchIsAllOrNone: a batch larger than one transaction's chunk is refused as a
// whole when its last entry is refused — the chunks written before are dropped — and is
// visible as a whole when it succeeds.
func TestLargeBatchIsAllOrNone(t *testing.T) {
	f := newFSM(t)
	mustOK(t, upsert(t, f, 1, resource.Products, &resource.Product{Meta: resource.Meta{ID: "p"}, Name: "p", SecureID: "s", SecureKey: "keykeykey"}, true, 0, t0))
	batch := func(n int, lastProduct string) []*resource.Device {
		out := make([]*resource.Device, n)
		for i := range out {
			out[i] = &resource.Device{Meta: resource.Meta{ID: fmt.Sprintf("d%05d", i)}, Name: "d", ProductID: "p"}
		}
		out[n-1].ProductID = lastProduct
		return out
	}
	cmd, err := fsm.NewBatchCreate(resource.Devices, batch(5001, "nope"), t0)
	if err != nil {
		t.Fatal(err)
	}
	res := apply(t, f, 2, cmd)
	if re, ok := fsm.IsRuleError(asErr(res)); !ok || re.Field != "[5000].productId" {
		t.Fatalf("batch with a bad last entry: %v, want a refusal naming [5000].productId", res)
	}
	if n := f.Store().Count(resource.Devices); n != 0 {
		t.Fatalf("%d devices stored after a refused batch", n)
	}
	if n := f.Store().CountOf(resource.Devices, "productId", "p"); n != 0 {
		t.Fatalf("count %d after a refused batch", n)
	}
	// Watches still fire after a refused batch.
	_, ws := f.Store().List(resource.Devices)
	mustOK(t, upsert(t, f, 3, resource.Devices, &resource.Device{Meta: resource.Meta{ID: "single"}, Name: "s", ProductID: "p"}, true, 0, t0))
	if timedOut := ws.Watch(time.After(5 * time.Second)); timedOut {
		t.Fatal("a device list watch did not fire after a refused batch and a create")
	}
	del(t, f, 4, resource.Devices, "single", 0)
	cmd, _ = fsm.NewBatchCreate(resource.Devices, batch(5001, "p"), t0)
	_, ws = f.Store().List(resource.Devices)
	if objs, ok := apply(t, f, 5, cmd).([]resource.Object); !ok || len(objs) != 5001 {
		t.Fatalf("good batch: %v", objs)
	}
	if n := f.Store().Count(resource.Devices); n != 5001 {
		t.Fatalf("%d devices stored, want 5001", n)
	}
	if n := f.Store().CountOf(resource.Devices, "productId", "p"); n != 5001 {
		t.Fatalf("count %d, want 5001", n)
	}
	if timedOut := ws.Watch(time.After(5 * time.Second)); timedOut {
		t.Fatal("a device list watch did not fire for a large batch")
	}
}
