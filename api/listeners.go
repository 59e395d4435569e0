package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/cluster"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/resource"
)

// Listeners is what the API needs from this node's data plane: the honest status of a
// component here, and its debug events.
type Listeners interface {
	ComponentStatus(c *resource.NetworkComponent) listeners.Status
	Subscribe(componentID string, buffer int) *listeners.Subscription
}

// ComponentStatusList is the body of GET /api/v1/network-components/{id}/status.
type ComponentStatusList struct {
	Items []listeners.Status `json:"items"`
}

// DebugReady is the data of the debug stream's first event.
type DebugReady struct {
	Nodes   []string          `json:"nodes"`
	Missing []cluster.Missing `json:"missing"`
}

// DebugDropped is the data of an `event: dropped`: events a slow reader lost.
type DebugDropped struct {
	ServerID string `json:"serverId,omitempty"`
	Count    int64  `json:"count"`
}

const (
	internalComponentsPath = "/internal/v1/network-components/"
	// debugBuffer is how many events wait for a debug reader before newer ones are dropped.
	debugBuffer = 1024
	// debugKeepalive: an SSE comment this often keeps proxies from closing an idle stream.
	debugKeepalive = 15 * time.Second
)

func (s *Server) registerListenerRoutes() {
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/network-components/:id/status", Access: Viewer, Tag: "network-components",
		Summary: "The component's state on every node of the cluster, gathered live", Response: ComponentStatusList{}}, s.componentStatus)
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/network-components/:id/debug", Access: Admin, Tag: "network-components", Raw: true,
		Summary: "Server-sent events of what the component receives on every node (?node= narrows)"}, s.componentDebug)
	s.add(&Route{Method: http.MethodGet, Path: internalComponentsPath + ":id/status", Access: Internal, Tag: "internal", Local: true,
		Summary: "The component's state on this node", Response: listeners.Status{}}, func(c echo.Context) error {
		nc, err := s.component(c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, s.cfg.Listeners.ComponentStatus(nc))
	})
	s.add(&Route{Method: http.MethodGet, Path: internalComponentsPath + ":id/debug", Access: Internal, Tag: "internal", Local: true, Raw: true,
		Summary: "Server-sent events of what the component receives on this node"}, s.localDebug)
}

func (s *Server) component(id string) (*resource.NetworkComponent, error) {
	o, err := s.cfg.Store.Get(resource.NetworkComponents, id)
	if err != nil {
		return nil, err
	}
	return o.(*resource.NetworkComponent), nil
}

// componentStatus asks every node: one item per node of the cluster, a node that does not
// answer listed as unreachable (SPEC §4.3.1) rather than left out.
func (s *Server) componentStatus(c echo.Context) error {
	nc, err := s.component(c.Param("id"))
	if err != nil {
		return err
	}
	items := s.statusOfEveryNode(c, internalComponentsPath+url.PathEscape(nc.ID)+"/status",
		func() listeners.Status { return s.cfg.Listeners.ComponentStatus(nc) })
	return c.JSON(http.StatusOK, ComponentStatusList{Items: items})
}

// statusOfEveryNode gathers a status from every node (local from this one, the internal
// route at path from the others): one item per node, sorted, a node that does not answer
// listed as unreachable rather than left out.
func (s *Server) statusOfEveryNode(c echo.Context, path string, local func() listeners.Status) []listeners.Status {
	answers, missing := cluster.FanOut(c.Request().Context(), s.cfg.Raft, "", s.cfg.RequestTimeout, func(ctx context.Context, m cluster.Member) (listeners.Status, error) {
		if m.ID == s.cfg.NodeID {
			return local(), nil
		}
		var st listeners.Status
		err := s.cfg.Raft.CallNode(ctx, m.ID, cluster.Call{Path: path}, &st)
		return st, err
	})
	out := []listeners.Status{}
	for _, st := range answers {
		out = append(out, st)
	}
	for _, m := range missing {
		out = append(out, listeners.Status{ServerID: m.ServerID, State: listeners.StateUnreachable, Error: m.Error})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ServerID < out[j].ServerID })
	return out
}

// sse writes server-sent events to one response.
type sse struct {
	w http.ResponseWriter
	f *http.ResponseController
}

func startSSE(c echo.Context) *sse {
	h := c.Response().Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.Response().WriteHeader(http.StatusOK)
	s := &sse{w: c.Response(), f: http.NewResponseController(c.Response())}
	_ = s.f.Flush()
	return s
}

func (s *sse) event(name string, data []byte) error {
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, data); err != nil {
		return err
	}
	return s.f.Flush()
}

func (s *sse) json(name string, v any) error {
	b, _ := json.Marshal(v)
	return s.event(name, b)
}

func (s *sse) comment(text string) error {
	if _, err := fmt.Fprintf(s.w, ": %s\n\n", text); err != nil {
		return err
	}
	return s.f.Flush()
}

// localDebug streams this node's events of one component: `event: ready` once
// subscribed, then every event, and `event: dropped` when this node's buffer overflowed.
func (s *Server) localDebug(c echo.Context) error {
	id := c.Param("id")
	if _, err := s.component(id); err != nil {
		return err
	}
	sub := s.cfg.Listeners.Subscribe(id, debugBuffer)
	defer sub.Close()
	out := startSSE(c)
	if err := out.json("ready", DebugReady{Nodes: []string{s.cfg.NodeID}, Missing: []cluster.Missing{}}); err != nil {
		return nil
	}
	events := make(chan sseEvent, debugBuffer)
	var dropped dropCounter
	go relayLocal(c.Request().Context(), sub, s.cfg.NodeID, relayTo(events, &dropped))
	writeEvents(c.Request().Context(), out, events, &dropped)
	return nil
}

