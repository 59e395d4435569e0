package api

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/cluster"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/sip"
)

// Video is what the API needs from this node's GB/T 28181 side.
type Video interface {
	// Channels is the catalog of a device registered on this node; false when it is not
	// registered here.
	Channels(deviceID string) ([]sip.Channel, bool)
}

// ChannelList is GET /api/v1/devices/{id}/channels.
type ChannelList struct {
	Items []sip.Channel `json:"items"`
}

func (s *Server) registerVideoRoutes() {
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/devices/:id/channels", Access: Viewer, Tag: "devices", Local: true,
		Summary:  "The channels a GB/T 28181 device reported (its Catalog), from the node holding its registration",
		Response: ChannelList{}}, s.deviceChannels)
	s.add(&Route{Method: http.MethodGet, Path: internalDevicesPath + ":id/channels", Access: Internal, Tag: "internal", Local: true,
		Summary: "The channels of a GB/T 28181 device registered on this node", Response: ChannelList{}},
		func(c echo.Context) error { return c.JSON(http.StatusOK, s.localChannels(c.Param("id"))) })
}

// localChannels answers from this node: no channels when the device is not registered here.
func (s *Server) localChannels(id string) ChannelList {
	out := ChannelList{Items: []sip.Channel{}}
	if s.cfg.Video != nil {
		if items, ok := s.cfg.Video.Channels(id); ok {
			out.Items = items
		}
	}
	return out
}

// deviceChannels asks the node holding the device's registration; an offline device has
// no channels to show (they live with the registration).
func (s *Server) deviceChannels(c echo.Context) error {
	id := c.Param("id")
	if _, err := s.cfg.Store.Get(resource.Devices, id); err != nil {
		return err
	}
	holder, err := s.holder(id)
	if err != nil || holder == s.cfg.NodeID {
		return c.JSON(http.StatusOK, s.localChannels(id))
	}
	var out ChannelList
	if err := s.cfg.Raft.CallNode(c.Request().Context(), holder, cluster.Call{Method: http.MethodGet,
		Path: internalDevicesPath + url.PathEscape(id) + "/channels"}, &out); err != nil {
		return err
	}
	if out.Items == nil {
		out.Items = []sip.Channel{}
	}
	return c.JSON(http.StatusOK, out)
}
