package api

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/cluster"
)

// registerInternalRoutes serves the calls nodes make on each other (cluster package's
// peer client): raft status for bootstrapping and the node list, and the leader's read
// index for linearizable reads on followers.
func (s *Server) registerInternalRoutes() {
	s.add(&Route{Method: http.MethodGet, Path: cluster.StatusPath, Access: Internal, Tag: "internal", Local: true,
		Summary: "This node's raft state", Response: cluster.PeerStatus{}}, func(c echo.Context) error {
		return c.JSON(http.StatusOK, s.cfg.Raft.Status())
	})
	s.add(&Route{Method: http.MethodGet, Path: cluster.ReadIndexPath, Access: Internal, Tag: "internal", Local: true,
		Summary: "The leader's commit index, after confirming leadership", Response: cluster.ReadIndexResponse{}}, func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RequestTimeout)
		defer cancel()
		idx, err := s.cfg.Raft.LeaderReadIndex(ctx)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, cluster.ReadIndexResponse{Index: idx})
	})
}