// relayTo returns a relay that never blocks: an event the reader has no room for is
// counted in dropped.
func relayTo(events chan sseEvent, dropped *dropCounter) func(sseEvent) {
	return func(e sseEvent) {
		select {
		case events <- e:
		default:
			dropped.add(1)
		}
	}
}

// relayLocal hands this node's events of one subscription to relay until ctx ends,
// reporting the hub's own drops as `dropped` events of this node.
func relayLocal(ctx context.Context, sub *listeners.Subscription, node string, relay func(sseEvent)) {
	relayEvents(ctx, sub.C, sub.Close, sub.Dropped, node, relay, func(e listeners.Event) sseEvent { return sseEvent{e.Kind, e.Data()} })
}

// relayEvents hands a local subscription's events to relay until ctx ends, reporting
// the subscription's own drops as `dropped` events of this node.
func relayEvents[T any](ctx context.Context, events <-chan T, closeSub func(), droppedSince func() int64, node string, relay func(sseEvent), toSSE func(T) sseEvent) {
	defer closeSub()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-events:
			relay(toSSE(e))
		case <-tick.C:
			if n := droppedSince(); n > 0 {
				b, _ := json.Marshal(DebugDropped{ServerID: node, Count: n})
				relay(sseEvent{"dropped", b})
			}
		}
	}
}

// writeEvents writes events to the reader until ctx ends or the reader goes away: each
// second it reports events dropped for this reader, and after a quiet spell it sends a
// keepalive comment.
func writeEvents(ctx context.Context, out *sse, events <-chan sseEvent, dropped *dropCounter) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastWrite := time.Now()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case e := <-events:
			err = out.event(e.name, e.data)
		case <-tick.C:
			if n := dropped.take(); n > 0 {
				err = out.json("dropped", DebugDropped{Count: n})
			} else if time.Since(lastWrite) > debugKeepalive {
				err = out.comment("keepalive")
			} else {
				continue
			}
		}
		if err != nil {
			return
		}
		lastWrite = time.Now()
	}
}

// sseEvent is one event read from a peer's stream.
type sseEvent struct {
	name string
	data []byte
}

// componentDebug merges the debug streams of every node where the component is
// configured (or the one ?node= names). It answers `ready` once every node's stream is
// open or has failed, naming both; a node's events are then relayed as they come. A slow
// reader loses events, counted in `event: dropped`, and never holds up a node.
func (s *Server) componentDebug(c echo.Context) error {
	nc, err := s.component(c.Param("id"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	merged := make(chan sseEvent, debugBuffer)
	var dropped dropCounter
	relay := relayTo(merged, &dropped)
	want := c.QueryParam("node")
	opened, missing := cluster.FanOut(ctx, s.cfg.Raft, want, s.cfg.RequestTimeout, func(octx context.Context, m cluster.Member) (bool, error) {
		if _, ok := nc.Placement().For(m.ID); !ok {
			return false, nil // the component is not configured there: nothing to stream
		}
		if m.ID == s.cfg.NodeID {
			go relayLocal(ctx, s.cfg.Listeners.Subscribe(nc.ID, debugBuffer), m.ID, relay)
			return true, nil
		}
		return true, s.openPeerStream(ctx, octx, m.ID, internalComponentsPath+url.PathEscape(nc.ID)+"/debug", relay)
	})
	ready := DebugReady{Nodes: []string{}, Missing: []cluster.Missing{}}
	for id, streaming := range opened {
		if streaming {
			ready.Nodes = append(ready.Nodes, id)
		}
	}
	sort.Strings(ready.Nodes)
	ready.Missing = append(ready.Missing, missing...)
	out := startSSE(c)
	if out.json("ready", ready) != nil {
		return nil
	}
	writeEvents(ctx, out, merged, &dropped)
	return nil
}

// openPeerStream opens a peer's local event stream at path and waits (under octx) for its
// ready event; the events that follow are relayed until ctx ends.
func (s *Server) openPeerStream(ctx, octx context.Context, node, path string, relay func(sseEvent)) error {
	resp, err := s.cfg.Raft.StreamNode(ctx, node, cluster.Call{Path: path})
	if err != nil {
		return err
	}
	events := make(chan sseEvent, 1)
	go func() {
		defer resp.Body.Close()
		first := true
		readSSE(resp, func(e sseEvent) {
			if first {
				first = false
				events <- e
				return
			}
			relay(e)
		})
		if first {
			close(events)
		}
	}()
	select {
	case e, ok := <-events:
		if !ok || e.name != "ready" {
			return errors.New("the node's event stream ended before it was ready")
		}
		return nil
	case <-octx.Done():
		return fmt.Errorf("the node's event stream did not open: %w", octx.Err())
	}
}

// readSSE calls fn for every event of a server-sent-event stream until it ends.
func readSSE(resp *http.Response, fn func(sseEvent)) {
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20) // a 64 KiB payload is 128 KiB of hex
	var e sseEvent
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if e.name != "" {
				fn(e)
			}
			e = sseEvent{}
		case bytes.HasPrefix(line, []byte("event: ")):
			e.name = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("data: ")):
			e.data = append([]byte(nil), line[len("data: "):]...)
		}
	}
}

type dropCounter struct{ n atomic.Int64 }

func (d *dropCounter) add(n int64) { d.n.Add(n) }
func (d *dropCounter) take() int64 { return d.n.Swap(0) }
