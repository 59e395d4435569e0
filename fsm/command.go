package fsm

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/linkops/linkops/resource"
)

// MessageType is the first byte of every raft log entry. Values are appended, never
// renumbered: a log written by one version is replayed by every later one.
type MessageType uint8

const (
	// UpsertType creates or replaces one resource (UpsertRequest).
	UpsertType MessageType = 1
	// DeleteType removes one resource (DeleteRequest).
	DeleteType MessageType = 2
	// InitType stores the cluster's first admin user and token key (InitRequest).
	InitType MessageType = 3
	// SetStateType enables or disables one resource (SetStateRequest).
	SetStateType MessageType = 4
	// BatchCreateType creates many resources of one kind, all or none (BatchCreateRequest).
	BatchCreateType MessageType = 5
)

// IgnoreUnknownTypeFlag marks a command that an older node may skip if it does not know
// the type. Without it an unknown type stops the node, because skipping a command that
// changes state would make replicas diverge.
const IgnoreUnknownTypeFlag MessageType = 128

// UpsertRequest creates or replaces a resource of Kind.
type UpsertRequest struct {
	Kind   string          `json:"kind"`
	Object json.RawMessage `json:"object"`
	// Create refuses the write if the id exists (ErrExists); otherwise the resource must
	// already exist (ErrNotFound).
	Create bool `json:"create"`
	// ExpectIndex, if set, must equal the stored resource's index (If-Match).
	ExpectIndex uint64 `json:"expectIndex,omitempty"`
	// Now is the proposer's clock: every replica must store the same timestamps, so the
	// FSM never reads its own clock.
	Now time.Time `json:"now"`
}

// DeleteRequest removes a resource of Kind.
type DeleteRequest struct {
	Kind        string `json:"kind"`
	ID          string `json:"id"`
	ExpectIndex uint64 `json:"expectIndex,omitempty"`
	// Now stamps what the delete changes beside the resource (a deleted device's open OTA
	// records end canceled at Now).
	Now time.Time `json:"now,omitzero"`
}

// SetStateRequest enables or disables a stateful resource. It is idempotent: setting the
// state a resource already has changes nothing.
type SetStateRequest struct {
	Kind  string    `json:"kind"`
	ID    string    `json:"id"`
	State string    `json:"state"`
	Now   time.Time `json:"now"`
}

// BatchCreateRequest creates every object or, if any one is refused, none.
type BatchCreateRequest struct {
	Kind    string            `json:"kind"`
	Objects []json.RawMessage `json:"objects"`
	Now     time.Time         `json:"now"`
}

// InitRequest is applied once, by the first leader of a new cluster.
type InitRequest struct {
	// TokenKey signs API tokens; every node verifies with it, so a token from any node
	// is valid on every node.
	TokenKey []byte         `json:"tokenKey"`
	Admin    *resource.User `json:"admin"`
	Now      time.Time      `json:"now"`
}

// Encode turns a command into a raft log entry: the type byte followed by its JSON body.
func Encode(t MessageType, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode command %d: %w", t, err)
	}
	out := make([]byte, 0, len(b)+1)
	out = append(out, byte(t))
	return append(out, b...), nil
}

// NewUpsert builds an encoded UpsertRequest for obj. The body is assembled around the
// object's JSON rather than marshalled as a struct, which would scan the object once more to
// compact it as a json.RawMessage: every write pays for that on the busiest path.
func NewUpsert(kind *resource.Kind, obj resource.Object, create bool, expectIndex uint64, now time.Time) ([]byte, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", kind.Name, err)
	}
	name, _ := json.Marshal(kind.Name)
	at, err := now.UTC().MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode time: %w", err)
	}
	out := make([]byte, 0, len(raw)+len(name)+len(at)+80)
	out = append(out, byte(UpsertType))
	out = append(out, `{"kind":`...)
	out = append(out, name...)
	out = append(out, `,"object":`...)
	out = append(out, raw...)
	out = append(out, `,"create":`...)
	out = strconv.AppendBool(out, create)
	if expectIndex != 0 {
		out = append(out, `,"expectIndex":`...)
		out = strconv.AppendUint(out, expectIndex, 10)
	}
	out = append(out, `,"now":`...)
	out = append(out, at...)
	return append(out, '}'), nil
}

// NewDelete builds an encoded DeleteRequest.
func NewDelete(kind *resource.Kind, id string, expectIndex uint64) ([]byte, error) {
	req := DeleteRequest{Kind: kind.Name, ID: id, ExpectIndex: expectIndex}
	if kind == resource.Devices {
		req.Now = time.Now().UTC() // its open OTA records end at this time
	}
	return Encode(DeleteType, req)
}

// NewSetState builds an encoded SetStateRequest.
func NewSetState(kind *resource.Kind, id, state string, now time.Time) ([]byte, error) {
	return Encode(SetStateType, SetStateRequest{Kind: kind.Name, ID: id, State: state, Now: now.UTC()})
}

// NewBatchCreate builds an encoded BatchCreateRequest.
func NewBatchCreate[T resource.Object](kind *resource.Kind, objs []T, now time.Time) ([]byte, error) {
	raws := make([]json.RawMessage, len(objs))
	for i, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", kind.Name, err)
		}
		raws[i] = b
	}
	return Encode(BatchCreateType, BatchCreateRequest{Kind: kind.Name, Objects: raws, Now: now.UTC()})
}
