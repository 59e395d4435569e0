package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/cluster"
	"github.com/linkops/linkops/media"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/sip"
	"github.com/linkops/linkops/video"
)

// Video is what the API needs from this node's GB/T 28181 side.
type Video interface {
	// Channels is the catalog of a device registered on this node; false when it is not
	// registered here.
	Channels(deviceID string) ([]sip.Channel, bool)
	// Play starts (or answers the playing) stream of a channel of a camera registered here.
	Play(ctx context.Context, deviceID, channelID string) (*video.Stream, error)
	// Stop ends it.
	Stop(ctx context.Context, deviceID, channelID string) error
}

// VideoRequest is the body of video/play and video/stop.
type VideoRequest struct {
	ChannelID string `json:"channelId"`
}

// videoRouteTimeout bounds a play: the camera's 10 s, the media server's calls, the hop
// to the node holding the registration.
const videoRouteTimeout = 30 * time.Second

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

	s.add(&Route{Method: http.MethodPost, Path: "/api/v1/devices/:id/video/play", Access: Admin, Tag: "devices", Local: true,
		Timeout: videoRouteTimeout,
		Summary: "Play a channel of a GB/T 28181 camera: a healthy media server opens an RTP port, the node holding the camera's registration sends INVITE; answers the stream URLs",
		Request: VideoRequest{}, Response: video.Stream{}}, s.videoPlay)
	s.add(&Route{Method: http.MethodPost, Path: "/api/v1/devices/:id/video/stop", Access: Admin, Tag: "devices", Local: true,
		Timeout: videoRouteTimeout, Status: http.StatusNoContent,
		Summary: "Stop a channel's stream: BYE to the camera, the RTP port closed", Request: VideoRequest{}}, s.videoStop)
	s.add(&Route{Method: http.MethodPost, Path: internalDevicesPath + ":id/video/play", Access: Internal, Tag: "internal", Local: true,
		Timeout: videoRouteTimeout,
		Summary: "Play a channel of a camera registered on this node", Request: VideoRequest{}, Response: video.Stream{}},
		func(c echo.Context) error {
			req, err := videoRequest(c)
			if err != nil {
				return err
			}
			st, err := s.localPlay(c.Request().Context(), c.Param("id"), req.ChannelID)
			if err != nil {
				return err
			}
			return c.JSON(http.StatusOK, st)
		})
	s.add(&Route{Method: http.MethodPost, Path: internalDevicesPath + ":id/video/stop", Access: Internal, Tag: "internal", Local: true,
		Timeout: videoRouteTimeout, Status: http.StatusNoContent,
		Summary: "Stop a channel's stream played from this node", Request: VideoRequest{}},
		func(c echo.Context) error {
			req, err := videoRequest(c)
			if err != nil {
				return err
			}
			if err := s.localStop(c.Request().Context(), c.Param("id"), req.ChannelID); err != nil {
				return err
			}
			return c.NoContent(http.StatusNoContent)
		})
}

func videoRequest(c echo.Context) (VideoRequest, error) {
	var req VideoRequest
	if err := decodeJSON(c, &req); err != nil {
		return req, err
	}
	if !video.ValidChannel(req.ChannelID) {
		return req, invalid(resource.Errors{{Field: "channelId", Message: "give the channel's id (letters, digits, - and _, up to 64; GB/T 28181 ids are 20 digits)"}})
	}
	return req, nil
}

// videoPlay plays on the node holding the camera's registration.
func (s *Server) videoPlay(c echo.Context) error {
	req, id, holder, err := s.videoTarget(c)
	if err != nil {
		return err
	}
	var st *video.Stream
	if holder == s.cfg.NodeID {
		st, err = s.localPlay(c.Request().Context(), id, req.ChannelID)
	} else {
		st = &video.Stream{}
		err = relayed(s.cfg.Raft.CallNode(c.Request().Context(), holder, cluster.Call{Method: http.MethodPost,
			Path: internalDevicesPath + url.PathEscape(id) + "/video/play", Body: req}, st))
	}
	if err != nil {
		return err
	}
	s.log.Info("video play", "device", id, "channel", req.ChannelID, "node", holder, "stream", st.StreamID,
		"media_server", st.MediaServerID, "user", currentUser(c).Username)
	return c.JSON(http.StatusOK, st)
}

// videoTarget reads a video request and finds the node holding the camera's registration.
func (s *Server) videoTarget(c echo.Context) (req VideoRequest, id, holder string, err error) {
	if req, err = videoRequest(c); err != nil {
		return req, "", "", err
	}
	id, holder, err = s.deviceHolder(c)
	return req, id, holder, err
}

func (s *Server) videoStop(c echo.Context) error {
	req, id, holder, err := s.videoTarget(c)
	if err != nil {
		return err
	}
	if holder == s.cfg.NodeID {
		err = s.localStop(c.Request().Context(), id, req.ChannelID)
	} else {
		err = relayed(s.cfg.Raft.CallNode(c.Request().Context(), holder, cluster.Call{Method: http.MethodPost,
			Path: internalDevicesPath + url.PathEscape(id) + "/video/stop", Body: req}, nil))
	}
	if err != nil {
		return err
	}
	s.log.Info("video stop", "device", id, "channel", req.ChannelID, "node", holder, "user", currentUser(c).Username)
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) localPlay(ctx context.Context, id, channel string) (*video.Stream, error) {
	if s.cfg.Video == nil {
		return nil, errDeviceOffline
	}
	st, err := s.cfg.Video.Play(ctx, id, channel)
	return st, videoProblem(err)
}

func (s *Server) localStop(ctx context.Context, id, channel string) error {
	if s.cfg.Video == nil {
		return errDeviceOffline
	}
	return videoProblem(s.cfg.Video.Stop(ctx, id, channel))
}

// videoProblem maps the video side's errors to their problems.
func videoProblem(err error) error {
	var refused *sip.RefusedError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sip.ErrNotRegistered):
		return problem(http.StatusConflict, "device_offline", "the camera is not registered (offline)")
	case errors.Is(err, sip.ErrInviteTimeout):
		return problem(http.StatusGatewayTimeout, "device_timeout", "the camera did not answer the INVITE within %s; its RTP port was closed again", video.PlayTimeout)
	case errors.As(err, &refused):
		return problem(http.StatusBadGateway, "device_refused", "%v", err)
	case errors.Is(err, media.ErrNoMediaServer):
		return problem(http.StatusServiceUnavailable, "no_media_server", "%v", err)
	case errors.Is(err, video.ErrMediaServer):
		return problem(http.StatusBadGateway, "media_server_error", "%v", err)
	case errors.Is(err, video.ErrUnknownChannel):
		return problem(http.StatusNotFound, "channel_not_found", "%v", err)
	case errors.Is(err, video.ErrNotPlaying):
		return problem(http.StatusNotFound, "not_playing", "the channel has no stream playing")
	}
	return err
}

// relayed turns another node's problem answer into the same problem here (the node that
// did the work knows best what went wrong); a node that is down holds no camera.
func relayed(err error) error {
	var pe *cluster.PeerError
	if errors.As(err, &pe) {
		var p Problem
		if json.Unmarshal([]byte(pe.Body), &p) == nil && p.Code != "" && p.Status == pe.Status {
			return &p
		}
	}
	if errors.Is(err, cluster.ErrNodeDown) {
		return errDeviceOffline
	}
	return err
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
