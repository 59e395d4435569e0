package cloud_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
)

// cloudCodec reads what the cloud platforms push: JSON (a CTWing payload, a CTWing
// eventReport as a whole, a OneNET msg) becomes a property report of its data, anything
// else (a transparent product's APPdata) reports its first byte as "raw". It throws on any
// transport but HTTP, so that the transport the codec gets is checked too.
const cloudCodec = `
function decode(input) {
  if (input.transport !== "HTTP") { throw new Error("transport " + input.transport); }
  var text = String.fromCharCode.apply(null, input.bytes);
  var obj;
  try { obj = JSON.parse(text); } catch (e) {
    return {messages: [{type: "reportProperty", deviceId: input.deviceId, properties: {raw: input.bytes[0]}}]};
  }
  var props = obj.eventContent || obj.data || obj;
  return {messages: [{type: "reportProperty", deviceId: obj.deviceName || input.deviceId, properties: props}]};
}
function encode(msg) { return {bytes: []}; }
`

// poster is the stand-in cloud platform: it posts the documented wire formats.
type poster struct {
	t   *testing.T
	url string // the gateway's callbackUrl, as the API shows it
}

// send posts (or GETs, with body nil) to the callbackUrl with extra query parameters, and
// returns the status and body.
func (p poster) send(method, query string, body []byte) (int, string, http.Header) {
	p.t.Helper()
	u := p.url
	if query != "" {
		if strings.Contains(u, "?") {
			u += "&" + query
		} else {
			u += "?" + query
		}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (p poster) post(body any) (int, string) {
	p.t.Helper()
	b, ok := body.([]byte)
	if !ok {
		b, _ = json.Marshal(body)
	}
	status, text, h := p.send(http.MethodPost, "", b)
	if status != http.StatusOK && !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
		p.t.Fatalf("a %d answer that is not problem JSON: %q %q", status, h.Get("Content-Type"), text)
	}
	return status, text
}

// onenetPush is a OneNET Studio push of msg, signed with token (encrypted first when
// aesKey is set).
func onenetPush(t *testing.T, token, aesKey, msg, nonce string) map[string]any {
	if aesKey != "" {
		msg = encryptOneNet(t, aesKey, msg)
	}
	return map[string]any{"msg": msg, "nonce": nonce, "signature": signOneNet(token, nonce, msg), "time": time.Now().UnixMilli(), "id": "push-" + nonce}
}

// signOneNet is base64(md5(token+nonce+msg)), as OneNET documents it (computed through
// the platform's documented recipe, not the package under test).
func signOneNet(token, nonce, msg string) string {
	return md5Base64(token + nonce + msg)
}

type env struct {
	nodes []*testutil.TestNode
	admin *client.Client
}

func (e env) callbackURL(t *testing.T, node int, gatewayID string) string {
	t.Helper()
	var g map[string]any
	testutil.Do(t, e.nodes[node].Client(e.admin.Token), http.MethodGet, "/api/v1/gateways/"+gatewayID, nil, &g)
	u, _ := g["callbackUrl"].(string)
	if u == "" {
		t.Fatalf("gateway %s has no callbackUrl: %v", gatewayID, g)
	}
	return u
}

// synced makes every node's own state current (the callbacks read it without a barrier).
func (e env) synced(t *testing.T) {
	t.Helper()
	for _, n := range e.nodes {
		testutil.Do(t, n.Client(e.admin.Token), http.MethodGet, "/api/v1/devices?pageSize=1", nil, nil)
		testutil.Do(t, n.Client(e.admin.Token), http.MethodGet, "/api/v1/gateways?pageSize=1", nil, nil)
	}
}

func (e env) dumpLogs(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range e.nodes {
				lines := strings.Split(n.Log.String(), "\n")
				if len(lines) > 40 {
					lines = lines[len(lines)-40:]
				}
				t.Logf("=== %s\n%s", n.ID(), strings.Join(lines, "\n"))
			}
		}
	})
}

func startEnv(t *testing.T) env {
	nodes := testutil.StartCluster(t, 3)
	e := env{nodes: nodes, admin: nodes[0].Admin(t)}
	e.dumpLogs(t)
	testutil.UploadProtocol(t, e.admin, "cloudjs", testutil.ProtocolZip(t, map[string]string{
		"manifest.json": testutil.Manifest("cloudjs", "HTTP"), "codec.js": cloudCodec}))
	return e
}

