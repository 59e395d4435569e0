package media_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/media"
	"github.com/linkops/linkops/resource"
)

// world is a real FSM holding media servers.
type world struct {
	t     *testing.T
	f     *fsm.FSM
	index uint64
}

func newWorld(t *testing.T) *world { return &world{t: t, f: fsm.New(slog.Default())} }

func (w *world) put(m *resource.MediaServer, create bool) {
	w.t.Helper()
	if errs := m.Validate(); len(errs) > 0 {
		w.t.Fatalf("media server %s: %v", m.ID, errs)
	}
	cmd, err := fsm.NewUpsert(resource.MediaServers, m, create, 0, time.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	w.index++
	if res := w.f.Apply(&raft.Log{Index: w.index, Data: cmd}); res != nil {
		if err, ok := res.(error); ok {
			w.t.Fatal(err)
		}
	}
}

func server(id string, z *testutil.ZLM, state string) *resource.MediaServer {
	return &resource.MediaServer{Meta: resource.Meta{ID: id}, Name: id, Provider: resource.ProviderZLMedia, Switch: resource.Switch{State: state},
		Configuration: resource.MediaConfig{Secret: z.Secret, APIHost: z.Host, APIPort: z.Port, RTPIP: "10.0.0.9"}}
}

// Two healthy enabled servers are both chosen over 50 picks; an unhealthy one and a
// disabled one never are; none healthy is ErrNoMediaServer.
func TestPickIsRandomAmongHealthy(t *testing.T) {
	w := newWorld(t)
	a, b, sick, off := testutil.StartZLM(t, "127.0.0.1", "sa"), testutil.StartZLM(t, "127.0.0.1", "sb"),
		testutil.StartZLM(t, "127.0.0.1", "sc"), testutil.StartZLM(t, "127.0.0.1", "sd")
	sick.SetDown(true)
	w.put(server("a", a, resource.StateEnabled), true)
	w.put(server("b", b, resource.StateEnabled), true)
	w.put(server("sick", sick, resource.StateEnabled), true)
	w.put(server("off", off, resource.StateDisabled), true)
	s := media.NewServers(w.f.Store(), nil, nil)
	chosen := map[string]int{}
	for range 50 {
		m, err := s.Pick(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		chosen[m.ID]++
	}
	if chosen["a"] == 0 || chosen["b"] == 0 || chosen["sick"] != 0 || chosen["off"] != 0 {
		t.Fatalf("50 plays chose %v; want both healthy enabled servers and never the others", chosen)
	}
	if err := s.Health("sick"); !errors.Is(err, media.ErrUnhealthy) {
		t.Errorf("health of the sick server: %v", err)
	}
	a.SetDown(true)
	b.SetDown(true)
	if _, err := s.Pick(context.Background()); !errors.Is(err, media.ErrNoMediaServer) {
		t.Fatalf("no healthy server: %v, want ErrNoMediaServer", err)
	}
	// A wrong secret is unhealthy too (ZLMediaKit checks it even from localhost).
	a.SetDown(false)
	bad := server("a", a, resource.StateEnabled)
	bad.Configuration.Secret = "wrong"
	w.put(bad, false)
	if _, err := s.Pick(context.Background()); !errors.Is(err, media.ErrNoMediaServer) || !strings.Contains(err.Error(), "Incorrect secret") {
		t.Errorf("wrong secret: %v", err)
	}
	if len(a.Calls("getServerConfig")) == 0 || a.Calls("getServerConfig")[0].Params["secret"] != "sa" {
		t.Errorf("health checks sent %v", a.Calls("getServerConfig"))
	}
}

// The three port modes: a free port of the range through openRtpServer (a busy one
// skipped), the single-port proxy with no call, and a port the server picks; closing calls
// closeRtpServer only for an opened port.
func TestOpenPort(t *testing.T) {
	w := newWorld(t)
	z := testutil.StartZLM(t, "127.0.0.1", "s")
	ranged := server("ranged", z, resource.StateEnabled)
	ranged.Configuration.DynamicRTPPortRange = []int{31000, 31010}
	single := server("single", z, resource.StateEnabled)
	single.Configuration.RTPPort = 10000
	picked := server("picked", z, resource.StateEnabled)
	for _, m := range []*resource.MediaServer{ranged, single, picked} {
		w.put(m, true)
	}
	s := media.NewServers(w.f.Store(), nil, nil)
	ctx := context.Background()
	z.SetBusy(31000)
	p, err := s.OpenPort(ctx, ranged, "dev_ch1")
	if err != nil || p.Port < 31001 || p.Port > 31010 || !p.Opened {
		t.Fatalf("ranged: %+v %v, want a free port of 31000-31010 other than the busy 31000", p, err)
	}
	if z.Open()["dev_ch1"] != p.Port {
		t.Errorf("the server has %v open", z.Open())
	}
	if err := s.ClosePort(ctx, ranged, "dev_ch1", p); err != nil || len(z.Open()) != 0 {
		t.Errorf("close: %v, still open %v", err, z.Open())
	}
	before := len(z.Calls("openRtpServer"))
	p, err = s.OpenPort(ctx, single, "dev_ch2")
	if err != nil || p.Port != 10000 || p.Opened || len(z.Calls("openRtpServer")) != before {
		t.Errorf("single port: %+v %v; openRtpServer calls %d → %d", p, err, before, len(z.Calls("openRtpServer")))
	}
	if err := s.ClosePort(ctx, single, "dev_ch2", p); err != nil || len(z.Calls("closeRtpServer")) != 1 {
		t.Errorf("closing the single port called closeRtpServer: %v", z.Calls("closeRtpServer"))
	}
	p, err = s.OpenPort(ctx, picked, "dev_ch3")
	if err != nil || p.Port != 30000 || !p.Opened {
		t.Errorf("server-picked port: %+v %v", p, err)
	}
	if call := z.Calls("openRtpServer"); call[len(call)-1].Params["port"] != "0" || call[len(call)-1].Params["stream_id"] != "dev_ch3" {
		t.Errorf("openRtpServer params %v", call[len(call)-1].Params)
	}
	list, err := media.NewClient(picked).MediaList(ctx)
	if err != nil || len(list) != 1 || list[0].Stream != "dev_ch3" {
		t.Errorf("media list %v %v", list, err)
	}
	_ = s.ClosePort(ctx, picked, "dev_ch3", p)
	if list, err := media.NewClient(picked).MediaList(ctx); err != nil || len(list) != 0 {
		t.Errorf("empty media list (no data key): %v %v", list, err)
	}
}

func TestStreamURLs(t *testing.T) {
	m := &resource.MediaServer{Configuration: resource.MediaConfig{APIHost: "10.1.2.3", APIPort: 8080}}
	u := media.StreamURLs(m, "34020000001320000001_34020000001310000001")
	if u.FLV != "http://10.1.2.3:8080/rtp/34020000001320000001_34020000001310000001.live.flv" ||
		u.HLS != "http://10.1.2.3:8080/rtp/34020000001320000001_34020000001310000001/hls.m3u8" || u.RTSP != "" || u.RTMP != "" {
		t.Errorf("urls %+v", u)
	}
	m.Configuration.RTSPPort, m.Configuration.RTMPPort = 554, 1935
	u = media.StreamURLs(m, "s")
	if u.RTSP != "rtsp://10.1.2.3:554/rtp/s" || u.RTMP != "rtmp://10.1.2.3:1935/rtp/s" {
		t.Errorf("urls with rtsp and rtmp ports %+v", u)
	}
}
