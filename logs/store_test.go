package logs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.etcd.io/bbolt"
)

// t0 is a recent time, so that the default MaxAge keeps records stamped with it.
var t0 = time.Now().UTC().Truncate(time.Hour).Add(-24 * time.Hour)

func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(t.TempDir(), "logs.db")
	}
	if opts.ServerID == "" {
		opts.ServerID = "node-1"
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func flush(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func queryAccess(t *testing.T, s *Store, f Filter) []*AccessRecord {
	t.Helper()
	recs, err := s.QueryAccess(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func querySystem(t *testing.T, s *Store, f Filter) []*SystemRecord {
	t.Helper()
	recs, err := s.QuerySystem(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func accessIDs(recs []*AccessRecord) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids
}

func systemIDs(recs []*SystemRecord) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids
}

// eventually polls cond until it holds, for conditions that depend on the writer
// goroutine's retention loop.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metric returns the value of a counter or gauge in reg with the given labels (0 if absent).
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// checkConsistent verifies the store's invariants directly in bbolt: Size is the sum of
// the stored values, and the index buckets hold exactly one entry per indexed field of
// every record.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bbolt.Tx) error {
		var size int64
		for _, k := range kinds {
			want := map[string]bool{}
			err := tx.Bucket(k.bucket).ForEach(func(key, v []byte) error {
				size += int64(len(v))
				idx, err := k.storedIndexValues(v)
				if err != nil {
					return err
				}
				for j, val := range idx[:len(k.indexes)] {
					if val != "" {
						want[fmt.Sprintf("%d/%s\x00%x", j, val, key)] = true
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			got := map[string]bool{}
			for j, name := range k.indexes {
				err := tx.Bucket(name).ForEach(func(key, _ []byte) error {
					n := len(key) - keyLen
					got[fmt.Sprintf("%d/%s%x", j, key[:n], key[n:])] = true
					return nil
				})
				if err != nil {
					return err
				}
			}
			for e := range want {
				if !got[e] {
					t.Errorf("%s: index entry %q missing", k.name, e)
				}
			}
			for e := range got {
				if !want[e] {
					t.Errorf("%s: stale index entry %q", k.name, e)
				}
			}
		}
		if size != s.Size() {
			t.Errorf("Size() = %d, stored values add up to %d", s.Size(), size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAppendFlushQueryNewestFirst(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openTest(t, Options{Registry: reg})
	// Appended out of time order, with two records in the same nanosecond.
	for _, sec := range []int{3, 1, 4, 1, 5, 0} {
		s.AppendAccess(&AccessRecord{URL: "/api/v1/devices", HTTPMethod: "GET", Status: 200, RequestTime: t0.Add(time.Duration(sec) * time.Second)})
	}
	s.AppendSystem(&SystemRecord{Level: "INFO", Name: "api", Message: "started"})
	flush(t, s)

	recs := queryAccess(t, s, Filter{})
	if len(recs) != 6 {
		t.Fatalf("got %d records, want 6", len(recs))
	}
	for i, r := range recs {
		if r.ServerID != "node-1" || NodeOf(r.ID) != "node-1" {
			t.Errorf("record %d: serverId %q, id %q", i, r.ServerID, r.ID)
		}
		if i > 0 {
			prev := recs[i-1]
			if r.RequestTime.After(prev.RequestTime) || r.RequestTime.Equal(prev.RequestTime) && r.ID >= prev.ID {
				t.Errorf("not newest first: %s (%s) after %s (%s)", r.ID, r.RequestTime, prev.ID, prev.RequestTime)
			}
		}
	}
	if !recs[0].RequestTime.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("newest is %s", recs[0].RequestTime)
	}
	sys := querySystem(t, s, Filter{})
	if len(sys) != 1 || sys[0].CreateTime.IsZero() || sys[0].Message != "started" {
		t.Fatalf("system records: %+v", sys)
	}
	if got := queryAccess(t, s, Filter{Limit: 2}); len(got) != 2 || got[0].ID != recs[0].ID {
		t.Errorf("limit 2: %v", accessIDs(got))
	}

	if got := metric(t, reg, "linkops_log_records_written_total", "kind", Access); got != 6 {
		t.Errorf("written access = %v, want 6", got)
	}
	if got := metric(t, reg, "linkops_log_store_bytes"); got != float64(s.Size()) || got == 0 {
		t.Errorf("store bytes gauge = %v, Size() = %d", got, s.Size())
	}
	if got := metric(t, reg, "linkops_log_query_seconds", "kind", Access); got != 2 {
		t.Errorf("access query histogram count = %v, want 2", got)
	}
	checkConsistent(t, s)
}

func TestAccessFilters(t *testing.T) {
	s := openTest(t, Options{})
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	recs := []*AccessRecord{
		{Username: "alice", HTTPMethod: "GET", URL: "/api/v1/devices?x=1", Action: "List devices", Status: 200},
		{Username: "bob", HTTPMethod: "POST", URL: "/api/v1/devices", Action: "create", Status: 201, Parameters: map[string]any{"name": "Pump-7"}},
		{Username: "alice", HTTPMethod: "DELETE", URL: "http://node1:8080/api/v1/products/p1", Action: "删除产品", Status: 404, Exception: `product "p1" not found`},
		{Username: "carol", HTTPMethod: "GET", URL: "/api/v1/firmwares", Status: 500, Exception: "upstream TIMEOUT <30s>"},
		{Username: "bob", HTTPMethod: "put", URL: "/api/v1/devices/d1?force=true", Status: 409, Exception: "Konflikt: Gerät ÄNDERUNG"},
	}
	for i, r := range recs {
		r.RequestTime = at(i)
		s.AppendAccess(r)
	}
	flush(t, s)
	ids := func(idx ...int) []string {
		out := []string{}
		for _, i := range idx {
			out = append(out, recs[i].ID)
		}
		return out
	}
	cases := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, ids(4, 3, 2, 1, 0)},
		{"username", Filter{Username: "alice"}, ids(2, 0)},
		{"username no match", Filter{Username: "Alice"}, ids()},
		{"method any case", Filter{Method: "get"}, ids(3, 0)},
		{"method stored lower case", Filter{Method: "PUT"}, ids(4)},
		{"method no match", Filter{Method: "PATCH"}, ids()},
		{"status", Filter{Status: 404}, ids(2)},
		{"status no match", Filter{Status: 418}, ids()},
		{"path prefix", Filter{Path: "/api/v1/devices"}, ids(4, 1, 0)},
		{"path partial segment", Filter{Path: "/api/v1/dev"}, ids(4, 1, 0)},
		{"path of absolute url", Filter{Path: "/api/v1/products/"}, ids(2)},
		{"path ignores query string", Filter{Path: "/api/v1/devices?x"}, ids()},
		{"path no match", Filter{Path: "/api/v2"}, ids()},
		{"text in exception any case", Filter{Text: "timeout"}, ids(3)},
		{"text with quotes", Filter{Text: `"P1" NOT`}, ids(2)},
		{"text chinese", Filter{Text: "删除"}, ids(2)},
		{"text chinese no match", Filter{Text: "创建"}, ids()},
		{"text with html characters", Filter{Text: "<30S>"}, ids(3)},
		{"text in parameters", Filter{Text: "pump-7"}, ids(1)},
		{"text in action", Filter{Text: "LIST DEV"}, ids(0)},
		{"text in url", Filter{Text: "force=TRUE"}, ids(4)},
		{"text non-ascii", Filter{Text: "änderung"}, ids(4)},
		{"text not in other fields", Filter{Text: "alice"}, ids()},
		{"text no match", Filter{Text: "nomatch"}, ids()},
		{"from", Filter{From: at(3)}, ids(4, 3)},
		{"to exclusive", Filter{To: at(2)}, ids(1, 0)},
		{"range", Filter{From: at(1), To: at(3)}, ids(2, 1)},
		{"range no match", Filter{From: at(5)}, ids()},
		{"range before everything", Filter{To: at(0)}, ids()},
		{"two indexes", Filter{Username: "bob", Method: "post"}, ids(1)},
		{"three indexes", Filter{Username: "alice", Method: "DELETE", Status: 404}, ids(2)},
		{"indexes disjoint", Filter{Username: "alice", Status: 500}, ids()},
		{"index and path", Filter{Username: "bob", Path: "/api/v1/devices/"}, ids(4)},
		{"index and range", Filter{Username: "alice", From: at(1)}, ids(2)},
		{"index and text", Filter{Status: 500, Text: "upstream"}, ids(3)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := accessIDs(queryAccess(t, s, c.f)); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestSystemFilters(t *testing.T) {
	s := openTest(t, Options{})
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	recs := []*SystemRecord{
		{Level: "INFO", Name: "raft", Message: "entering leader state"},
		{Level: "warn", Name: "api", Message: "slow request", Fields: map[string]any{"route": "/api/v1/devices", "ms": 812}},
		{Level: "ERROR", Name: "ota", Message: "upgrade failed", ExceptionStack: "io.EOF\n\tat ota.push"},
		{Level: "DEBUG", Name: "raft", Message: "heartbeat"},
		{Level: "Info", Name: "listener", Message: "Listening on :1883"},
	}
	for i, r := range recs {
		r.CreateTime = at(i)
		s.AppendSystem(r)
	}
	flush(t, s)
	ids := func(idx ...int) []string {
		out := []string{}
		for _, i := range idx {
			out = append(out, recs[i].ID)
		}
		return out
	}
	cases := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, ids(4, 3, 2, 1, 0)},
		{"level any case", Filter{Level: "info"}, ids(4, 0)},
		{"level stored lower case", Filter{Level: "WARN"}, ids(1)},
		{"level no match", Filter{Level: "FATAL"}, ids()},
		{"name", Filter{Name: "raft"}, ids(3, 0)},
		{"name exact", Filter{Name: "Raft"}, ids()},
		{"name no match", Filter{Name: "fsm"}, ids()},
		{"level and name", Filter{Level: "debug", Name: "raft"}, ids(3)},
		{"level and name disjoint", Filter{Level: "ERROR", Name: "raft"}, ids()},
		{"text in message", Filter{Text: "LISTENING"}, ids(4)},
		{"text in stack", Filter{Text: "ota.push"}, ids(2)},
		{"text in fields", Filter{Text: "/api/v1/devices"}, ids(1)},
		{"text in field names", Filter{Text: `"ms":812`}, ids(1)},
		{"text not in name", Filter{Text: "listener"}, ids()},
		{"text no match", Filter{Text: "panic"}, ids()},
		{"range", Filter{From: at(1), To: at(3)}, ids(2, 1)},
		{"range no match", Filter{From: at(10)}, ids()},
		{"level and range", Filter{Level: "INFO", To: at(4)}, ids(0)},
		// Access-only filters do not apply to system records and vice versa.
		{"access filters ignored", Filter{Username: "alice", Status: 500}, ids(4, 3, 2, 1, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := systemIDs(querySystem(t, s, c.f)); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
	if got := accessIDs(queryAccess(t, s, Filter{Level: "INFO"})); len(got) != 0 {
		t.Errorf("system records leaked into access query: %v", got)
	}
}

// TestPagingStable pages through a fixed time window while new records keep arriving after
// its end: every record must come back exactly once, in order.
func TestPagingStable(t *testing.T) {
	s := openTest(t, Options{FlushInterval: time.Millisecond})
	const n = 237
	users := []string{"alice", "bob"}
	for i := range n {
		s.AppendAccess(&AccessRecord{Username: users[i%2], HTTPMethod: "GET", URL: "/api/v1/devices", Status: 200, RequestTime: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	flush(t, s)
	to := t0.Add(n * time.Millisecond)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.AppendAccess(&AccessRecord{Username: users[i%2], HTTPMethod: "GET", URL: "/api/v1/devices", Status: 200, RequestTime: to.Add(time.Duration(i) * time.Microsecond)})
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	for _, f := range []Filter{{To: to}, {To: to, Username: "bob"}, {To: to, Username: "bob", Method: "get"}} {
		want := n
		if f.Username != "" {
			want = n / 2
		}
		var all []string
		for page := 0; ; page++ {
			f.Offset, f.Limit = page*20, 20
			got := accessIDs(queryAccess(t, s, f))
			all = append(all, got...)
			if len(got) < 20 {
				break
			}
		}
		if len(all) != want {
			t.Errorf("%+v: %d records across pages, want %d", f, len(all), want)
		}
		if !slices.IsSortedFunc(all, func(a, b string) int { return strings.Compare(b, a) }) {
			t.Errorf("%+v: pages not in descending id order", f)
		}
		if len(slices.Compact(slices.Clone(all))) != len(all) {
			t.Errorf("%+v: a record appeared twice", f)
		}
	}
}

func TestGetAndNodeOf(t *testing.T) {
	s := openTest(t, Options{ServerID: "edge_7"})
	a := &AccessRecord{URL: "/api/v1/gateways", HTTPMethod: "GET", Status: 200, Parameters: map[string]any{"pageSize": 20.0}}
	y := &SystemRecord{Level: "INFO", Name: "cluster", Message: "joined"}
	s.AppendAccess(a)
	s.AppendSystem(y)
	flush(t, s)

	got, err := s.GetAccess(a.ID)
	if err != nil || got.URL != a.URL || got.Parameters["pageSize"] != 20.0 || !got.RequestTime.Equal(a.RequestTime) {
		t.Fatalf("GetAccess = %+v, %v", got, err)
	}
	gs, err := s.GetSystem(y.ID)
	if err != nil || gs.Message != "joined" {
		t.Fatalf("GetSystem = %+v, %v", gs, err)
	}
	_, key, _ := parseID(a.ID)
	for _, id := range []string{"", "nonsense", y.ID + "0", strings.ToUpper(a.ID), formatID("other-node", key), formatID("edge_7", makeKey(t0, 1))} {
		if _, err := s.GetAccess(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetAccess(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if _, err := s.GetSystem(a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetSystem(access id) = %v, want ErrNotFound", err)
	}

	if NodeOf(a.ID) != "edge_7" {
		t.Errorf("NodeOf(%q) = %q", a.ID, NodeOf(a.ID))
	}
	for id, want := range map[string]string{
		"n-1.0000000000000001-00000002":  "n-1",
		"n.1.0000000000000001-00000002":  "",
		"n-1.0000000000000001-0000002":   "",
		"n-1.000000000000000G-00000002":  "",
		"n-1.0000000000000001.00000002":  "",
		".0000000000000001-00000002":     "",
		"n 1.0000000000000001-00000002":  "",
		"":                               "",
		"n-1.00000000000000010-00000002": "",
	} {
		if got := NodeOf(id); got != want {
			t.Errorf("NodeOf(%q) = %q, want %q", id, got, want)
		}
	}
	// The id carries the record time, so ids sort like keys.
	if a, b := formatID("n", makeKey(t0, 9)), formatID("n", makeKey(t0.Add(1), 0)); a >= b {
		t.Errorf("ids out of time order: %s >= %s", a, b)
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.db")
	reg := prometheus.NewRegistry()
	s, err := Open(Options{Path: path, ServerID: "node-1", Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 10 {
		r := &AccessRecord{Username: "alice", HTTPMethod: "GET", Status: 200, URL: "/", RequestTime: t0.Add(time.Duration(i) * time.Second)}
		s.AppendAccess(r)
		ids = append(ids, r.ID)
	}
	s.AppendSystem(&SystemRecord{Level: "INFO", Name: "x", Message: "before restart", CreateTime: t0})
	flush(t, s)
	size := s.Size()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened on the same registry, the store keeps counting in the same metrics.
	s = openTest(t, Options{Path: path, Registry: reg})
	if s.Size() != size {
		t.Errorf("Size after reopen = %d, want %d", s.Size(), size)
	}
	got := accessIDs(queryAccess(t, s, Filter{Username: "alice"}))
	slices.Reverse(ids)
	if !slices.Equal(got, ids) {
		t.Errorf("after reopen: %v, want %v", got, ids)
	}
	if sys := querySystem(t, s, Filter{}); len(sys) != 1 || sys[0].Message != "before restart" {
		t.Errorf("system after reopen: %+v", sys)
	}
	// New records in the same nanosecond as old ones get new ids.
	r := &AccessRecord{Username: "alice", RequestTime: t0}
	s.AppendAccess(r)
	flush(t, s)
	if len(queryAccess(t, s, Filter{Username: "alice"})) != 11 {
		t.Errorf("a record appended after reopen replaced an old one (id %s)", r.ID)
	}
	if got := metric(t, reg, "linkops_log_records_written_total", "kind", Access); got != 11 {
		t.Errorf("written access = %v across the restart, want 11", got)
	}
	checkConsistent(t, s)
}

type fakeClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time                { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Add(d time.Duration)           { c.ns.Add(int64(d)) }
func (c *fakeClock) ago(d time.Duration) time.Time { return c.Now().Add(-d) }

func TestRetentionByAge(t *testing.T) {
	clock := newClock(t0)
	reg := prometheus.NewRegistry()
	s := openTest(t, Options{MaxAge: 7 * 24 * time.Hour, RetentionInterval: 5 * time.Millisecond, Now: clock.Now, Registry: reg})
	var old, fresh []string
	for i := range 5 {
		a := &AccessRecord{Username: "u", HTTPMethod: "GET", Status: 200, RequestTime: clock.ago(8*24*time.Hour + time.Duration(i)*time.Minute)}
		y := &SystemRecord{Level: "INFO", Name: "n", CreateTime: clock.ago(10 * 24 * time.Hour)}
		b := &AccessRecord{Username: "u", HTTPMethod: "GET", Status: 200, RequestTime: clock.ago(time.Duration(i+1) * time.Hour)}
		s.AppendAccess(a)
		s.AppendSystem(y)
		s.AppendAccess(b)
		old = append(old, a.ID, y.ID)
		fresh = append(fresh, b.ID)
	}
	flush(t, s)
	eventually(t, "old records to expire", func() bool {
		return len(queryAccess(t, s, Filter{})) == 5 && len(querySystem(t, s, Filter{})) == 0
	})
	for _, id := range old {
		if _, err := s.GetAccess(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("old record %s still there", id)
		}
	}
	for _, id := range fresh {
		if _, err := s.GetAccess(id); err != nil {
			t.Errorf("fresh record %s: %v", id, err)
		}
	}
	if got := metric(t, reg, "linkops_log_records_dropped_total", "kind", Access, "reason", "retention_age"); got != 5 {
		t.Errorf("access retention_age = %v, want 5", got)
	}
	if got := metric(t, reg, "linkops_log_records_dropped_total", "kind", System, "reason", "retention_age"); got != 5 {
		t.Errorf("system retention_age = %v, want 5", got)
	}
	checkConsistent(t, s)

	clock.Add(7 * 24 * time.Hour)
	eventually(t, "the rest to expire", func() bool { return s.Size() == 0 })
	checkConsistent(t, s)
}

// TestRetentionBySize writes three times MaxBytes: the oldest records must go, the newest
// stay, and the file must stop growing once freed pages are being reused.
func TestRetentionBySize(t *testing.T) {
	const maxBytes = 2 << 20
	reg := prometheus.NewRegistry()
	s := openTest(t, Options{MaxBytes: maxBytes, Registry: reg})
	pad := strings.Repeat("x", 700)
	var first, last string
	var written int64
	var fileAtLimit int64
	for written < 3*maxBytes {
		for range 200 {
			a := &AccessRecord{Username: "u" + fmt.Sprint(written%7), HTTPMethod: "POST", Status: 201, URL: "/api/v1/devices", Parameters: map[string]any{"pad": pad}}
			s.AppendAccess(a)
			y := &SystemRecord{Level: "INFO", Name: "api", Message: pad[:200]}
			s.AppendSystem(y)
			if first == "" {
				first = a.ID
			}
			last = a.ID
			written += 1100
		}
		flush(t, s)
		if written >= maxBytes && fileAtLimit == 0 {
			fileAtLimit = fileSize(t, s)
		}
	}
	eventually(t, "size to come under MaxBytes", func() bool { return s.Size() <= maxBytes })

	if size := fileSize(t, s); size > 4*maxBytes+1<<20 {
		t.Errorf("file grew to %d bytes (%d at the limit) for MaxBytes %d", size, fileAtLimit, maxBytes)
	} else {
		t.Logf("file %d bytes (%d when the limit was first reached), Size %d", size, fileAtLimit, s.Size())
	}
	if _, err := s.GetAccess(first); !errors.Is(err, ErrNotFound) {
		t.Errorf("oldest record still there: %v", err)
	}
	if _, err := s.GetAccess(last); err != nil {
		t.Errorf("newest record: %v", err)
	}
	if got := metric(t, reg, "linkops_log_records_dropped_total", "kind", Access, "reason", "retention_size"); got == 0 {
		t.Error("no access record counted as retention_size")
	}
	if got := metric(t, reg, "linkops_log_records_dropped_total", "kind", System, "reason", "retention_size"); got == 0 {
		t.Error("no system record counted as retention_size")
	}
	if got := metric(t, reg, "linkops_log_store_bytes"); got != float64(s.Size()) {
		t.Errorf("store bytes gauge %v, Size %d", got, s.Size())
	}
	checkConsistent(t, s)
}

func fileSize(t *testing.T, s *Store) int64 {
	t.Helper()
	fi, err := os.Stat(s.opts.Path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestQueueFullDrops holds bbolt's writer lock so the writer cannot drain the queue:
// appends must still return at once, and what does not fit is counted.
func TestQueueFullDrops(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openTest(t, Options{QueueSize: 8, BatchSize: 4, FlushInterval: time.Millisecond, Registry: reg})
	tx, err := s.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for range n {
		s.AppendAccess(&AccessRecord{URL: "/", HTTPMethod: "GET", Status: 200})
	}
	s.AppendSystem(&SystemRecord{Level: "INFO", Message: "m"})
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	flush(t, s)

	stored := len(queryAccess(t, s, Filter{Limit: maxLimit}))
	dropped := metric(t, reg, "linkops_log_records_dropped_total", "kind", Access, "reason", "queue_full")
	if stored+int(dropped) != n {
		t.Errorf("stored %d + dropped %v != appended %d", stored, dropped, n)
	}
	// At most the queue, the writer's batch and the record in its hand got through.
	if stored > 8+4+1 {
		t.Errorf("stored %d records while the writer was blocked", stored)
	}
	if got := metric(t, reg, "linkops_log_records_dropped_total", "kind", System, "reason", "queue_full"); got != 1 {
		t.Errorf("system queue_full = %v, want 1", got)
	}
}

func TestCloseFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.db")
	s, err := Open(Options{Path: path, ServerID: "node-1", FlushInterval: time.Hour, BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		s.AppendAccess(&AccessRecord{URL: fmt.Sprint("/", i)})
		s.AppendSystem(&SystemRecord{Message: fmt.Sprint(i)})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	s.AppendAccess(&AccessRecord{URL: "/after-close"}) // ignored, must not panic
	if err := s.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v", err)
	}
	if _, err := s.QueryAccess(context.Background(), Filter{}); !errors.Is(err, ErrClosed) {
		t.Errorf("QueryAccess after Close = %v", err)
	}

	s = openTest(t, Options{Path: path})
	if a, y := queryAccess(t, s, Filter{}), querySystem(t, s, Filter{}); len(a) != 10 || len(y) != 10 {
		t.Errorf("after Close and reopen: %d access, %d system records, want 10 each", len(a), len(y))
	}
}

// TestSameIDReplaces appends a record under an id that is already stored: it replaces the
// old one, and Size and the indexes follow.
func TestSameIDReplaces(t *testing.T) {
	s := openTest(t, Options{})
	a := &AccessRecord{Username: "alice", HTTPMethod: "GET", Status: 200, URL: "/a", RequestTime: t0}
	s.AppendAccess(a)
	flush(t, s)
	s.AppendAccess(&AccessRecord{ID: a.ID, Username: "bob", HTTPMethod: "POST", Status: 201, URL: "/b", RequestTime: t0})
	flush(t, s)
	if got := queryAccess(t, s, Filter{}); len(got) != 1 || got[0].Username != "bob" {
		t.Fatalf("after replace: %+v", got)
	}
	if got := queryAccess(t, s, Filter{Username: "alice"}); len(got) != 0 {
		t.Errorf("old index entry still matches: %+v", got)
	}
	checkConsistent(t, s)
}

func TestUnencodableRecordKept(t *testing.T) {
	s := openTest(t, Options{})
	a := &AccessRecord{URL: "/x", Parameters: map[string]any{"f": func() {}}}
	s.AppendAccess(a)
	flush(t, s)
	got, err := s.GetAccess(a.ID)
	if err != nil || got.URL != "/x" || got.Parameters["encodingError"] == nil {
		t.Fatalf("GetAccess = %+v, %v", got, err)
	}
}

func TestQueryCancelled(t *testing.T) {
	s := openTest(t, Options{})
	for range 2000 {
		s.AppendSystem(&SystemRecord{Message: "m"})
	}
	flush(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.QuerySystem(ctx, Filter{Text: "absent"}); !errors.Is(err, context.Canceled) {
		t.Errorf("QuerySystem with a cancelled context = %v", err)
	}
}

func TestOpenRejectsBadServerID(t *testing.T) {
	for _, id := range []string{"", "a.b", strings.Repeat("x", 65)} {
		if _, err := Open(Options{Path: filepath.Join(t.TempDir(), "l.db"), ServerID: id}); err == nil {
			t.Errorf("Open with server id %q succeeded", id)
		}
	}
}

func TestFoldMatcher(t *testing.T) {
	for _, c := range []struct {
		s, text string
		want    bool
	}{
		{"Upstream TIMEOUT", "timeout", true},
		{"abc", "abcd", false},
		{"aab", "ab", true},
		{"K\u212a", "kk", true}, // the Kelvin sign folds to k, as in strings.EqualFold
		{"ΣΊΣΥΦΟΣ", "σίσυφος", true},
		{"设备离线 device offline", "离线", true},
		{"设备离线", "在线", false},
		{"Straße", "STRASSE", false}, // simple folding only: ß is not "ss"
		{"", "x", false},
	} {
		m := newFoldMatcher(c.text)
		if got := m.inString(c.s); got != c.want {
			t.Errorf("%q in %q = %v", c.text, c.s, got)
		}
		if got := m.in([]byte(c.s)); got != c.want {
			t.Errorf("%q in []byte(%q) = %v", c.text, c.s, got)
		}
	}
	if got := urlPath("/p?next=http://x/y"); got != "/p" {
		t.Errorf("urlPath = %q", got)
	}
	if got := urlPath("https://h:1"); got != "/" {
		t.Errorf("urlPath = %q", got)
	}
}

// BenchmarkIngest measures what one node's writer sustains, in records/s.
func BenchmarkIngest(b *testing.B) {
	s := openTest(b, Options{})
	gen := newBenchGen(1, b.N)
	b.ResetTimer()
	elapsed, err := s.benchIngest(gen, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
}

// benchStore is 1,000,000 access records, built once for every BenchmarkFilteredQuery run
// and removed by TestMain.
var benchStore struct {
	once sync.Once
	dir  string
	s    *Store
	gen  *benchGen
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchStore.s != nil {
		benchStore.s.Close()
	}
	if benchStore.dir != "" {
		os.RemoveAll(benchStore.dir)
	}
	os.Exit(code)
}

// BenchmarkFilteredQuery runs status=500 & path prefix queries (limit 20) over 1,000,000
// access records.
func BenchmarkFilteredQuery(b *testing.B) {
	const records = 1_000_000
	benchStore.once.Do(func() {
		benchStore.dir, benchStore.err = os.MkdirTemp("", "logs-bench-")
		if benchStore.err != nil {
			return
		}
		benchStore.s, benchStore.err = Open(Options{Path: filepath.Join(benchStore.dir, "logs.db"), ServerID: "bench"})
		if benchStore.err != nil {
			return
		}
		benchStore.gen = newBenchGen(1, records)
		_, benchStore.err = benchStore.s.benchIngest(benchStore.gen, records)
	})
	if benchStore.err != nil {
		b.Fatal(benchStore.err)
	}
	s, paths := benchStore.s, benchStore.gen.paths
	for i := 0; b.Loop(); i++ {
		prefix := paths[i%len(paths)]
		if i%2 == 0 {
			prefix = prefix[:strings.LastIndexByte(prefix, '/')]
		}
		recs, err := s.QueryAccess(context.Background(), Filter{Status: 500, Path: prefix, Limit: 20})
		if err != nil || len(recs) == 0 {
			b.Fatalf("query %q: %d records, %v", prefix, len(recs), err)
		}
	}
}
