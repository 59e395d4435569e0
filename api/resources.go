package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

// MaxPageSize bounds a list page (SPEC §3).
const MaxPageSize = 500

// List is the envelope of every list response.
type List[T any] struct {
	Items    []T `json:"items"`
	Total    int `json:"total"`
	Page     int `json:"page"`
	PageSize int `json:"pageSize"`
}

// collection wires the standard CRUD routes of one resource kind. prepare validates a
// decoded body and completes it (derived fields, hashed secrets); old is nil on create.
type collection[T resource.Named] struct {
	kind    *resource.Kind
	path    string // e.g. /api/v1/certificates
	tag     string
	access  Access // least access for reads; writes always need admin
	prepare func(c echo.Context, obj, old T) resource.Errors
	// decode reads a create or update body (JSON when nil).
	decode func(c echo.Context, obj T) error
	// present completes a record for a response (derived, per-request fields); it must
	// not modify obj, which may be the stored object.
	present func(c echo.Context, obj T) T
	// createRoute adjusts the create route (body limit, request description).
	createRoute func(r *Route)
	// presentPage completes a page of records at once (devices join their session fields
	// with one fan-out per page); it returns copies, never the stored objects.
	presentPage func(c echo.Context, objs []T) []T
	// filters override the kind's list filters (a device's state is not in its record);
	// each is made once per request, so it can read what it needs once.
	filters map[string]func() func(resource.Object) string
	// keptByFSM marks kinds whose fields a PUT may not change are kept by the FSM's rule
	// (an upgrade task's campaign) and that have no secrets to merge: a PUT without
	// If-Match then applies whatever the record became meanwhile, instead of racing a
	// campaign that changes it every few milliseconds.
	keptByFSM bool
}

func (col collection[T]) decodeBody(c echo.Context, obj T) error {
	if col.decode != nil {
		return col.decode(c, obj)
	}
	return decodeJSON(c, obj)
}

// out prepares a stored record for a response: secrets cleared, derived fields added.
func (col collection[T]) out(c echo.Context, obj T) T {
	obj = col.outOne(c, obj)
	if col.presentPage != nil {
		obj = col.presentPage(c, []T{obj})[0]
	}
	return obj
}

func (col collection[T]) outOne(c echo.Context, obj T) T {
	obj = resource.Redacted(obj)
	if col.present != nil {
		obj = col.present(c, obj)
	}
	return obj
}

func register[T resource.Named](s *Server, col collection[T]) {
	sample := col.kind.New()
	list := List[T]{}
	one := " " + strings.TrimSuffix(col.kind.Name, "s")
	writeAccess := Admin
	s.add(&Route{Method: http.MethodGet, Path: col.path, Access: col.access, Tag: col.tag,
		Summary: "List " + col.kind.Name, Response: list}, func(c echo.Context) error { return listHandler(s, c, col) })
	create := &Route{Method: http.MethodPost, Path: col.path, Access: writeAccess, Tag: col.tag, Status: http.StatusCreated,
		Summary: "Create a" + one, Request: sample, Response: sample}
	if col.createRoute != nil {
		col.createRoute(create)
	}
	s.add(create, func(c echo.Context) error { return createHandler(s, c, col) })
	s.add(&Route{Method: http.MethodGet, Path: col.path + "/:id", Access: col.access, Tag: col.tag,
		Summary: "Get a" + one, Response: sample}, func(c echo.Context) error { return getHandler(s, c, col) })
	s.add(&Route{Method: http.MethodPut, Path: col.path + "/:id", Access: writeAccess, Tag: col.tag,
		Summary: "Replace the editable fields of a" + one, Request: sample, Response: sample}, func(c echo.Context) error { return updateHandler(s, c, col) })
	s.add(&Route{Method: http.MethodDelete, Path: col.path + "/:id", Access: writeAccess, Tag: col.tag, Status: http.StatusNoContent,
		Summary: "Delete a" + one}, func(c echo.Context) error { return deleteHandler(s, c, col) })
	if col.kind.Stateful {
		for _, state := range []string{resource.StateEnabled, resource.StateDisabled} {
			verb := strings.TrimSuffix(state, "d")
			s.add(&Route{Method: http.MethodPost, Path: col.path + "/:id/" + verb, Access: writeAccess, Tag: col.tag,
				Summary: strings.ToUpper(verb[:1]) + verb[1:] + " a" + one + " (idempotent)", Response: sample},
				func(c echo.Context) error { return setStateHandler(s, c, col, state) })
		}
	}
}

