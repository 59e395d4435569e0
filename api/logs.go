package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/cluster"
	"github.com/linkops/linkops/logs"
	"github.com/linkops/linkops/resource"
)

// logSettle is how far behind now a query without "to" ends: twice the log store's flush
// interval, so that records still on their way to a store cannot land on a page already
// served.
const logSettle = 200 * time.Millisecond

// Internal paths of the log fan-out: each node answers from its own store.
const (
	internalLogsPath = "/internal/v1/logs/"
)

// LogPage is a page of log records gathered from every node, newest first.
type LogPage[T any] struct {
	Items    []T `json:"items"`
	Page     int `json:"page"`
	PageSize int `json:"pageSize"`
	// More says whether a next page has records. There is no total: counting every match
	// on every node would cost a scan of all of them for each page.
	More bool `json:"more"`
	// To is the upper time bound of the query. Pass it back with the next page so that
	// records arriving meanwhile do not shift the pages.
	To time.Time `json:"to"`
	// Nodes lists the nodes that answered; Missing the ones that could not be asked or
	// did not answer, which a user must know about rather than see fewer records.
	Nodes   []string      `json:"nodes"`
	Missing []MissingNode `json:"missing"`
}

// MissingNode is a node whose records are not in a cluster-wide answer.
type MissingNode = cluster.Missing

// logKind ties a record type to its store calls.
type logKind[T any] struct {
	name  string
	query func(ctx context.Context, st *logs.Store, f logs.Filter) ([]T, error)
	get   func(st *logs.Store, id string) (T, error)
	time  func(T) time.Time
	id    func(T) string
}

var accessKind = logKind[*logs.AccessRecord]{
	name: logs.Access,
	query: func(ctx context.Context, st *logs.Store, f logs.Filter) ([]*logs.AccessRecord, error) {
		return st.QueryAccess(ctx, f)
	},
	get:  func(st *logs.Store, id string) (*logs.AccessRecord, error) { return st.GetAccess(id) },
	time: func(r *logs.AccessRecord) time.Time { return r.RequestTime },
	id:   func(r *logs.AccessRecord) string { return r.ID },
}

var systemKind = logKind[*logs.SystemRecord]{
	name: logs.System,
	query: func(ctx context.Context, st *logs.Store, f logs.Filter) ([]*logs.SystemRecord, error) {
		return st.QuerySystem(ctx, f)
	},
	get:  func(st *logs.Store, id string) (*logs.SystemRecord, error) { return st.GetSystem(id) },
	time: func(r *logs.SystemRecord) time.Time { return r.CreateTime },
	id:   func(r *logs.SystemRecord) string { return r.ID },
}

func (s *Server) registerLogRoutes() {
	registerLogKind(s, accessKind, "Access log: every API request on every node")
	registerLogKind(s, systemKind, "System log: every node's structured log records")
}

func registerLogKind[T any](s *Server, k logKind[T], what string) {
	public := "/api/v1/logs/" + k.name
	s.add(&Route{Method: http.MethodGet, Path: public, Access: Viewer, Tag: "logs", Local: true,
		Summary: what + ", newest first (filters: from, to, node, level, logger, user, method, status, path, q)", Response: LogPage[T]{}},
		func(c echo.Context) error { return listLogs(s, c, k) })
	s.add(&Route{Method: http.MethodGet, Path: public + "/:id", Access: Viewer, Tag: "logs", Local: true,
		Summary: "One " + k.name + " log record, from the node that holds it", Response: *new(T)},
		func(c echo.Context) error { return getLog(s, c, k) })
	s.add(&Route{Method: http.MethodGet, Path: internalLogsPath + k.name, Access: Internal, Tag: "internal", Local: true,
		Summary: "This node's " + k.name + " log records", Response: []T{}}, func(c echo.Context) error {
		f, err := parseLogFilter(c.QueryParams())
		if err != nil {
			return err
		}
		f.Offset, f.Limit = 0, atoiOr(c.QueryParam("limit"), 20)
		items, err := k.query(c.Request().Context(), s.cfg.Logs, f)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, items)
	})
	s.add(&Route{Method: http.MethodGet, Path: internalLogsPath + k.name + "/:id", Access: Internal, Tag: "internal", Local: true,
		Summary: "One of this node's " + k.name + " log records", Response: *new(T)}, func(c echo.Context) error {
		rec, err := k.get(s.cfg.Logs, c.Param("id"))
		if errors.Is(err, logs.ErrNotFound) {
			return problem(http.StatusNotFound, "not_found", "no %s log record %q", k.name, c.Param("id"))
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, rec)
	})
}

