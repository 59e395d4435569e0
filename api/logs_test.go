package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/api"
	"github.com/linkops/linkops/auth"
	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/logs"
)

// The API's own types, decoded from what it sends.
type (
	accessRecord   = logs.AccessRecord
	systemRecord   = logs.SystemRecord
	logPage[T any] = api.LogPage[T]
)

// flushLogs makes every node's queued log records queryable.
func flushLogs(t *testing.T, nodes ...*testutil.TestNode) {
	t.Helper()
	for _, n := range nodes {
		if n.Stopped() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := n.Logs().Flush(ctx); err != nil {
			t.Fatalf("flush %s: %v", n.ID(), err)
		}
		cancel()
	}
}

// queryLogs asks for log records up to an hour from now, so that records written just
// before are included; with "to" set to "server", the server pins it (what a user gets).
func queryLogs[T any](t *testing.T, c *client.Client, kind string, q url.Values) logPage[T] {
	t.Helper()
	switch q.Get("to") {
	case "":
		q.Set("to", time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano))
	case "server":
		q.Del("to")
	}
	var out logPage[T]
	if _, err := c.Do(context.Background(), http.MethodGet, "/api/v1/logs/"+kind+"?"+q.Encode(), nil, &out); err != nil {
		t.Fatalf("query %s logs %v: %v", kind, q, err)
	}
	return out
}

