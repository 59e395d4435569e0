package fsm

import (
	"github.com/hashicorp/go-memdb"

	"github.com/linkops/linkops/resource"
)

func init() {
	AddRule(resource.Users, keepOneAdmin)
}

// keepOneAdmin refuses to delete or demote the last admin: nobody could manage the
// cluster afterwards.
func keepOneAdmin(txn *memdb.Txn, old, next resource.Object) error {
	if old == nil || old.(*resource.User).Role != resource.RoleAdmin {
		return nil
	}
	if next != nil && next.(*resource.User).Role == resource.RoleAdmin {
		return nil
	}
	it, err := txn.Get(resource.Users.Name, "id")
	if err != nil {
		return err
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if u := raw.(*resource.User); u.Role == resource.RoleAdmin && u.ID != old.Base().ID {
			return nil
		}
	}
	return Refuse("last_admin", "user %q is the last admin; give another user the admin role first", old.(*resource.User).Username)
}
