package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/resource"
)

// consoleWait bounds what the browser waits for: generous, the machine is shared.
const consoleWait = 30 * time.Second

// consoleMenuEN and consoleMenuZH are the menu entries in the menu's order, as a user
// reads them in each language.
var (
	consoleMenuZH = []string{"设备接入网关", "协议管理", "日志管理", "网络组件", "证书管理", "流媒体服务", "远程升级", "产品", "设备", "集群"}
	consoleMenuEN = []string{"Device gateways", "Protocols", "Logs", "Network components", "Certificates", "Media servers", "Firmware upgrade", "Products", "Devices", "Cluster"}
)

// TestConsole: issue 13's acceptance, in headless Chromium against three real agents.
func TestConsole(t *testing.T) {
	tc, _ := startedCluster(t, 3)
	tc.login(tc.nodes[0])
	api := tc.client(tc.nodes[0])
	shots := t.ArtifactDir()
	b := testutil.NewBrowser(t)
	base := func(n *clusterNode) string { return "http://" + n.httpAddr }
	clean := func(what string) {
		t.Helper()
		if p := b.Problems(); len(p) > 0 {
			t.Errorf("%s: the browser saw %v", what, p)
		}
	}
	waitJS := func(what, expr string) { t.Helper(); b.WaitJS(t, consoleWait, what, expr) }
	click, setValue, choose, confirmDialog := b.Click, b.SetValue, b.Choose, b.Confirm

	// --- 1. Log in, create a certificate, a per-node MQTT_SERVER and a gateway through
	// the card picker and every step; enable both; every node shows running.
	b.Login(t, base(tc.nodes[0]), clusterAdminPassword)
	b.Screenshot(shots, "00-gateways-after-login")
	clean("login")

	ca := testutil.NewCA(t)
	pair := ca.Issue(t, "console.example", "console.example")
	b.Open(t, "#/certificates/new")
	setValue(`.field[data-field="name"] input`, "console-cert")
	setValue(`textarea[name="cert"]`, pair.CertPEM)
	setValue(`textarea[name="key"]`, pair.KeyPEM)
	setValue(`textarea[name="description"]`, "made in the console")
	b.Screenshot(shots, "01-certificate-new")
	click("save the certificate", ".save")
	waitJS("the certificate listed", `[...document.querySelectorAll('.table td a')].some(a => a.textContent === 'console-cert')`)
	var certs struct {
		Items []resource.Certificate `json:"items"`
	}
	testutil.Do(t, api, http.MethodGet, "/api/v1/certificates?q=console-cert", nil, &certs)
	if len(certs.Items) != 1 || certs.Items[0].FingerprintSHA256 == "" {
		t.Fatalf("certificate through the console: %+v", certs.Items)
	}
	b.Open(t, "#/certificates/"+certs.Items[0].ID)
	waitJS("derived fields shown", fmt.Sprintf(`document.body.innerText.includes(%s)`, testutil.JSString(certs.Items[0].FingerprintSHA256)))
	var keyShown bool
	b.Eval(fmt.Sprintf(`document.body.innerText.includes(%s) || [...document.querySelectorAll('textarea')].some(a => a.value.includes('PRIVATE KEY'))`, testutil.JSString(strings.Split(pair.KeyPEM, "\n")[1])), &keyShown)
	if keyShown {
		t.Error("the certificate page shows the private key")
	}
	b.Screenshot(shots, "02-certificate-edit")
	clean("certificate")

	port := testutil.FreePort(t, "tcp")
	b.Open(t, "#/network/new")
	setValue(`.field[data-field="name"] input`, "console-mqtt")
	choose(`select[name="type"]`, "MQTT_SERVER")
	choose(`select[name="shareCluster"]`, "false")
	waitJS("a row per node", `document.querySelectorAll('.node-row').length === 3`)
	for i, n := range tc.nodes {
		row := fmt.Sprintf(`.node-row[data-node="%s"]`, n.id)
		setValue(row+` input[name="host"]`, testutil.NodeHosts[i])
		setValue(row+` input[name="port"]`, fmt.Sprint(port))
	}
	b.Screenshot(shots, "03-network-new-per-node")
	click("save the component", ".save")
	waitJS("the component listed", `[...document.querySelectorAll('.table td a')].some(a => a.textContent === 'console-mqtt')`)
	var comps struct {
		Items []resource.NetworkComponent `json:"items"`
	}
	testutil.Do(t, api, http.MethodGet, "/api/v1/network-components?q=console-mqtt", nil, &comps)
	if len(comps.Items) != 1 || comps.Items[0].ShareCluster == nil || *comps.Items[0].ShareCluster || len(comps.Items[0].Cluster) != 3 {
		t.Fatalf("component through the console: %+v", comps.Items)
	}
	comp := comps.Items[0]
	for _, e := range comp.Cluster {
		if e.Configuration.Port != port {
			t.Errorf("node %s: port %d, want %d", e.ServerID, e.Configuration.Port, port)
		}
	}
	b.Screenshot(shots, "04-network-list")

	b.Open(t, "#/gateways")
	click("新增", ".page-actions .add")
	waitJS("the card picker", `document.querySelectorAll('.card[data-provider]').length >= 12`)
	var cards []string
	b.Eval(`[...document.querySelectorAll('.card-group')].map(g => g.dataset.card)`, &cards)
	if strings.Join(cards, ",") != "custom,video,cloud,channel,official" {
		t.Errorf("card groups %v, want the manual's five", cards)
	}
	b.Screenshot(shots, "05-gateway-card-picker")
	click("the MQTT card", `.card[data-provider="mqtt-server-gateway"]`)
	waitJS("step 1: network component", `document.querySelector('.wizard-step').dataset.step === 'network'`)
	b.Screenshot(shots, "06-gateway-step-network")
	click("pick the component", fmt.Sprintf(`.card[data-component="%s"]`, comp.ID))
	click("next", ".next")
	waitJS("step 2: protocol", `document.querySelector('.wizard-step').dataset.step === 'protocol'`)
	b.Screenshot(shots, "07-gateway-step-protocol")
	click("pick official", `.card[data-protocol="official"]`)
	click("next", ".next")
	waitJS("step 3: basic info", `document.querySelector('.wizard-step').dataset.step === 'basic'`)
	setValue(`.wizard-step .field[data-field="name"] input`, "console-gateway")
	b.Screenshot(shots, "08-gateway-step-basic")
	click("save the gateway", ".save")
	waitJS("the gateway listed", `[...document.querySelectorAll('.table td')].some(td => td.textContent === 'console-gateway')`)
	var gws struct {
		Items []resource.Gateway `json:"items"`
	}
	testutil.Do(t, api, http.MethodGet, "/api/v1/gateways?q=console-gateway", nil, &gws)
	if len(gws.Items) != 1 || gws.Items[0].ChannelID != comp.ID || gws.Items[0].Protocol != "official" || gws.Items[0].Provider != "mqtt-server-gateway" {
		t.Fatalf("gateway through the console: %+v", gws.Items)
	}
	gw := gws.Items[0]
	click("enable the gateway", fmt.Sprintf(`tr[data-id="%s"] .toggle`, gw.ID))
	confirmDialog()
	waitJS("the gateway enabled", fmt.Sprintf(`document.querySelector('tr[data-id="%s"] .badge').dataset.state === 'enabled'`, gw.ID))

	b.Open(t, "#/network")
	click("enable the component", fmt.Sprintf(`tr[data-id="%s"] .toggle`, comp.ID))
	confirmDialog()
	waitJS("the component enabled", fmt.Sprintf(`document.querySelector('tr[data-id="%s"] .badge').dataset.state === 'enabled'`, comp.ID))
	b.Open(t, "#/network/"+comp.ID)
	waitJS("running on every node", `document.querySelectorAll('.status-host tr[data-id] .badge[data-state="running"]').length === 3`)
	b.Screenshot(shots, "09-network-detail-running")
	clean("component, gateway, enable")

	// --- 2. A 65-character name shows the server's message under the field and saves
	// nothing; deleting an enabled component shows the 409.
	long := strings.Repeat("n", 65)
	b.Open(t, "#/certificates/new")
	setValue(`.field[data-field="name"] input`, long)
	setValue(`textarea[name="cert"]`, pair.CertPEM)
	setValue(`textarea[name="key"]`, pair.KeyPEM)
	click("save", ".save")
	waitJS("the name's message", `document.querySelector('.field-error[data-field="name"]').textContent !== ''`)
	msg := b.Text(`.field-error[data-field="name"]`)
	if want := "must be at most 64 characters (got 65)"; msg != want {
		t.Errorf("message under name: %q, want the server's %q", msg, want)
	}
	b.Screenshot(shots, "10-name-too-long")
	b.Problems() // the 400 was asked for
	testutil.Do(t, api, http.MethodGet, "/api/v1/certificates", nil, &certs)
	if len(certs.Items) != 1 {
		t.Errorf("%d certificates after the refused save, want 1", len(certs.Items))
	}

	b.Open(t, "#/network")
	click("delete the enabled component", fmt.Sprintf(`tr[data-id="%s"] .delete`, comp.ID))
	confirmDialog()
	waitJS("the refusal shown", `!!document.querySelector('.toast-error')`)
	toast := b.Text(".toast-error")
	if !strings.Contains(toast, "enabled") || !strings.Contains(toast, "disable") {
		t.Errorf("toast after deleting an enabled component: %q", toast)
	}
	b.Screenshot(shots, "11-delete-enabled-refused")
	b.Problems() // the 409 was asked for
	testutil.Do(t, api, http.MethodGet, "/api/v1/network-components/"+comp.ID, nil, nil)

	// --- 3. Firmware upload with progress; a task's counts change while devices upgrade.
	consoleOTA(t, tc, b, shots, gw, port)
	clean("firmware and task")

	// --- 5. The language switch turns every menu entry and page title into English and
	// back; 6. every page screenshot at 1280×800 without an error.
	titles := map[string][2]string{
		"gateways": {"设备接入网关", "Device gateways"}, "protocols": {"协议管理", "Protocols"}, "logs": {"日志管理", "Logs"},
		"network": {"网络组件", "Network components"}, "certificates": {"证书管理", "Certificates"}, "media": {"流媒体服务", "Media servers"},
		"ota": {"远程升级", "Firmware upgrade"}, "products": {"产品", "Products"}, "devices": {"设备", "Devices"}, "cluster": {"集群", "Cluster"},
	}
	readPage := func() (menu []string, title string) {
		b.Eval(`[...document.querySelectorAll('.menu .menu-item')].map(a => a.textContent)`, &menu)
		b.Eval(`document.querySelector('main .page-title').textContent`, &title)
		return menu, title
	}
	for _, p := range testutil.ConsolePages {
		b.Open(t, p.Hash)
		menu, title := readPage()
		if strings.Join(menu, "|") != strings.Join(consoleMenuZH, "|") || title != titles[p.Menu][0] {
			t.Errorf("%s in Chinese: menu %v, title %q", p.Hash, menu, title)
		}
		b.Screenshot(shots, "20-"+p.Menu+"-zh")
		click("switch to English", ".lang-switch")
		waitJS("English", fmt.Sprintf(`document.querySelector('main .page-title') && document.querySelector('main .page-title').textContent === %s`, testutil.JSString(titles[p.Menu][1])))
		menu, title = readPage()
		if strings.Join(menu, "|") != strings.Join(consoleMenuEN, "|") || title != titles[p.Menu][1] {
			t.Errorf("%s in English: menu %v, title %q", p.Hash, menu, title)
		}
		b.Screenshot(shots, "21-"+p.Menu+"-en")
		click("back to Chinese", ".lang-switch")
		waitJS("Chinese", fmt.Sprintf(`document.querySelector('main .page-title') && document.querySelector('main .page-title').textContent === %s`, testutil.JSString(titles[p.Menu][0])))
		clean(p.Hash)
	}
	// The choice is remembered: a reload keeps English.
	click("switch to English", ".lang-switch")
	b.Run("reload", chromedp.Reload())
	waitJS("English after a reload", `document.querySelector('.menu .menu-item') && document.querySelector('.menu .menu-item').textContent === 'Device gateways'`)
	click("back to Chinese", ".lang-switch")
	for _, hash := range []string{"#/gateways/new", "#/gateways/" + gw.ID + "/edit", "#/network/" + comp.ID + "/edit", "#/media/new"} {
		b.Open(t, hash)
		b.Screenshot(shots, "30-"+strings.NewReplacer("#/", "", "/", "-").Replace(hash))
		clean(hash)
	}

	// --- 4. Through any node, and through another after that node is killed.
	for _, n := range tc.nodes[1:] {
		b.Login(t, base(n), clusterAdminPassword)
		b.Open(t, "#/gateways")
		waitJS("the gateway through "+n.id, `[...document.querySelectorAll('.table td')].some(td => td.textContent === 'console-gateway')`)
		clean("console through " + n.id)
	}
	b.Login(t, base(tc.nodes[0]), clusterAdminPassword)
	b.Open(t, "#/cluster")
	tc.nodes[0].proc.kill()
	tc.nodes[0].down.Store(true)
	other := tc.nodes[1]
	b.Login(t, base(other), clusterAdminPassword)
	// The page left open on node1 may have polled it after the kill (connection refused):
	// that is the dead node, not the console through the survivor, which is checked below.
	b.Problems()
	b.Open(t, "#/network/"+comp.ID)
	waitJS("the killed node unreachable, the others running", `(() => {
		const s = [...document.querySelectorAll('.status-host tr[data-id]')].map(r => r.dataset.id + '=' + r.querySelector('.badge').dataset.state);
		return s.includes('node1=unreachable') && s.includes('node2=running') && s.includes('node3=running');
	})()`)
	b.Screenshot(shots, "40-network-after-kill")
	b.Open(t, "#/cluster")
	waitJS("node1 shown dead", `[...document.querySelectorAll('tr[data-id="node1"] .badge')].some(b => ['dead', 'suspect'].includes(b.dataset.state))`)
	b.Screenshot(shots, "41-cluster-after-kill")
	b.Open(t, "#/gateways")
	click("disable the gateway", fmt.Sprintf(`tr[data-id="%s"] .toggle`, gw.ID))
	confirmDialog()
	waitJS("a write through the survivor", fmt.Sprintf(`document.querySelector('tr[data-id="%s"] .badge').dataset.state === 'disabled'`, gw.ID))
	clean("console after the kill")
	t.Logf("screenshots in %s; 503 answers the pages recovered from by retrying: %d", shots, b.Retried())
}

