package api

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/resource"
)

// Gateways is what the API needs from this node's data plane for a gateway's status: its
// state here (the Modbus poller of a modbus-tcp gateway, SPEC §5.3).
type Gateways interface {
	GatewayStatus(g *resource.Gateway) listeners.Status
}

// GatewayStatusList is the body of GET /api/v1/gateways/{id}/status.
type GatewayStatusList struct {
	Items []listeners.Status `json:"items"`
}

func (s *Server) registerGatewayStatusRoutes() {
	if s.cfg.Gateways == nil {
		return
	}
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/gateways/:id/status", Access: Viewer, Tag: "gateways",
		Summary: "The gateway's state on every node of the cluster, gathered live", Response: GatewayStatusList{}}, s.gatewayStatus)
	s.add(&Route{Method: http.MethodGet, Path: internalGatewaysPath + ":id/status", Access: Internal, Tag: "internal", Local: true,
		Summary: "The gateway's state on this node", Response: listeners.Status{}}, func(c echo.Context) error {
		g, err := s.gateway(c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, s.cfg.Gateways.GatewayStatus(g))
	})
}

func (s *Server) gateway(id string) (*resource.Gateway, error) {
	o, err := s.cfg.Store.Get(resource.Gateways, id)
	if err != nil {
		return nil, err
	}
	return o.(*resource.Gateway), nil
}

// gatewayStatus asks every node, like componentStatus: a node that does not answer is
// listed as unreachable.
func (s *Server) gatewayStatus(c echo.Context) error {
	g, err := s.gateway(c.Param("id"))
	if err != nil {
		return err
	}
	items := s.statusOfEveryNode(c, internalGatewaysPath+url.PathEscape(g.ID)+"/status",
		func() listeners.Status { return s.cfg.Gateways.GatewayStatus(g) })
	return c.JSON(http.StatusOK, GatewayStatusList{Items: items})
}
