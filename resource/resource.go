package resource

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
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

// Redacted returns a shallow copy of obj whose secret fields (tagged `secret:"true"`) are
// cleared, so that no response, list, log line or error can carry them.
func Redacted[T Object](obj T) T {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return obj
	}
	cp := reflect.New(v.Elem().Type())
	cp.Elem().Set(v.Elem())
	clearSecrets(cp.Elem())
	return cp.Interface().(T)
}

func clearSecrets(v reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		if f.Tag.Get("secret") == "true" {
			fv.Set(reflect.Zero(f.Type))
			continue
		}
		if fv.Kind() == reflect.Struct {
			clearSecrets(fv)
		}
	}
}

// KeepSecrets copies every secret field that is empty in next from prev: a PUT that omits a
// secret keeps the stored one (SPEC §3).
func KeepSecrets[T Object](next, prev T) {
	keepSecrets(reflect.ValueOf(next).Elem(), reflect.ValueOf(prev).Elem())
}

func keepSecrets(next, prev reflect.Value) {
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
		if next.Field(i).Kind() == reflect.Struct {
			keepSecrets(next.Field(i), prev.Field(i))
		}
	}
}
