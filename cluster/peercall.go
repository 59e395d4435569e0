package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"
)

// ErrNodeDown: the node is known but gossip says it is dead or has left, or it has not
// told its API address yet; nothing was sent. (A node nobody knows is ErrUnknownNode.)
var ErrNodeDown = errors.New("node is not reachable")

// Call is one request to a node's internal API: any method, a path, a query, and a body
// sent as JSON (nil: none). Every call is signed with the cluster key.
type Call struct {
	Method string
	Path   string
	Query  url.Values
	Body   any
}

// Missing names a node that a fan-out could not ask, and why.
type Missing struct {
	ServerID string `json:"serverId"`
	Error    string `json:"error"`
}

// Member returns the member with id, or ErrUnknownNode.
func (c *Cluster) Member(id string) (Member, error) {
	for _, m := range c.Peers() {
		if m.ID == id {
			return m, nil
		}
	}
	return Member{}, fmt.Errorf("%w: %s", ErrUnknownNode, id)
}

// reachable reports why a member cannot be called, or nil.
func reachable(m Member) error {
	if m.Status == StatusDead || m.Status == StatusLeft || m.APIAddr == "" {
		return fmt.Errorf("%w: node %s is %s", ErrNodeDown, m.ID, m.Status)
	}
	return nil
}

// CallNode sends call to node id and decodes its JSON answer into out (nil: ignored). A
// non-2xx answer is a *PeerError.
func (c *Cluster) CallNode(ctx context.Context, id string, call Call, out any) error {
	resp, err := c.StreamNode(ctx, id, call)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("node %s %s: decode the answer: %w", id, call.Path, err)
	}
	return nil
}

// StreamNode sends call to node id and returns the response for the caller to read (a
// server-sent-event stream, say) and close. A non-2xx answer is a *PeerError.
func (c *Cluster) StreamNode(ctx context.Context, id string, call Call) (*http.Response, error) {
	m, err := c.Member(id)
	if err != nil {
		return nil, err
	}
	if err := reachable(m); err != nil {
		return nil, err
	}
	return c.peers.do(ctx, m.APIAddr, call)
}

// do sends one signed call to the node whose API listens at apiAddr.
func (p *peerClient) do(ctx context.Context, apiAddr string, call Call) (*http.Response, error) {
	method := call.Method
	if method == "" {
		method = http.MethodGet
	}
	full := call.Path
	if len(call.Query) > 0 {
		full += "?" + call.Query.Encode()
	}
	var body io.Reader
	if call.Body != nil {
		b, err := json.Marshal(call.Body)
		if err != nil {
			return nil, fmt.Errorf("encode the body of %s: %w", call.Path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+apiAddr+full, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	p.sign(req)
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, &PeerError{Addr: apiAddr, Path: call.Path, Status: resp.StatusCode, Body: string(b)}
	}
	return resp, nil
}

// Fleet is what a fan-out needs to know: every member, and which one is this node.
type Fleet interface {
	Peers() []Member
	LocalID() string
}

// LocalID is this node's id.
func (c *Cluster) LocalID() string { return c.cfg.NodeID }

// FanOut asks every member that has not left (or only node, when it is not empty) by
// calling ask concurrently, each under its own timeout, and returns the answers by node id
// and the nodes that could not be asked or did not answer, sorted. ask is called for this
// node too: it answers from its own state there. Dead members are reported missing
// without a call, so a fan-out never waits on a node gossip knows is gone; a node that is
// named but unknown is reported missing too.
func FanOut[T any](ctx context.Context, c Fleet, node string, timeout time.Duration, ask func(ctx context.Context, m Member) (T, error)) (map[string]T, []Missing) {
	results := map[string]T{}
	var missing []Missing
	var mu sync.Mutex
	var wg sync.WaitGroup
	found := node == ""
	for _, m := range c.Peers() {
		if node != "" && m.ID != node {
			continue
		}
		found = true
		if m.Status == StatusLeft {
			continue
		}
		if m.ID != c.LocalID() {
			if err := reachable(m); err != nil {
				missing = append(missing, Missing{ServerID: m.ID, Error: err.Error()})
				continue
			}
		}
		wg.Add(1)
		go func(m Member) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			v, err := ask(cctx, m)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				missing = append(missing, Missing{ServerID: m.ID, Error: err.Error()})
				return
			}
			results[m.ID] = v
		}(m)
	}
	wg.Wait()
	if !found {
		missing = append(missing, Missing{ServerID: node, Error: "no such node in this cluster"})
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].ServerID < missing[j].ServerID })
	return results, missing
}
