package fsm

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/linkops/linkops/resource"
)

// PresenceType records device sessions going online and offline (PresenceRequest). It is
// written with IgnoreUnknownTypeFlag: presence is what the cluster knows about live
// connections, not configuration, so a node older than the cluster may skip it rather than
// stop.
const PresenceType MessageType = 6

const presenceTable = "presence"

// Presence is which node holds a device's session, as the cluster agrees on it (SPEC
// §5.1). It is not part of the device record: a connect or a disconnect never changes the
// device's index, ETag or updatedAt, nor wakes the watchers of the devices table.
type Presence struct {
	DeviceID string `json:"deviceId"`
	ServerID string `json:"serverId"`
	// Session identifies one connection; the node that holds it chose it.
	Session string `json:"session"`
	Online  bool   `json:"online"`
	// ConnectedAt is when the holding node accepted the session, on that node's clock. It
	// orders sessions of one device: raft orders commands by when they reach the leader,
	// and two nodes' batches can reach it in either order.
	ConnectedAt time.Time  `json:"connectedAt"`
	OnlineAt    time.Time  `json:"onlineAt"`
	OfflineAt   *time.Time `json:"offlineAt,omitempty"`
	// Index is the raft index of the last change: nodes follow changes in index order.
	Index uint64 `json:"index"`
}

// PresenceChange is one transition a node observed.
type PresenceChange struct {
	DeviceID string `json:"deviceId"`
	ServerID string `json:"serverId"`
	Session  string `json:"session"`
	Online   bool   `json:"online"`
	// At is ConnectedAt for an online change and the time of the disconnect for an
	// offline one, on the observing node's clock.
	At time.Time `json:"at"`
	// ConnectedAt, on an offline change, is when the session connected: a session that
	// came and went within one batch (its online coalesced away) is still recorded, as
	// offline, when it is the device's latest.
	ConnectedAt time.Time `json:"connectedAt,omitzero"`
}

// PresenceRequest is one batch of transitions, applied in order.
type PresenceRequest struct {
	Changes []PresenceChange `json:"changes"`
}

// NewPresence builds an encoded PresenceRequest.
func NewPresence(changes []PresenceChange) ([]byte, error) {
	return Encode(PresenceType|IgnoreUnknownTypeFlag, PresenceRequest{Changes: changes})
}

// PresenceResult says how many changes of a batch took effect.
type PresenceResult struct {
	Applied int
	Skipped int
}

// applyPresence applies each change under the two rules that make presence converge
// whatever order batches arrive in (SPEC §5.1):
//   - online replaces the record unless it holds a session that connected later (a late
//     online from a node the device has since left changes nothing);
//   - offline applies only to the session it names, so a late offline from the old node of
//     a taken-over session never overrides the newer one — or to a session that connected
//     after the recorded one, whose online was coalesced away in the same batch.
//
// An online for a device that no longer exists is dropped; deleting a device deletes its
// presence.
func (f *FSM) applyPresence(index uint64, req *PresenceRequest) any {
	db := f.store.writeDB()
	txn := db.Txn(true)
	defer txn.Abort()
	var res PresenceResult
	for _, c := range req.Changes {
		ok, err := applyPresenceChange(txn, index, c)
		if err != nil {
			return err
		}
		if ok {
			res.Applied++
		} else {
			res.Skipped++
		}
	}
	if res.Applied > 0 {
		txn.Commit()
	}
	return res
}

func applyPresenceChange(txn *memdb.Txn, index uint64, c PresenceChange) (bool, error) {
	if c.DeviceID == "" || c.ServerID == "" || c.Session == "" {
		return false, nil
	}
	var cur *Presence
	if raw, err := txn.First(presenceTable, "id", c.DeviceID); err != nil {
		return false, err
	} else if raw != nil {
		cur = raw.(*Presence)
	}
	var next Presence
	if c.Online {
		if cur != nil && cur.Session == c.Session && cur.Online {
			return false, nil
		}
		if cur != nil && cur.Session != c.Session && cur.ConnectedAt.After(c.At) {
			return false, nil
		}
		if raw, err := txn.First(resource.Devices.Name, "id", c.DeviceID); err != nil || raw == nil {
			return false, err
		}
		next = Presence{DeviceID: c.DeviceID, ServerID: c.ServerID, Session: c.Session, Online: true, ConnectedAt: c.At, OnlineAt: c.At}
		if cur != nil {
			next.OfflineAt = cur.OfflineAt
			if cur.Session == c.Session {
				next.OnlineAt = cur.OnlineAt
			}
		}
	} else {
		at := c.At
		switch {
		case cur != nil && cur.Session == c.Session:
			if !cur.Online {
				return false, nil
			}
			next = *cur
			next.Online, next.OfflineAt = false, &at
		case !c.ConnectedAt.IsZero() && (cur == nil || c.ConnectedAt.After(cur.ConnectedAt)):
			// A session newer than the record that is already gone: the device was online
			// for a moment, and is offline now.
			if raw, err := txn.First(resource.Devices.Name, "id", c.DeviceID); err != nil || raw == nil {
				return false, err
			}
			next = Presence{DeviceID: c.DeviceID, ServerID: c.ServerID, Session: c.Session, ConnectedAt: c.ConnectedAt,
				OnlineAt: c.ConnectedAt, OfflineAt: &at}
		default:
			return false, nil
		}
	}
	next.Index = index
	if err := txn.Insert(presenceTable, &next); err != nil {
		return false, fmt.Errorf("presence of %s: %w", c.DeviceID, err)
	}
	return true, nil
}

