package web_test

import (
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/resource"
)

// TestConsoleEditKeepsWhatItDoesNotShow: editing a gateway in the console changes what the
// user changed and nothing else — its secrets (left empty, "kept") and the configuration
// keys no step shows (apiUrl, binaryDeviceId) survive; a double-clicked 保存 creates one
// record, not two.
func TestConsoleEditKeepsWhatItDoesNotShow(t *testing.T) {
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	b := testutil.NewBrowser(t)
	b.Login(t, "http://"+n.HTTPAddr(), testutil.AdminPassword)
	wait := func(what, expr string) { t.Helper(); b.WaitJS(t, 30*time.Second, what, expr) }

	var onenet resource.Gateway
	testutil.Do(t, admin, http.MethodPost, "/api/v1/gateways", map[string]any{"name": "onenet", "provider": "OneNet", "protocol": "official",
		"state": "enabled", "configuration": map[string]any{"notifyToken": "notify-secret", "aesKey": "0123456789abcdef", "apiUrl": "http://127.0.0.1:9/onenet"}}, &onenet)
	testutil.Do(t, admin, http.MethodPost, "/api/v1/network-components", map[string]any{"id": "tcp1", "name": "tcp1", "type": "TCP_SERVER",
		"configuration": map[string]any{"port": testutil.FreePort(t, "tcp", "127.0.0.1"), "parserType": "LENGTH_FIELD", "parserConfiguration": map[string]any{"offset": 0, "length": 4}}}, nil)
	var tcp resource.Gateway
	testutil.Do(t, admin, http.MethodPost, "/api/v1/gateways", map[string]any{"name": "tcp", "provider": "tcp-server-gateway", "protocol": "official",
		"channelId": "tcp1", "configuration": map[string]any{"binaryDeviceId": "untyped"}}, &tcp)

	rename := func(g resource.Gateway, name string) {
		t.Helper()
		b.Open(t, "#/gateways/"+g.ID+"/edit")
		for {
			var step string
			b.Eval(`document.querySelector('.wizard-step').dataset.step`, &step)
			if step == "basic" {
				break
			}
			b.Click("next from "+step, ".next")
			wait("left "+step, fmt.Sprintf(`document.querySelector('.wizard-step').dataset.step !== %s`, testutil.JSString(step)))
		}
		b.SetValue(`.wizard-step .field[data-field="name"] input`, name)
		b.Click("save", ".save")
		wait("back at the list", `location.hash === '#/gateways'`)
	}
	rename(onenet, "onenet-renamed")
	var got resource.Gateway
	testutil.Do(t, admin, http.MethodGet, "/api/v1/gateways/"+onenet.ID, nil, &got)
	if got.Name != "onenet-renamed" || got.Configuration == nil || got.Configuration.APIURL != "http://127.0.0.1:9/onenet" {
		t.Errorf("OneNET gateway after the console's edit: %+v %+v", got, got.Configuration)
	}
	// The secrets were kept: OneNET's URL check signed with the stored notifyToken passes.
	sum := md5.Sum([]byte("notify-secret" + "nonce1" + "hello"))
	check := got.CallbackURL + "?" + url.Values{"msg": {"hello"}, "nonce": {"nonce1"}, "signature": {base64.StdEncoding.EncodeToString(sum[:])}}.Encode()
	resp, err := http.Get(check)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello" {
		t.Errorf("OneNET URL check after the edit: %d %q (the notifyToken was lost)", resp.StatusCode, body)
	}
	rename(tcp, "tcp-renamed")
	testutil.Do(t, admin, http.MethodGet, "/api/v1/gateways/"+tcp.ID, nil, &got)
	if got.Name != "tcp-renamed" || got.Configuration == nil || got.Configuration.BinaryDeviceID != "untyped" {
		t.Errorf("TCP gateway after the console's edit: %+v %+v", got, got.Configuration)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the browser saw %v", p)
	}

	b.Open(t, "#/certificates/new")
	ca := testutil.NewCA(t)
	pair := ca.Issue(t, "double.example")
	b.SetValue(`.field[data-field="name"] input`, "double")
	b.SetValue(`textarea[name="cert"]`, pair.CertPEM)
	b.SetValue(`textarea[name="key"]`, pair.KeyPEM)
	b.Run("double-click save", chromedp.DoubleClick(".save", chromedp.ByQuery))
	wait("back at the list", `location.hash === '#/certificates'`)
	var certs struct {
		Total int `json:"total"`
	}
	testutil.Do(t, admin, http.MethodGet, "/api/v1/certificates?q=double", nil, &certs)
	if certs.Total != 1 {
		t.Errorf("a double-clicked save made %d certificates, want 1", certs.Total)
	}
}