// TestOneNetPushes: the URL check is answered with msg, a wrong signature is 401 and
// changes nothing, plain and AES-encrypted pushes (Studio's 16-character key and the older
// platform's 43) become properties that another node shows; malformed bodies are 400
// problems and change nothing; an unknown device is answered 200 and counted; a disabled
// gateway is 404 (issue 12, acceptance 4 and 6).
func TestOneNetPushes(t *testing.T) {
	e := startEnv(t)
	const token = "notify-token-1"
	gws := map[string]string{"on-plain": "", "on-studio": studioKey, "on-older": olderKey}
	for id, key := range gws {
		cfg := map[string]any{"notifyToken": token}
		if key != "" {
			cfg["aesKey"] = key
		}
		testutil.Do(t, e.admin, http.MethodPost, "/api/v1/gateways", map[string]any{"id": id, "name": id, "provider": "OneNet",
			"protocol": "cloudjs", "configuration": cfg, "state": "enabled"}, nil)
		testutil.CreateProductWithDevices(t, e.admin, "p-"+id, id, "dev-"+id)
	}
	testutil.Do(t, e.admin, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "on-off", "name": "on-off", "provider": "OneNet",
		"protocol": "cloudjs", "configuration": map[string]any{"notifyToken": token}}, nil)
	e.synced(t)
	other := e.nodes[2].Client(e.admin.Token)

	// The URL check, through node2, with a signature whose '+' arrives as a space.
	p := poster{t, e.callbackURL(t, 1, "on-plain")}
	if !strings.HasPrefix(p.url, "http://"+e.nodes[1].HTTPAddr()) || strings.Contains(p.url, "token=") {
		t.Fatalf("callbackUrl %q", p.url)
	}
	var msg, nonce string
	for i := 0; ; i++ {
		msg, nonce = fmt.Sprintf("check-%d", i), fmt.Sprintf("n%d", i)
		if strings.Contains(signOneNet(token, nonce, msg), "+") {
			break
		}
	}
	q := "msg=" + msg + "&nonce=" + nonce + "&signature=" + strings.ReplaceAll(signOneNet(token, nonce, msg), "+", " ")
	if status, body, _ := p.send(http.MethodGet, strings.ReplaceAll(q, " ", "%20"), nil); status != 200 || body != msg {
		t.Fatalf("URL check: %d %q, want 200 %q", status, body, msg)
	}
	if status, _, _ := p.send(http.MethodGet, "msg="+msg+"&nonce="+nonce+"&signature="+url.QueryEscape(signOneNet("other", nonce, msg)), nil); status != 401 {
		t.Fatalf("URL check with a wrong signature: %d, want 401", status)
	}

	// A wrong signature: 401 and nothing recorded.
	bad := onenetPush(t, "wrong-token", "", `{"deviceName":"dev-on-plain","data":{"temp":999}}`, "n-bad")
	if status, _ := p.post(bad); status != 401 {
		t.Fatalf("push with a wrong signature: %d, want 401", status)
	}
	if d := testutil.GetDevice(t, other, "dev-on-plain"); d.Properties["temp"] != nil || d.State == "online" {
		t.Fatalf("a push with a wrong signature was recorded: %+v", d)
	}

	// Correct pushes, plain and encrypted with both key lengths, to node2; read on node3.
	for id, key := range gws {
		p := poster{t, e.callbackURL(t, 1, id)}
		push := onenetPush(t, token, key, fmt.Sprintf(`{"messageType":"notify","deviceName":"dev-%s","data":{"temp":%d}}`, id, len(key)+1), "n-"+id)
		if status, body := p.post(push); status != 200 {
			t.Fatalf("%s: push answered %d %s", id, status, body)
		}
		testutil.WaitDevice(t, other, "dev-"+id, "reporting its pushed temp through node3", func(d testutil.Device) bool {
			return d.State == "online" && d.Properties["temp"] == float64(len(key)+1)
		})
	}

	// Malformed bodies: 400 problems, nothing else changes.
	p = poster{t, e.callbackURL(t, 0, "on-studio")}
	for _, body := range [][]byte{[]byte(`{`), []byte(`[]`), []byte(`{"msg":"x"}`),
		mustJSON(onenetPush(t, token, "", "not base64 !!", "n-x")),              // signed, but not AES of the key
		mustJSON(onenetPush(t, token, "", "AAAAAAAAAAAAAAAAAAAAAA==", "n-y"))} { // signed, bad padding
		if status, text := p.post(body); status != 400 {
			t.Fatalf("malformed push %s: %d %s, want 400", body, status, text)
		}
	}
	if d := testutil.GetDevice(t, other, "dev-on-studio"); d.Properties["temp"] != float64(17) {
		t.Fatalf("malformed pushes changed the device: %+v", d)
	}

	// A device that is not one of this gateway's: 200 (platforms retry), dropped, counted.
	unknownBefore := testutil.Metric(t, e.nodes[0].Client(e.admin.Token), "linkops_callbacks_total", map[string]string{"gateway": "on-studio", "outcome": "unknown_device"})
	if status, _ := p.post(onenetPush(t, token, studioKey, `{"deviceName":"dev-on-plain","data":{"temp":5}}`, "n-u")); status != 200 {
		t.Fatalf("push for another gateway's device: %d, want 200", status)
	}
	if n := testutil.Metric(t, e.nodes[0].Client(e.admin.Token), "linkops_callbacks_total", map[string]string{"gateway": "on-studio", "outcome": "unknown_device"}); n != unknownBefore+1 {
		t.Fatalf("unknown_device counted %v, want %v", n, unknownBefore+1)
	}
	if d := testutil.GetDevice(t, other, "dev-on-plain"); d.Properties["temp"] != float64(1) {
		t.Fatalf("a push to another gateway changed dev-on-plain: %+v", d)
	}
	if n := testutil.Metric(t, e.nodes[1].Client(e.admin.Token), "linkops_callbacks_total", map[string]string{"gateway": "on-plain", "outcome": "unauthorized"}); n != 2 {
		t.Fatalf("unauthorized counted %v on node2, want 2", n)
	}

	// A disabled gateway: 404 no_gateway.
	off := poster{t, e.callbackURL(t, 0, "on-off")}
	status, text := off.post(onenetPush(t, token, "", `{"deviceName":"x","data":{}}`, "n-off"))
	if status != 404 || !strings.Contains(text, `"no_gateway"`) {
		t.Fatalf("push to a disabled gateway: %d %s, want 404 no_gateway", status, text)
	}
}