// setStateHandler enables or disables a resource; asking for the state it has is a no-op.
func setStateHandler[T resource.Named](s *Server, c echo.Context, col collection[T], state string) error {
	cmd, err := fsm.NewSetState(col.kind, c.Param("id"), state, s.now())
	if err != nil {
		return err
	}
	stored, err := s.cfg.Raft.Apply(c.Request().Context(), cmd)
	if err != nil {
		return err
	}
	s.log.Info("state changed", "kind", col.kind.Name, "id", c.Param("id"), "state", state, "user", currentUser(c).Username)
	setETag(c, stored.(resource.Object).Base().Index)
	return c.JSON(http.StatusOK, col.out(c, stored.(T)))
}

func getHandler[T resource.Named](s *Server, c echo.Context, col collection[T]) error {
	obj, err := s.cfg.Store.Get(col.kind, c.Param("id"))
	if err != nil {
		return err
	}
	setETag(c, obj.Base().Index)
	return c.JSON(http.StatusOK, col.out(c, obj.(T)))
}

func createHandler[T resource.Named](s *Server, c echo.Context, col collection[T]) error {
	obj := col.kind.New().(T)
	if err := col.decodeBody(c, obj); err != nil {
		return err
	}
	var zero T
	if errs := col.prepare(c, obj, zero); len(errs) > 0 {
		return invalid(errs)
	}
	if obj.Base().ID == "" {
		obj.Base().ID = newID()
	}
	cmd, err := fsm.NewUpsert(col.kind, obj, true, 0, s.now())
	if err != nil {
		return err
	}
	stored, err := s.cfg.Raft.Apply(c.Request().Context(), cmd)
	if err != nil {
		return err
	}
	s.log.Info("created", "kind", col.kind.Name, "id", obj.Base().ID, "user", currentUser(c).Username)
	setETag(c, stored.(resource.Object).Base().Index)
	return c.JSON(http.StatusCreated, col.out(c, stored.(T)))
}

// maxUpdateAttempts bounds the optimistic retries of a PUT without If-Match.
const maxUpdateAttempts = 5

func updateHandler[T resource.Named](s *Server, c echo.Context, col collection[T]) error {
	id := c.Param("id")
	expect, err := ifMatch(c)
	if err != nil {
		return err
	}
	body := col.kind.New().(T)
	if err := col.decodeBody(c, body); err != nil {
		return err
	}
	// The body is merged with the stored record (secrets it omits are kept) and applied
	// only if that record is still the stored one. Without If-Match the caller asked for
	// "last write wins", so a concurrent change is not its error: merge again and retry,
	// from a copy of the body taken before the first merge changed it (only then: a copy
	// costs a marshal and an unmarshal on every write).
	var raw []byte
	if expect == 0 {
		if b, ok := c.Get(rawBodyKey).([]byte); ok && col.decode == nil {
			raw = b // the request's own bytes, as decodeJSON read them
		} else {
			raw, _ = json.Marshal(body)
		}
	}
	for attempt := 1; ; attempt++ {
		cur, err := s.cfg.Store.Get(col.kind, id)
		if err != nil {
			return err
		}
		if expect != 0 && cur.Base().Index != expect {
			return fsm.ErrIndexMismatch
		}
		obj := body
		if attempt > 1 {
			obj = col.kind.New().(T)
			_ = json.Unmarshal(raw, obj)
		}
		obj.Base().ID = id
		old := cur.(T)
		resource.KeepSecrets(obj, old)
		if errs := col.prepare(c, obj, old); len(errs) > 0 {
			return invalid(errs)
		}
		guard := cur.Base().Index
		if col.keptByFSM {
			guard = expect
		}
		cmd, err := fsm.NewUpsert(col.kind, obj, false, guard, s.now())
		if err != nil {
			return err
		}
		stored, err := s.cfg.Raft.Apply(c.Request().Context(), cmd)
		if errors.Is(err, fsm.ErrIndexMismatch) && expect == 0 && attempt < maxUpdateAttempts {
			continue
		}
		if err != nil {
			return err
		}
		s.log.Info("updated", "kind", col.kind.Name, "id", id, "user", currentUser(c).Username)
		setETag(c, stored.(resource.Object).Base().Index)
		return c.JSON(http.StatusOK, col.out(c, stored.(T)))
	}
}

