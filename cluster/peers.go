package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/linkops/linkops/auth"
)

// Internal API paths that nodes call on each other. The api package serves them; this
// package is their only client.
const (
	StatusPath    = "/internal/v1/status"
	ReadIndexPath = "/internal/v1/read-index"
)

// PeerStatus is what a node says about its own raft state (GET StatusPath).
type PeerStatus struct {
	NodeID       string    `json:"nodeId"`
	RaftState    string    `json:"raftState"`
	Leader       string    `json:"leader"`
	HasState     bool      `json:"hasState"`
	AppliedIndex uint64    `json:"appliedIndex"`
	CommitIndex  uint64    `json:"commitIndex"`
	LastIndex    uint64    `json:"lastIndex"`
	LastContact  time.Time `json:"lastContact"`
}

// ReadIndexResponse answers GET ReadIndexPath on the leader.
type ReadIndexResponse struct {
	Index uint64 `json:"index"`
}

// peerClient calls other nodes' internal API, signing every call with the cluster key.
type peerClient struct {
	key  []byte
	http *http.Client
}

func newPeerClient(key []byte) *peerClient {
	return &peerClient{key: key, http: &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}}}
}

func (p *peerClient) get(ctx context.Context, apiAddr, path string, out any) error {
	resp, err := p.do(ctx, apiAddr, Call{Path: path})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

func (p *peerClient) sign(req *http.Request) {
	req.Header.Set(auth.InternalHeader, auth.SignInternal(p.key, req.Method, signedTarget(req.URL), time.Now()))
}

// SignRequest adds the internal-call proof to a request this node sends to a peer.
func (c *Cluster) SignRequest(req *http.Request) {
	req.Header.Set(auth.InternalHeader, auth.SignInternal(c.cfg.ClusterKey, req.Method, signedTarget(req.URL), time.Now()))
}

// signedTarget is what a signature covers besides the method and time: the path and the
// query, so that a captured signature cannot be replayed for other parameters (another log
// filter, say) within the allowed clock skew.
func signedTarget(u *url.URL) string {
	if u.RawQuery == "" {
		return u.Path
	}
	return u.Path + "?" + u.RawQuery
}

// Authenticated reports whether internal calls are authenticated: without a cluster key
// anyone can sign them, so nothing may rely on a signature for more than reachability.
func (c *Cluster) Authenticated() bool { return len(c.cfg.ClusterKey) > 0 }

// PeerError is a peer's non-200 answer to an internal call.
type PeerError struct {
	Addr, Path string
	Status     int
	Body       string
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Addr, e.Path, e.Status, http.StatusText(e.Status), e.Body)
}

// VerifyRequest checks that a request comes from a node holding the cluster key.
func (c *Cluster) VerifyRequest(req *http.Request) error {
	return auth.VerifyInternal(c.cfg.ClusterKey, req.Header.Get(auth.InternalHeader), req.Method, signedTarget(req.URL), time.Now())
}