// TestAccessLogOneRecordPerCallOnTheServingNode: a write sent to a follower (and forwarded
// to the leader) and a read sent to another node each leave exactly one record, on the
// node the client called, with every field of SPEC §4.9; any node finds them.
func TestAccessLogOneRecordPerCallOnTheServingNode(t *testing.T) {
	nodes := testutil.StartCluster(t, 3)
	leader := testutil.Leader(t, nodes)
	followers := testutil.Followers(nodes, leader)
	writer, reader := followers[0], followers[1]
	wc, rc := writer.Admin(t), reader.Admin(t)
	ctx := context.Background()
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())

	if _, err := wc.Do(ctx, http.MethodPost, "/api/v1/products", obj{"id": marker, "name": marker, "secureKey": "product-secret-key"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Do(ctx, http.MethodGet, "/api/v1/products?q="+marker, nil, nil); err != nil {
		t.Fatal(err)
	}
	_, err := rc.Do(ctx, http.MethodDelete, "/api/v1/products/"+marker+"-missing", nil, nil)
	if p, ok := err.(*client.Problem); !ok || p.Status != 404 {
		t.Fatalf("delete of a missing product: %v", err)
	}
	flushLogs(t, nodes...)

	for _, via := range nodes {
		page := queryLogs[accessRecord](t, via.Admin(t), "access", url.Values{"q": {marker}, "pageSize": {"100"}})
		var got []accessRecord
		for _, r := range page.Items {
			if r.Action != "Log in" && !strings.HasPrefix(r.URL, "/api/v1/logs") {
				got = append(got, r)
			}
		}
		if len(got) != 3 || len(page.Missing) != 0 || len(page.Nodes) != 3 {
			t.Fatalf("via %s: %d records (%+v), nodes %v, missing %v; want 3 from 3 nodes", via.ID(), len(got), got, page.Nodes, page.Missing)
		}
		// Newest first: the delete, the read, the write.
		del, get, post := got[0], got[1], got[2]
		if post.ServerID != writer.ID() || post.HTTPMethod != "POST" || post.Status != 201 || post.URL != "/api/v1/products" ||
			post.Action != "Create a product" || post.Username != "admin" || post.IP != "127.0.0.1" || post.Parameters["name"] != marker {
			t.Errorf("write record: %+v", post)
		}
		if post.Parameters["secureKey"] != "[redacted]" {
			t.Errorf("secureKey parameter = %v, want [redacted]", post.Parameters["secureKey"])
		}
		if get.ServerID != reader.ID() || get.HTTPMethod != "GET" || get.Status != 200 || get.Parameters["q"] != marker || get.URL != "/api/v1/products?q="+marker {
			t.Errorf("read record: %+v", get)
		}
		if del.Status != 404 || !strings.HasPrefix(del.Exception, "not_found") || del.Parameters["id"] != marker+"-missing" {
			t.Errorf("failed call record: %+v", del)
		}
		for _, r := range got {
			if r.ResponseTime.Before(r.RequestTime) || r.DurationMs < 0 || r.ID == "" {
				t.Errorf("times of %+v", r)
			}
		}
		// GET /{id} through this node finds the record wherever it is kept.
		var one accessRecord
		if _, err := via.Admin(t).Do(ctx, http.MethodGet, "/api/v1/logs/access/"+post.ID, nil, &one); err != nil || one.ID != post.ID || one.ServerID != writer.ID() {
			t.Errorf("GET access/%s via %s: %+v %v", post.ID, via.ID(), one, err)
		}
	}
	// The leader forwarded-to did not record the write a second time.
	page := queryLogs[accessRecord](t, rc, "access", url.Values{"q": {marker}, "node": {leader.ID()}, "method": {"POST"}})
	if len(page.Items) != 0 {
		t.Errorf("the leader recorded the forwarded write too: %+v", page.Items)
	}
	// Filters: user, method, status, path.
	for q, want := range map[string]int{
		"method=POST&path=/api/v1/products&status=201": 1,
		"status=404&path=/api/v1/products/":            1,
		"user=nobody":                                  0,
	} {
		v, _ := url.ParseQuery(q + "&q=" + marker)
		if n := len(queryLogs[accessRecord](t, rc, "access", v).Items); n != want {
			t.Errorf("filter %s: %d records, want %d", q, n, want)
		}
	}
}

// TestSystemLogsClusterWide: every node's log records are found through any node, filtered
// by level, node, logger, time range and text, newest first; pages return each record once;
// with a node down the others still answer and the missing one is named.
func TestSystemLogsClusterWide(t *testing.T) {
	nodes := testutil.StartCluster(t, 3)
	flushLogs(t, nodes...)
	c := nodes[1].Admin(t)

	started := queryLogs[systemRecord](t, c, "system", url.Values{"q": {"node started"}, "level": {"info"}})
	seen := map[string]bool{}
	for _, r := range started.Items {
		seen[r.ServerID] = true
		if r.Level != "INFO" || r.Caller == "" || r.Message != "node started" {
			t.Errorf("record %+v", r)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("'node started' from %v, want all 3 nodes", seen)
	}
	one := queryLogs[systemRecord](t, c, "system", url.Values{"q": {"node started"}, "node": {"node3"}})
	if len(one.Items) != 1 || one.Items[0].ServerID != "node3" {
		t.Errorf("node filter: %+v", one.Items)
	}
	if n := len(queryLogs[systemRecord](t, c, "system", url.Values{"q": {"node started"}, "level": {"ERROR"}}).Items); n != 0 {
		t.Errorf("level=ERROR found %d 'node started' records", n)
	}
	raft := queryLogs[systemRecord](t, c, "system", url.Values{"logger": {"raft"}, "pageSize": {"500"}})
	if len(raft.Items) == 0 {
		t.Fatal("no records of logger raft")
	}
	for i, r := range raft.Items {
		if r.Name != "raft" {
			t.Errorf("logger filter let through %+v", r)
		}
		if i > 0 && r.CreateTime.After(raft.Items[i-1].CreateTime) {
			t.Errorf("not newest first at %d", i)
		}
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if n := len(queryLogs[systemRecord](t, c, "system", url.Values{"from": {future}}).Items); n != 0 {
		t.Errorf("from=%s found %d records", future, n)
	}

	// Paging with the pinned "to": every record exactly once, though nodes keep logging.
	// The server pins "to" itself (what a user gets)...
	if pinned := queryLogs[systemRecord](t, c, "system", url.Values{"pageSize": {"1"}, "to": {"server"}}); !pinned.To.Before(time.Now()) {
		t.Errorf("a query without 'to' was pinned at %s, not in the past", pinned.To)
	}
	// ...and pages at a fixed "to" are the same while nodes keep logging. The pages are
	// read a second after "to", so that every record up to it has reached its store even
	// on a loaded machine.
	to := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(time.Second)
	readAll := func(size int, between func()) []string {
		var ids []string
		for p := 1; ; p++ {
			page := queryLogs[systemRecord](t, c, "system", url.Values{"pageSize": {fmt.Sprint(size)}, "page": {fmt.Sprint(p)}, "to": {to}})
			for _, r := range page.Items {
				ids = append(ids, r.ID)
			}
			if !page.More {
				return ids
			}
			if len(page.Items) != size {
				t.Fatalf("page %d of %d records says there are more", p, len(page.Items))
			}
			between()
		}
	}
	big := readAll(500, func() {})
	// Pages of 7, with more records logged between them, hold the same records in the same
	// order, each once.
	small := readAll(7, func() { _, _ = c.Do(context.Background(), http.MethodGet, "/api/v1/health", nil, nil) })
	if len(big) == 0 || strings.Join(small, ",") != strings.Join(big, ",") {
		t.Errorf("pages of 7 held %d records, pages of 500 %d, or the order differs", len(small), len(big))
	}
	once := map[string]bool{}
	for _, id := range small {
		if once[id] {
			t.Fatalf("record %s on two pages", id)
		}
		once[id] = true
	}

	// One node down: the others answer and the missing one is named.
	nodes[2].Stop(t)
	testutil.WaitFor(t, 30*time.Second, "node3 to be missing from log queries", func() bool {
		page := queryLogs[systemRecord](t, c, "system", url.Values{"q": {"node started"}})
		return len(page.Missing) == 1 && page.Missing[0].ServerID == "node3" && len(page.Items) == 2
	})
}

// TestLogsSurviveARestartAndKeepNoSecrets: records are still there after a restart, and no
// password, token, private key or other secret set through the API is in the store's file
// or in any log response.
func TestLogsSurviveARestartAndKeepNoSecrets(t *testing.T) {
	dir := t.TempDir()
	n := testutil.StartNode(t, dir)
	c := n.Admin(t)
	ctx := context.Background()
	cert := testutil.NewCA(t).Issue(t, "s.example.com", "s.example.com")
	keyLine := strings.Split(cert.KeyPEM, "\n")[1]
	secrets := []string{"user-password-0001", "ctwing-app-secret-0001", "media-secret-0001", "mqtt-client-password-0001", keyLine, c.Token}
	for _, req := range []struct {
		path string
		body obj
	}{
		{"/api/v1/users", obj{"username": "u1", "password": secrets[0], "role": "viewer"}},
		{"/api/v1/gateways", obj{"name": "c", "provider": "Ctwing", "protocol": "official", "configuration": obj{"appKey": "k", "appSecret": secrets[1]}}},
		{"/api/v1/media-servers", obj{"name": "m", "provider": "zlmedia", "configuration": obj{"secret": secrets[2], "apiHost": "h", "apiPort": 1, "rtpIp": "10.0.0.1", "rtpPort": 2}}},
		{"/api/v1/network-components", obj{"name": "m", "type": "MQTT_CLIENT", "configuration": obj{"remoteHost": "h", "remotePort": 1, "password": secrets[3]}}},
		{"/api/v1/certificates", obj{"name": "c", "cert": cert.CertPEM, "key": cert.KeyPEM}},
		{"/api/v1/network-components", obj{"name": strings.Repeat("x", 65), "type": "MQTT_CLIENT", "configuration": obj{"remoteHost": "h", "remotePort": 1, "password": secrets[3]}}},
	} {
		_, _ = c.Do(ctx, http.MethodPost, req.path, req.body, nil)
	}
	_, _, _ = n.Client("").Login(ctx, "u1", secrets[0])
	flushLogs(t, n)
	page := queryLogs[accessRecord](t, c, "access", url.Values{"pageSize": {"500"}})
	if len(page.Items) < 8 {
		t.Fatalf("%d access records, want at least 8", len(page.Items))
	}
	body, _ := json.Marshal(page)
	sys, _ := json.Marshal(queryLogs[systemRecord](t, c, "system", url.Values{"pageSize": {"500"}}))
	n.Stop(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*.db"))
	var stored []byte
	for _, f := range files {
		b, _ := os.ReadFile(f)
		stored = append(stored, b...)
	}
	if len(stored) == 0 {
		t.Fatal("no store files found")
	}
	for _, s := range secrets {
		for where, b := range map[string][]byte{"the store files": stored, "the access log API": body, "the system log API": sys} {
			if strings.Contains(string(b), s) {
				t.Errorf("%s carry the secret %.12q…", where, s)
			}
		}
	}

	// After a restart the records are still there.
	n2 := testutil.StartNode(t, dir)
	again := queryLogs[accessRecord](t, n2.Admin(t), "access", url.Values{"pageSize": {"500"}, "path": {"/api/v1/gateways"}})
	if len(again.Items) == 0 {
		t.Fatal("access records lost in a restart")
	}
}

// TestAccessLogCannotBeDodgedOrForged: a client cannot skip its access record by claiming
// to be a forwarding node (without a cluster key anyone could sign that), cannot choose the
// recorded ip, and cannot smuggle a secret past redaction with a case-folded field name.
func TestAccessLogCannotBeDodgedOrForged(t *testing.T) {
	n := testutil.StartNode(t, "") // no cluster key
	c := n.Admin(t)
	ctx := context.Background()
	h := http.Header{
		api.ForwardedHeader: {"node9"},
		auth.InternalHeader: {auth.SignInternal(nil, http.MethodPost, "/api/v1/products", time.Now())},
		"X-Forwarded-For":   {"203.0.113.9"},
		"X-Real-Ip":         {"203.0.113.9"},
	}
	resp, err := c.Raw(ctx, http.MethodPost, "/api/v1/products", strings.NewReader(`{"id":"dodge","name":"dodge"}`), "application/json", h)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// encoding/json matches "pasſword" (long s) to Password.
	if _, err := c.Do(ctx, http.MethodPost, "/api/v1/users", obj{"username": "u2", "pasſword": "folded-secret-0001", "role": "viewer"}, nil); err != nil {
		t.Fatal(err)
	}
	flushLogs(t, n)
	page := queryLogs[accessRecord](t, c, "access", url.Values{"method": {"POST"}, "path": {"/api/v1/products"}})
	if len(page.Items) != 1 || page.Items[0].IP != "127.0.0.1" {
		t.Fatalf("records of the 'forwarded' create: %+v; want one, with ip 127.0.0.1", page.Items)
	}
	users := queryLogs[accessRecord](t, c, "access", url.Values{"path": {"/api/v1/users"}, "method": {"POST"}})
	b, _ := json.Marshal(users)
	if len(users.Items) != 1 || strings.Contains(string(b), "folded-secret-0001") {
		t.Fatalf("user create records %s: the folded password field leaked", b)
	}
}
