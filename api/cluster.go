package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/linkops/linkops/cluster"
	"github.com/linkops/linkops/fsm"
)

// Health is the body of GET /api/v1/health.
type Health struct {
	// Status is "ok" when this node knows a leader, "no_leader" otherwise.
	Status    string `json:"status"`
	NodeID    string `json:"nodeId"`
	Leader    string `json:"leader"`
	RaftState string `json:"raftState"`
}

// NodeList is the body of GET /api/v1/cluster/nodes.
type NodeList struct {
	Items []cluster.NodeStatus `json:"items"`
}

// RestoreResult is the body answering a snapshot restore.
type RestoreResult struct {
	Restored bool           `json:"restored"`
	Counts   map[string]int `json:"counts"`
}

func (s *Server) registerClusterRoutes() {
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/health", Access: Public, Tag: "cluster", Local: true,
		Summary: "Health of this node and whether it knows a leader", Response: Health{}}, s.health)
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/cluster/nodes", Access: Viewer, Tag: "cluster", Local: true,
		Summary: "Every known node with its raft role and status", Response: NodeList{}}, s.nodes)
	s.add(&Route{Method: http.MethodDelete, Path: "/api/v1/cluster/nodes/:id", Access: Admin, Tag: "cluster", Status: http.StatusNoContent,
		Summary: "Remove a dead node from raft"}, s.removeNode)
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/cluster/snapshot", Access: Admin, Tag: "cluster", Raw: true, Timeout: SnapshotTimeout,
		Summary: "Download a verified, compressed snapshot of the whole state"}, s.saveSnapshot)
	s.add(&Route{Method: http.MethodPost, Path: "/api/v1/cluster/snapshot", Access: Admin, Tag: "cluster", Raw: true,
		BodyLimit: s.cfg.MaxSnapshotBytes, Response: RestoreResult{}, Timeout: SnapshotTimeout,
		Summary: "Replace the whole state with a snapshot saved by GET /api/v1/cluster/snapshot"}, s.restoreSnapshot)
	s.add(&Route{Method: http.MethodGet, Path: "/metrics", Access: Viewer, Tag: "cluster", Raw: true, Local: true,
		Summary: "Prometheus metrics of this node"}, echo.WrapHandler(promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})))
	// The console's cluster page charts every node from the one node it talks to: a browser
	// may only call its own origin, so that node gathers the others' metrics for it, and a
	// node that does not answer is reported missing, as every fan-out does.
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/cluster/metrics", Access: Viewer, Tag: "cluster", Local: true,
		Summary: "The Prometheus metrics of every node, gathered live (?node= narrows)", Response: ClusterMetrics{}}, s.clusterMetrics)
	s.add(&Route{Method: http.MethodGet, Path: internalMetricsPath, Access: Internal, Tag: "internal", Raw: true, Local: true,
		Summary: "This node's Prometheus metrics, for a peer"}, echo.WrapHandler(promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})))
}

const internalMetricsPath = "/internal/v1/metrics"

// ClusterMetrics is the body of GET /api/v1/cluster/metrics.
type ClusterMetrics struct {
	Items   []NodeMetrics     `json:"items"`
	Missing []cluster.Missing `json:"missing"`
}

// NodeMetrics is one node's metrics in the Prometheus text format.
type NodeMetrics struct {
	ServerID string `json:"serverId"`
	Metrics  string `json:"metrics"`
}

