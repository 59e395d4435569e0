package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/linkops/linkops/resource"
)

// Errors callers match with errors.Is.
var (
	// ErrUnhealthy: the server did not answer its API, or answered with an error code.
	ErrUnhealthy = errors.New("media server unhealthy")
	// ErrNoMediaServer: no enabled media server is healthy (503 no_media_server).
	ErrNoMediaServer = errors.New("no healthy enabled media server")
)

// Client calls one ZLMediaKit server's HTTP API. ZLMediaKit checks `secret` on every call,
// even from localhost, and answers {"code": 0, ...} on success, a negative code and "msg"
// otherwise.
type Client struct {
	Server *resource.MediaServer
	HTTP   *http.Client
}

// NewClient is a client of server with a bounded request time.
func NewClient(server *resource.MediaServer) *Client {
	return &Client{Server: server, HTTP: &http.Client{Timeout: 5 * time.Second}}
}

func (c *Client) base() string {
	cfg := c.Server.Configuration
	return "http://" + net.JoinHostPort(cfg.APIHost, strconv.Itoa(cfg.APIPort))
}

// call GETs /index/api/<method> with the secret and params, and decodes the answer into out
// after checking its code.
func (c *Client) call(ctx context.Context, method string, params url.Values, out any) error {
	if params == nil {
		params = url.Values{}
	}
	params.Set("secret", c.Server.Configuration.Secret)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base()+"/index/api/"+method+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrUnhealthy, c.Server.ID, method, redact(err, c.Server.Configuration.Secret))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrUnhealthy, c.Server.ID, method, err)
	}
	var head struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &head) != nil {
		return fmt.Errorf("%w: %s %s: HTTP %d: %.200s", ErrUnhealthy, c.Server.ID, method, resp.StatusCode, body)
	}
	if head.Code != 0 {
		return fmt.Errorf("%w: %s %s: code %d: %s", ErrUnhealthy, c.Server.ID, method, head.Code, head.Msg)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// redact keeps the secret out of an error that quotes the URL.
func redact(err error, secret string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	if secret == "" {
		return err.Error()
	}
	return "request failed"
}

// Health asks getServerConfig: the server is healthy when it answers with code 0.
func (c *Client) Health(ctx context.Context) error {
	return c.call(ctx, "getServerConfig", nil, nil)
}

// OpenRtpServer opens an RTP port for stream (port 0: the server picks one) and returns it.
func (c *Client) OpenRtpServer(ctx context.Context, stream string, port int) (int, error) {
	var out struct {
		Port int `json:"port"`
	}
	err := c.call(ctx, "openRtpServer", url.Values{"port": {strconv.Itoa(port)}, "tcp_mode": {"0"}, "stream_id": {stream}}, &out)
	if err != nil {
		return 0, err
	}
	if out.Port == 0 {
		return 0, fmt.Errorf("%w: %s openRtpServer answered no port", ErrUnhealthy, c.Server.ID)
	}
	return out.Port, nil
}

// CloseRtpServer closes stream's RTP port.
func (c *Client) CloseRtpServer(ctx context.Context, stream string) error {
	return c.call(ctx, "closeRtpServer", url.Values{"stream_id": {stream}}, nil)
}

// Media is one stream a server carries (getMediaList).
type Media struct {
	App    string `json:"app"`
	Stream string `json:"stream"`
	Schema string `json:"schema"`
}

// MediaList lists the server's streams; an empty server answers without "data".
func (c *Client) MediaList(ctx context.Context) ([]Media, error) {
	var out struct {
		Data []Media `json:"data"`
	}
	if err := c.call(ctx, "getMediaList", nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// URLs are the addresses a player uses for a stream (SPEC §5.3).
type URLs struct {
	RTSP string `json:"rtsp,omitempty"`
	RTMP string `json:"rtmp,omitempty"`
	FLV  string `json:"flv"`
	HLS  string `json:"hls"`
}

// StreamURLs builds the play URLs of stream on server: rtsp and rtmp only when their port
// is configured.
func StreamURLs(server *resource.MediaServer, stream string) URLs {
	cfg := server.Configuration
	api := net.JoinHostPort(cfg.APIHost, strconv.Itoa(cfg.APIPort))
	u := URLs{
		FLV: "http://" + api + "/rtp/" + stream + ".live.flv",
		HLS: "http://" + api + "/rtp/" + stream + "/hls.m3u8",
	}
	if cfg.RTSPPort != 0 {
		u.RTSP = "rtsp://" + net.JoinHostPort(cfg.APIHost, strconv.Itoa(cfg.RTSPPort)) + "/rtp/" + stream
	}
	if cfg.RTMPPort != 0 {
		u.RTMP = "rtmp://" + net.JoinHostPort(cfg.APIHost, strconv.Itoa(cfg.RTMPPort)) + "/rtp/" + stream
	}
	return u
}
