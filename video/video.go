package video

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/linkops/linkops/media"
	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/sip"
)

// PlayTimeout is how long a play waits for the camera's answer to its INVITE (SPEC §5.3).
var PlayTimeout = 10 * time.Second

// Errors callers match with errors.Is (besides sip.ErrNotRegistered, sip.ErrInviteTimeout,
// *sip.RefusedError and media.ErrNoMediaServer).
var (
	// ErrNotPlaying: a stop names a channel with no stream from this node.
	ErrNotPlaying = errors.New("the channel is not playing")
	// ErrUnknownChannel: the camera's Catalog lists channels, and not this one.
	ErrUnknownChannel = errors.New("the camera's Catalog has no such channel")
	// ErrMediaServer: the chosen server refused to open the stream's RTP port.
	ErrMediaServer = errors.New("the media server refused to open an RTP port")
)

// channelPattern is a channel id as GB/T 28181 writes them (20 digits), with room for
// the devices that use other ids; it keeps anything that would break a SIP URI out.
var channelPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Stream is a stream playing from this node: the answer of a play.
type Stream struct {
	StreamID      string     `json:"streamId"`
	MediaServerID string     `json:"mediaServerId"`
	SSRC          string     `json:"ssrc"`
	URLs          media.URLs `json:"urls"`
	DeviceID      string     `json:"deviceId"`
	ChannelID     string     `json:"channelId"`
	StartedAt     time.Time  `json:"startedAt"`

	server *resource.MediaServer
	port   media.Port
	call   *sip.Call
}

// Config assembles a Service.
type Config struct {
	SIP      *sip.Service
	Media    *media.Servers
	Registry prometheus.Registerer
	Log      *slog.Logger
}

// Service plays and stops the streams of the cameras registered on this node.
type Service struct {
	cfg     Config
	log     *slog.Logger
	plays   *prometheus.CounterVec
	playing prometheus.Gauge
	flight  singleflight.Group

	mu      sync.Mutex
	streams map[string]*Stream // by key(device, channel)
	seq     int
}

// New returns a service; Ended must be wired as the SIP service's CallEnded.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Service{cfg: cfg, log: cfg.Log.With("component", "video"), streams: map[string]*Stream{}, seq: rand.IntN(10000),
		plays: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linkops_video_plays_total",
			Help: "Video plays handled on this node, by outcome (playing, already_playing, no_media_server, media_server_error, device_timeout, device_refused, device_offline, channel_not_found, failed)."},
			[]string{"outcome"}),
		playing: prometheus.NewGauge(prometheus.GaugeOpts{Name: "linkops_video_streams",
			Help: "Video streams playing from this node."})}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(s.plays, s.playing)
	}
	return s
}

func key(deviceID, channelID string) string { return deviceID + "_" + channelID }

// ValidChannel reports whether id can name a channel.
func ValidChannel(id string) bool { return channelPattern.MatchString(id) }

