package web_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emiago/sipgo/sip"

	"github.com/linkops/linkops/internal/testutil"
)

// TestConsoleDevices drives the products and devices pages on one node: a device created
// through the page is listed; an official MQTT device that connects and reports shows
// online with its property without a reload; its page streams the report live, and a
// write and a read through the page reach the device; a device that never connected
// answers device_offline in the result box; a product whose gateway cannot change says so
// in its form.
func TestConsoleDevices(t *testing.T) {
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	port := testutil.FreePort(t, "tcp", "127.0.0.1")
	testutil.Do(t, admin, http.MethodPost, "/api/v1/network-components", map[string]any{
		"id": "mqtt-ui", "name": "mqtt-ui", "type": "MQTT_SERVER", "shareCluster": true,
		"configuration": map[string]any{"host": "127.0.0.1", "port": port}, "state": "enabled"}, nil)
	testutil.WaitComponentStates(t, admin, "mqtt-ui", map[string]string{"node1": "running"})
	testutil.Do(t, admin, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "gw-ui", "name": "gw-ui",
		"provider": "mqtt-server-gateway", "channelId": "mqtt-ui", "protocol": "official", "state": "enabled"}, nil)
	product := testutil.CreateProductWithDevices(t, admin, "meter", "gw-ui", "meter-1")

	b := testutil.NewBrowser(t)
	base := "http://" + n.HTTPAddr()
	dir := t.ArtifactDir()
	b.Login(t, base, testutil.AdminPassword)
	noProblems := func(what string) {
		t.Helper()
		if p := b.Problems(); len(p) > 0 {
			t.Fatalf("%s: %v", what, p)
		}
	}
	wait := func(what, expr string) {
		t.Helper()
		b.WaitJS(t, 30*time.Second, what, expr)
	}
	title := func(want string) {
		t.Helper()
		wait("title "+want, fmt.Sprintf(`document.querySelector('main .page-title').textContent === %q`, want))
	}

	// Products: the product is listed with its gateway; its gateway cannot change while it
	// has devices, which the form says in its alert.
	b.Open(t, "#/products")
	title("产品")
	wait("product listed", `!!document.querySelector('main tr[data-id="meter"]')`)
	noProblems("products page")
	b.Run("edit the product",
		chromedp.Click(`main tr[data-id="meter"] .edit`, chromedp.ByQuery),
		chromedp.WaitVisible(`.modal select[name="gatewayId"]`, chromedp.ByQuery),
		chromedp.SetValue(`.modal select[name="gatewayId"]`, "", chromedp.ByQuery),
		chromedp.Click(`.modal .save`, chromedp.ByQuery))
	wait("product_has_devices shown", `(() => { const e = document.querySelector('.modal .form-error'); return !!e && !e.hidden && e.textContent.includes('device'); })()`)
	if p := b.Problems(); len(p) != 1 || !strings.Contains(p[0], "409") {
		t.Errorf("the refused product save: problems %v, want one 409", p)
	}
	b.Run("close the form", chromedp.Click(`.modal .cancel`, chromedp.ByQuery))
	wait("form closed", `!document.querySelector('.modal')`)

	// Devices: a second device created through the page is listed.
	b.Open(t, "#/devices")
	title("设备")
	wait("meter-1 listed", `!!document.querySelector('main tr[data-id="meter-1"] .badge[data-state="notActive"]')`)
	b.Run("add a device",
		chromedp.Click(`main .page-actions .add`, chromedp.ByQuery),
		chromedp.WaitVisible(`.modal input[name="id"]`, chromedp.ByQuery),
		chromedp.SendKeys(`.modal input[name="id"]`, "meter-2", chromedp.ByQuery),
		chromedp.SendKeys(`.modal input[name="name"]`, "Meter two", chromedp.ByQuery),
		chromedp.SetValue(`.modal select[name="productId"]`, "meter", chromedp.ByQuery),
		chromedp.Click(`.modal .save`, chromedp.ByQuery))
	wait("meter-2 listed", `!document.querySelector('.modal') && !!document.querySelector('main tr[data-id="meter-2"]')`)
	noProblems("devices page and create")
	testutil.GetDevice(t, admin, "meter-2")

	// The device connects and reports: the list shows it without a reload.
	b.Run("mark the page", chromedp.Evaluate(`document.querySelector('main .page').dataset.keep = '1'`, nil))
	dev := testutil.DialMQTTDeviceWhenAccepted(t, net.JoinHostPort("127.0.0.1", fmt.Sprint(port)), "meter-1", product)
	dev.Report(t, map[string]any{"temperature": 36.5})
	wait("meter-1 online with its property", `(() => {
		const row = document.querySelector('main tr[data-id="meter-1"]');
		return document.querySelector('main .page').dataset.keep === '1' && !!row &&
			!!row.querySelector('.badge[data-state="online"]') && row.textContent.includes('temperature=36.5') && row.textContent.includes('node1');
	})()`)
	b.Screenshot(dir, "devices-list")
	noProblems("devices list refresh")

	// The device's page: properties, and the report streamed live.
	b.Run("open meter-1", chromedp.Click(`main tr[data-id="meter-1"] a.device-link`, chromedp.ByQuery))
	title("设备详情")
	wait("property shown", `(() => { const r = document.querySelector('main .props-table tr[data-id="temperature"]'); return !!r && r.textContent.includes('36.5'); })()`)
	wait("stream ready", `document.querySelector('main .stream-status').textContent.includes('node1')`)
	dev.Report(t, map[string]any{"temperature": 37.25})
	wait("report streamed", `[...document.querySelectorAll('main .device-stream .stream-message')].some((l) => l.textContent.includes('37.25') && l.textContent.includes('reportProperty'))`)
	wait("property refreshed", `document.querySelector('main .props-table tr[data-id="temperature"]').textContent.includes('37.25')`)

	// A write then a read through the page reach the device.
	b.Run("write a property",
		chromedp.SetValue(`main .write-props`, `{"temperature": 40.5}`, chromedp.ByQuery),
		chromedp.Click(`main .do-write`, chromedp.ByQuery))
	wait("write answered", `(() => { const r = document.querySelector('main .result[data-tool="write"]'); return r.dataset.state === 'ok' && r.textContent.includes('40.5'); })()`)
	b.Run("read a property",
		chromedp.SendKeys(`main .read-names`, "temperature", chromedp.ByQuery),
		chromedp.Click(`main .do-read`, chromedp.ByQuery))
	wait("read answered", `(() => { const r = document.querySelector('main .result[data-tool="read"]'); return r.dataset.state === 'ok' && r.textContent.includes('40.5') && r.textContent.includes('"success": true'); })()`)
	wait("downlinks streamed", `[...document.querySelectorAll('main .device-stream .stream-message.dir-down')].length >= 2`)
	b.Screenshot(dir, "device-detail")
	b.Run("scroll to the stream", chromedp.Evaluate(`document.querySelector('main .device-messages').scrollIntoView()`, nil))
	b.Screenshot(dir, "device-stream")
	var askedChannels bool
	b.Eval(`performance.getEntriesByType('resource').some((e) => e.name.includes('/channels'))`, &askedChannels)
	if askedChannels {
		t.Error("the page of a device that is no camera asked for video channels")
	}
	var hasVideo bool
	b.Eval(`!!document.querySelector('main .device-video')`, &hasVideo)
	if hasVideo {
		t.Error("the page of a device that is no camera shows a video section")
	}
	noProblems("device page")

	// The words follow the language.
	b.Run("switch to English", chromedp.Click(`.topbar .lang-switch`, chromedp.ByQuery))
	title("Device")
	wait("English tools", `document.querySelector('main .tool-read h4').textContent === 'Read properties'`)
	b.Run("switch back", chromedp.Click(`.topbar .lang-switch`, chromedp.ByQuery))
	title("设备详情")
	noProblems("language switch")

	// A device that never connected: the refusal is shown, not thrown.
	b.Open(t, "#/devices/meter-2")
	wait("meter-2 shown", `!!document.querySelector('main .badge[data-state="notActive"]')`)
	b.Run("read an offline device",
		chromedp.SendKeys(`main .read-names`, "temperature", chromedp.ByQuery),
		chromedp.Click(`main .do-read`, chromedp.ByQuery))
	wait("device_offline shown", `(() => { const r = document.querySelector('main .result[data-tool="read"]'); return r.dataset.code === 'device_offline' && r.textContent.includes('409'); })()`)
	if p := b.Problems(); len(p) != 1 || !strings.Contains(p[0], "409") {
		t.Errorf("the offline read: problems %v, want one 409", p)
	}
	b.Open(t, "#/devices")
	noProblems("back to the list")
}

