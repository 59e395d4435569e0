package fsm

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/linkops/linkops/resource"
)

// The rules of the manual's 远程升级 chapter and SPEC §4.7–4.8.
func init() {
	AddRule(resource.Firmwares, firmwareRules)
	AddRule(resource.UpgradeTasks, taskRules)
	AddRule(resource.Products, productHasNoFirmware)
}

func firmwareRules(txn *memdb.Txn, old, next resource.Object) error {
	if next == nil {
		// 固件下存在升级任务数据时，不可删除。
		if tasks := referrers(txn, resource.UpgradeTasks, "firmwareId", old.Base().ID); len(tasks) > 0 {
			return Refuse("firmware_has_tasks", "firmware %q is used by upgrade task(s) %s; delete them first", old.Base().ID, ids(tasks))
		}
		return nil
	}
	f := next.(*resource.Firmware)
	if old != nil {
		o := old.(*resource.Firmware)
		// The file and what it was checked against are the upload's, never an edit's.
		f.Size, f.MD5, f.SHA256, f.BlobKey, f.Sign, f.SignMethod = o.Size, o.MD5, o.SHA256, o.BlobKey, o.Sign, o.SignMethod
		if o.ProductID != f.ProductID {
			if tasks := referrers(txn, resource.UpgradeTasks, "firmwareId", f.ID); len(tasks) > 0 {
				return Refuse("firmware_has_tasks", "firmware %q is used by upgrade task(s) %s, so its product cannot change", f.ID, ids(tasks))
			}
		}
	}
	if lookup(txn, resource.Products, f.ProductID) == nil {
		return Invalid("productId", "there is no product %q", f.ProductID)
	}
	for _, other := range referrers(txn, resource.Firmwares, "productId", f.ProductID) {
		if o := other.(*resource.Firmware); o.ID != f.ID && o.VersionOrder == f.VersionOrder {
			return &RuleError{Code: "version_order_exists", Status: 409, Field: "versionOrder",
				Message: fmt.Sprintf("firmware %q of product %q already has versionOrder %d; each firmware of a product needs its own order", o.ID, f.ProductID, f.VersionOrder)}
		}
	}
	return nil
}

func taskRules(_ *memdb.Txn, old, next resource.Object) error {
	switch {
	case next == nil:
		if old.(*resource.UpgradeTask).State == resource.TaskRunning {
			return Refuse("task_running", "upgrade task %q is running; stop it before deleting it", old.Base().ID)
		}
	case old == nil:
		// A task is created with its records by an OTA command, never by a plain upsert.
		return fmt.Errorf("upgrade task %q: create tasks with an OTA create command", next.Base().ID)
	default:
		next.(*resource.UpgradeTask).KeepProgress(old.(*resource.UpgradeTask))
	}
	return nil
}

func productHasNoFirmware(txn *memdb.Txn, old, next resource.Object) error {
	if next != nil {
		return nil
	}
	if fws := referrers(txn, resource.Firmwares, "productId", old.Base().ID); len(fws) > 0 {
		return Refuse("product_has_firmware", "product %q has firmware %s; delete it first", old.Base().ID, ids(fws))
	}
	return nil
}