// listLogs asks every node (or the one ?node= names) for its newest matching records up to
// the end of the requested page, merges them newest first and cuts the page out.
func listLogs[T any](s *Server, c echo.Context, k logKind[T]) error {
	q := c.QueryParams()
	var errs resource.Errors
	page := intParam(&errs, q.Get("page"), "page", 1, 1, 1000)
	size := intParam(&errs, q.Get("pageSize"), "pageSize", 20, 1, MaxPageSize)
	f, err := parseLogFilter(q)
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	if f.To.IsZero() {
		// Pinned, so that later pages do not shift; and a little in the past, because a
		// record reaches its store up to a flush interval after its time.
		f.To = s.now().Add(-logSettle)
	}
	need := page * size
	if need > 10000 {
		return invalid(resource.Errors{{Field: "page", Message: "page × pageSize may not exceed 10000; narrow the time range instead"}})
	}
	query := logQuery(f)
	query.Set("limit", strconv.Itoa(need+1)) // one more, to know whether a next page exists

	out := LogPage[T]{Items: []T{}, Page: page, PageSize: size, To: f.To.UTC(), Nodes: []string{}, Missing: []MissingNode{}}
	pages, missing := cluster.FanOut(c.Request().Context(), s.cfg.Raft, q.Get("node"), s.cfg.RequestTimeout, func(ctx context.Context, m cluster.Member) ([]T, error) {
		if m.ID == s.cfg.NodeID {
			f := f
			f.Limit = need + 1
			return k.query(ctx, s.cfg.Logs, f)
		}
		var items []T
		err := s.cfg.Raft.CallNode(ctx, m.ID, cluster.Call{Path: internalLogsPath + k.name, Query: query}, &items)
		return items, err
	})
	var all []T
	for id, items := range pages {
		out.Nodes = append(out.Nodes, id)
		all = append(all, items...)
	}
	for _, m := range missing {
		out.Missing = append(out.Missing, MissingNode(m))
		s.log.Warn("a node did not answer a log query", "kind", k.name, "peer", m.ServerID, "error", m.Error)
	}
	sort.Strings(out.Nodes)
	// Newest first; ids break ties so that the order, and so the pages, are stable.
	sort.Slice(all, func(i, j int) bool {
		ti, tj := k.time(all[i]), k.time(all[j])
		if !ti.Equal(tj) {
			return ti.After(tj)
		}
		return k.id(all[i]) > k.id(all[j])
	})
	for i := (page - 1) * size; i < len(all) && i < need; i++ {
		out.Items = append(out.Items, all[i])
	}
	out.More = len(all) > need
	return c.JSON(http.StatusOK, out)
}

// getLog finds a record on the node its id names.
func getLog[T any](s *Server, c echo.Context, k logKind[T]) error {
	id := c.Param("id")
	node := logs.NodeOf(id)
	if node == "" {
		return problem(http.StatusNotFound, "not_found", "%q is not a log record id", id)
	}
	if node == s.cfg.NodeID {
		rec, err := k.get(s.cfg.Logs, id)
		if errors.Is(err, logs.ErrNotFound) {
			return problem(http.StatusNotFound, "not_found", "no %s log record %q (it may have been removed by retention)", k.name, id)
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, rec)
	}
	var rec T
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RequestTimeout)
	defer cancel()
	err := s.cfg.Raft.CallNode(ctx, node, cluster.Call{Path: internalLogsPath + k.name + "/" + url.PathEscape(id)}, &rec)
	var pe *cluster.PeerError
	switch {
	case err == nil:
		return c.JSON(http.StatusOK, rec)
	case errors.Is(err, cluster.ErrUnknownNode):
		return problem(http.StatusNotFound, "not_found", "log record %q belongs to node %s, which is not in this cluster", id, node)
	case errors.Is(err, cluster.ErrNodeDown):
		return problem(http.StatusServiceUnavailable, "node_unreachable", "log record %q is kept by node %s: %v", id, node, err)
	case errors.As(err, &pe) && pe.Status == http.StatusNotFound:
		return problem(http.StatusNotFound, "not_found", "no %s log record %q on node %s", k.name, id, node)
	default:
		return problem(http.StatusServiceUnavailable, "node_unreachable", "node %s, which keeps log record %q, did not answer: %v", node, id, err)
	}
}

// parseLogFilter reads the filters of SPEC §4.9 from a query.
func parseLogFilter(q url.Values) (logs.Filter, error) {
	var errs resource.Errors
	f := logs.Filter{Level: q.Get("level"), Name: q.Get("logger"), Username: q.Get("user"), Method: q.Get("method"),
		Path: q.Get("path"), Text: q.Get("q")}
	for _, p := range []struct {
		name string
		into *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				errs.Add(p.name, "must be an RFC 3339 time, like 2026-11-25T10:00:00Z")
			}
			*p.into = t
		}
	}
	if v := q.Get("status"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 || n > 599 {
			errs.Add("status", "must be an HTTP status code")
		}
		f.Status = n
	}
	if lv := strings.ToUpper(f.Level); lv != "" && lv != "DEBUG" && lv != "INFO" && lv != "WARN" && lv != "ERROR" {
		errs.Add("level", "must be DEBUG, INFO, WARN or ERROR")
	}
	if len(errs) > 0 {
		return f, invalid(errs)
	}
	return f, nil
}

// logQuery is the internal query for a filter.
func logQuery(f logs.Filter) url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("level", f.Level)
	set("logger", f.Name)
	set("user", f.Username)
	set("method", f.Method)
	set("path", f.Path)
	set("q", f.Text)
	if f.Status != 0 {
		q.Set("status", strconv.Itoa(f.Status))
	}
	if !f.From.IsZero() {
		q.Set("from", f.From.UTC().Format(time.RFC3339Nano))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.UTC().Format(time.RFC3339Nano))
	}
	return q
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return n
	}
	return def
}