// consoleOTA is point 3: a firmware uploaded through the page (progress shown, sign
// computed by the page), then a push task whose counts change on its page while devices
// upgrade, without a reload.
func consoleOTA(t *testing.T, tc *testCluster, b *testutil.Browser, shots string, gw resource.Gateway, port int) {
	t.Helper()
	click, setValue, choose := b.Click, b.SetValue, b.Choose
	waitJS := func(what, expr string) { t.Helper(); b.WaitJS(t, consoleWait, what, expr) }
	api := tc.client(tc.nodes[0])
	const devices = 6
	var ids []string
	for i := range devices {
		ids = append(ids, fmt.Sprintf("console-dev-%d", i))
	}
	p := testutil.CreateProductWithKey(t, api, "console-product", gw.ID, "console-secure-key-01", ids...)

	firmware := make([]byte, 3<<20+123)
	for i := range firmware {
		firmware[i] = byte(i * 31)
	}
	file := filepath.Join(t.TempDir(), "console-fw.bin")
	if err := os.WriteFile(file, firmware, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(firmware)
	b.Open(t, "#/ota")
	click("新增 firmware", ".page-actions .add")
	setValue(`.modal [name="name"]`, "console-firmware")
	choose(`.modal select[name="productId"]`, p.ID)
	setValue(`.modal [name="version"]`, "2.0.0")
	setValue(`.modal [name="versionOrder"]`, "2")
	choose(`.modal select[name="signMethod"]`, "sha256")
	b.Run("pick the file", chromedp.SetUploadFiles(`.modal input.firmware-file`, []string{file}, chromedp.ByQuery))
	waitJS("the page computed the sign", fmt.Sprintf(`document.querySelector('.modal [name="sign"]').value === %s`, testutil.JSString(hex.EncodeToString(sum[:]))))
	// Watch for the progress bar: a loopback upload may finish between two polls.
	b.Run("watch the progress bar", chromedp.Evaluate(`window.__progress = []; new MutationObserver(() => {
		const p = document.querySelector('.upload-progress');
		if (p) window.__progress.push(p.textContent);
	}).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true})`, nil))
	b.Screenshot(shots, "12-firmware-upload")
	click("save the firmware", ".modal .save")
	waitJS("the firmware listed", `!document.querySelector('.modal') && [...document.querySelectorAll('.table td')].some(td => td.textContent.includes('console-firmware'))`)
	var seen []string
	b.Eval(`window.__progress`, &seen)
	if len(seen) == 0 {
		t.Error("no upload progress was shown")
	}
	t.Logf("upload progress shown: %d updates, last %q", len(seen), seen[len(seen)-1:])
	var fws struct {
		Items []resource.Firmware `json:"items"`
	}
	testutil.Do(t, api, http.MethodGet, "/api/v1/firmwares?productId="+p.ID, nil, &fws)
	if len(fws.Items) != 1 || fws.Items[0].Size != int64(len(firmware)) || !strings.EqualFold(fws.Items[0].Sign, hex.EncodeToString(sum[:])) {
		t.Fatalf("firmware through the console: %+v", fws.Items)
	}
	b.Screenshot(shots, "13-firmware-list")

	// Devices on every node, installing slowly so the campaign lasts a few seconds.
	var devs []*testutil.OTADevice
	for i, id := range ids {
		addr := fmt.Sprintf("%s:%d", testutil.NodeHosts[i%3], port)
		waitAccepted(t, addr, id, p)
		devs = append(devs, testutil.ConnectOTADevice(t, addr, id, p, "1.0.0", testutil.OTABehaviour{Delay: time.Duration(1+i) * 700 * time.Millisecond}))
	}
	task := testutil.CreateTask(t, api, map[string]any{"name": "console-task", "firmwareId": fws.Items[0].ID, "mode": "push",
		"rollout": map[string]any{"maxInFlight": 2}})
	b.Open(t, "#/ota/tasks/"+task.ID)
	// Record every success count the page shows, without reloading it.
	b.Run("watch the counts", chromedp.Evaluate(`window.__success = []; window.__marker = Math.random();
		setInterval(() => { const c = document.querySelector('[data-state="success"] .count-n'); if (c) window.__success.push(c.textContent); }, 100)`, nil))
	var marker float64
	b.Eval(`window.__marker`, &marker)
	waitJS("every device succeeded on the page", fmt.Sprintf(`(() => { const c = document.querySelector('[data-state="success"] .count-n'); return c && c.textContent === '%d'; })()`, devices))
	var after float64
	b.Eval(`window.__marker`, &after)
	if after != marker {
		t.Error("the task page was reloaded")
	}
	var counts []string
	b.Eval(`[...new Set(window.__success)]`, &counts)
	if len(counts) < 3 {
		t.Errorf("success counts seen on the page: %v — they should have changed live", counts)
	}
	t.Logf("success counts the task page showed, in order: %v", counts)
	b.Screenshot(shots, "14-task-completed")
	b.Open(t, "#/ota/"+fws.Items[0].ID+"/tasks")
	b.Screenshot(shots, "15-task-list")
	for _, d := range devs {
		if d.Version() != "2.0.0" {
			t.Errorf("device %s runs %s", d.ID, d.Version())
		}
	}
}