// metricsText is this node's metrics in the Prometheus text format, as /metrics serves them.
func (s *Server) metricsText() (string, error) {
	families, err := s.cfg.Registry.Gather()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// maxNodeMetrics bounds one node's answer: a node's metrics are some hundred KiB.
const maxNodeMetrics = 16 << 20

func (s *Server) clusterMetrics(c echo.Context) error {
	answers, missing := cluster.FanOut(c.Request().Context(), s.cfg.Raft, c.QueryParam("node"), s.cfg.RequestTimeout, func(ctx context.Context, m cluster.Member) (string, error) {
		if m.ID == s.cfg.NodeID {
			return s.metricsText()
		}
		resp, err := s.cfg.Raft.StreamNode(ctx, m.ID, cluster.Call{Path: internalMetricsPath})
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("node %s answered %s", m.ID, resp.Status)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxNodeMetrics))
		return string(b), err
	})
	out := ClusterMetrics{Items: []NodeMetrics{}, Missing: missing}
	if out.Missing == nil {
		out.Missing = []cluster.Missing{}
	}
	for id, text := range answers {
		out.Items = append(out.Items, NodeMetrics{ServerID: id, Metrics: text})
	}
	sort.Slice(out.Items, func(i, j int) bool { return out.Items[i].ServerID < out.Items[j].ServerID })
	return c.JSON(http.StatusOK, out)
}

// SnapshotTimeout bounds a forwarded snapshot save or restore: a large state takes far
// longer than an ordinary write.
const SnapshotTimeout = 30 * time.Minute

func (s *Server) health(c echo.Context) error {
	_, leader := s.cfg.Raft.Leader()
	h := Health{Status: "ok", NodeID: s.cfg.NodeID, Leader: leader, RaftState: s.cfg.Raft.State().String()}
	if leader == "" {
		h.Status = "no_leader"
	}
	return c.JSON(http.StatusOK, h)
}

func (s *Server) nodes(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RequestTimeout)
	defer cancel()
	nodes, err := s.cfg.Raft.Nodes(ctx)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, NodeList{Items: nodes})
}

func (s *Server) removeNode(c echo.Context) error {
	id := c.Param("id")
	err := s.cfg.Raft.RemoveNode(id)
	switch {
	case errors.Is(err, cluster.ErrUnknownNode):
		return problem(http.StatusNotFound, "not_found", "node %q is not in the raft configuration", id)
	case errors.Is(err, cluster.ErrNodeAlive):
		return problem(http.StatusConflict, "node_alive", "%v", err)
	case errors.Is(err, cluster.ErrNodeIsSelf):
		return problem(http.StatusConflict, "node_is_leader", "node %q is the leader; stop it so another node leads, then remove it", id)
	case err != nil:
		return err
	}
	s.log.Warn("node removed from raft", "member", id, "user", currentUser(c).Username)
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) saveSnapshot(c echo.Context) error {
	rc, err := s.cfg.Raft.Snapshot()
	if err != nil {
		return err
	}
	defer rc.Close()
	// Verify before sending a byte: a backup that cannot be restored is worse than none.
	f, err := os.CreateTemp(s.cfg.TempDir, "snapshot-*.tmp")
	if err != nil {
		return fmt.Errorf("snapshot temp file: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, rc); err != nil {
		return fmt.Errorf("copy snapshot: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := fsm.VerifySnapshot(f); err != nil {
		return fmt.Errorf("snapshot failed verification: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	name := fmt.Sprintf("linkops-%s-%s.snap", s.cfg.NodeID, s.now().Format("20060102T150405Z"))
	h := c.Response().Header()
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf("attachment; filename=%q", name))
	h.Set(echo.HeaderContentLength, fmt.Sprint(info.Size()))
	s.log.Info("snapshot saved", "bytes", info.Size(), "user", currentUser(c).Username)
	return c.Stream(http.StatusOK, "application/octet-stream", f)
}

func (s *Server) restoreSnapshot(c echo.Context) error {
	f, err := os.CreateTemp(s.cfg.TempDir, "restore-*.tmp")
	if err != nil {
		return fmt.Errorf("snapshot temp file: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := io.Copy(f, c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return problem(http.StatusBadRequest, "bad_request", "reading the snapshot failed: %v", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	sum, err := fsm.VerifySnapshot(f)
	if err != nil {
		return problem(http.StatusBadRequest, "invalid_snapshot", "%v", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := s.cfg.Raft.Restore(f, n); err != nil {
		return err
	}
	s.log.Warn("state replaced from snapshot", "bytes", n, "counts", sum.Counts, "user", currentUser(c).Username)
	return c.JSON(http.StatusOK, RestoreResult{Restored: true, Counts: sum.Counts})
}