// Play starts the channel's stream, or answers the stream already playing from this node.
// Concurrent plays of one channel share one INVITE.
func (s *Service) Play(ctx context.Context, deviceID, channelID string) (*Stream, error) {
	k := key(deviceID, channelID)
	v, err, _ := s.flight.Do(k, func() (any, error) {
		s.mu.Lock()
		st := s.streams[k]
		s.mu.Unlock()
		if st != nil {
			s.plays.WithLabelValues("already_playing").Inc()
			return st, nil
		}
		st, err := s.play(ctx, deviceID, channelID)
		s.plays.WithLabelValues(outcome(err)).Inc()
		return st, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*Stream), nil
}

func outcome(err error) string {
	var refused *sip.RefusedError
	switch {
	case err == nil:
		return "playing"
	case errors.Is(err, media.ErrNoMediaServer):
		return "no_media_server"
	case errors.Is(err, ErrMediaServer):
		return "media_server_error"
	case errors.Is(err, sip.ErrInviteTimeout):
		return "device_timeout"
	case errors.As(err, &refused):
		return "device_refused"
	case errors.Is(err, sip.ErrNotRegistered):
		return "device_offline"
	case errors.Is(err, ErrUnknownChannel):
		return "channel_not_found"
	}
	return "failed"
}

func (s *Service) play(ctx context.Context, deviceID, channelID string) (*Stream, error) {
	_, domain, ok := s.cfg.SIP.Registration(deviceID)
	if !ok {
		return nil, sip.ErrNotRegistered
	}
	// A camera that answered its Catalog is only asked for a channel it listed; one that
	// did not (some IPCs never do) is asked for whatever the user names.
	if chans, _ := s.cfg.SIP.Channels(deviceID); len(chans) > 0 &&
		!slices.ContainsFunc(chans, func(c sip.Channel) bool { return c.ChannelID == channelID }) {
		return nil, fmt.Errorf("%w: %s (it lists %d)", ErrUnknownChannel, channelID, len(chans))
	}
	server, err := s.cfg.Media.Pick(ctx)
	if err != nil {
		return nil, err
	}
	ssrc := s.nextSSRC(domain)
	streamID := key(deviceID, channelID)
	if single(server) {
		n, _ := strconv.ParseUint(ssrc, 10, 32)
		streamID = fmt.Sprintf("%08X", n)
	}
	port, err := s.cfg.Media.OpenPort(ctx, server, streamID)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMediaServer, server.ID, err)
	}
	call, err := s.cfg.SIP.Invite(ctx, deviceID, sip.Offer{ChannelID: channelID, RTPIP: server.Configuration.RTPIP,
		RTPPort: port.Port, SSRC: ssrc}, PlayTimeout)
	if err != nil {
		s.closePort(server, streamID, port, "the INVITE failed: "+err.Error())
		return nil, err
	}
	st := &Stream{StreamID: streamID, MediaServerID: server.ID, SSRC: ssrc, URLs: media.StreamURLs(server, streamID),
		DeviceID: deviceID, ChannelID: channelID, StartedAt: time.Now().UTC(), server: server, port: port, call: call}
	s.mu.Lock()
	s.streams[key(deviceID, channelID)] = st
	s.mu.Unlock()
	s.playing.Inc()
	s.log.Info("video playing", "device", deviceID, "channel", channelID, "stream", streamID, "media_server", server.ID,
		"rtp_port", port.Port, "ssrc", ssrc)
	return st, nil
}

// single reports whether server uses ZLMediaKit's single-port RTP proxy.
func single(m *resource.MediaServer) bool {
	return len(m.Configuration.DynamicRTPPortRange) != 2 && m.Configuration.RTPPort != 0
}

// nextSSRC is the next SSRC of domain that no stream playing here uses.
func (s *Service) nextSSRC(domain string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	used := make(map[string]bool, len(s.streams))
	for _, st := range s.streams {
		used[st.SSRC] = true
	}
	for range 10000 {
		s.seq = (s.seq + 1) % 10000
		if c := sip.SSRC(domain, s.seq); !used[c] {
			return c
		}
	}
	return sip.SSRC(domain, s.seq)
}

// Stop ends the channel's stream: BYE to the camera, then its RTP port closed.
func (s *Service) Stop(ctx context.Context, deviceID, channelID string) error {
	st := s.take(deviceID, channelID)
	if st == nil {
		return ErrNotPlaying
	}
	if err := s.cfg.SIP.Bye(ctx, st.call); err != nil {
		s.log.Warn("the camera did not confirm the end of its stream", "device", deviceID, "channel", channelID, "error", err)
	}
	s.closePort(st.server, st.StreamID, st.port, "stopped through the API")
	return nil
}

// Ended forgets a stream whose call ended by itself (sip.Config.CallEnded) and closes its
// RTP port.
func (s *Service) Ended(deviceID, channelID, reason string) {
	if st := s.take(deviceID, channelID); st != nil {
		s.closePort(st.server, st.StreamID, st.port, reason)
	}
}

// Channels is the catalog of a camera registered on this node (false: not registered here).
func (s *Service) Channels(deviceID string) ([]sip.Channel, bool) {
	return s.cfg.SIP.Channels(deviceID)
}

// Streams lists the streams playing from this node.
func (s *Service) Streams() []*Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Stream, 0, len(s.streams))
	for _, st := range s.streams {
		out = append(out, st)
	}
	return out
}

func (s *Service) take(deviceID, channelID string) *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(deviceID, channelID)
	st := s.streams[k]
	if st != nil {
		delete(s.streams, k)
		s.playing.Dec()
	}
	return st
}

// closePort closes a stream's RTP port, with its own deadline: the request that opened it
// may be gone.
func (s *Service) closePort(server *resource.MediaServer, streamID string, port media.Port, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Media.ClosePort(ctx, server, streamID, port); err != nil {
		s.log.Warn("closing a stream's RTP port failed", "media_server", server.ID, "stream", streamID, "why", why, "error", err)
		return
	}
	s.log.Info("stream closed", "media_server", server.ID, "stream", streamID, "why", why)
}