// TestConsoleDevicesCamera: a GB/T 28181 camera's page lists the channels of its Catalog;
// 播放 INVITEs the camera and shows the stream's id, media server, SSRC and URLs; 停止
// sends BYE.
func TestConsoleDevicesCamera(t *testing.T) {
	const (
		serverID = "34020000002000000001"
		domain   = "3402000000"
		password = "cam-password-0123"
		camID    = "34020000001320000001"
		chGate   = "34020000001310000001"
	)
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	port := testutil.FreePort(t, "udp", "127.0.0.1")
	testutil.Do(t, admin, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "gb", "name": "gb", "provider": "gb28181-2016",
		"configuration": map[string]any{"sipId": serverID, "domain": domain, "password": password,
			"host": "127.0.0.1", "port": port, "shareCluster": true}, "state": "enabled"}, nil)
	testutil.CreateProductWithDevices(t, admin, "cams", "gb", camID)
	sipAddr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	testutil.WaitSIP(t, sipAddr)

	cam := testutil.DialCamera(t, sipAddr, camID, domain, serverID, password)
	cam.RegisterWithChannels(t, testutil.Channel{ID: chGate, Name: "Gate", Manufacturer: "Hikvision", Model: "DS-2CD", Status: "ON"})
	z := testutil.StartZLM(t, "127.0.0.1", "zlm-secret")
	testutil.Do(t, admin, http.MethodPost, "/api/v1/media-servers", map[string]any{"id": "zlm1", "name": "zlm1", "provider": "zlmedia",
		"configuration": map[string]any{"secret": "zlm-secret", "apiHost": "127.0.0.1", "apiPort": z.Port, "rtpIp": "127.0.0.1", "rtspPort": 554},
		"state":         "enabled"}, nil)

	b := testutil.NewBrowser(t)
	b.Login(t, "http://"+n.HTTPAddr(), testutil.AdminPassword)
	wait := func(what, expr string) {
		t.Helper()
		b.WaitJS(t, 30*time.Second, what, expr)
	}
	b.Open(t, "#/devices/"+camID)
	// The catalog may land a moment after the camera's 200: ask again until it is listed.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var listed bool
		b.Eval(fmt.Sprintf(`(() => { const r = document.querySelector('main .channels tr[data-id=%q]'); return !!r && r.textContent.includes('Hikvision') && r.textContent.includes('ON'); })()`, chGate), &listed)
		if listed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel %s never listed; problems %v", chGate, b.Problems())
		}
		b.Run("refresh the channels", chromedp.Click(`main .channels-refresh`, chromedp.ByQuery))
		time.Sleep(300 * time.Millisecond)
	}
	b.Run("play", chromedp.Click(fmt.Sprintf(`main .channels tr[data-id=%q] .play`, chGate), chromedp.ByQuery))
	inv := cam.NextRequest(t, sip.INVITE)
	cam.AnswerInvite(t, inv)
	cam.NextRequest(t, sip.ACK)
	stream := camID + "_" + chGate
	flv := fmt.Sprintf("http://127.0.0.1:%d/rtp/%s.live.flv", z.Port, stream)
	wait("stream shown", fmt.Sprintf(`(() => { const p = document.querySelector('main .video-play');
		return p.dataset.state === 'ok' && p.querySelector('.stream-id').textContent === %q &&
			p.textContent.includes('zlm1') && [...p.querySelectorAll('input.video-url')].some((i) => i.value === %q) &&
			!!p.querySelector('input.video-url[data-kind="rtsp"]') && !!p.querySelector('input.video-url[data-kind="hls"]'); })()`, stream, flv))
	b.Run("scroll to the stream", chromedp.Evaluate(`document.querySelector('main .video-play').scrollIntoView()`, nil))
	b.Screenshot(t.ArtifactDir(), "camera")
	if p := b.Problems(); len(p) > 0 {
		t.Fatalf("camera page and play: %v", p)
	}
	b.Run("stop",
		chromedp.Click(`main .video-stop`, chromedp.ByQuery),
		chromedp.WaitVisible(`.confirm-ok`, chromedp.ByQuery),
		chromedp.Click(`.confirm-ok`, chromedp.ByQuery))
	bye := cam.NextRequest(t, sip.BYE)
	cam.Answer(t, bye, 200, nil)
	wait("stream gone", `!document.querySelector('main .video-play .stream-id')`)
	if calls := z.Calls("closeRtpServer"); len(calls) != 1 {
		t.Errorf("closeRtpServer calls: %v, want one", calls)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Fatalf("stop: %v", p)
	}
}
