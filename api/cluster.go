package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/raft"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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

// Node is one entry of GET /api/v1/cluster/nodes.
type Node struct {
	NodeInfo
	Role         string     `json:"role"`
	Voter        bool       `json:"voter"`
	Status       string     `json:"status"`
	LastContact  *time.Time `json:"lastContact"`
	AppliedIndex uint64     `json:"appliedIndex"`
}

// NodeList is the body of GET /api/v1/cluster/nodes.
type NodeList struct {
	Items []Node `json:"items"`
}

// RestoreResult is the body answering a snapshot restore.
type RestoreResult struct {
	Restored bool           `json:"restored"`
	Counts   map[string]int `json:"counts"`
}

func (s *Server) registerClusterRoutes() {
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/health", Access: Public, Tag: "cluster",
		Summary: "Health of this node and whether it knows a leader", Response: Health{}}, s.health)
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/cluster/nodes", Access: Viewer, Tag: "cluster",
		Summary: "Every known node with its raft role and status", Response: NodeList{}}, s.nodes)
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/cluster/snapshot", Access: Admin, Tag: "cluster", Raw: true,
		Summary: "Download a verified, compressed snapshot of the whole state"}, s.saveSnapshot)
	s.add(&Route{Method: http.MethodPost, Path: "/api/v1/cluster/snapshot", Access: Admin, Tag: "cluster", Raw: true,
		BodyLimit: s.cfg.MaxSnapshotBytes, Response: RestoreResult{},
		Summary: "Replace the whole state with a snapshot saved by GET /api/v1/cluster/snapshot"}, s.restoreSnapshot)
	s.add(&Route{Method: http.MethodGet, Path: "/metrics", Access: Viewer, Tag: "cluster", Raw: true,
		Summary: "Prometheus metrics of this node"}, echo.WrapHandler(promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})))
}

func (s *Server) health(c echo.Context) error {
	_, leader := s.cfg.Raft.Leader()
	h := Health{Status: "ok", NodeID: s.cfg.Self.ID, Leader: leader, RaftState: s.cfg.Raft.State().String()}
	if leader == "" {
		h.Status = "no_leader"
	}
	return c.JSON(http.StatusOK, h)
}

func (s *Server) nodes(c echo.Context) error {
	servers, err := s.cfg.Raft.Servers()
	if err != nil {
		return err
	}
	_, leader := s.cfg.Raft.Leader()
	out := NodeList{Items: []Node{}}
	for _, srv := range servers {
		n := Node{NodeInfo: NodeInfo{ID: string(srv.ID), RaftAddr: string(srv.Address)},
			Voter: srv.Suffrage == raft.Voter, Role: "follower", Status: "alive"}
		if srv.Suffrage != raft.Voter {
			n.Role = "nonvoter"
		}
		if string(srv.ID) == leader {
			n.Role = "leader"
		}
		if string(srv.ID) == s.cfg.Self.ID {
			n.NodeInfo = s.cfg.Self
			n.AppliedIndex = s.cfg.Raft.AppliedIndex()
			if st := s.cfg.Raft.State(); st == raft.Candidate {
				n.Role = "candidate"
			}
			now := s.now()
			n.LastContact = &now
			if lc := s.cfg.Raft.LastContact(); !lc.IsZero() && n.Role != "leader" {
				lc = lc.UTC()
				n.LastContact = &lc
			}
		}
		out.Items = append(out.Items, n)
	}
	return c.JSON(http.StatusOK, out)
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
	name := fmt.Sprintf("linkops-%s-%s.snap", s.cfg.Self.ID, s.now().Format("20060102T150405Z"))
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
