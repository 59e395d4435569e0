package video_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
)

const (
	domain   = "3402000000"
	serverID = "34020000002000000001"
	password = "gb-secret-2"
	camID    = "34020000001320000011"
	mute     = "34020000001320000012" // a camera that registers and never answers an INVITE
	channel  = "34020000001310000011"
)

// stream is a play's answer.
type stream struct {
	StreamID, MediaServerID, SSRC string
	URLs                          struct{ RTSP, RTMP, FLV, HLS string }
}

// TestVideoPlayOnThreeNodes plays channels of a camera registered on node3 through the API
// of node1, with two healthy media servers and one that is down (SPEC §5.3, issue 12
// point 3).
func TestVideoPlayOnThreeNodes(t *testing.T) {
	nodes := testutil.StartCluster(t, 3)
	admin := nodes[0].Admin(t)
	port := testutil.FreePort(t, "udp")
	testutil.GB28181PerNode(t, admin, len(nodes), port, serverID, domain, password, nil)
	testutil.CreateProductWithDevices(t, admin, "cams", "gb", camID, mute)

	// Three ZLMediaKit stand-ins: z1 opens ports of a dynamic range, z2 lets the server pick
	// one, z3 (down at first) is a single-port RTP proxy.
	z1 := testutil.StartZLM(t, "127.0.0.1", "s1")
	z2 := testutil.StartZLM(t, "127.0.0.1", "s2")
	z3 := testutil.StartZLM(t, "127.0.0.1", "s3")
	z3.SetDown(true)
	zlms := map[string]*testutil.ZLM{"m1": z1, "m2": z2, "m3": z3}
	rtpIPs := map[string]string{"m1": "10.10.0.1", "m2": "10.10.0.2", "m3": "10.10.0.3"}
	for id, conf := range map[string]map[string]any{
		"m1": {"dynamicRtpPortRange": []int{30000, 30099}, "rtspPort": 554, "rtmpPort": 1935},
		"m2": {},
		"m3": {"rtpPort": 10000},
	} {
		z := zlms[id]
		conf["secret"], conf["apiHost"], conf["apiPort"], conf["rtpIp"] = z.Secret, z.Host, z.Port, rtpIPs[id]
		testutil.Do(t, admin, http.MethodPost, "/api/v1/media-servers", map[string]any{"id": id, "name": id, "provider": "zlmedia",
			"configuration": conf, "state": "enabled"}, nil)
	}

	node3 := net.JoinHostPort(testutil.NodeHosts[2], strconv.Itoa(port))
	testutil.WaitSIP(t, node3)
	cam := testutil.DialCamera(t, node3, camID, domain, serverID, password)
	cam.Register(t)
	silent := testutil.DialCamera(t, node3, mute, domain, serverID, password)
	silent.Register(t)
	for _, id := range []string{camID, mute} {
		testutil.WaitDevice(t, admin, id, "online on node1", func(d testutil.Device) bool { return d.State == "online" && d.ServerID == "node3" })
	}

	play := func(c *client.Client, dev, ch string) (stream, error) {
		var s stream
		_, err := c.Do(context.Background(), http.MethodPost, "/api/v1/devices/"+dev+"/video/play", map[string]any{"channelId": ch}, &s)
		return s, err
	}
	stop := func(c *client.Client, dev, ch string) error {
		_, err := c.Do(context.Background(), http.MethodPost, "/api/v1/devices/"+dev+"/video/stop", map[string]any{"channelId": ch}, nil)
		return err
	}
	ssrcLine := regexp.MustCompile(`^0` + domain[3:8] + `[0-9]{4}$`)

	t.Run("50 plays through node1 choose both healthy servers, never the one that is down", func(t *testing.T) {
		chosen := map[string]int{}
		seen := map[string]bool{} // INVITE Call-IDs, so a retransmission is not taken for the next play
		for i := range 50 {
			type result struct {
				s   stream
				err error
			}
			done := make(chan result, 1)
			go func() { s, err := play(admin, camID, channel); done <- result{s, err} }()
			inv := nextInvite(t, cam, seen)
			cam.AnswerInvite(t, inv)
			cam.NextRequest(t, sip.ACK)
			r := <-done
			if r.err != nil {
				t.Fatalf("play %d: %v", i, r.err)
			}
			s := r.s
			chosen[s.MediaServerID]++
			z := zlms[s.MediaServerID]
			if z == nil || s.MediaServerID == "m3" {
				t.Fatalf("play %d chose %q", i, s.MediaServerID)
			}
			wantStream := camID + "_" + channel
			offer := testutil.ParseSDP(string(inv.Body()))
			opened := z.Open()[wantStream]
			switch {
			case s.StreamID != wantStream:
				t.Fatalf("play %d: stream %q, want %q", i, s.StreamID, wantStream)
			case offer.Session != "Play" || offer.IP != rtpIPs[s.MediaServerID]:
				t.Fatalf("play %d on %s: SDP s=%q c=%q, want Play and %s", i, s.MediaServerID, offer.Session, offer.IP, rtpIPs[s.MediaServerID])
			case opened == 0 || offer.Port != opened || offer.Media != fmt.Sprintf("video %d RTP/AVP 96", opened):
				t.Fatalf("play %d on %s: m=%q, the server opened port %d", i, s.MediaServerID, offer.Media, opened)
			case !slices.Contains(offer.Attributes, "recvonly") || !slices.Contains(offer.Attributes, "rtpmap:96 PS/90000"):
				t.Fatalf("play %d: attributes %v", i, offer.Attributes)
			case !ssrcLine.MatchString(offer.SSRC) || s.SSRC != offer.SSRC:
				t.Fatalf("play %d: y=%q, answer ssrc %q", i, offer.SSRC, s.SSRC)
			case inv.GetHeader("Subject") == nil || inv.GetHeader("Subject").Value() != channel+":"+offer.SSRC+","+serverID+":0":
				t.Fatalf("play %d: Subject %v", i, inv.GetHeader("Subject"))
			case inv.Recipient.User != channel:
				t.Fatalf("play %d: INVITE to %s, want the channel", i, inv.Recipient.String())
			}
			api := net.JoinHostPort(z.Host, strconv.Itoa(z.Port))
			if s.URLs.FLV != "http://"+api+"/rtp/"+wantStream+".live.flv" || s.URLs.HLS != "http://"+api+"/rtp/"+wantStream+"/hls.m3u8" {
				t.Fatalf("play %d: urls %+v name another server than %s", i, s.URLs, api)
			}
			if s.MediaServerID == "m1" {
				if opened < 30000 || opened > 30099 || s.URLs.RTSP != "rtsp://127.0.0.1:554/rtp/"+wantStream || s.URLs.RTMP != "rtmp://127.0.0.1:1935/rtp/"+wantStream {
					t.Fatalf("play %d on m1: port %d, urls %+v", i, opened, s.URLs)
				}
			} else if s.URLs.RTSP != "" || s.URLs.RTMP != "" {
				t.Fatalf("play %d on m2 (no rtsp/rtmp port): urls %+v", i, s.URLs)
			}

			stopped := make(chan error, 1)
			go func() { stopped <- stop(admin, camID, channel) }()
			bye := cam.NextRequest(t, sip.BYE)
			if bye.CallID().Value() != inv.CallID().Value() {
				t.Fatalf("BYE for call %s, want %s", bye.CallID().Value(), inv.CallID().Value())
			}
			cam.Answer(t, bye, 200, nil)
			if err := <-stopped; err != nil {
				t.Fatalf("stop %d: %v", i, err)
			}
			if _, open := z.Open()[wantStream]; open {
				t.Fatalf("stop %d: the RTP port of %s is still open on %s", i, wantStream, s.MediaServerID)
			}
		}
		t.Logf("50 plays: %v", chosen)
		if chosen["m1"] == 0 || chosen["m2"] == 0 {
			t.Fatalf("the random choice never took one of the healthy servers: %v", chosen)
		}
		if n := len(z3.Calls("openRtpServer")); n != 0 {
			t.Fatalf("the server that is down got %d openRtpServer calls", n)
		}
	})

	t.Run("a camera that never answers: 504, and the RTP port closed again", func(t *testing.T) {
		start := time.Now()
		_, err := play(admin, mute, channel)
		if code := problemCode(err); code != "device_timeout" {
			t.Fatalf("play of a silent camera: %v, want 504 device_timeout", err)
		}
		t.Logf("504 after %s", time.Since(start).Round(10*time.Millisecond))
		inv, ok := silent.WaitRequest(sip.INVITE, time.Second)
		if !ok {
			t.Fatal("the silent camera was never sent an INVITE")
		}
		stream := mute + "_" + channel
		var closed bool
		for _, z := range []*testutil.ZLM{z1, z2} {
			for _, c := range z.Calls("closeRtpServer") {
				closed = closed || c.Params["stream_id"] == stream
			}
			if _, open := z.Open()[stream]; open {
				t.Fatalf("the unanswered stream's port is still open")
			}
		}
		if !closed {
			t.Fatal("closeRtpServer was not called for the unanswered stream")
		}
		_ = inv
	})

	t.Run("a camera that ends the stream itself closes its port", func(t *testing.T) {
		done := make(chan error, 1)
		var s stream
		go func() {
			var err error
			s, err = play(nodes[1].Admin(t), camID, channel)
			done <- err
		}()
		inv := nextInvite(t, cam, map[string]bool{})
		cam.AnswerInvite(t, inv)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// A second play of a playing channel answers the same stream without an INVITE.
		again, err := play(admin, camID, channel)
		if err != nil || again.StreamID != s.StreamID || again.SSRC != s.SSRC {
			t.Fatalf("second play: %+v %v, want the playing stream %+v", again, err, s)
		}
		if res := cam.Bye(t, inv); res.StatusCode != 200 {
			t.Fatalf("the camera's BYE answered %d", res.StatusCode)
		}
		z := zlms[s.MediaServerID]
		testutil.WaitFor(t, 10*time.Second, "the port closed after the camera's BYE", func() bool {
			_, open := z.Open()[s.StreamID]
			return !open
		})
		if err := stop(admin, camID, channel); problemCode(err) != "not_playing" {
			t.Fatalf("stop after the camera ended: %v, want 404 not_playing", err)
		}
	})

	t.Run("single-port server: the SSRC names the stream, nothing is opened", func(t *testing.T) {
		z1.SetDown(true)
		z2.SetDown(true)
		z3.SetDown(false)
		done := make(chan error, 1)
		var s stream
		go func() {
			var err error
			s, err = play(admin, camID, channel)
			done <- err
		}()
		inv := nextInvite(t, cam, map[string]bool{})
		cam.AnswerInvite(t, inv)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		offer := testutil.ParseSDP(string(inv.Body()))
		n, _ := strconv.ParseUint(offer.SSRC, 10, 32)
		if s.MediaServerID != "m3" || offer.Port != 10000 || offer.IP != "10.10.0.3" || s.StreamID != fmt.Sprintf("%08X", n) {
			t.Fatalf("single-port play: %+v with SDP %+v", s, offer)
		}
		if len(z3.Calls("openRtpServer")) != 0 {
			t.Fatal("openRtpServer called on a single-port server")
		}
		go func() { done <- stop(admin, camID, channel) }()
		cam.Answer(t, cam.NextRequest(t, sip.BYE), 200, nil)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("no healthy server: 503 no_media_server", func(t *testing.T) {
		z3.SetDown(true)
		if _, err := play(admin, camID, channel); problemCode(err) != "no_media_server" {
			t.Fatalf("play with every server down: %v, want 503 no_media_server", err)
		}
		if _, ok := cam.WaitRequest(sip.INVITE, 500*time.Millisecond); ok {
			t.Fatal("an INVITE was sent without a media server")
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		var p *client.Problem
		if _, err := play(admin, camID, ""); !errors.As(err, &p) || p.Status != 400 || len(p.Errors) != 1 || p.Errors[0].Field != "channelId" {
			t.Fatalf("play without a channel: %v", err)
		}
		if _, err := play(admin, "no-such-camera", channel); problemCode(err) != "not_found" {
			t.Fatalf("play of an unknown device: %v", err)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		m := testutil.Metric(t, nodes[2].Admin(t), "linkops_sip_invites_total", map[string]string{"gateway": "gb", "outcome": "answered"})
		if m < 52 {
			t.Errorf("node3 counted %v answered INVITEs, want at least 52", m)
		}
		if m := testutil.Metric(t, nodes[2].Admin(t), "linkops_sip_invites_total", map[string]string{"gateway": "gb", "outcome": "timeout"}); m != 1 {
			t.Errorf("node3 counted %v INVITE timeouts, want 1", m)
		}
	})

	t.Run("unregistered: 409 device_offline", func(t *testing.T) {
		res := cam.Request(t, cam.RegisterRequest(0, nil))
		res = cam.Request(t, cam.RegisterRequest(0, res))
		if res.StatusCode != 200 {
			t.Fatalf("unregister: %d", res.StatusCode)
		}
		testutil.WaitDevice(t, admin, camID, "offline", func(d testutil.Device) bool { return d.State == "offline" })
		if _, err := play(admin, camID, channel); problemCode(err) != "device_offline" {
			t.Fatalf("play of an unregistered camera: %v", err)
		}
	})
}

// nextInvite is the camera's next INVITE of a call not seen before.
func nextInvite(t *testing.T, cam *testutil.Camera, seen map[string]bool) *sip.Request {
	t.Helper()
	for {
		inv := cam.NextRequest(t, sip.INVITE)
		if id := inv.CallID().Value(); !seen[id] {
			seen[id] = true
			return inv
		}
	}
}

func problemCode(err error) string {
	var p *client.Problem
	if errors.As(err, &p) {
		return p.Code
	}
	return ""
}
