package resource

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Limits from the seed manual: every name holds at most 64 characters and every
// description at most 200.
const (
	MaxNameLen        = 64
	MaxDescriptionLen = 200
)

// idPattern is the shape of a client-supplied id (SPEC §3).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Meta is carried by every resource. The FSM owns it: whatever a client sends in these
// fields is replaced when the resource is stored.
type Meta struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Index is the raft index of the resource's last change; the API serves it as the ETag.
	Index uint64 `json:"index"`
}

// Base gives the FSM and the API generic access to the metadata of any resource.
func (m *Meta) Base() *Meta { return m }

// Object is any stored resource.
type Object interface {
	Base() *Meta
}

// Named resources can be searched with ?q= and sorted by name.
type Named interface {
	Object
	DisplayName() string
}

// Kind describes one resource collection: its table name (also its URL segment) and how
// to make an empty value to decode into.
type Kind struct {
	// Name is the collection's name, e.g. "certificates"; the FSM uses it as table name.
	Name string
	// New returns a pointer to a zero value of the resource's type.
	New func() Object
	// Filters maps a list query parameter to the field value it must equal
	// (SPEC §3: equality filters named per resource).
	Filters map[string]func(Object) string
	// Unique lists extra fields whose values must be unique across the collection
	// (the FSM enforces them), keyed by the index name.
	Unique map[string]func(Object) string
	// Refs lists non-unique indexes, keyed by index name, over the ids a resource refers
	// to (a gateway's channelId, a device's productId). The FSM uses them to answer "is
	// this still referenced?" without scanning a table.
	Refs map[string]func(Object) []string
	// Counts lists fields whose values the FSM counts (devices per product): for a big
	// collection a count answers "is this still referenced?" for a fraction of the memory of
	// a ref index.
	Counts map[string]func(Object) string
	// Stateful kinds carry "state": "enabled" | "disabled" and get enable/disable routes.
	Stateful bool
	// Builtins are resources that always exist and cannot be changed or deleted (the
	// official protocol). They are part of the product, not of the replicated state.
	Builtins []Object
}

// Builtin returns the built-in resource with id, if there is one.
func (k *Kind) Builtin(id string) (Object, bool) {
	for _, b := range k.Builtins {
		if b.Base().ID == id {
			return b, true
		}
	}
	return nil, false
}

var kinds = map[string]*Kind{}

// Register adds a kind to the registry; it is called from init functions of this package.
func Register(k *Kind) *Kind {
	if _, dup := kinds[k.Name]; dup {
		panic("resource: kind registered twice: " + k.Name)
	}
	kinds[k.Name] = k
	return k
}

