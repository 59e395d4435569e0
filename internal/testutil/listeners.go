package testutil

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/listeners"
)

// NodeHosts are the loopback addresses that stand for three machines in cluster tests:
// three nodes on one host cannot bind the same address and port, so each node's
// per-node configuration binds its own (SPEC §4.3.1 tests, issue 9).
var NodeHosts = []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}

// FreePort finds a port that network ("tcp" or "udp") can bind on every host.
func FreePort(t testing.TB, network string, hosts ...string) int {
	t.Helper()
	if len(hosts) == 0 {
		hosts = NodeHosts
	}
	for range 100 {
		port := 0
		var closers []func() error
		ok := true
		for _, h := range hosts {
			addr := net.JoinHostPort(h, fmt.Sprint(port))
			var err error
			if network == "udp" {
				var pc net.PacketConn
				if pc, err = net.ListenPacket("udp", addr); err == nil {
					closers = append(closers, pc.Close)
					port = pc.LocalAddr().(*net.UDPAddr).Port
				}
			} else {
				var ln net.Listener
				if ln, err = net.Listen("tcp", addr); err == nil {
					closers = append(closers, ln.Close)
					port = ln.Addr().(*net.TCPAddr).Port
				}
			}
			if err != nil {
				ok = false
				break
			}
		}
		for _, c := range closers {
			_ = c()
		}
		if ok {
			return port
		}
	}
	t.Fatalf("no %s port free on %v", network, hosts)
	return 0
}

// PerNodeComponent is the body of a component configured per node: node i binds
// NodeHosts[i] (for each index in which) on port, with the extra configuration keys.
func PerNodeComponent(id, typ string, port int, extra map[string]any, which ...int) map[string]any {
	if len(which) == 0 {
		which = []int{0, 1, 2}
	}
	var cluster []map[string]any
	for _, i := range which {
		cfg := map[string]any{"host": NodeHosts[i], "port": port}
		for k, v := range extra {
			cfg[k] = v
		}
		cluster = append(cluster, map[string]any{"serverId": fmt.Sprintf("node%d", i+1), "configuration": cfg})
	}
	return map[string]any{"id": id, "name": id, "type": typ, "shareCluster": false, "cluster": cluster}
}

// ComponentStatus fetches GET /network-components/{id}/status, by node id.
func ComponentStatus(t testing.TB, c *client.Client, id string) map[string]listeners.Status {
	t.Helper()
	m, err := componentStatus(c, id)
	if err != nil {
		t.Fatalf("status of %s: %v", id, err)
	}
	return m
}

func componentStatus(c *client.Client, id string) (map[string]listeners.Status, error) {
	var out struct {
		Items []listeners.Status `json:"items"`
	}
	if _, err := c.Do(context.Background(), http.MethodGet, "/api/v1/network-components/"+url.PathEscape(id)+"/status", nil, &out); err != nil {
		return nil, err
	}
	m := map[string]listeners.Status{}
	for _, st := range out.Items {
		m[st.ServerID] = st
	}
	return m, nil
}

// WaitComponentStatus polls the status until cond holds; an answer that is an error (a
// leader election under load, say) is asked again, not a failure.
func WaitComponentStatus(t testing.TB, c *client.Client, id, what string, cond func(map[string]listeners.Status) bool) map[string]listeners.Status {
	t.Helper()
	var got map[string]listeners.Status
	var last error
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := componentStatus(c, id)
		if err == nil && cond(m) {
			return m
		}
		if err == nil {
			got = m
		}
		last = err
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30s waiting for component %s: %s; last status %+v, last error %v", id, what, got, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitComponentStates waits until the component's status shows each node in the wanted
// state, and returns it.
func WaitComponentStates(t testing.TB, c *client.Client, id string, want map[string]string) map[string]listeners.Status {
	t.Helper()
	return WaitComponentStatus(t, c, id, fmt.Sprintf("states %v", want), func(got map[string]listeners.Status) bool {
		for node, state := range want {
			if got[node].State != state {
				return false
			}
		}
		return true
	})
}

// DebugEvent is one event of a component's debug stream.
type DebugEvent struct {
	Kind string
	Data map[string]any
}

// DebugStream follows GET /network-components/{id}/debug on node (through token's
// session); it returns once the stream is ready, with the ready event's data.
type DebugStream struct {
	Ready  map[string]any
	events chan DebugEvent
}

// OpenDebug opens the debug stream of component id through addr (an API address).
func OpenDebug(t testing.TB, addr, token, id, node string) *DebugStream {
	t.Helper()
	u := "http://" + addr + "/api/v1/network-components/" + url.PathEscape(id) + "/debug"
	if node != "" {
		u += "?node=" + url.QueryEscape(node)
	}
	return OpenEvents(t, u, token)
}

// OpenEvents opens a server-sent-event stream of the API (a device's messages, a
// component's debug stream) at the absolute URL u.
func OpenEvents(t testing.TB, u, token string) *DebugStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var resp *http.Response
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		var err error
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("open event stream: %v", err)
		}
		if resp.StatusCode == http.StatusOK {
			break
		}
		resp.Body.Close()
		// 503: no leader for the read barrier yet (an election on a loaded machine).
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("event stream %s: status %d", u, resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	d := &DebugStream{events: make(chan DebugEvent, 4096)}
	go func() {
		defer resp.Body.Close()
		defer close(d.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var kind string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				kind = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				var data map[string]any
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &data)
				select {
				case d.events <- DebugEvent{Kind: kind, Data: data}:
				default: // the test reads too slowly; it will time out looking
				}
			}
		}
	}()
	e := d.Next(t, "ready", nil)
	d.Ready = e.Data
	return d
}

// Next returns the next event of kind that match accepts (nil: any), skipping others.
func (d *DebugStream) Next(t testing.TB, kind string, match func(map[string]any) bool) DebugEvent {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e, ok := <-d.events:
			if !ok {
				t.Fatalf("debug stream ended while waiting for %s", kind)
			}
			if e.Kind == kind && (match == nil || match(e.Data)) {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event on the debug stream within 30 s", kind)
		}
	}
}
