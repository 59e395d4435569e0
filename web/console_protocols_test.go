package web_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/linkops/linkops/internal/testutil"
)

// TestConsoleProtocolsAndMedia drives 协议管理 (the built-in protocol, a package upload, a
// refused package, an edit) and 流媒体服务 (create, edit, enable, the refused delete,
// disable, delete) in a real browser on one node.
func TestConsoleProtocolsAndMedia(t *testing.T) {
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	b := testutil.NewBrowser(t)
	b.Login(t, "http://"+n.HTTPAddr(), testutil.AdminPassword)
	dir := t.ArtifactDir()

	files := t.TempDir()
	manifest, _ := json.Marshal(map[string]any{"id": "demo", "name": "Demo", "version": "2.3.4", "transports": []string{"MQTT", "TCP"}, "main": "codec.js"})
	good := filepath.Join(files, "demo.zip")
	bad := filepath.Join(files, "bad.zip")
	if err := os.WriteFile(good, testutil.ProtocolZip(t, map[string]string{"manifest.json": string(manifest), "codec.js": testutil.GoodCodec}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, testutil.ProtocolZip(t, map[string]string{"codec.js": testutil.GoodCodec}), 0o644); err != nil {
		t.Fatal(err)
	}

	// The built-in official protocol is listed, marked, and offers no edit or delete.
	b.Open(t, "#/protocols")
	b.WaitJS(t, 10*time.Second, "the official protocol row",
		`(() => { const r = document.querySelector('tr[data-id="official"]');
		  return !!r && !!r.querySelector('.proto-builtin') && !r.querySelector('.delete') && !r.querySelector('.edit'); })()`)
	b.Screenshot(dir, "protocols-list")

	// Every word exists in English too.
	b.Run("switch to English", chromedp.Click(`.lang-switch`, chromedp.ByQuery))
	b.WaitJS(t, 10*time.Second, "the English title", `document.querySelector('main .page-title')?.textContent === 'Protocols' && !!document.querySelector('tr[data-id="official"]')`)
	b.Run("switch back", chromedp.Click(`.lang-switch`, chromedp.ByQuery))
	b.WaitJS(t, 10*time.Second, "the Chinese title", `document.querySelector('main .page-title')?.textContent === '协议管理'`)

	// Upload a package through the dialog: it is listed with its manifest's version.
	b.Run("open the new protocol dialog", chromedp.Click(`.page-actions .add`, chromedp.ByQuery),
		chromedp.WaitVisible(`.modal [name="name"]`, chromedp.ByQuery))
	b.Run("fill in the package",
		chromedp.SetValue(`.modal [name="name"]`, "演示协议", chromedp.ByQuery),
		chromedp.SetUploadFiles(`.modal input[name="file"]`, []string{good}, chromedp.ByQuery),
		chromedp.SendKeys(`.modal [name="description"]`, "uploaded by the console", chromedp.ByQuery))
	b.Screenshot(dir, "protocols-new")
	b.Run("save", chromedp.Click(`.modal .save`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the uploaded protocol listed with its version",
		`!document.querySelector('.modal') && [...document.querySelectorAll('tr[data-id]')].some((r) =>
		   r.querySelector('.proto-name')?.textContent === '演示协议' && r.querySelector('.proto-version')?.textContent === '2.3.4' &&
		   r.querySelector('.proto-transports')?.textContent.includes('TCP') && !!r.querySelector('.delete'))`)
	var list struct {
		Items []struct {
			ID, Name, Type string
		} `json:"items"`
		Total int `json:"total"`
	}
	testutil.Do(t, admin, "GET", "/api/v1/protocols?q="+url.QueryEscape("演示协议"), nil, &list)
	if list.Total != 1 || list.Items[0].Type != "package" {
		t.Fatalf("uploaded protocol: %+v", list)
	}
	protoID := list.Items[0].ID
	if p := b.Problems(); len(p) > 0 {
		t.Fatalf("problems while uploading: %v", p)
	}

	// A zip without manifest.json: the server's message under the file field, nothing saved.
	b.Run("open the dialog again", chromedp.Click(`.page-actions .add`, chromedp.ByQuery),
		chromedp.WaitVisible(`.modal [name="name"]`, chromedp.ByQuery))
	b.Run("fill in the bad package",
		chromedp.SendKeys(`.modal [name="name"]`, "bad-protocol", chromedp.ByQuery),
		chromedp.SetUploadFiles(`.modal input[name="file"]`, []string{bad}, chromedp.ByQuery),
		chromedp.Click(`.modal .save`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the refusal under the file field",
		`document.querySelector('.modal .field-error[data-field="file"]')?.textContent.includes('manifest.json is missing')`)
	b.Screenshot(dir, "protocols-bad-package")
	b.Problems() // the deliberate 400
	b.Run("cancel", chromedp.Click(`.modal .cancel`, chromedp.ByQuery))
	testutil.Do(t, admin, "GET", "/api/v1/protocols?q=bad-protocol", nil, &list)
	if list.Total != 0 {
		t.Fatalf("the refused package was saved: %+v", list)
	}

	// Edit: the type is read-only; a new description is saved.
	row := fmt.Sprintf(`tr[data-id=%q]`, protoID)
	b.Run("edit the protocol", chromedp.Click(row+` .edit`, chromedp.ByQuery),
		chromedp.WaitVisible(`.modal [name="description"]`, chromedp.ByQuery))
	b.WaitJS(t, 5*time.Second, "the read-only type", `document.querySelector('.modal [name="type"]').disabled && !!document.querySelector('.modal input[name="file"][type="file"]')`)
	b.Run("change the description",
		chromedp.SetValue(`.modal [name="description"]`, "edited by the console", chromedp.ByQuery),
		chromedp.Click(`.modal .save`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the new description listed",
		`!document.querySelector('.modal') && document.querySelector('`+row+`')?.textContent.includes('edited by the console')`)
	if p := b.Problems(); len(p) > 0 {
		t.Fatalf("problems on the protocols page: %v", p)
	}

	// 流媒体服务: a refused save shows the message under its field, then a good one.
	b.Open(t, "#/media")
	b.WaitJS(t, 10*time.Second, "the media page", `document.querySelector('main .page-title')?.textContent === '流媒体服务' && !!document.querySelector('main .table')`)
	b.Run("new media server", chromedp.Click(`.page-actions .add`, chromedp.ByQuery),
		chromedp.WaitVisible(`[name="configuration.apiHost"]`, chromedp.ByQuery))
	b.WaitJS(t, 5*time.Second, "the new page", `location.hash === '#/media/new' && !!document.querySelector('.media-note')`)
	b.Run("fill in the server",
		chromedp.SendKeys(`[name="name"]`, "zlm-1", chromedp.ByQuery),
		chromedp.SendKeys(`[name="configuration.secret"]`, "zlm-secret", chromedp.ByQuery),
		chromedp.SendKeys(`[name="configuration.apiHost"]`, "127.0.0.1", chromedp.ByQuery),
		chromedp.SetValue(`[name="configuration.apiPort"]`, "70000", chromedp.ByQuery),
		chromedp.SendKeys(`[name="configuration.rtpIp"]`, "127.0.0.1", chromedp.ByQuery),
		chromedp.SetValue(`[name="configuration.dynamicRtpPortRange[0]"]`, "30000", chromedp.ByQuery),
		chromedp.Click(`.save`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the refusals under their fields",
		`document.querySelector('.field-error[data-field="configuration.apiPort"]')?.textContent.length > 0 &&
		 document.querySelector('.field-error[data-field="configuration.dynamicRtpPortRange[1]"]')?.textContent.length > 0`)
	b.Screenshot(dir, "media-refused")
	b.Problems() // the deliberate 400
	b.Run("fix the port and the range",
		chromedp.SetValue(`[name="configuration.apiPort"]`, "8080", chromedp.ByQuery),
		chromedp.SetValue(`[name="configuration.dynamicRtpPortRange[1]"]`, "30500", chromedp.ByQuery),
		chromedp.Click(`.save`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the server listed",
		`location.hash === '#/media' && [...document.querySelectorAll('tr[data-id]')].some((r) =>
		   r.querySelector('.media-name')?.textContent === 'zlm-1' && r.textContent.includes('127.0.0.1:8080') &&
		   r.querySelector('.badge')?.dataset.state === 'disabled')`)
	var servers struct {
		Items []struct {
			ID            string
			Configuration struct {
				DynamicRTPPortRange []int `json:"dynamicRtpPortRange"`
			}
		} `json:"items"`
	}
	testutil.Do(t, admin, "GET", "/api/v1/media-servers", nil, &servers)
	if len(servers.Items) != 1 || fmt.Sprint(servers.Items[0].Configuration.DynamicRTPPortRange) != "[30000 30500]" {
		t.Fatalf("media servers: %+v", servers)
	}
	msID := servers.Items[0].ID
	row = fmt.Sprintf(`tr[data-id=%q]`, msID)

	// Edit keeps the secret when it is left empty, and shows the range.
	b.Run("edit the server", chromedp.Click(row+` .edit`, chromedp.ByQuery),
		chromedp.WaitVisible(`[name="configuration.apiHost"]`, chromedp.ByQuery))
	b.WaitJS(t, 10*time.Second, "the stored values",
		`document.querySelector('[name="configuration.apiHost"]').value === '127.0.0.1' &&
		 document.querySelector('[name="configuration.dynamicRtpPortRange[1]"]').value === '30500' &&
		 document.querySelector('[name="provider"]').disabled && document.querySelector('[name="configuration.secret"]').value === ''`)
	b.Screenshot(dir, "media-edit")
	b.Run("clear the range and save",
		chromedp.SetValue(`[name="configuration.dynamicRtpPortRange[0]"]`, "", chromedp.ByQuery),
		chromedp.SetValue(`[name="configuration.dynamicRtpPortRange[1]"]`, "", chromedp.ByQuery),
		chromedp.SetValue(`[name="configuration.rtpPort"]`, "10000", chromedp.ByQuery),
		chromedp.Click(`.save`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "back on the list", `location.hash === '#/media' && !!document.querySelector('`+row+`')`)
	servers.Items = nil // decode afresh: an omitted range must not keep the old one
	testutil.Do(t, admin, "GET", "/api/v1/media-servers", nil, &servers)
	if r := servers.Items[0].Configuration.DynamicRTPPortRange; len(r) != 0 {
		t.Fatalf("range after clearing it: %v", r)
	}

	// Enable (confirmed), a refused delete in a toast, disable, delete.
	b.Run("enable", chromedp.Click(row+` .enable`, chromedp.ByQuery), chromedp.WaitVisible(`.confirm-ok`, chromedp.ByQuery),
		chromedp.Click(`.confirm-ok`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "enabled", `document.querySelector('`+row+` .badge')?.dataset.state === 'enabled' && !!document.querySelector('`+row+` .disable')`)
	b.Run("delete while enabled", chromedp.Click(row+` .delete`, chromedp.ByQuery), chromedp.WaitVisible(`.confirm-ok`, chromedp.ByQuery),
		chromedp.Click(`.confirm-ok`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the refusal in a toast",
		`[...document.querySelectorAll('.toast-error')].some((e) => e.textContent.includes('disable it before deleting'))`)
	b.Screenshot(dir, "media-refused-delete")
	b.Problems() // the deliberate 409
	b.Run("disable", chromedp.Click(row+` .disable`, chromedp.ByQuery), chromedp.WaitVisible(`.confirm-ok`, chromedp.ByQuery),
		chromedp.Click(`.confirm-ok`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "disabled", `document.querySelector('`+row+` .badge')?.dataset.state === 'disabled'`)
	b.Run("delete", chromedp.Click(row+` .delete`, chromedp.ByQuery), chromedp.WaitVisible(`.confirm-ok`, chromedp.ByQuery),
		chromedp.Click(`.confirm-ok`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the server gone", `location.hash === '#/media' && !!document.querySelector('main .table') && !document.querySelector('`+row+`')`)
	if p := b.Problems(); len(p) > 0 {
		t.Fatalf("problems on the media page: %v", p)
	}
}
