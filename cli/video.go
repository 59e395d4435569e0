package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

var channelColumns = []column{{"CHANNEL", "channelId"}, {"NAME", "name"}, {"MANUFACTURER", "manufacturer"}, {"MODEL", "model"},
	{"STATUS", "status"}, {"PARENT", "parentId"}}

// deviceChannelsCmd is `linkops device channels ID`: the channels a GB/T 28181 device
// reported in its Catalog.
func deviceChannelsCmd(g *globals, r opResource) *cobra.Command {
	return &cobra.Command{
		Use:   "channels ID",
		Short: "List the channels a GB/T 28181 device reported (its Catalog)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			var out map[string]any
			if _, err := g.client().Do(ctx, http.MethodGet, devicePath(r, args[0], "channels"), nil, &out); err != nil {
				return err
			}
			return g.print(out, channelColumns)
		},
	}
}

// videoCmd is `linkops video`: play and stop a channel of a GB/T 28181 camera.
func videoCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "video", Short: "Play and stop the channels of GB/T 28181 cameras"}
	c.AddCommand(videoPlayCmd(g), videoStopCmd(g))
	return c
}

func videoPath(device, action string) string {
	return "/api/v1/devices/" + url.PathEscape(device) + "/video/" + action
}

// videoStream is the part of the API's answer to a play the table shows.
type videoStream struct {
	StreamID      string `json:"streamId"`
	MediaServerID string `json:"mediaServerId"`
	SSRC          string `json:"ssrc"`
	URLs          struct {
		RTSP string `json:"rtsp"`
		RTMP string `json:"rtmp"`
		FLV  string `json:"flv"`
		HLS  string `json:"hls"`
	} `json:"urls"`
}

func videoPlayCmd(g *globals) *cobra.Command {
	var channel string
	c := &cobra.Command{
		Use:     "play DEVICE --channel CHANNEL",
		Short:   "Play a channel of a camera: a media server receives its stream; prints the stream's URLs",
		Example: "  linkops video play 34020000001320000001 --channel 34020000001310000001",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			var raw json.RawMessage
			if _, err := g.client().Do(ctx, http.MethodPost, videoPath(args[0], "play"), map[string]any{"channelId": channel}, &raw); err != nil {
				return err
			}
			if g.output == "json" {
				return g.print(raw, nil)
			}
			var s videoStream
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("decode the stream: %w", err)
			}
			rows := []map[string]any{{"k": "stream", "v": s.StreamID}, {"k": "media server", "v": s.MediaServerID}, {"k": "ssrc", "v": s.SSRC}}
			for _, u := range []struct{ kind, url string }{{"rtsp", s.URLs.RTSP}, {"rtmp", s.URLs.RTMP}, {"flv", s.URLs.FLV}, {"hls", s.URLs.HLS}} {
				if u.url != "" {
					rows = append(rows, map[string]any{"k": u.kind, "v": u.url})
				}
			}
			return writeRows(g.stdout, rows, []column{{"", "k"}, {"", "v"}}, false)
		},
	}
	c.Flags().StringVar(&channel, "channel", "", "the channel's id (see linkops device channels DEVICE)")
	_ = c.MarkFlagRequired("channel")
	return c
}

func videoStopCmd(g *globals) *cobra.Command {
	var channel string
	c := &cobra.Command{
		Use:   "stop DEVICE --channel CHANNEL",
		Short: "Stop a channel's stream: BYE to the camera, the media server's port closed",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			if _, err := g.client().Do(ctx, http.MethodPost, videoPath(args[0], "stop"), map[string]any{"channelId": channel}, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Stopped channel %s of device %s\n", channel, args[0])
			return nil
		},
	}
	c.Flags().StringVar(&channel, "channel", "", "the channel's id")
	_ = c.MarkFlagRequired("channel")
	return c
}
