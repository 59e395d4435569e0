package web_test

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/resource"
)

// gwWait bounds what the browser waits for: generous, the machine is shared.
const gwWait = 20 * time.Second

// freeSIPPort finds a loopback port free for both UDP and TCP (a SIP server binds both).
func freeSIPPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		port := testutil.FreePort(t, "udp", "127.0.0.1")
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			_ = ln.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// TestConsoleGatewayCards drives 设备接入网关 through every card of its card picker (video,
// cloud, channel, official; the custom MQTT card is e2e's), its edit rules (the provider
// fixed, the protocol locked by a product), and 网络组件 for the TCP_SERVER framing and the
// MQTT_CLIENT settings, checking each result through the API.
func TestConsoleGatewayCards(t *testing.T) {
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	b := testutil.NewBrowser(t)
	b.Login(t, "http://"+n.HTTPAddr(), testutil.AdminPassword)
	shots := t.ArtifactDir()

	clean := func(what string) {
		t.Helper()
		if p := b.Problems(); len(p) > 0 {
			t.Errorf("%s: the browser saw %v", what, p)
		}
	}
	waitJS := func(what, expr string) { t.Helper(); b.WaitJS(t, gwWait, what, expr) }
	click, setValue, choose := b.Click, b.SetValue, b.Choose
	field := func(name string) string { return fmt.Sprintf(`.wizard-step [name=%s]`, testutil.JSString(name)) }
	atStep := func(step string) {
		t.Helper()
		waitJS("step "+step, fmt.Sprintf(`document.querySelector('.wizard-step')?.dataset.step === %s`, testutil.JSString(step)))
	}
	stepLabels := func() []string {
		t.Helper()
		var out []string
		b.Eval(`[...document.querySelectorAll('.steps .step-label')].map(s => s.textContent)`, &out)
		return out
	}
	wantSteps := func(card string, want ...string) {
		t.Helper()
		if got := stepLabels(); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s steps %v, want %v", card, got, want)
		}
	}
	// errorUnder waits for a message under the field and answers it.
	errorUnder := func(name string) string {
		t.Helper()
		sel := fmt.Sprintf(`.field-error[data-field=%s]`, testutil.JSString(name))
		waitJS("a message under "+name, fmt.Sprintf(`!!document.querySelector(%s)?.textContent`, testutil.JSString(sel)))
		return b.Text(sel)
	}
	openCard := func(provider string) {
		t.Helper()
		b.Open(t, "#/gateways")
		click("新增", ".page-actions .add")
		waitJS("the card picker", `document.querySelectorAll('.card[data-provider]').length >= 12`)
		click("the "+provider+" card", fmt.Sprintf(`.card[data-provider=%s]`, testutil.JSString(provider)))
	}
	saveAndList := func(name string) {
		t.Helper()
		click("save "+name, ".save")
		waitJS(name+" listed", fmt.Sprintf(`location.hash === '#/gateways' && [...document.querySelectorAll('.table td')].some(td => td.textContent === %s)`, testutil.JSString(name)))
	}
	gateway := func(name string) resource.Gateway {
		t.Helper()
		return byName(t, admin, "/api/v1/gateways", name, func(g resource.Gateway) string { return g.Name })
	}
	countGateways := func() int {
		t.Helper()
		var list struct {
			Total int `json:"total"`
		}
		testutil.Do(t, admin, http.MethodGet, "/api/v1/gateways", nil, &list)
		return list.Total
	}

	// --- 1. Video: GB/T 28181, shared, then per node, then a bad SIP id.
	openCard("gb28181-2016")
	atStep("sip")
	wantSteps("gb28181", "信令配置", "基本信息")
	sipPort := freeSIPPort(t)
	setValue(field("configuration.domain"), "3402000000")
	setValue(field("configuration.sipId"), "34020000002000000001")
	setValue(field("configuration.host"), "127.0.0.1")
	setValue(field("configuration.port"), fmt.Sprint(sipPort))
	setValue(field("configuration.password"), "sip-secret")
	b.Screenshot(shots, "video-1-sip-shared")
	click("next", ".next")
	atStep("basic")
	setValue(field("name"), "gb-shared")
	b.Screenshot(shots, "video-2-basic")
	saveAndList("gb-shared")
	g := gateway("gb-shared")
	if c := g.Configuration; g.Provider != "gb28181-2016" || c == nil || c.SIPID != "34020000002000000001" || c.Domain != "3402000000" ||
		c.Host != "127.0.0.1" || c.Port != sipPort || c.ShareCluster == nil || !*c.ShareCluster || len(c.Cluster) != 0 {
		t.Errorf("shared GB28181 gateway through the console: %+v %+v", g, g.Configuration)
	}
	clean("GB28181 shared")

	openCard("gb28181-2016")
	atStep("sip")
	setValue(field("configuration.sipId"), "34020000002000000002")
	setValue(field("configuration.domain"), "3402000000")
	choose(field("configuration.shareCluster"), "false")
	nodePort := freeSIPPort(t)
	waitJS("the node row", fmt.Sprintf(`!document.querySelector(%s).closest('.field').hidden && document.querySelector(%s).closest('.field').hidden`,
		testutil.JSString(field("configuration.cluster[0].configuration.port")), testutil.JSString(field("configuration.port"))))
	setValue(field("configuration.cluster[0].configuration.host"), "127.0.0.1")
	setValue(field("configuration.cluster[0].configuration.port"), fmt.Sprint(nodePort))
	b.Screenshot(shots, "video-3-sip-per-node")
	click("next", ".next")
	atStep("basic")
	setValue(field("name"), "gb-node")
	saveAndList("gb-node")
	g = gateway("gb-node")
	if c := g.Configuration; c == nil || c.ShareCluster == nil || *c.ShareCluster || len(c.Cluster) != 1 ||
		c.Cluster[0].ServerID != n.ID() || c.Cluster[0].Configuration.Port != nodePort || c.Cluster[0].Configuration.Host != "127.0.0.1" {
		t.Errorf("per-node GB28181 gateway through the console: %+v", g.Configuration)
	}
	clean("GB28181 per node")

	before := countGateways()
	openCard("gb28181-2016")
	atStep("sip")
	setValue(field("configuration.sipId"), "123")
	setValue(field("configuration.domain"), "3402000000")
	setValue(field("configuration.port"), fmt.Sprint(freeSIPPort(t)))
	click("next", ".next")
	atStep("basic")
	setValue(field("name"), "gb-bad")
	click("save", ".save")
	atStep("sip") // the wizard goes back to the step that owns the field
	if msg := errorUnder("configuration.sipId"); !strings.Contains(msg, "16 or 20 digits") {
		t.Errorf("message under sipId: %q, want the server's", msg)
	}
	b.Screenshot(shots, "video-4-bad-sipid")
	b.Problems() // the 400 was asked for
	if after := countGateways(); after != before {
		t.Errorf("%d gateways after the refused save, want %d", after, before)
	}

	// --- 2. Cloud: CTWing (callbackUrl shown, then read-only on edit), OneNET.
	openCard("Ctwing")
	atStep("cloud")
	wantSteps("Ctwing", "接入配置", "消息协议", "基本信息")
	setValue(field("configuration.appKey"), "ctwing-app-key")
	setValue(field("configuration.appSecret"), "ctwing-app-secret")
	b.Screenshot(shots, "cloud-1-ctwing-config")
	click("next", ".next")
	atStep("protocol")
	click("pick official", `.card[data-protocol="official"]`)
	b.Screenshot(shots, "cloud-2-ctwing-protocol")
	click("next", ".next")
	atStep("basic")
	setValue(field("name"), "ctwing-gw")
	b.Screenshot(shots, "cloud-3-ctwing-basic")
	click("save", ".save")
	waitJS("the callback dialog", `!!document.querySelector('.modal .callback-url')`)
	shown := b.Text(".modal .callback-url")
	b.Screenshot(shots, "cloud-4-ctwing-callback")
	g = gateway("ctwing-gw")
	if shown != g.CallbackURL || !strings.Contains(g.CallbackURL, "/api/v1/callbacks/"+g.ID+"?token=") {
		t.Errorf("callback dialog shows %q; the API says %q", shown, g.CallbackURL)
	}
	if g.Protocol != "official" || g.Configuration == nil || g.Configuration.AppKey != "ctwing-app-key" {
		t.Errorf("Ctwing gateway through the console: %+v %+v", g, g.Configuration)
	}
	click("close the dialog", ".modal .modal-foot .btn-primary")
	waitJS("the list", `location.hash === '#/gateways' && !document.querySelector('.modal') && !!document.querySelector('tr[data-id]')`)
	click("edit the Ctwing gateway", fmt.Sprintf(`tr[data-id=%s] .edit`, testutil.JSString(g.ID)))
	atStep("cloud")
	var cb struct {
		Value    string
		ReadOnly bool
	}
	b.Eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); return {Value: e.value, ReadOnly: e.readOnly}; })()`, testutil.JSString(field("callbackUrl"))), &cb)
	if cb.Value != g.CallbackURL || !cb.ReadOnly {
		t.Errorf("callbackUrl on edit: %+v, want %q read-only", cb, g.CallbackURL)
	}
	var pickerShown bool
	var meta string
	b.Eval(`!!document.querySelector('.card[data-provider]')`, &pickerShown)
	b.Eval(`document.querySelector('.wizard-meta').textContent`, &meta)
	if pickerShown || !strings.Contains(meta, "CTWing") || !strings.Contains(meta, "不可编辑") {
		t.Errorf("editing: card picker shown %v, meta %q", pickerShown, meta)
	}
	b.Screenshot(shots, "cloud-5-ctwing-edit")
	clean("Ctwing")

	openCard("OneNet")
	atStep("cloud")
	wantSteps("OneNet", "接入配置", "消息协议", "基本信息")
	setValue(field("configuration.notifyToken"), "onenet-token")
	setValue(field("configuration.aesKey"), "0123456789abcdef")
	b.Screenshot(shots, "cloud-6-onenet-config")
	click("next", ".next")
	atStep("protocol")
	click("pick official", `.card[data-protocol="official"]`)
	click("next", ".next")
	atStep("basic")
	setValue(field("name"), "onenet-gw")
	click("save", ".save")
	waitJS("the callback dialog", `!!document.querySelector('.modal .callback-url')`)
	shown = b.Text(".modal .callback-url")
	g = gateway("onenet-gw")
	if g.Provider != "OneNet" || shown != g.CallbackURL || !strings.Contains(g.CallbackURL, "/api/v1/callbacks/"+g.ID) {
		t.Errorf("OneNet gateway: %+v; dialog %q", g, shown)
	}
	click("close the dialog", ".modal .modal-foot .btn-primary")
	waitJS("the list", `location.hash === '#/gateways' && !document.querySelector('.modal')`)
	clean("OneNet")

	before = countGateways()
	openCard("OneNet")
	atStep("cloud")
	setValue(field("configuration.notifyToken"), "onenet-token")
	setValue(field("configuration.aesKey"), "0123456789")
	click("next", ".next")
	atStep("protocol")
	click("pick official", `.card[data-protocol="official"]`)
	click("next", ".next")
	atStep("basic")
	setValue(field("name"), "onenet-bad")
	click("save", ".save")
	atStep("cloud")
	if msg := errorUnder("configuration.aesKey"); !strings.Contains(msg, "16 characters") {
		t.Errorf("message under aesKey: %q, want the server's", msg)
	}
	b.Screenshot(shots, "cloud-7-onenet-bad-aeskey")
	b.Problems() // the 400 was asked for
	if after := countGateways(); after != before {
		t.Errorf("%d gateways after the refused save, want %d", after, before)
	}

	// --- 3. Channel: Modbus TCP with two points, then a point without a property.
	openCard("modbus-tcp")
	atStep("modbus")
	wantSteps("modbus-tcp", "通道配置", "基本信息")
	setValue(field("configuration.host"), "127.0.0.1")
	setValue(field("configuration.port"), "1502")
	setValue(field("configuration.unitId"), "1")
	setValue(field("configuration.deviceId"), "modbus-dev")
	click("新增点位", ".add-point")
	click("新增点位", ".add-point")
	waitJS("two point rows", `document.querySelectorAll('.points tbody tr[data-point]').length === 2`)
	point := func(i int, key string) string { return fmt.Sprintf(`.points [data-point="%d"][data-key="%s"]`, i, key) }
	setValue(point(0, "property"), "temperature")
	choose(point(0, "area"), "holding")
	setValue(point(0, "address"), "10")
	choose(point(0, "dataType"), "float32")
	setValue(point(1, "property"), "running")
	choose(point(1, "area"), "coil")
	setValue(point(1, "address"), "3")
	choose(point(1, "dataType"), "bool")
	b.Screenshot(shots, "channel-1-modbus-points")
	click("next", ".next")
	atStep("basic")
	setValue(field("name"), "modbus-gw")
	b.Screenshot(shots, "channel-2-basic")
	saveAndList("modbus-gw")
	g = gateway("modbus-gw")
	if c := g.Configuration; c == nil || c.Host != "127.0.0.1" || c.Port != 1502 || c.UnitID != 1 || c.DeviceID != "modbus-dev" || len(c.Points) != 2 ||
		c.Points[0] != (resource.ModbusPoint{Property: "temperature", Area: "holding", Address: 10, DataType: "float32"}) ||
		c.Points[1] != (resource.ModbusPoint{Property: "running", Area: "coil", Address: 3, DataType: "bool"}) {
		t.Errorf("Modbus gateway through the console: %+v", g.Configuration)
	}
	clean("Modbus")

	before = countGateways()
	openCard("modbus-tcp")
	atStep("modbus")
	setValue(field("configuration.host"), "127.0.0.1")
	setValue(field("configuration.deviceId"), "modbus-dev-2")
	click("新增点位", ".add-point")
	click("新增点位", ".add-point")
	waitJS("two point rows", `document.querySelectorAll('.points tbody tr[data-point]').length === 2`)
	setValue(point(0, "property"), "ok_point")
	// the second point keeps an empty property
	click("next", ".next")
	atStep("basic")
	setValue(field("name"), "modbus-bad")
	click("save", ".save")
	atStep("modbus")
	waitJS("the message in the second point's row", `!!document.querySelector('.points tr[data-point="1"] .field-error')?.textContent`)
	var rowMsgs []string
	b.Eval(`[0, 1].map(i => [...document.querySelectorAll('.points tr[data-point="' + i + '"] .field-error')].map(e => e.textContent).join(';'))`, &rowMsgs)
	if len(rowMsgs) != 2 || rowMsgs[0] != "" || !strings.Contains(rowMsgs[1], "property id") {
		t.Errorf("point row messages %q, want the server's under the second row only", rowMsgs)
	}
	b.Screenshot(shots, "channel-3-point-refused")
	b.Problems() // the 400 was asked for
	if after := countGateways(); after != before {
		t.Errorf("%d gateways after the refused save, want %d", after, before)
	}

	// --- 4. Official: the network step is optional, the protocol fixed.
	openCard("official-edge-gateway")
	atStep("network")
	wantSteps("official", "网络组件", "基本信息")
	b.Screenshot(shots, "official-1-network")
	click("next without a component", ".next")
	atStep("basic")
	setValue(field("name"), "official-gw")
	b.Screenshot(shots, "official-2-basic")
	saveAndList("official-gw")
	g = gateway("official-gw")
	if g.Protocol != "official" || g.ChannelID != "" || g.Provider != "official-edge-gateway" {
		t.Errorf("official gateway through the console: %+v", g)
	}
	clean("official")

	// --- 5. Edit rules: the provider fixed; the protocol locked once a product uses it.
	testutil.UploadProtocol(t, admin, "demo-mqtt", testutil.GoodProtocolZip(t, "demo-mqtt", "MQTT"))
	mqttPort := testutil.FreePort(t, "tcp", "127.0.0.1")
	testutil.Do(t, admin, http.MethodPost, "/api/v1/network-components", map[string]any{"id": "gw-mqtt", "name": "gw-mqtt", "type": "MQTT_SERVER",
		"configuration": map[string]any{"host": "127.0.0.1", "port": mqttPort}}, nil)
	testutil.Do(t, admin, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "mqtt-gw", "name": "mqtt-gw", "provider": "mqtt-server-gateway",
		"channelId": "gw-mqtt", "protocol": "official"}, nil)
	b.Open(t, "#/gateways/mqtt-gw/edit")
	atStep("network")
	b.Eval(`!!document.querySelector('.card[data-provider]')`, &pickerShown)
	b.Eval(`document.querySelector('.wizard-meta').textContent`, &meta)
	if pickerShown || !strings.Contains(meta, "MQTT直连接入") || !strings.Contains(meta, "不可编辑") {
		t.Errorf("editing the MQTT gateway: card picker shown %v, meta %q", pickerShown, meta)
	}
	click("next", ".next")
	atStep("protocol")
	var unlocked bool
	b.Eval(`!document.querySelector('.protocol-locked') && !document.querySelector('.card[data-protocol="demo-mqtt"]').disabled`, &unlocked)
	if !unlocked {
		t.Error("the protocol step is locked before any product refers to the gateway")
	}
	clean("MQTT gateway edit, unlocked")
	testutil.CreateProductWithDevices(t, admin, "locked-product", "mqtt-gw")
	b.Open(t, "#/gateways")
	click("edit the MQTT gateway", `tr[data-id="mqtt-gw"] .edit`)
	atStep("network")
	click("next", ".next")
	atStep("protocol")
	var lock struct {
		Locked         bool
		OtherDisabled  bool
		ChosenEnabled  bool
		ChosenSelected bool
	}
	b.Eval(`(() => { const o = document.querySelector('.card[data-protocol="demo-mqtt"]'), c = document.querySelector('.card[data-protocol="official"]');
		return {Locked: !!document.querySelector('.protocol-locked'), OtherDisabled: !!o && o.disabled, ChosenEnabled: !!c && !c.disabled, ChosenSelected: !!c && c.classList.contains('selected')}; })()`, &lock)
	if !lock.Locked || !lock.OtherDisabled || !lock.ChosenEnabled || !lock.ChosenSelected {
		t.Errorf("protocol step of a referenced gateway: %+v", lock)
	}
	b.Screenshot(shots, "edit-protocol-locked")
	click("next", ".next")
	atStep("basic")
	setValue(field("description"), "edited while referenced")
	saveAndList("mqtt-gw")
	if g = gateway("mqtt-gw"); g.Protocol != "official" || g.Description != "edited while referenced" || g.ChannelID != "gw-mqtt" {
		t.Errorf("edited MQTT gateway: %+v", g)
	}
	clean("edit rules")

	// --- 6. 网络组件: TCP_SERVER with LENGTH_FIELD, MQTT_CLIENT topics, secure without certId.
	component := func(name string) resource.NetworkComponent {
		t.Helper()
		return byName(t, admin, "/api/v1/network-components", name, func(c resource.NetworkComponent) string { return c.Name })
	}
	listed := func(name string) {
		t.Helper()
		waitJS(name+" listed", fmt.Sprintf(`location.hash === '#/network' && [...document.querySelectorAll('.table td a')].some(a => a.textContent === %s)`, testutil.JSString(name)))
	}
	b.Open(t, "#/network/new")
	setValue(`.field[data-field="name"] input`, "tcp-length")
	choose(`select[name="type"]`, "TCP_SERVER")
	setValue(`input[name="port"]`, fmt.Sprint(testutil.FreePort(t, "tcp", "127.0.0.1")))
	var hiddenBefore bool
	b.Eval(`document.querySelector('.field[data-field="parserConfiguration.offset"]').hidden`, &hiddenBefore)
	if !hiddenBefore {
		t.Error("the LENGTH_FIELD settings are shown before LENGTH_FIELD is chosen")
	}
	choose(`select[name="parserType"]`, "LENGTH_FIELD")
	waitJS("the LENGTH_FIELD settings", `['offset', 'length', 'little'].every(k => !document.querySelector('.field[data-field="parserConfiguration.' + k + '"]').hidden) &&
		document.querySelector('.field[data-field="parserConfiguration.size"]').hidden`)
	setValue(`input[name="parserConfiguration.offset"]`, "0")
	choose(`select[name="parserConfiguration.length"]`, "4")
	b.Screenshot(shots, "network-1-tcp-length-field")
	click("save", ".save")
	listed("tcp-length")
	c := component("tcp-length")
	if c.Type != "TCP_SERVER" || c.Configuration == nil || c.Configuration.ParserType != "LENGTH_FIELD" || c.Configuration.ParserConfiguration == nil ||
		*c.Configuration.ParserConfiguration != (resource.ParserConfig{Offset: 0, Length: 4}) {
		t.Errorf("TCP_SERVER through the console: %+v %+v", c, c.Configuration)
	}
	clean("TCP_SERVER")

	b.Open(t, "#/network/new")
	setValue(`.field[data-field="name"] input`, "mqtt-client")
	choose(`select[name="type"]`, "MQTT_CLIENT")
	setValue(`input[name="remoteHost"]`, "127.0.0.1")
	setValue(`input[name="remotePort"]`, "1883")
	setValue(`textarea[name="topics"]`, "devices/+/up\nalarms/#")
	b.Screenshot(shots, "network-2-mqtt-client")
	click("save", ".save")
	listed("mqtt-client")
	c = component("mqtt-client")
	if c.Type != "MQTT_CLIENT" || c.Configuration == nil || c.Configuration.RemoteHost != "127.0.0.1" || c.Configuration.RemotePort != 1883 ||
		strings.Join(c.Configuration.Topics, "|") != "devices/+/up|alarms/#" {
		t.Errorf("MQTT_CLIENT through the console: %+v %+v", c, c.Configuration)
	}
	clean("MQTT_CLIENT")

	b.Open(t, "#/network/new")
	setValue(`.field[data-field="name"] input`, "mqtt-client-tls")
	choose(`select[name="type"]`, "MQTT_CLIENT")
	setValue(`input[name="remoteHost"]`, "127.0.0.1")
	setValue(`input[name="remotePort"]`, "8883")
	click("secure", `input[name="secure"]`)
	waitJS("the certificate field", `!document.querySelector('.field[data-field="certId"]').hidden`)
	click("save", ".save")
	if msg := errorUnder("certId"); !strings.Contains(msg, "required when secure is true") {
		t.Errorf("message under certId: %q, want the server's", msg)
	}
	b.Screenshot(shots, "network-3-secure-without-cert")
	b.Problems() // the 400 was asked for
	var comps struct {
		Total int `json:"total"`
	}
	testutil.Do(t, admin, http.MethodGet, "/api/v1/network-components?q=mqtt-client-tls", nil, &comps)
	if comps.Total != 0 {
		t.Errorf("the refused component was saved")
	}
	t.Logf("screenshots in %s", shots)
}

// byName finds the record called name in the collection at path, through the API.
func byName[T any](t *testing.T, admin *client.Client, path, name string, nameOf func(T) string) T {
	t.Helper()
	var list struct {
		Items []T `json:"items"`
	}
	testutil.Do(t, admin, http.MethodGet, path+"?pageSize=500&q="+url.QueryEscape(name), nil, &list)
	for _, it := range list.Items {
		if nameOf(it) == name {
			return it
		}
	}
	t.Fatalf("no record %q at %s through the API: %+v", name, path, list.Items)
	var zero T
	return zero
}
