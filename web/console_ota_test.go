package web_test

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/resource"
)

// awaitPromise makes chromedp.Evaluate wait for the promise an expression answers.
func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }

// otaBytes is the test pattern both the browser and Go build: byte i is (31i + i>>8) & 255.
func otaBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

// TestConsoleOTA walks 远程升级 in a real browser on one node: the page's own MD5 and
// SHA-256 against Go's, a firmware upload with its progress bar and the sign the page
// computed, a refused sign shown under its field, an upgrade task for two offline devices,
// and stop / resume on the task page seen live.
func TestConsoleOTA(t *testing.T) {
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	devices := []string{"ota-web-1", "ota-web-2"}
	p := testutil.CreateProductWithKey(t, admin, "prod-ota-web", "", "prod-ota-web-secure-key", devices...)

	b := testutil.NewBrowser(t)
	base := "http://" + n.HTTPAddr()
	b.Login(t, base, testutil.AdminPassword)
	dir := t.ArtifactDir()

	// hash.js against crypto/md5 and crypto/sha256: sizes around the 64-byte block and the
	// 4 MiB slice.
	sizes := []int{0, 1, 55, 56, 63, 64, 65, 1000, 4 << 20, 4<<20 + 77, 9000001}
	var got map[string]string
	sizesJSON, _ := json.Marshal(sizes)
	b.Run("hash vectors", chromedp.Evaluate(fmt.Sprintf(`(async () => {
		const { fileDigest } = await import('/console/js/hash.js');
		const out = {};
		for (const n of %s) {
			const b = new Uint8Array(n);
			for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8)) & 255;
			const blob = new Blob([b]);
			out['md5-' + n] = await fileDigest(blob, 'md5');
			out['sha256-' + n] = await fileDigest(blob, 'sha256');
		}
		return out;
	})()`, sizesJSON), &got, awaitPromise))
	for _, size := range sizes {
		data := otaBytes(size)
		m, s := md5.Sum(data), sha256.Sum256(data)
		if want := hex.EncodeToString(m[:]); got[fmt.Sprint("md5-", size)] != want {
			t.Errorf("md5 of %d bytes: page %q, Go %q", size, got[fmt.Sprint("md5-", size)], want)
		}
		if want := hex.EncodeToString(s[:]); got[fmt.Sprint("sha256-", size)] != want {
			t.Errorf("sha256 of %d bytes: page %q, Go %q", size, got[fmt.Sprint("sha256-", size)], want)
		}
	}

	// A ~3 MiB firmware, uploaded through the page with the sign it computes.
	content := otaBytes(3<<20 + 12345)
	fwPath := filepath.Join(t.TempDir(), "fw-1.0.1.bin")
	if err := os.WriteFile(fwPath, content, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	wantSign := hex.EncodeToString(sum[:])

	b.Open(t, "#/ota")
	openFirmwareModal := func() {
		b.Run("open the firmware form", chromedp.Evaluate(`document.getElementById('toasts')?.replaceChildren(), true`, nil),
			chromedp.Click(".page-actions .add", chromedp.ByQuery),
			chromedp.WaitVisible(".modal .firmware-file", chromedp.ByQuery))
	}
	fillFirmware := func(name, order string) {
		b.Run("fill the firmware form",
			chromedp.SetValue(".modal input[name=name]", name, chromedp.ByQuery),
			chromedp.SetValue(".modal select[name=productId]", p.ID, chromedp.ByQuery),
			chromedp.SetValue(".modal input[name=version]", "1.0."+order, chromedp.ByQuery),
			chromedp.SetValue(".modal input[name=versionOrder]", order, chromedp.ByQuery),
			chromedp.Evaluate(`(() => { const s = document.querySelector('.modal select[name=signMethod]');
				s.value = 'sha256'; s.dispatchEvent(new Event('change', { bubbles: true })); return true; })()`, nil),
			chromedp.SetUploadFiles(".modal .firmware-file", []string{fwPath}, chromedp.ByQuery))
		b.WaitJS(t, 60*time.Second, "the page computed the sign",
			`(document.querySelector('.modal input[name=sign]') || {}).value?.length === 64`)
	}
	openFirmwareModal()
	fillFirmware("fw-web", "1")
	var pageSign string
	b.Eval(`document.querySelector('.modal input[name=sign]').value`, &pageSign)
	if pageSign != wantSign {
		t.Fatalf("the page computed sign %q; Go's sha256 is %q", pageSign, wantSign)
	}
	b.Run("add a property row", chromedp.Click(".modal .prop-add", chromedp.ByQuery),
		chromedp.SetValue(".modal .prop-row .prop-id", "mode", chromedp.ByQuery),
		chromedp.SetValue(".modal .prop-row .prop-value", "fast", chromedp.ByQuery))
	// Whatever the upload's speed, an observer sees the progress bar come.
	b.Eval(`(() => { window.__sawUpload = false; new MutationObserver(() => {
		if (document.querySelector('.upload-progress')) window.__sawUpload = true;
	}).observe(document.body, { childList: true, subtree: true }); return true; })()`, nil)
	b.Screenshot(dir, "ota-firmware-form")
	b.Run("save the firmware", chromedp.Click(".modal .save", chromedp.ByQuery))
	b.WaitJS(t, 60*time.Second, "the upload ended and the list shows the firmware",
		`!document.querySelector('.modal') && [...document.querySelectorAll('main tbody tr[data-id]')].some((tr) => tr.textContent.includes('fw-web'))`)
	var saw bool
	b.Eval(`window.__sawUpload`, &saw)
	if !saw {
		t.Error("no .upload-progress bar was shown during the upload")
	}
	var fws struct{ Items []resource.Firmware }
	testutil.Do(t, admin, http.MethodGet, "/api/v1/firmwares?productId="+p.ID, nil, &fws)
	if len(fws.Items) != 1 {
		t.Fatalf("firmwares: %+v", fws.Items)
	}
	fw := fws.Items[0]
	if fw.Sign != wantSign || fw.SHA256 != wantSign || fw.SignMethod != "sha256" || fw.Size != int64(len(content)) {
		t.Errorf("stored firmware: sign %s sha256 %s method %s size %d; want sign %s, %d bytes", fw.Sign, fw.SHA256, fw.SignMethod, fw.Size, wantSign, len(content))
	}
	if len(fw.Properties) != 1 || fw.Properties[0].ID != "mode" || fw.Properties[0].Value != "fast" {
		t.Errorf("properties: %+v", fw.Properties)
	}
	if problems := b.Problems(); len(problems) > 0 {
		t.Errorf("firmware upload: %v", problems)
	}

	// A sign that is not the file's: refused, and the message is under 签名.
	openFirmwareModal()
	fillFirmware("fw-web-bad", "2")
	b.Eval(`(() => { const s = document.querySelector('.modal input[name=sign]');
		s.value = '`+strings.Repeat("0", 64)+`'; s.dispatchEvent(new Event('input', { bubbles: true })); return true; })()`, nil)
	b.Run("save the bad firmware", chromedp.Click(".modal .save", chromedp.ByQuery))
	b.WaitJS(t, 60*time.Second, "the sign mismatch under the sign field",
		`!!document.querySelector('.modal .field[data-field=sign].has-error .field-error')?.textContent`)
	b.Screenshot(dir, "ota-sign-mismatch")
	b.Problems() // the deliberate 400 sign_mismatch
	b.Run("close the form", chromedp.Click(".modal .cancel", chromedp.ByQuery))

	// Edit: the fields change, the file and its sign stay.
	b.Run("edit the firmware", chromedp.Click(fmt.Sprintf(`main tr[data-id="%s"] .edit`, fw.ID), chromedp.ByQuery),
		chromedp.WaitVisible(".modal input[name=name]", chromedp.ByQuery),
		chromedp.SetValue(".modal input[name=name]", "fw-web-renamed", chromedp.ByQuery),
		chromedp.SetValue(".modal textarea[name=description]", "edited in the console", chromedp.ByQuery),
		chromedp.Click(".modal .save", chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the renamed firmware in the list",
		`!document.querySelector('.modal') && [...document.querySelectorAll('main tbody tr[data-id]')].some((tr) => tr.textContent.includes('fw-web-renamed'))`)
	var edited resource.Firmware
	testutil.Do(t, admin, http.MethodGet, "/api/v1/firmwares/"+fw.ID, nil, &edited)
	if edited.Name != "fw-web-renamed" || edited.Description != "edited in the console" || edited.Sign != wantSign ||
		edited.Size != fw.Size || edited.VersionOrder != 1 || len(edited.Properties) != 1 {
		t.Errorf("after the edit: %+v", edited)
	}
	if problems := b.Problems(); len(problems) > 0 {
		t.Errorf("firmware edit: %v", problems)
	}

	// An upgrade task for both (offline) devices, through the page.
	b.Run("open the firmware's tasks", chromedp.Click(fmt.Sprintf(`main tr[data-id="%s"] .tasks`, fw.ID), chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the tasks page", `location.hash === '#/ota/`+fw.ID+`/tasks' && !!document.querySelector('main .task-table')`)
	b.Run("open the task form", chromedp.Evaluate(`document.getElementById('toasts')?.replaceChildren(), true`, nil), chromedp.Click(".page-actions .add", chromedp.ByQuery),
		chromedp.WaitVisible(".modal .device-pick", chromedp.ByQuery))
	var picks int
	b.Eval(`document.querySelectorAll('.modal .device-pick').length`, &picks)
	if picks != 2 {
		t.Fatalf("the device picker lists %d devices, want 2", picks)
	}
	b.Run("fill the task form",
		chromedp.SetValue(".modal input[name=name]", "task-web", chromedp.ByQuery),
		chromedp.Click(`.modal .device-pick[data-id="ota-web-1"]`, chromedp.ByQuery),
		chromedp.Click(`.modal .device-pick[data-id="ota-web-2"]`, chromedp.ByQuery))
	b.Screenshot(dir, "ota-task-form")
	b.Run("save the task", chromedp.Click(".modal .save", chromedp.ByQuery))
	b.WaitJS(t, 30*time.Second, "the task in the list",
		`!document.querySelector('.modal') && [...document.querySelectorAll('main .task-table tbody tr[data-id]')].some((tr) => tr.textContent.includes('task-web'))`)
	var list struct{ Items []resource.UpgradeTask }
	testutil.Do(t, admin, http.MethodGet, "/api/v1/upgrade-tasks?firmwareId="+fw.ID, nil, &list)
	if len(list.Items) != 1 {
		t.Fatalf("tasks: %+v", list.Items)
	}
	task := list.Items[0]
	if task.Mode != "push" || len(task.DeviceIDs) != 2 || task.Counts.Waiting != 2 {
		t.Errorf("task: mode %s devices %v counts %+v", task.Mode, task.DeviceIDs, task.Counts)
	}
	b.Screenshot(dir, "ota-tasks")
	if problems := b.Problems(); len(problems) > 0 {
		t.Errorf("task creation: %v", problems)
	}

	// The task page: stop, then resume, each seen without leaving the page.
	b.Open(t, "#/ota/tasks/"+task.ID)
	count := func(state string) string {
		return fmt.Sprintf(`(document.querySelector('main .count[data-state=%s] .count-n') || {}).textContent`, state)
	}
	b.WaitJS(t, 15*time.Second, "2 waiting", count("waiting")+` === '2'`)
	b.WaitJS(t, 15*time.Second, "both device records", `document.querySelectorAll('main .records tbody tr[data-id]').length === 2`)
	b.Eval(`document.querySelector('main .page').dataset.mark = 'kept'`, nil)
	b.Screenshot(dir, "ota-task")
	// Toasts sit over the page's action buttons (top right): cleared before each click.
	clearToasts := chromedp.Evaluate(`document.getElementById('toasts')?.replaceChildren(), true`, nil)
	b.Run("stop", clearToasts, chromedp.Click("main .page-actions .stop", chromedp.ByQuery),
		chromedp.WaitVisible(".confirm-ok", chromedp.ByQuery), chromedp.Click(".confirm-ok", chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "2 canceled, the resume button, the same page",
		count("canceled")+` === '2' && `+count("waiting")+` === '0' && !document.querySelector('main .page-actions .resume').hidden`+
			` && document.querySelector('main .page-actions .stop').hidden && document.querySelector('main .page').dataset.mark === 'kept'`)
	b.WaitJS(t, 15*time.Second, "the records canceled",
		`[...document.querySelectorAll('main .records tbody tr[data-id] .badge')].filter((e) => e.dataset.state === 'canceled').length === 2`)
	b.Screenshot(dir, "ota-task-stopped")
	b.Run("resume", clearToasts, chromedp.Click("main .page-actions .resume", chromedp.ByQuery),
		chromedp.WaitVisible(".confirm-ok", chromedp.ByQuery), chromedp.Click(".confirm-ok", chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "2 waiting again",
		count("waiting")+` === '2' && `+count("canceled")+` === '0' && document.querySelector('main .page').dataset.mark === 'kept'`)
	if got := testutil.GetTask(t, admin, task.ID); got.State != resource.TaskRunning || got.Counts.Waiting != 2 {
		t.Errorf("after resume: state %s counts %+v", got.State, got.Counts)
	}

	// The record filter, then the page in English.
	b.Run("filter the records", chromedp.SetValue("main select.record-state", "waiting", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('main select.record-state').dispatchEvent(new Event('change')), true`, nil))
	b.WaitJS(t, 15*time.Second, "the waiting records", `document.querySelectorAll('main .records tbody tr[data-id]').length === 2`)
	b.Run("switch to English", chromedp.Click(".topbar .lang-switch", chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the English title", `document.querySelector('main .page-title')?.textContent === 'Upgrade task'`)
	b.Screenshot(dir, "ota-task-en")
	b.Open(t, "#/ota/"+fw.ID+"/tasks")
	b.WaitJS(t, 15*time.Second, "the English tasks title", `document.querySelector('main .page-title')?.textContent === 'Upgrade tasks'`)
	b.Open(t, "#/ota")
	b.WaitJS(t, 15*time.Second, "the English firmware title", `document.querySelector('main .page-title')?.textContent === 'Firmware upgrade'`)
	b.Run("back to Chinese", chromedp.Click(".topbar .lang-switch", chromedp.ByQuery))

	// A firmware with a task cannot be deleted: the refusal is shown, the firmware stays.
	b.Run("delete the firmware", clearToasts, chromedp.Click(fmt.Sprintf(`main tr[data-id="%s"] .delete`, fw.ID), chromedp.ByQuery),
		chromedp.WaitVisible(".confirm-ok", chromedp.ByQuery), chromedp.Click(".confirm-ok", chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the refusal shown", `!!document.querySelector('#toasts .toast-error')`)
	b.Problems() // the deliberate 409 firmware_has_tasks
	testutil.Do(t, admin, http.MethodGet, "/api/v1/firmwares/"+fw.ID, nil, nil)

	if problems := b.Problems(); len(problems) > 0 {
		t.Errorf("problems: %v", problems)
	}
}
