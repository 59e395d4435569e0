package resource

import (
	"net"
	"strings"
)

// ProviderZLMedia is the only streaming media server provider: ZLMediaKit.
const ProviderZLMedia = "zlmedia"

// MediaServer is a streaming media server that video devices push RTP to (流媒体服务).
type MediaServer struct {
	Meta
	Name          string      `json:"name"`
	Provider      string      `json:"provider"`
	Configuration MediaConfig `json:"configuration"`
	Description   string      `json:"description,omitempty"`
	Switch
}

// MediaConfig is how linkops calls the server's API and where devices push their streams.
type MediaConfig struct {
	// Secret authenticates calls to the server's API. Write-only.
	Secret  string `json:"secret,omitempty" secret:"true"`
	APIHost string `json:"apiHost"`
	APIPort int    `json:"apiPort"`
	// RTPIP is where devices push streams; some devices only accept an IP address.
	RTPIP   string `json:"rtpIp"`
	RTPPort int    `json:"rtpPort,omitempty"`
	// DynamicRTPPortRange, when set, opens one port per stream from [start, end].
	DynamicRTPPortRange []int `json:"dynamicRtpPortRange,omitempty"`
	// RTSPPort and RTMPPort, when set, add rtsp:// and rtmp:// URLs to a play's answer.
	RTSPPort int `json:"rtspPort,omitempty"`
	RTMPPort int `json:"rtmpPort,omitempty"`
}

// DisplayName is the server's name, for search and sorting.
func (m *MediaServer) DisplayName() string { return m.Name }

// MediaServers is the media server collection.
var MediaServers = Register(&Kind{
	Name:     "media-servers",
	New:      func() Object { return new(MediaServer) },
	Stateful: true,
	Filters: map[string]func(Object) string{
		"provider": func(o Object) string { return o.(*MediaServer).Provider },
		"state":    func(o Object) string { return o.(*MediaServer).State },
	},
})

// Validate checks every field and reports every bad one.
func (m *MediaServer) Validate() Errors {
	var errs Errors
	ValidateID(&errs, m.ID)
	ValidateName(&errs, "name", m.Name)
	ValidateDescription(&errs, "description", m.Description)
	switch m.Provider {
	case ProviderZLMedia:
	case "":
		errs.Add("provider", "is required: zlmedia")
	default:
		errs.Add("provider", "%q is not a media server provider; use zlmedia", m.Provider)
	}
	c := &m.Configuration
	if c.Secret == "" {
		errs.Add("configuration.secret", "is required: the API secret of the media server")
	} else if len(c.Secret) > 256 {
		errs.Add("configuration.secret", "must be at most 256 characters")
	}
	switch {
	case c.APIHost == "":
		errs.Add("configuration.apiHost", "is required: the host of the media server's HTTP API")
	case !validHost(strings.TrimSuffix(c.APIHost, ".")):
		errs.Add("configuration.apiHost", "%q is not a valid host name or IP address (no scheme, no port)", c.APIHost)
	}
	validatePort(&errs, "configuration.apiPort", c.APIPort, true)
	switch {
	case c.RTPIP == "":
		errs.Add("configuration.rtpIp", "is required: the address devices push RTP streams to")
	case net.ParseIP(c.RTPIP) == nil && !validHost(c.RTPIP):
		errs.Add("configuration.rtpIp", "%q is not a valid IP address", c.RTPIP)
	}
	validatePort(&errs, "configuration.rtpPort", c.RTPPort, false)
	if r := c.DynamicRTPPortRange; r != nil {
		switch {
		case len(r) != 2:
			errs.Add("configuration.dynamicRtpPortRange", "must be [start, end]")
		case r[0] < 1 || r[0] > 65535 || r[1] < 1 || r[1] > 65535:
			errs.Add("configuration.dynamicRtpPortRange", "ports must be from 1 to 65535")
		case r[0] > r[1]:
			errs.Add("configuration.dynamicRtpPortRange", "start %d is after end %d", r[0], r[1])
		case c.RTPPort != 0 && c.RTPPort >= r[0] && c.RTPPort <= r[1]:
			errs.Add("configuration.rtpPort", "%d lies inside dynamicRtpPortRange %d-%d", c.RTPPort, r[0], r[1])
		}
	}
	// Neither rtpPort nor a range: each stream gets a port the server picks (SPEC §5.3).
	validatePort(&errs, "configuration.rtspPort", c.RTSPPort, false)
	validatePort(&errs, "configuration.rtmpPort", c.RTMPPort, false)
	ValidateState(&errs, &m.Switch)
	return errs
}