func deleteHandler[T resource.Named](s *Server, c echo.Context, col collection[T]) error {
	id := c.Param("id")
	expect, err := ifMatch(c)
	if err != nil {
		return err
	}
	cmd, err := fsm.NewDelete(col.kind, id, expect)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Raft.Apply(c.Request().Context(), cmd); err != nil {
		return err
	}
	s.log.Info("deleted", "kind", col.kind.Name, "id", id, "user", currentUser(c).Username)
	return c.NoContent(http.StatusNoContent)
}

// listHandler pages, searches, sorts and filters a collection (SPEC §3).
func listHandler[T resource.Named](s *Server, c echo.Context, col collection[T]) error {
	q := c.QueryParams()
	var errs resource.Errors
	page := intParam(&errs, q.Get("page"), "page", 1, 1, 1<<31)
	size := intParam(&errs, q.Get("pageSize"), "pageSize", 20, 1, MaxPageSize)
	sortBy := q.Get("sort")
	less, ok := sorters[strings.TrimPrefix(sortBy, "-")]
	if sortBy != "" && !ok {
		errs.Add("sort", "must be one of id, name, createdAt, updatedAt, optionally prefixed by '-'")
	}
	filters := map[string]string{}
	for name := range col.kind.Filters {
		if v := q.Get(name); v != "" {
			filters[name] = v
		}
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	needle := strings.ToLower(q.Get("q"))

	getters := map[string]func(resource.Object) string{}
	for name := range filters {
		getters[name] = col.kind.Filters[name]
		if f, ok := col.filters[name]; ok {
			getters[name] = f()
		}
	}
	all, _ := s.cfg.Store.List(col.kind)
	items := make([]resource.Object, 0, len(all))
	for _, o := range all {
		if needle != "" && !strings.Contains(strings.ToLower(o.(T).DisplayName()), needle) {
			continue
		}
		match := true
		for name, want := range filters {
			if !strings.EqualFold(getters[name](o), want) {
				match = false
				break
			}
		}
		if match {
			items = append(items, o)
		}
	}
	if less != nil {
		desc := strings.HasPrefix(sortBy, "-")
		// Stable, with the id as tie-breaker, so pages never overlap or skip.
		sort.SliceStable(items, func(i, j int) bool {
			a, b := items[i], items[j]
			if desc {
				a, b = b, a
			}
			if less(a, b) {
				return true
			}
			if less(b, a) {
				return false
			}
			return items[i].Base().ID < items[j].Base().ID
		})
	}
	out := List[T]{Items: []T{}, Total: len(items), Page: page, PageSize: size}
	start := (page - 1) * size
	for i := start; i < len(items) && i < start+size; i++ {
		out.Items = append(out.Items, col.outOne(c, items[i].(T)))
	}
	if col.presentPage != nil {
		out.Items = col.presentPage(c, out.Items)
	}
	return c.JSON(http.StatusOK, out)
}

var sorters = map[string]func(a, b resource.Object) bool{
	"id": func(a, b resource.Object) bool { return a.Base().ID < b.Base().ID },
	"name": func(a, b resource.Object) bool {
		return strings.ToLower(a.(resource.Named).DisplayName()) < strings.ToLower(b.(resource.Named).DisplayName())
	},
	"createdAt": func(a, b resource.Object) bool { return a.Base().CreatedAt.Before(b.Base().CreatedAt) },
	"updatedAt": func(a, b resource.Object) bool { return a.Base().UpdatedAt.Before(b.Base().UpdatedAt) },
}

func intParam(errs *resource.Errors, v, name string, def, min, max int) int {
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		errs.Add(name, "must be an integer from %d to %d", min, max)
		return def
	}
	return n
}