// TestCTWingPushes: callbackUrl carries the gateway's token, kept on update and shown in no
// other field; pushes without it or with a wrong one are 401; dataReport with a JSON
// payload and with APPdata, and an eventReport, change properties read through another
// node; deviceOnlineOfflineReport turns the device online and offline; malformed bodies
// are 400 problems that change nothing (issue 12, acceptance 4 and 6).
func TestCTWingPushes(t *testing.T) {
	e := startEnv(t)
	body := map[string]any{"id": "ctw", "name": "ctw", "provider": "Ctwing", "protocol": "cloudjs",
		"configuration": map[string]any{"appKey": "app-key", "appSecret": "app-secret"}, "state": "enabled"}
	var created map[string]any
	testutil.Do(t, e.admin, http.MethodPost, "/api/v1/gateways", body, &created)
	testutil.CreateProductWithDevices(t, e.admin, "nb", "ctw", "nb-1")
	e.synced(t)

	u := e.callbackURL(t, 1, "ctw")
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	token := parsed.Query().Get("token")
	if len(token) < 32 || parsed.Path != "/api/v1/callbacks/ctw" {
		t.Fatalf("callbackUrl %q carries no token", u)
	}
	created["callbackUrl"] = ""
	if b, _ := json.Marshal(created); strings.Contains(string(b), token) {
		t.Fatalf("the token shows outside callbackUrl: %s", b)
	}
	// An update (even one that sends a token of its own) keeps the token.
	body["description"] = "changed"
	body["callbackToken"] = "chosen-by-the-client"
	testutil.Do(t, e.admin, http.MethodPut, "/api/v1/gateways/ctw", body, nil)
	e.synced(t)
	if again := e.callbackURL(t, 2, "ctw"); !strings.HasSuffix(again, "?token="+token) {
		t.Fatalf("callbackUrl after an update %q, want the token %q kept", again, token)
	}

	p := poster{t, u}
	noToken := poster{t, "http://" + parsed.Host + parsed.Path}
	wrongToken := poster{t, "http://" + parsed.Host + parsed.Path + "?token=" + strings.Repeat("0", len(token))}
	other := e.nodes[0].Client(e.admin.Token)

	report := map[string]any{"upPacketSN": -1, "upDataSN": -1, "topic": "v1/up/ad", "timestamp": time.Now().UnixMilli(),
		"tenantId": "10000", "serviceId": "", "protocol": "lwm2m", "productId": "15000000", "messageType": "dataReport",
		"deviceType": "", "deviceId": "nb-1", "assocAssetId": "", "IMSI": "undefined", "IMEI": "860000000000001",
		"payload": map[string]any{"temp": 21.5}}
	for name, q := range map[string]poster{"without the token": noToken, "with a wrong token": wrongToken} {
		if status, _ := q.post(report); status != 401 {
			t.Fatalf("push %s: %d, want 401", name, status)
		}
	}
	if d := testutil.GetDevice(t, other, "nb-1"); d.Properties["temp"] != nil {
		t.Fatalf("a push without the token was recorded: %+v", d)
	}

	online := map[string]any{"timestamp": time.Now().UnixMilli(), "tenantId": "10000", "protocol": "lwm2m", "productId": "15000000",
		"messageType": "deviceOnlineOfflineReport", "eventType": 1, "deviceId": "nb-1", "IMEI": "860000000000001"}
	if status, text := p.post(online); status != 200 {
		t.Fatalf("online report: %d %s", status, text)
	}
	testutil.WaitDevice(t, other, "nb-1", "online after its online report", func(d testutil.Device) bool { return d.State == "online" })

	if status, text := p.post(report); status != 200 {
		t.Fatalf("dataReport: %d %s", status, text)
	}
	testutil.WaitDevice(t, other, "nb-1", "reporting the dataReport's temp", func(d testutil.Device) bool { return d.Properties["temp"] == 21.5 })

	report["payload"] = map[string]any{"APPdata": base64.StdEncoding.EncodeToString([]byte{0xC8, 0x01})}
	if status, text := p.post(report); status != 200 {
		t.Fatalf("dataReport with APPdata: %d %s", status, text)
	}
	testutil.WaitDevice(t, other, "nb-1", "reporting the APPdata's first byte", func(d testutil.Device) bool { return d.Properties["raw"] == float64(0xC8) })

	event := map[string]any{"timestamp": time.Now().UnixMilli(), "messageType": "eventReport", "deviceId": "nb-1", "serviceId": 1001,
		"eventType": 1, "eventContent": map[string]any{"alarm": 1}}
	if status, text := p.post(event); status != 200 {
		t.Fatalf("eventReport: %d %s", status, text)
	}
	testutil.WaitDevice(t, other, "nb-1", "reporting the eventReport's content", func(d testutil.Device) bool { return d.Properties["alarm"] == float64(1) })

	// Malformed bodies: 400 problems, nothing else changes.
	for _, b := range []string{`{`, `{"messageType":"dataReport"}`, `{"messageType":"dataReport","deviceId":"nb-1","payload":{"APPdata":"!!"}}`,
		`{"messageType":"deviceOnlineOfflineReport","deviceId":"nb-1","eventType":5}`, `{"messageType":"dataReport","deviceId":"nb-1"}`} {
		if status, text := p.post([]byte(b)); status != 400 {
			t.Fatalf("malformed push %s: %d %s, want 400", b, status, text)
		}
	}
	d := testutil.GetDevice(t, other, "nb-1")
	if d.State != "online" || d.Properties["temp"] != 21.5 || d.Properties["raw"] != float64(0xC8) || d.Properties["alarm"] != float64(1) {
		t.Fatalf("malformed pushes changed the device: %+v", d)
	}
	if n := testutil.Metric(t, e.nodes[1].Client(e.admin.Token), "linkops_callbacks_total", map[string]string{"gateway": "ctw", "outcome": "bad_body"}); n != 5 {
		t.Fatalf("bad_body counted %v, want 5", n)
	}

	online["eventType"] = 0
	if status, text := p.post(online); status != 200 {
		t.Fatalf("offline report: %d %s", status, text)
	}
	testutil.WaitDevice(t, other, "nb-1", "offline after its offline report", func(d testutil.Device) bool { return d.State == "offline" })
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