// Kinds returns every registered kind, sorted by name so iteration is deterministic
// (snapshots must be byte-identical on every replica).
func Kinds() []*Kind {
	out := make([]*Kind, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// KindByName finds a registered kind.
func KindByName(name string) (*Kind, bool) {
	k, ok := kinds[name]
	return k, ok
}

// FieldError names one invalid field by its dotted path from the body's root.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Errors collects the field errors of one request.
type Errors []FieldError

// Add records a problem with a field.
func (e *Errors) Add(field, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	*e = append(*e, FieldError{Field: field, Message: msg})
}

// ValidateID checks a client-supplied id; an empty id means "make one".
func ValidateID(errs *Errors, id string) {
	if id != "" && !idPattern.MatchString(id) {
		errs.Add("id", "must match ^[A-Za-z0-9_-]{1,64}$")
	}
}

// validateServerID checks the node id of a per-node entry at path (e.g. "cluster[0]");
// seen maps the ids met so far to their position, to refuse a node configured twice.
func validateServerID(errs *Errors, path, id string, i int, seen map[string]int) {
	switch {
	case id == "":
		errs.Add(path+".serverId", "is required: the id of the node this entry configures")
	case !idPattern.MatchString(id):
		errs.Add(path+".serverId", "must be a node id (^[A-Za-z0-9_-]{1,64}$)")
	default:
		if j, dup := seen[id]; dup {
			errs.Add(path+".serverId", "node %q is already configured by entry %d", id, j)
		}
		seen[id] = i
	}
}

// ValidateName checks a required display name against the manual's 64-character limit.
func ValidateName(errs *Errors, field, name string) {
	n := utf8.RuneCountInString(name)
	switch {
	case strings.TrimSpace(name) == "":
		errs.Add(field, "is required")
	case n > MaxNameLen:
		errs.Add(field, "must be at most %d characters (got %d)", MaxNameLen, n)
	}
}

// ValidateDescription checks an optional description against the 200-character limit.
func ValidateDescription(errs *Errors, field, d string) {
	if n := utf8.RuneCountInString(d); n > MaxDescriptionLen {
		errs.Add(field, "must be at most %d characters (got %d)", MaxDescriptionLen, n)
	}
}

// States of a stateful resource (SPEC §3).
const (
	StateEnabled  = "enabled"
	StateDisabled = "disabled"
)

// Switch is embedded by resources that can be enabled and disabled. A new resource starts
// disabled unless its create request says "enabled"; afterwards only the enable and disable
// commands change it.
type Switch struct {
	State string `json:"state"`
}

// Switchable is implemented by every resource that embeds Switch.
type Switchable interface {
	Object
	SwitchRef() *Switch
}

// Switch gives generic access to the state.
func (s *Switch) SwitchRef() *Switch { return s }

// Enabled reports whether the resource is enabled.
func (s *Switch) Enabled() bool { return s.State == StateEnabled }

// ValidateState checks a state in a create request; empty means disabled.
func ValidateState(errs *Errors, s *Switch) {
	switch s.State {
	case "":
		s.State = StateDisabled
	case StateEnabled, StateDisabled:
	default:
		errs.Add("state", "must be enabled or disabled")
	}
}

// Copy returns a shallow copy of obj: enough to change top-level fields of a stored
// resource, whose nested values are never modified in place.
func Copy[T Object](obj T) T {
	v := reflect.ValueOf(obj)
	cp := reflect.New(v.Elem().Type())
	cp.Elem().Set(v.Elem())
	return cp.Interface().(T)
}

// Redacted returns a copy of obj whose secret fields (tagged `secret:"true"`, at any depth
// of structs, pointers and slices) are cleared, so that no response, list, log line or error
// can carry them. Objects without secrets are returned as they are; the stored object is
// never modified.
func Redacted[T Object](obj T) T {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() || !hasSecrets(v.Elem().Type()) {
		return obj
	}
	cp := Copy(obj)
	clearSecrets(reflect.ValueOf(cp).Elem())
	return cp
}

var secretTypes sync.Map // reflect.Type -> bool

// hasSecrets reports whether t holds a secret field anywhere inside it.
func hasSecrets(t reflect.Type) bool {
	if v, ok := secretTypes.Load(t); ok {
		return v.(bool)
	}
	secretTypes.Store(t, false) // breaks recursion through self-referencing types
	found := false
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		found = hasSecrets(t.Elem())
	case reflect.Struct:
		for i := 0; i < t.NumField() && !found; i++ {
			f := t.Field(i)
			found = f.IsExported() && (f.Tag.Get("secret") == "true" || hasSecrets(f.Type))
		}
	}
	secretTypes.Store(t, found)
	return found
}

// clearSecrets clears the secrets of v, a settable copy. Pointers and slices that lead to
// secrets are copied first, because they are shared with the stored object.
func clearSecrets(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || !hasSecrets(v.Type()) {
			return
		}
		cp := reflect.New(v.Elem().Type())
		cp.Elem().Set(v.Elem())
		clearSecrets(cp.Elem())
		v.Set(cp)
	case reflect.Slice:
		if v.IsNil() || !hasSecrets(v.Type()) {
			return
		}
		cp := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(cp, v)
		for i := 0; i < cp.Len(); i++ {
			clearSecrets(cp.Index(i))
		}
		v.Set(cp)
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Tag.Get("secret") == "true" {
				v.Field(i).Set(reflect.Zero(f.Type))
				continue
			}
			clearSecrets(v.Field(i))
		}
	}
}

// Keyed slice elements are matched by key, not position, when secrets are kept: a per-node
// entry keeps its own password even if the list was reordered.
type Keyed interface {
	ElementKey() string
}

// KeepSecrets copies every secret field that is empty in next from prev: a PUT that omits a
// secret keeps the stored one (SPEC §3). Secrets inside slices are matched by ElementKey when
// the element type implements Keyed, else by position.
func KeepSecrets[T Object](next, prev T) {
	keepSecrets(reflect.ValueOf(next).Elem(), reflect.ValueOf(prev).Elem())
}

func keepSecrets(next, prev reflect.Value) {
	if !hasSecrets(next.Type()) {
		return
	}
	switch next.Kind() {
	case reflect.Pointer:
		if next.IsNil() || prev.IsNil() {
			return
		}
		keepSecrets(next.Elem(), prev.Elem())
	case reflect.Slice:
		for i := 0; i < next.Len(); i++ {
			if j := matchElement(next, prev, i); j >= 0 {
				keepSecrets(next.Index(i), prev.Index(j))
			}
		}
	case reflect.Struct:
		t := next.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Tag.Get("secret") == "true" {
				if next.Field(i).IsZero() {
					next.Field(i).Set(prev.Field(i))
				}
				continue
			}
			keepSecrets(next.Field(i), prev.Field(i))
		}
	}
}

// matchElement finds the element of prev that next[i] replaces, or -1.
func matchElement(next, prev reflect.Value, i int) int {
	k, ok := next.Index(i).Addr().Interface().(Keyed)
	if !ok {
		if i < prev.Len() {
			return i
		}
		return -1
	}
	for j := 0; j < prev.Len(); j++ {
		if prev.Index(j).Addr().Interface().(Keyed).ElementKey() == k.ElementKey() {
			return j
		}
	}
	return -1
}
