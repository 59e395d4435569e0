package logs

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
)

// Handler is a slog.Handler that passes every record on to the next handler (the console)
// and also keeps it in the store as a system log record. Storing never blocks: a full queue
// drops the record from the store (counted), never from the console.
type Handler struct {
	next  slog.Handler
	store *Store
	// attrs and groups are what With and WithGroup added, for the stored record's fields.
	attrs  []slog.Attr
	groups []string
}

// NewHandler tees next into store.
func NewHandler(next slog.Handler, store *Store) *Handler {
	return &Handler{next: next, store: store}
}

// Enabled follows the console handler's level: what is not printed is not stored either.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle prints the record and stores it.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.next.Handle(ctx, r)
	rec := &SystemRecord{Level: levelName(r.Level), Message: r.Message, CreateTime: r.Time.UTC(), Fields: map[string]any{}}
	for _, a := range h.attrs {
		h.addField(rec, "", a)
	}
	prefix := strings.Join(h.groups, ".")
	r.Attrs(func(a slog.Attr) bool {
		h.addField(rec, prefix, a)
		return true
	})
	if len(rec.Fields) == 0 {
		rec.Fields = nil
	}
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		if f.File != "" {
			rec.Caller = shortFile(f.File) + ":" + strconv.Itoa(f.Line)
		}
	}
	h.store.AppendSystem(rec)
	return err
}

// addField files an attribute: "component" names the logger, "error" becomes the exception
// text, "node" is the record's server id already; everything else is a field.
func (h *Handler) addField(rec *SystemRecord, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	key := a.Key
	if prefix != "" {
		key = prefix + "." + key
	}
	switch {
	case a.Key == "node" && prefix == "":
		return
	case a.Key == "component":
		rec.Name = a.Value.String()
		return
	case a.Key == "error" || a.Key == "err":
		rec.ExceptionStack = a.Value.String()
		return
	case a.Value.Kind() == slog.KindGroup:
		for _, g := range a.Value.Group() {
			h.addField(rec, key, g)
		}
		return
	}
	rec.Fields[key] = fieldValue(a.Value)
}

func fieldValue(v slog.Value) any {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindInt64:
		return v.Int64()
	case slog.KindUint64:
		return v.Uint64()
	case slog.KindFloat64:
		return v.Float64()
	case slog.KindBool:
		return v.Bool()
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindTime:
		return v.Time().UTC()
	}
	return fmt.Sprint(v.Any())
}

// WithAttrs returns a handler whose records carry attrs.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	cp := *h
	cp.next = h.next.WithAttrs(attrs)
	cp.attrs = append([]slog.Attr(nil), h.attrs...)
	prefix := strings.Join(h.groups, ".")
	for _, a := range attrs {
		if prefix != "" {
			a.Key = prefix + "." + a.Key
		}
		cp.attrs = append(cp.attrs, a)
	}
	return &cp
}

// WithGroup returns a handler that nests later attributes under name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	cp := *h
	cp.next = h.next.WithGroup(name)
	cp.groups = append(append([]string(nil), h.groups...), name)
	return &cp
}

func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARN"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

// shortFile keeps the last two path elements: "api/server.go".
func shortFile(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		if j := strings.LastIndexByte(path[:i], '/'); j >= 0 {
			return path[j+1:]
		}
	}
	return path
}