// deletePresence removes a deleted device's presence.
func deletePresence(txn *memdb.Txn, deviceID string) error {
	_, err := txn.DeleteAll(presenceTable, "id", deviceID)
	return err
}

func presenceSchema() *memdb.TableSchema {
	return &memdb.TableSchema{Name: presenceTable, Indexes: map[string]*memdb.IndexSchema{
		"id":     {Name: "id", Unique: true, Indexer: &presenceIndex{key: func(p *Presence) []byte { return []byte(p.DeviceID) }}},
		"server": {Name: "server", Indexer: &presenceIndex{key: func(p *Presence) []byte { return []byte(p.ServerID) }}},
		"index":  {Name: "index", Indexer: &presenceIndex{key: func(p *Presence) []byte { return binary.BigEndian.AppendUint64(nil, p.Index) }}},
	}}
}

// presenceIndex indexes presence records without reflection (15,000 connects a second
// are 15,000 inserts a second).
type presenceIndex struct{ key func(*Presence) []byte }

func (x *presenceIndex) FromObject(raw any) (bool, []byte, error) {
	k := x.key(raw.(*Presence))
	return true, append(k, 0), nil
}

func (x *presenceIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("presence index takes one argument")
	}
	switch v := args[0].(type) {
	case string:
		return append([]byte(v), 0), nil
	case uint64:
		return append(binary.BigEndian.AppendUint64(nil, v), 0), nil
	}
	return nil, fmt.Errorf("presence index: argument of type %T", args[0])
}

// PrefixFromArgs lets LowerBound start at an index value.
func (x *presenceIndex) PrefixFromArgs(args ...any) ([]byte, error) {
	b, err := x.FromArgs(args...)
	if err != nil {
		return nil, err
	}
	return b[:len(b)-1], nil
}

// Presence returns a device's presence (nil: it never connected).
func (s *Store) Presence(deviceID string) *Presence {
	db, _ := s.current()
	raw, err := db.Txn(false).First(presenceTable, "id", deviceID)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*Presence)
}

// PresenceOf returns the presence of each device that has one.
func (s *Store) PresenceOf(deviceIDs []string) map[string]*Presence {
	db, _ := s.current()
	txn := db.Txn(false)
	out := make(map[string]*Presence, len(deviceIDs))
	for _, id := range deviceIDs {
		if raw, err := txn.First(presenceTable, "id", id); err == nil && raw != nil {
			out[id] = raw.(*Presence)
		}
	}
	return out
}

// AllPresence returns every presence record by device id, from one consistent read.
func (s *Store) AllPresence() map[string]*Presence {
	db, _ := s.current()
	it, err := db.Txn(false).Get(presenceTable, "id")
	out := map[string]*Presence{}
	if err != nil {
		return out
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		p := raw.(*Presence)
		out[p.DeviceID] = p
	}
	return out
}

// PresenceOnServer lists the records that name serverID (online or not).
func (s *Store) PresenceOnServer(serverID string) []*Presence {
	db, _ := s.current()
	it, err := db.Txn(false).Get(presenceTable, "server", serverID)
	if err != nil {
		return nil
	}
	var out []*Presence
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Presence))
	}
	return out
}

// PresenceSince returns the records changed at a raft index after `after`, in index
// order, and a watch set that fires when the table changes again or the whole state is
// replaced. Nodes follow presence this way: takeover, reaping and their own restarts.
func (s *Store) PresenceSince(after uint64) ([]*Presence, memdb.WatchSet) {
	db, abandon := s.current()
	ws := memdb.NewWatchSet()
	ws.Add(abandon)
	txn := db.Txn(false)
	// A LowerBound iterator cannot be watched (memdb); a prefix read of the whole table
	// can, and fires on any change to it: enough to look again.
	all, err := txn.Get(presenceTable, "id_prefix", "")
	if err != nil {
		return nil, ws
	}
	ws.Add(all.WatchCh())
	it, err := txn.LowerBound(presenceTable, "index", after+1)
	if err != nil {
		return nil, ws
	}
	var out []*Presence
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Presence))
	}
	return out, ws
}
