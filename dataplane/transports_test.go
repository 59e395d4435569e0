package dataplane_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/gorilla/websocket"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/protocol/official"
)

// officialGateway creates a per-node component of typ (127.0.0.1/2/3, a fresh port) and
// an enabled gateway of provider on it speaking the official protocol, and returns the
// port.
func officialGateway(t *testing.T, c *cluster, typ, component, gateway, provider string, extra map[string]any) int {
	t.Helper()
	network := "tcp"
	if typ == "UDP" || typ == "COAP_SERVER" {
		network = "udp"
	}
	port := testutil.FreePort(t, network)
	c.create(t, testutil.PerNodeComponent(component, typ, port, extra))
	testutil.WaitComponentStates(t, c.admin, component, allRunning)
	c.do(t, http.MethodPost, "/api/v1/gateways", map[string]any{"id": gateway, "name": gateway, "provider": provider,
		"channelId": component, "protocol": "official", "state": "enabled"}, nil)
	return port
}

// readReply is the API's answer to a properties/read.
type readReply struct {
	MessageID  string         `json:"messageId"`
	Success    bool           `json:"success"`
	Properties map[string]any `json:"properties"`
	err        error
}

// readVia starts a properties/read of device through node's API; the API call blocks
// until the device answers, so the test plays the device meanwhile.
func readVia(c *cluster, node int, deviceID string, props ...string) <-chan readReply {
	ch := make(chan readReply, 1)
	go func() {
		var r readReply
		_, r.err = c.nodes[node].Client(c.admin.Token).Do(context.Background(), http.MethodPost,
			"/api/v1/devices/"+deviceID+"/properties/read?timeout=30s", map[string]any{"properties": props}, &r)
		ch <- r
	}()
	return ch
}

// awaitRead waits for the answer of readVia.
func awaitRead(t *testing.T, ch <-chan readReply) readReply {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("properties/read through the API: %v", r.err)
		}
		return r
	case <-time.After(60 * time.Second):
		t.Fatal("properties/read through the API never answered")
	}
	return readReply{}
}

// sessionsOf lists the device ids of a gateway's sessions, cluster-wide.
func sessionsOf(t *testing.T, c *cluster, gateway string) map[string]string {
	t.Helper()
	var out struct {
		Items []struct {
			DeviceID string `json:"deviceId"`
			ServerID string `json:"serverId"`
		} `json:"items"`
	}
	c.do(t, http.MethodGet, "/api/v1/gateways/"+gateway+"/sessions", nil, &out)
	m := map[string]string{}
	for _, s := range out.Items {
		m[s.DeviceID] = s.ServerID
	}
	return m
}

// httpPost posts body to path on node i's HTTP_SERVER with a bearer token ("" for none).
func httpPost(t *testing.T, i, port int, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+hostPort(i, port)+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

// TestTransportHTTP: an official device posts a report with its product's secureKey as
// bearer token to node1 and gets 200 {"success": true}; node2's API shows it online on
// node1 with the properties; a wrong or missing token is 401 {"success": false, "code":
// "unauthorized"} and a body that does not decode is 400, neither touching the device
// (SPEC §5.2 HTTP).
func TestTransportHTTP(t *testing.T) {
	c := startCluster(t)
	dumpLogs(t, c)
	port := officialGateway(t, c, "HTTP_SERVER", "http-off", "gw-http", "http-server-gateway", nil)
	p := testutil.CreateProductWithDevices(t, c.admin, "thermo", "gw-http", "thermo-1", "thermo-2")
	c.synced(t)

	status, body := httpPost(t, 0, port, "/thermo/thermo-1/properties/report", p.SecureKey,
		`{"messageId": "r1", "properties": {"temp": 21.5, "unit": "C"}}`)
	if status != http.StatusOK || !reflect.DeepEqual(body, map[string]any{"success": true}) {
		t.Fatalf("report: %d %v, want 200 {\"success\": true}", status, body)
	}
	testutil.WaitDevice(t, c.nodes[1].Client(c.admin.Token), "thermo-1", "online on node1 with its report", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node1" && d.Properties["temp"] == 21.5 && d.Properties["unit"] == "C"
	})
	if s := sessionsOf(t, c, "gw-http"); s["thermo-1"] != "node1" {
		t.Fatalf("gateway sessions %v: want thermo-1 listed on node1", s)
	}

	unauthorized := map[string]any{"success": false, "code": "unauthorized"}
	for _, tc := range []struct{ what, path, token string }{
		{"a wrong token", "/thermo/thermo-1/properties/report", "not-the-secure-key"},
		{"no token", "/thermo/thermo-1/properties/report", ""},
		{"an unknown device", "/thermo/thermo-9/properties/report", p.SecureKey},
		{"a device of another product", "/other/thermo-1/properties/report", p.SecureKey},
	} {
		status, body := httpPost(t, 1, port, tc.path, tc.token, `{"messageId": "x", "properties": {"temp": 99}}`)
		if status != http.StatusUnauthorized || !reflect.DeepEqual(body, unauthorized) {
			t.Fatalf("%s: %d %v, want 401 %v", tc.what, status, body, unauthorized)
		}
	}
	for _, bad := range []string{`{"properties": `, `not json`, `{"properties": "temp"}`, `[1, 2]`} {
		status, body := httpPost(t, 2, port, "/thermo/thermo-1/properties/report", p.SecureKey, bad)
		if status != http.StatusBadRequest || body["success"] != false {
			t.Fatalf("body %q: %d %v, want 400 with success false", bad, status, body)
		}
	}
	// The refused requests changed nothing: the next report is the device's only change.
	status, _ = httpPost(t, 2, port, "/thermo/thermo-1/properties/report", p.SecureKey, `{"properties": {"unit": "K"}}`)
	if status != http.StatusOK {
		t.Fatalf("report to node3: %d", status)
	}
	d := testutil.WaitDevice(t, c.admin, "thermo-1", "showing the report through node3", func(d testutil.Device) bool { return d.Properties["unit"] == "K" })
	if d.Properties["temp"] != 21.5 {
		t.Fatalf("temp is %v after refused requests, want 21.5 still", d.Properties["temp"])
	}
	if d := testutil.GetDevice(t, c.admin, "thermo-2"); d.State != "notActive" {
		t.Fatalf("thermo-2, never posted for, is %q", d.State)
	}
}

// wsURL is node i's WebSocket_SERVER address for path.
func wsURL(i, port int, path string) string { return "ws://" + hostPort(i, port) + path }

// wsRefused expects a connection to be refused: at the upgrade, or right after it with a
// policy-violation close (1008).
func wsRefused(t *testing.T, what, url string, h http.Header) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		if resp == nil || resp.StatusCode < 400 {
			t.Fatalf("%s: dial failed without a refusal: %v", what, err)
		}
		return
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, msg, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("%s: read %q %v, want the connection closed with 1008", what, msg, err)
	}
}

// TestTransportWebSocket: a device connects to /{productId}/{deviceId} with its
// product's secureKey as Authorization bearer (and another with ?token=), sends report
// envelopes and is seen online with its properties through other nodes; a read through
// another node's API arrives as an envelope frame, the device's reply envelope completes
// it; wrong tokens are refused (SPEC §5.2 WebSocket).
func TestTransportWebSocket(t *testing.T) {
	c := startCluster(t)
	dumpLogs(t, c)
	port := officialGateway(t, c, "WEB_SOCKET_SERVER", "ws-off", "gw-ws", "websocket-server", nil)
	p := testutil.CreateProductWithDevices(t, c.admin, "panel", "gw-ws", "panel-1", "panel-2", "panel-3")
	c.synced(t)

	ws, _, err := websocket.DefaultDialer.Dial(wsURL(1, port, "/panel/panel-1"), http.Header{"Authorization": {"Bearer " + p.SecureKey}})
	if err != nil {
		t.Fatalf("connect with the Authorization header: %v", err)
	}
	defer ws.Close()
	send := func(ws *websocket.Conn, frame string) {
		t.Helper()
		if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatalf("send %s: %v", frame, err)
		}
	}
	send(ws, `{"topic": "/panel/panel-1/properties/report", "payload": {"messageId": "w1", "properties": {"volts": 229.5, "on": true}}}`)
	testutil.WaitDevice(t, c.nodes[2].Client(c.admin.Token), "panel-1", "online on node2 with its report", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node2" && d.Properties["volts"] == 229.5 && d.Properties["on"] == true
	})

	byQuery, _, err := websocket.DefaultDialer.Dial(wsURL(2, port, "/panel/panel-2?token="+p.SecureKey), nil)
	if err != nil {
		t.Fatalf("connect with ?token=: %v", err)
	}
	defer byQuery.Close()
	send(byQuery, `{"topic": "/panel/panel-2/properties/report", "payload": {"messageId": "w2", "properties": {"volts": 231}}}`)
	testutil.WaitDevice(t, c.admin, "panel-2", "online on node3 with its report", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node3" && d.Properties["volts"] == float64(231)
	})

	// A read through node1 of the device on node2.
	pending := readVia(c, 0, "panel-1", "volts")
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	kind, frame, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("the read never reached the device: %v", err)
	}
	var env struct {
		Topic   string `json:"topic"`
		Payload struct {
			MessageID  string   `json:"messageId"`
			Properties []string `json:"properties"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(frame, &env); err != nil || kind != websocket.TextMessage || env.Topic != "/panel/panel-1/properties/read" ||
		env.Payload.MessageID == "" || !reflect.DeepEqual(env.Payload.Properties, []string{"volts"}) {
		t.Fatalf("downlink frame (kind %d) %s: want a text envelope on /panel/panel-1/properties/read naming volts (%v)", kind, frame, err)
	}
	send(ws, fmt.Sprintf(`{"topic": "/panel/panel-1/properties/read/reply", "payload": {"messageId": %q, "success": true, "properties": {"volts": 230.25}}}`, env.Payload.MessageID))
	if r := awaitRead(t, pending); !r.Success || r.Properties["volts"] != 230.25 || r.MessageID != env.Payload.MessageID {
		t.Fatalf("read answered %+v, want volts 230.25 under messageId %s", r, env.Payload.MessageID)
	}

	wsRefused(t, "a wrong bearer token", wsURL(0, port, "/panel/panel-3"), http.Header{"Authorization": {"Bearer wrong-key"}})
	wsRefused(t, "a wrong ?token=", wsURL(0, port, "/panel/panel-3?token=wrong-key"), nil)
	wsRefused(t, "no token", wsURL(0, port, "/panel/panel-3"), nil)
	wsRefused(t, "another product's path", wsURL(0, port, "/other/panel-3?token="+p.SecureKey), nil)
	if d := testutil.GetDevice(t, c.admin, "panel-3"); d.State != "notActive" {
		t.Fatalf("panel-3, only ever refused, is %q", d.State)
	}
}

// TestTransportCoAP: with libcoap's coap-client, a report encrypted under the product's
// secureKey (AES-ECB, PKCS#7; a 24- and a 16-character key) is 2.01 and shows through
// other nodes; a payload under a wrong key, plain JSON, or an unknown device is 4.00;
// time-sync is 2.05 with an encrypted body (SPEC §5.2 CoAP).
func TestTransportCoAP(t *testing.T) {
	c := startCluster(t)
	dumpLogs(t, c)
	port := officialGateway(t, c, "COAP_SERVER", "coap-off", "gw-coap", "coap-server-gateway", nil)
	// "lightbox-secure-key-0123": 24 characters, AES-192.
	p := testutil.CreateProductWithDevices(t, c.admin, "lightbox", "gw-coap", "lb-1")
	// 16 characters, AES-128: the reference implementation's only key size.
	p16 := testutil.CreateProductWithKey(t, c.admin, "lamp16", "gw-coap", "0123456789abcdef", "lamp-1")
	c.synced(t)
	coapURL := func(i int, path string) string { return "coap://" + hostPort(i, port) + path }
	encrypt := func(key, plain string) []byte {
		t.Helper()
		b, err := official.Encrypt(key, []byte(plain))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	a := testutil.CoAPPost(t, coapURL(2, "/lightbox/lb-1/properties/report"), encrypt(p.SecureKey, `{"messageId": "c1", "properties": {"lux": 300, "mode": "day"}}`))
	if a.Code != "2.01" {
		t.Fatalf("encrypted report answered %q, want 2.01:\n%s", a.Code, a.Output)
	}
	testutil.WaitDevice(t, c.admin, "lb-1", "online on node3 with its report", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node3" && d.Properties["lux"] == float64(300) && d.Properties["mode"] == "day"
	})
	a = testutil.CoAPPost(t, coapURL(0, "/lamp16/lamp-1/properties/report"), encrypt(p16.SecureKey, `{"properties": {"on": true}}`))
	if a.Code != "2.01" {
		t.Fatalf("report under a 16-character key answered %q, want 2.01:\n%s", a.Code, a.Output)
	}
	testutil.WaitDevice(t, c.nodes[1].Client(c.admin.Token), "lamp-1", "online on node1 with its report", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node1" && d.Properties["on"] == true
	})
	// The device may name itself in option 2100 (JetLinks' CoAP codec) rather than the path.
	a = testutil.CoAPPost(t, coapURL(1, "/lightbox/-/properties/report"), encrypt(p.SecureKey, `{"properties": {"level": 5}}`), "-O", "2100,lb-1")
	if a.Code != "2.01" {
		t.Fatalf("report naming its device in option 2100 answered %q, want 2.01:\n%s", a.Code, a.Output)
	}
	testutil.WaitDevice(t, c.admin, "lb-1", "reporting through option 2100", func(d testutil.Device) bool { return d.Properties["level"] == float64(5) })

	for _, tc := range []struct {
		what, path string
		payload    []byte
	}{
		{"a wrong key", "/lightbox/lb-1/properties/report", encrypt("lightbox-wrong-key-01234", `{"properties": {"lux": 1}}`)},
		{"another product's key", "/lightbox/lb-1/properties/report", encrypt(p16.SecureKey, `{"properties": {"lux": 2}}`)},
		{"plain JSON", "/lightbox/lb-1/properties/report", []byte(`{"properties": {"lux": 3}}`)},
		{"encrypted garbage", "/lightbox/lb-1/properties/report", encrypt(p.SecureKey, `{"properties": `)},
		{"an unknown device", "/lightbox/lb-9/properties/report", encrypt(p.SecureKey, `{"properties": {"lux": 4}}`)},
	} {
		if a := testutil.CoAPPost(t, coapURL(1, tc.path), tc.payload); a.Code != "4.00" {
			t.Fatalf("%s answered %q, want 4.00:\n%s", tc.what, a.Code, a.Output)
		}
	}

	before := time.Now()
	a = testutil.CoAPPost(t, coapURL(1, "/lightbox/lb-1/time-sync"), encrypt(p.SecureKey, `{"messageId": "ts-1"}`))
	after := time.Now()
	if a.Code != "2.05" {
		t.Fatalf("time-sync answered %q, want 2.05:\n%s", a.Code, a.Output)
	}
	plain, err := official.Decrypt(p.SecureKey, a.Body)
	if err != nil {
		t.Fatalf("the time-sync answer (% x) does not decrypt under the secureKey: %v", a.Body, err)
	}
	var ts struct {
		MessageID string `json:"messageId"`
		Timestamp int64  `json:"timestamp"`
	}
	if err := json.Unmarshal(plain, &ts); err != nil || ts.MessageID != "ts-1" ||
		ts.Timestamp < before.Add(-time.Minute).UnixMilli() || ts.Timestamp > after.Add(time.Minute).UnixMilli() {
		t.Fatalf("time-sync answer %s: want messageId ts-1 and the node's clock (%v)", plain, err)
	}
	if d := testutil.GetDevice(t, c.admin, "lb-1"); d.Properties["lux"] != float64(300) {
		t.Fatalf("lux is %v after refused requests, want 300 still", d.Properties["lux"])
	}
}

// wantTCPWire fails unless raw is exactly what official.EncodeTCP writes for want, with
// the deviceId typed (SPEC §5.2: 0x0B + uint16 length + UTF-8, or 0x00 NULL).
func wantTCPWire(t *testing.T, what string, raw []byte, want official.Frame) {
	t.Helper()
	b, err := official.EncodeTCP(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, b) {
		t.Fatalf("%s: the server wrote\n% x\nwant what official.EncodeTCP writes for %+v:\n% x", what, raw, want, b)
	}
	// length(4) type(1) timestamp(8) seq(2), then the deviceId's type byte.
	wantType := byte(official.DataString)
	if want.DeviceID == "" {
		wantType = byte(official.DataNull)
	}
	if raw[15] != wantType {
		t.Fatalf("%s: deviceId type byte 0x%02x, want 0x%02x", what, raw[15], wantType)
	}
}

// TestTransportTCP: the binary protocol over a LENGTH_FIELD (offset 0, length 4)
// TCP_SERVER: the online frame with the key is acked 0x00 echoing its seq, reports are
// acked and show through other nodes, a read through another node's API arrives as a
// 0x04 frame and the device's 0x05 reply with the same seq completes it; every frame
// the server writes is byte for byte what official.EncodeTCP writes. A connection whose
// first frame is not online, or whose key is wrong, gets ack 0x01 and is closed (SPEC
// §5.2 TCP).
func TestTransportTCP(t *testing.T) {
	c := startCluster(t)
	dumpLogs(t, c)
	port := officialGateway(t, c, "TCP_SERVER", "tcp-off", "gw-tcp", "tcp-server-gateway", map[string]any{
		"parserType": "LENGTH_FIELD", "parserConfiguration": map[string]any{"offset": 0, "length": 4}})
	p := testutil.CreateProductWithDevices(t, c.admin, "pump", "gw-tcp", "pump-1", "pump-2")
	c.synced(t)
	now := func() int64 { return time.Now().UnixMilli() }

	d := testutil.DialTCPDevice(t, hostPort(1, port))
	d.Send(t, official.Frame{Type: official.FrameOnline, Timestamp: now(), Seq: 7, DeviceID: "pump-1", Key: p.SecureKey})
	raw, ack := d.Read(t)
	if ack.Type != official.FrameAck || ack.AckCode != official.AckOK {
		t.Fatalf("online answered %+v, want ack 0x00", ack)
	}
	wantTCPWire(t, "online ack", raw, official.Frame{Type: official.FrameAck, Timestamp: ack.Timestamp, Seq: 7, DeviceID: "pump-1", AckCode: official.AckOK})
	testutil.WaitDevice(t, c.admin, "pump-1", "online on node2", func(d testutil.Device) bool { return d.State == "online" && d.ServerID == "node2" })

	d.Send(t, official.Frame{Type: official.FrameReportProperty, Timestamp: now(), Seq: 8, DeviceID: "pump-1",
		Message: protocol.Message{Properties: map[string]any{"pressure": 2.5, "running": true, "label": "A"}}})
	raw, ack = d.Read(t)
	wantTCPWire(t, "report ack", raw, official.Frame{Type: official.FrameAck, Timestamp: ack.Timestamp, Seq: 8, DeviceID: "pump-1", AckCode: official.AckOK})
	// NULL: the connection's device.
	d.Send(t, official.Frame{Type: official.FrameReportProperty, Timestamp: now(), Seq: 9,
		Message: protocol.Message{Properties: map[string]any{"label": "B"}}})
	raw, ack = d.Read(t)
	wantTCPWire(t, "ack of a report with a NULL deviceId", raw, official.Frame{Type: official.FrameAck, Timestamp: ack.Timestamp, Seq: 9, AckCode: official.AckOK})
	testutil.WaitDevice(t, c.nodes[2].Client(c.admin.Token), "pump-1", "showing both reports through node3", func(d testutil.Device) bool {
		return d.Properties["pressure"] == 2.5 && d.Properties["running"] == true && d.Properties["label"] == "B"
	})

	// A read through node1 of the device on node2.
	pending := readVia(c, 0, "pump-1", "pressure")
	raw, req := d.Read(t)
	if req.Type != official.FrameReadProperty || req.DeviceID != "pump-1" || !reflect.DeepEqual(req.Message.PropertyNames, []string{"pressure"}) {
		t.Fatalf("downlink %+v, want a 0x04 readProperty of pressure for pump-1", req)
	}
	wantTCPWire(t, "readProperty", raw, official.Frame{Type: official.FrameReadProperty, Timestamp: req.Timestamp, Seq: req.Seq, DeviceID: "pump-1",
		Message: protocol.Message{PropertyNames: []string{"pressure"}}})
	d.Send(t, official.Frame{Type: official.FrameReadPropertyReply, Timestamp: now(), Seq: req.Seq, DeviceID: "pump-1",
		Message: protocol.Message{Success: protocol.Bool(true), Properties: map[string]any{"pressure": 2.75}}})
	if r := awaitRead(t, pending); !r.Success || r.Properties["pressure"] != 2.75 || r.MessageID == "" {
		t.Fatalf("read answered %+v, want pressure 2.75", r)
	}

	for _, tc := range []struct {
		what  string
		first official.Frame
	}{
		{"a report before any online frame", official.Frame{Type: official.FrameReportProperty, Timestamp: now(), Seq: 3, DeviceID: "pump-2",
			Message: protocol.Message{Properties: map[string]any{"pressure": 9.0}}}},
		{"an online frame with a wrong key", official.Frame{Type: official.FrameOnline, Timestamp: now(), Seq: 4, DeviceID: "pump-2", Key: "wrong-key"}},
		{"an online frame of an unknown device", official.Frame{Type: official.FrameOnline, Timestamp: now(), Seq: 5, DeviceID: "pump-9", Key: p.SecureKey}},
	} {
		bad := testutil.DialTCPDevice(t, hostPort(0, port))
		bad.Send(t, tc.first)
		raw, ack := bad.Read(t)
		wantTCPWire(t, tc.what, raw, official.Frame{Type: official.FrameAck, Timestamp: ack.Timestamp, Seq: tc.first.Seq, DeviceID: tc.first.DeviceID,
			AckCode: official.AckUnauthorized})
		bad.WaitClosed(t, tc.what)
	}
	if d := testutil.GetDevice(t, c.admin, "pump-2"); d.State != "notActive" {
		t.Fatalf("pump-2, only ever refused, is %q", d.State)
	}
	// The refused connections cost pump-1 nothing.
	d.Send(t, official.Frame{Type: official.FrameReportProperty, Timestamp: now(), Seq: 10, DeviceID: "pump-1",
		Message: protocol.Message{Properties: map[string]any{"label": "C"}}})
	raw, ack = d.Read(t)
	wantTCPWire(t, "report ack", raw, official.Frame{Type: official.FrameAck, Timestamp: ack.Timestamp, Seq: 10, DeviceID: "pump-1", AckCode: official.AckOK})
	testutil.WaitDevice(t, c.admin, "pump-1", "showing its last report", func(d testutil.Device) bool { return d.Properties["label"] == "C" })
}

// wantUDPWire fails unless raw is exactly what official.EncodeUDP writes for want.
func wantUDPWire(t *testing.T, what string, raw []byte, want official.Datagram) {
	t.Helper()
	b, err := official.EncodeUDP(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, b) {
		t.Fatalf("%s: the server sent\n% x\nwant what official.EncodeUDP writes for %+v:\n% x", what, raw, want, b)
	}
}

// TestTransportUDP: a datagram with the key and a report is answered with an ack
// datagram (authType 0, an empty key) and shows through other nodes; a read through
// another node's API reaches the device's socket at its last address and the reply
// datagram completes it; a wrong key is acked 0x01 and changes nothing (SPEC §5.2 UDP).
func TestTransportUDP(t *testing.T) {
	c := startCluster(t)
	dumpLogs(t, c)
	port := officialGateway(t, c, "UDP", "udp-off", "gw-udp", "udp-device-gateway", nil)
	p := testutil.CreateProductWithDevices(t, c.admin, "valve", "gw-udp", "valve-1")
	c.synced(t)
	now := func() int64 { return time.Now().UnixMilli() }

	d := testutil.DialUDPDevice(t, hostPort(2, port))
	report := official.Frame{Type: official.FrameReportProperty, Timestamp: now(), Seq: 1, DeviceID: "valve-1",
		Message: protocol.Message{Properties: map[string]any{"open": true, "flow": 1.5}}}
	ack := d.Exchange(t, p.SecureKey, report, nil)
	if ack.Frame.AckCode != official.AckOK {
		t.Fatalf("report answered %+v, want ack 0x00", ack)
	}
	testutil.WaitDevice(t, c.admin, "valve-1", "online on node3 with its report", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node3" && d.Properties["open"] == true && d.Properties["flow"] == 1.5
	})
	// The exact answer, from a second report.
	report.Seq, report.Message.Properties = 2, map[string]any{"flow": 1.25}
	d.Send(t, p.SecureKey, report)
	raw, ackDg, ok := d.Read(t, 20*time.Second)
	if !ok {
		t.Fatal("no answer to the second report")
	}
	wantUDPWire(t, "report ack", raw, official.Datagram{AuthType: official.AuthToken, Key: "",
		Frame: official.Frame{Type: official.FrameAck, Timestamp: ackDg.Frame.Timestamp, Seq: 2, DeviceID: "valve-1", AckCode: official.AckOK}})
	testutil.WaitDevice(t, c.nodes[1].Client(c.admin.Token), "valve-1", "showing the second report through node2", func(d testutil.Device) bool {
		return d.Properties["flow"] == 1.25
	})

	// A read through node2 of the device last heard on node3.
	pending := readVia(c, 1, "valve-1", "flow")
	raw, down, ok := d.Read(t, 30*time.Second)
	if !ok || down.Frame.Type != official.FrameReadProperty || !reflect.DeepEqual(down.Frame.Message.PropertyNames, []string{"flow"}) {
		t.Fatalf("downlink %+v (ok %v), want a readProperty datagram naming flow", down, ok)
	}
	wantUDPWire(t, "readProperty", raw, official.Datagram{AuthType: official.AuthToken, Key: p.SecureKey,
		Frame: official.Frame{Type: official.FrameReadProperty, Timestamp: down.Frame.Timestamp, Seq: down.Frame.Seq, DeviceID: "valve-1",
			Message: protocol.Message{PropertyNames: []string{"flow"}}}})
	reply := official.Frame{Type: official.FrameReadPropertyReply, Timestamp: now(), Seq: down.Frame.Seq, DeviceID: "valve-1",
		Message: protocol.Message{Success: protocol.Bool(true), Properties: map[string]any{"flow": 1.75}}}
	var r readReply
	for answered := false; !answered; {
		d.Send(t, p.SecureKey, reply) // again if it was lost: the messageId is answered once
		select {
		case r = <-pending:
			answered = true
		case <-time.After(2 * time.Second):
		}
	}
	if r.err != nil || !r.Success || r.Properties["flow"] != 1.75 {
		t.Fatalf("read answered %+v, want flow 1.75", r)
	}

	bad := report
	bad.Seq, bad.Message.Properties = 3, map[string]any{"flow": 99.0}
	d.Send(t, "wrong-key", bad)
	for {
		raw, dg, ok := d.Read(t, 20*time.Second)
		if !ok {
			t.Fatal("no answer to a datagram with a wrong key")
		}
		if dg.Frame.Type == official.FrameAck && dg.Frame.Seq == 3 {
			wantUDPWire(t, "wrong key", raw, official.Datagram{AuthType: official.AuthToken,
				Frame: official.Frame{Type: official.FrameAck, Timestamp: dg.Frame.Timestamp, Seq: 3, DeviceID: "valve-1", AckCode: official.AckUnauthorized}})
			break
		}
	}
	report.Seq, report.Message.Properties = 4, map[string]any{"open": false}
	d.Exchange(t, p.SecureKey, report, nil)
	dv := testutil.WaitDevice(t, c.admin, "valve-1", "showing its last report", func(d testutil.Device) bool { return d.Properties["open"] == false })
	// 1.75: the read's reply is the device's last word on flow.
	if dv.Properties["flow"] != 1.75 {
		t.Fatalf("flow is %v after a datagram with a wrong key, want 1.75 (the read reply's) still", dv.Properties["flow"])
	}
}

// garbageRounds is how many reports the well-behaved device makes while garbage flows.
const garbageRounds = 8

// randBytes is n random bytes.
func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// underGarbage has a well-behaved device report n = 0 and be seen online, then report
// n = 1..garbageRounds while garbage runs
// round after round on another goroutine (one whole round before the first report),
// each report waited for through another node's API. Then the node still serves: its
// listener runs, its API answers, a report after the garbage arrives, and no garbage
// message that named the good device ("hijacked") was taken for it (acceptance 9).
// garbage returns an error only for what a node that serves would not do (refuse a
// connection, answer a bad request with a 5xx).
func underGarbage(t *testing.T, c *cluster, node int, component, deviceID string, garbage func(r *rand.Rand) error, report func(n int)) {
	t.Helper()
	nodeID := fmt.Sprintf("node%d", node+1)
	via := c.nodes[(node+1)%3].Client(c.admin.Token)
	report(0)
	testutil.WaitDevice(t, via, deviceID, "online with its first report before the garbage", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == nodeID && d.Properties["n"] == float64(0)
	})
	seed := uint64(time.Now().UnixNano())
	t.Logf("garbage seed %d", seed)
	if err := garbage(rand.New(rand.NewPCG(seed, 0))); err != nil {
		t.Fatalf("garbage round: %v", err)
	}
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	t.Cleanup(halt)
	done := make(chan error, 1)
	var rounds atomic.Int64
	go func() {
		r := rand.New(rand.NewPCG(seed, 1))
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := garbage(r); err != nil {
				done <- err
				return
			}
			rounds.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for i := 1; i <= garbageRounds; i++ {
		report(i)
		testutil.WaitDevice(t, via, deviceID, fmt.Sprintf("showing report n=%d under garbage", i), func(d testutil.Device) bool {
			return d.Properties["n"] == float64(i)
		})
		time.Sleep(20 * time.Millisecond) // spreads the reports over more garbage rounds
	}
	halt()
	if err := <-done; err != nil {
		t.Fatalf("garbage round while the device reported: %v", err)
	}
	t.Logf("%d garbage rounds ran while %d reports arrived", rounds.Load()+1, garbageRounds)

	if st := testutil.ComponentStatus(t, c.admin, component)[nodeID]; st.State != "running" {
		t.Fatalf("%s's listener after the garbage: %+v", nodeID, st)
	}
	report(garbageRounds + 1)
	d := testutil.WaitDevice(t, c.nodes[node].Client(c.admin.Token), deviceID, "showing the report after the garbage through its own node", func(d testutil.Device) bool {
		return d.Properties["n"] == float64(garbageRounds+1)
	})
	if d.State != "online" || d.ServerID != nodeID {
		t.Fatalf("the good device after the garbage: %+v, want online on %s", d, nodeID)
	}
	if _, ok := d.Properties["hijacked"]; ok {
		t.Fatalf("a garbage message naming %s was taken for it: %v", deviceID, d.Properties)
	}
}

// rawSend dials addr over network, writes each of msgs and closes; only the dial can fail
// (the server may close as soon as it sees garbage).
func rawSend(network, addr string, msgs ...[]byte) error {
	conn, err := net.DialTimeout(network, addr, 20*time.Second)
	if err != nil {
		return fmt.Errorf("dial %s %s under garbage: %w", network, addr, err)
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	for _, m := range msgs {
		if _, err := conn.Write(m); err != nil {
			break
		}
	}
	return nil
}

// TestGarbageOnEveryTransport: on each official transport and MQTT, one client sends
// random bytes, truncated frames and bad JSON (and messages naming another device) while
// a well-behaved device on the same node keeps reporting; its reports keep arriving and
// the node keeps serving (SPEC §6 bad input, acceptance 9).
func TestGarbageOnEveryTransport(t *testing.T) {
	c := startCluster(t)
	dumpLogs(t, c)
	now := func() int64 { return time.Now().UnixMilli() }

	t.Run("HTTP", func(t *testing.T) {
		port := officialGateway(t, c, "HTTP_SERVER", "g-http", "gw-g-http", "http-server-gateway", nil)
		p := testutil.CreateProductWithDevices(t, c.admin, "g-http", "gw-g-http", "g-http-good", "g-http-bad")
		c.synced(t)
		hc := &http.Client{Timeout: 20 * time.Second}
		post := func(path, token string, body []byte) (int, error) {
			req, err := http.NewRequest(http.MethodPost, "http://"+hostPort(0, port)+path, bytes.NewReader(body))
			if err != nil {
				return 0, nil // a path the client itself will not send
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := hc.Do(req)
			if err != nil {
				return 0, fmt.Errorf("POST %s under garbage: %w", path, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		garbage := func(r *rand.Rand) error {
			for _, b := range [][]byte{randBytes(r, 1+r.IntN(200)), []byte(`{"properties": `), []byte(`{"properties": "x"}`), []byte(`[1, 2]`)} {
				status, err := post("/g-http/g-http-bad/properties/report", p.SecureKey, b)
				if err != nil {
					return err
				}
				if status != http.StatusBadRequest {
					return fmt.Errorf("body % x answered %d, want 400", b, status)
				}
			}
			if status, err := post("/g-http/g-http-good/properties/report", "wrong", []byte(`{"properties": {"hijacked": true}}`)); err != nil || status != http.StatusUnauthorized {
				return fmt.Errorf("wrong token answered %d (%v), want 401", status, err)
			}
			path := "/" + url.PathEscape(string(randBytes(r, 12))) + "/" + url.PathEscape(string(randBytes(r, 12))) + "/properties/report"
			if status, err := post(path, p.SecureKey, []byte(`{}`)); err != nil || status >= 500 {
				return fmt.Errorf("random path answered %d (%v)", status, err)
			}
			return rawSend("tcp", hostPort(0, port), randBytes(r, 256))
		}
		garbageCut := func(r *rand.Rand) error {
			if err := garbage(r); err != nil {
				return err
			}
			// A request cut short: headers promising a body that never comes.
			return rawSend("tcp", hostPort(0, port), []byte("POST /g-http/g-http-bad/properties/report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+
				p.SecureKey+"\r\nContent-Length: 100\r\n\r\n{\"prop"))
		}
		underGarbage(t, c, 0, "g-http", "g-http-good", garbageCut, func(n int) {
			if status, body := httpPost(t, 0, port, "/g-http/g-http-good/properties/report", p.SecureKey, fmt.Sprintf(`{"properties": {"n": %d}}`, n)); status != http.StatusOK {
				t.Fatalf("good report: %d %v", status, body)
			}
		})
	})

	t.Run("WebSocket", func(t *testing.T) {
		port := officialGateway(t, c, "WEB_SOCKET_SERVER", "g-ws", "gw-g-ws", "websocket-server", nil)
		p := testutil.CreateProductWithDevices(t, c.admin, "g-ws", "gw-g-ws", "g-ws-good", "g-ws-bad")
		c.synced(t)
		good, _, err := websocket.DefaultDialer.Dial(wsURL(1, port, "/g-ws/g-ws-good?token="+p.SecureKey), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer good.Close()
		garbage := func(r *rand.Rand) error {
			ws, _, err := websocket.DefaultDialer.Dial(wsURL(1, port, "/g-ws/g-ws-bad?token="+p.SecureKey), nil)
			if err != nil {
				return fmt.Errorf("websocket dial under garbage: %w", err)
			}
			defer ws.Close()
			for _, f := range []struct {
				kind int
				b    []byte
			}{
				{websocket.BinaryMessage, randBytes(r, 1+r.IntN(200))},
				{websocket.TextMessage, []byte(`{"topic": `)},
				{websocket.TextMessage, []byte(`{"topic": "/g-ws/g-ws-bad/properties/report", "payload": [1]}`)},
				{websocket.TextMessage, []byte(`{"topic": "/g-ws/g-ws-bad/no-such-suffix", "payload": {}}`)},
				{websocket.TextMessage, []byte(`{"topic": "/g-ws/g-ws-good/properties/report", "payload": {"properties": {"hijacked": true}}}`)},
			} {
				if ws.WriteMessage(f.kind, f.b) != nil {
					break // closed by the server: a frame naming another device ends the connection
				}
			}
			// Raw bytes inside the WebSocket stream break its framing.
			_, _ = ws.UnderlyingConn().Write(randBytes(r, 64))
			if err := rawSend("tcp", hostPort(1, port), randBytes(r, 256)); err != nil {
				return err
			}
			return rawSend("tcp", hostPort(1, port), []byte("GET /g-ws/g-ws-bad HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Ver"))
		}
		underGarbage(t, c, 1, "g-ws", "g-ws-good", garbage, func(n int) {
			if err := good.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"topic": "/g-ws/g-ws-good/properties/report", "payload": {"properties": {"n": %d}}}`, n)); err != nil {
				t.Fatalf("good report: %v", err)
			}
		})
	})

	t.Run("CoAP", func(t *testing.T) {
		port := officialGateway(t, c, "COAP_SERVER", "g-coap", "gw-g-coap", "coap-server-gateway", nil)
		p := testutil.CreateProductWithKey(t, c.admin, "g-coap", "gw-g-coap", "g-coap-key-01234", "g-coap-good", "g-coap-bad")
		c.synced(t)
		dir := t.TempDir()
		coapURL := func(path string) string { return "coap://" + hostPort(2, port) + path }
		garbage := func(r *rand.Rand) error {
			// Datagrams that are not CoAP, a header promising an 8-byte token it lacks, a
			// payload marker with no payload.
			if err := rawSend("udp", hostPort(2, port), randBytes(r, 1+r.IntN(100)), randBytes(r, 4),
				[]byte{0x48, 0x02, 0x12, 0x34}, []byte{0x40, 0x02, 0x00, 0x01, 0xff}); err != nil {
				return err
			}
			wrong, _ := official.Encrypt("0123456789abcdef", []byte(`{"properties": {"hijacked": true}}`))
			cut, _ := official.Encrypt(p.SecureKey, []byte(`{"properties": `))
			for _, tc := range []struct {
				path    string
				payload []byte
			}{
				{"/g-coap/g-coap-bad/properties/report", randBytes(r, 1+r.IntN(64))},
				{"/g-coap/g-coap-bad/properties/report", []byte(`{"properties": {"n": -1}}`)},
				{"/g-coap/g-coap-bad/properties/report", cut},
				{"/g-coap/g-coap-good/properties/report", wrong},
			} {
				a, err := testutil.PostCoAP(dir, coapURL(tc.path), tc.payload)
				if err != nil {
					return err
				}
				if a.Code != "4.00" {
					return fmt.Errorf("garbage % x to %s answered %q, want 4.00:\n%s", tc.payload, tc.path, a.Code, a.Output)
				}
			}
			return nil
		}
		underGarbage(t, c, 2, "g-coap", "g-coap-good", garbage, func(n int) {
			b, _ := official.Encrypt(p.SecureKey, fmt.Appendf(nil, `{"properties": {"n": %d}}`, n))
			if a := testutil.CoAPPost(t, coapURL("/g-coap/g-coap-good/properties/report"), b); a.Code != "2.01" {
				t.Fatalf("good report answered %q:\n%s", a.Code, a.Output)
			}
		})
	})

	t.Run("TCP", func(t *testing.T) {
		port := officialGateway(t, c, "TCP_SERVER", "g-tcp", "gw-g-tcp", "tcp-server-gateway", map[string]any{
			"parserType": "LENGTH_FIELD", "parserConfiguration": map[string]any{"offset": 0, "length": 4}})
		p := testutil.CreateProductWithDevices(t, c.admin, "g-tcp", "gw-g-tcp", "g-tcp-good", "g-tcp-bad")
		c.synced(t)
		good := testutil.DialTCPDevice(t, hostPort(0, port))
		good.Send(t, official.Frame{Type: official.FrameOnline, Timestamp: now(), Seq: 1, DeviceID: "g-tcp-good", Key: p.SecureKey})
		if _, ack := good.Read(t); ack.AckCode != official.AckOK {
			t.Fatalf("good online: %+v", ack)
		}
		frame := func(body []byte) []byte {
			return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
		}
		garbage := func(r *rand.Rand) error {
			addr := hostPort(0, port)
			// A frame of random body, then random bytes (whatever length they announce).
			if err := rawSend("tcp", addr, frame(randBytes(r, 1+r.IntN(100))), randBytes(r, 64)); err != nil {
				return err
			}
			// A frame cut short; a frame announced over 1 MiB.
			if err := rawSend("tcp", addr, []byte{0, 0, 0, 100}, randBytes(r, 10)); err != nil {
				return err
			}
			if err := rawSend("tcp", addr, []byte{0, 0x20, 0, 0}, randBytes(r, 100)); err != nil {
				return err
			}
			// An authenticated connection sending garbage frames, then a report for another
			// device (which ends it).
			conn, err := net.DialTimeout("tcp", addr, 20*time.Second)
			if err != nil {
				return fmt.Errorf("dial under garbage: %w", err)
			}
			defer conn.Close()
			d := &testutil.TCPDevice{Conn: conn}
			online, _ := official.EncodeTCP(official.Frame{Type: official.FrameOnline, Timestamp: now(), Seq: 1, DeviceID: "g-tcp-bad", Key: p.SecureKey})
			if _, err := conn.Write(online); err != nil {
				return fmt.Errorf("online under garbage: %w", err)
			}
			raw, err := d.ReadRaw()
			if err != nil {
				return fmt.Errorf("no ack to an online frame under garbage: %w", err)
			}
			if ack, err := official.DecodeTCP(raw); err != nil || ack.Type != official.FrameAck || ack.AckCode != official.AckOK {
				return fmt.Errorf("online under garbage answered % x", raw)
			}
			report, _ := official.EncodeTCP(official.Frame{Type: official.FrameReportProperty, Timestamp: now(), Seq: 2, DeviceID: "g-tcp-bad",
				Message: protocol.Message{Properties: map[string]any{"n": -1}}})
			hijack, _ := official.EncodeTCP(official.Frame{Type: official.FrameReportProperty, Timestamp: now(), Seq: 3, DeviceID: "g-tcp-good",
				Message: protocol.Message{Properties: map[string]any{"hijacked": true}}})
			unknown := frame(append([]byte{0x7f}, randBytes(r, 20)...))
			truncated := frame(report[4 : len(report)-3])
			for _, m := range [][]byte{frame(randBytes(r, 1+r.IntN(100))), unknown, truncated, hijack} {
				if _, err := conn.Write(m); err != nil {
					break
				}
			}
			return nil
		}
		seq := uint16(100)
		underGarbage(t, c, 0, "g-tcp", "g-tcp-good", garbage, func(n int) {
			seq++
			good.Send(t, official.Frame{Type: official.FrameReportProperty, Timestamp: now(), Seq: seq, DeviceID: "g-tcp-good",
				Message: protocol.Message{Properties: map[string]any{"n": n}}})
			if _, ack := good.Read(t); ack.Seq != seq || ack.AckCode != official.AckOK {
				t.Fatalf("good report %d answered %+v", seq, ack)
			}
		})
	})

	t.Run("UDP", func(t *testing.T) {
		port := officialGateway(t, c, "UDP", "g-udp", "gw-g-udp", "udp-device-gateway", nil)
		p := testutil.CreateProductWithDevices(t, c.admin, "g-udp", "gw-g-udp", "g-udp-good", "g-udp-bad")
		c.synced(t)
		good := testutil.DialUDPDevice(t, hostPort(1, port))
		garbage := func(r *rand.Rand) error {
			dg := func(key string, f official.Frame) []byte {
				b, _ := official.EncodeUDP(official.Datagram{AuthType: official.AuthToken, Key: key, Frame: f})
				return b
			}
			report := official.Frame{Type: official.FrameReportProperty, Timestamp: now(), Seq: 1, DeviceID: "g-udp-bad",
				Message: protocol.Message{Properties: map[string]any{"n": -1}}}
			full := dg(p.SecureKey, report)
			hijack := report
			hijack.DeviceID, hijack.Message.Properties = "g-udp-good", map[string]any{"hijacked": true}
			ghost := report
			ghost.DeviceID = "g-udp-ghost"
			return rawSend("udp", hostPort(1, port),
				randBytes(r, 1+r.IntN(200)),
				full[:len(full)-1-r.IntN(len(full)-1)], // cut anywhere
				append([]byte{0x00, 0xff, 0xff}, randBytes(r, 30)...),
				dg("wrong-key", hijack),
				dg(p.SecureKey, ghost),
				append(dg(p.SecureKey, report)[:3+len(p.SecureKey)], 0x7f))
		}
		seq := uint16(100)
		underGarbage(t, c, 1, "g-udp", "g-udp-good", garbage, func(n int) {
			seq++
			ack := good.Exchange(t, p.SecureKey, official.Frame{Type: official.FrameReportProperty, Timestamp: now(), Seq: seq, DeviceID: "g-udp-good",
				Message: protocol.Message{Properties: map[string]any{"n": n}}}, nil)
			if ack.Frame.AckCode != official.AckOK {
				t.Fatalf("good report answered %+v", ack)
			}
		})
	})

	t.Run("MQTT", func(t *testing.T) {
		port := mqttGateway(t, c, "g-mqtt", "gw-g-mqtt", "official")
		p := testutil.CreateProductWithDevices(t, c.admin, "g-mqtt", "gw-g-mqtt", "g-mqtt-good", "g-mqtt-bad")
		c.synced(t)
		addr := hostPort(2, port)
		good := testutil.ConnectMQTTDevice(t, addr, "g-mqtt-good", p)
		garbage := func(r *rand.Rand) error {
			if err := rawSend("tcp", addr, randBytes(r, 1+r.IntN(200))); err != nil {
				return err
			}
			// A CONNECT announcing 48 bytes and cut after 9.
			if err := rawSend("tcp", addr, []byte{0x10, 0x30, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04}); err != nil {
				return err
			}
			bad, err := testutil.DialMQTTDevice(addr, "g-mqtt-bad", p, testutil.MQTTOptions(addr, "g-mqtt-bad", p, false))
			if err != nil {
				return fmt.Errorf("an official device could not connect under garbage: %w", err)
			}
			defer bad.Close()
			for _, m := range []struct {
				topic   string
				payload []byte
			}{
				{"/g-mqtt/g-mqtt-bad/properties/report", randBytes(r, 1+r.IntN(200))},
				{"/g-mqtt/g-mqtt-bad/properties/report", []byte(`{"properties": `)},
				{"/g-mqtt/g-mqtt-bad/properties/report", []byte(`{"properties": [1]}`)},
				{"/g-mqtt/g-mqtt-bad/no-such-suffix", []byte(`{}`)},
				{"/" + string(randBytes(r, 8)), []byte(`{}`)},
				{"/g-mqtt/g-mqtt-good/properties/report", []byte(`{"properties": {"hijacked": true}}`)},
				{"/g-mqtt/g-mqtt-bad/properties/report", bytes.Repeat([]byte{'x'}, 10000)}, // over maxMessageSize
			} {
				if !bad.Client.IsConnectionOpen() {
					break // the server closed it (a bad topic, another device's topic)
				}
				// A publish the server answered by closing may never complete: waiting
				// long would only slow the garbage down.
				bad.Client.Publish(m.topic, 0, false, m.payload).WaitTimeout(time.Second)
			}
			return nil
		}
		underGarbage(t, c, 2, "g-mqtt", "g-mqtt-good", garbage, func(n int) { good.Report(t, map[string]any{"n": n}) })
	})
}

// kvCodec decodes "k=v,k=v" text published on /b/<deviceId>/up into a report of that
// device; any other topic is reported as an error and yields no message.
const kvCodec = `
function decode(input) {
  var m = /^\/b\/([^\/]+)\/up$/.exec(input.topic || "");
  if (!m) { return {messages: [], errors: ["not a /b/<deviceId>/up topic: " + input.topic]}; }
  var props = {};
  String.fromCharCode.apply(null, input.bytes).split(",").forEach(function (kv) {
    var p = kv.split("=");
    props[p[0]] = Number(p[1]);
  });
  return {messages: [{type: "reportProperty", deviceId: m[1], properties: props}]};
}
function encode(msg) { return {topic: "/b/" + msg.deviceId + "/down", bytes: []}; }
`

// TestSharedMQTTServerTwoProtocols: two gateways share one MQTT_SERVER, one official,
// one an uploaded JavaScript codec; each product's devices are served by their own
// gateway and decoded by its protocol only, and the codec's devices still log in with
// the official MQTT authentication, since the codec exports no authenticate (SPEC
// §4.4.1, acceptance 7).
func TestSharedMQTTServerTwoProtocols(t *testing.T) {
	c := startCluster(t)
	dumpLogs(t, c)
	testutil.UploadProtocol(t, c.admin, "kv", testutil.ProtocolZip(t, map[string]string{
		"manifest.json": testutil.Manifest("kv", "MQTT"), "codec.js": kvCodec}))
	port := mqttGateway(t, c, "mqtt-shared", "gw-a", "official")
	c.do(t, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "gw-b", "name": "gw-b", "provider": "mqtt-server-gateway",
		"channelId": "mqtt-shared", "protocol": "kv", "state": "enabled"}, nil)
	pa := testutil.CreateProductWithDevices(t, c.admin, "pa", "gw-a", "pa-1")
	pb := testutil.CreateProductWithDevices(t, c.admin, "pb", "gw-b", "pb-1")
	c.synced(t)

	a := testutil.ConnectMQTTDevice(t, hostPort(0, port), "pa-1", pa)
	b := testutil.ConnectMQTTDevice(t, hostPort(1, port), "pb-1", pb)
	publish := func(d *testutil.MQTTDevice, topic, payload string) {
		t.Helper()
		tok := d.Client.Publish(topic, 1, false, payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("%s publish %s: %v", d.ID, topic, tok.Error())
		}
	}
	// Each device first speaks the other gateway's protocol: its own gateway's does not
	// decode it. Then each speaks its own.
	publish(a, "/b/pa-1/up", "crossA=1")
	publish(b, "/pb/pb-1/properties/report", `{"properties": {"crossB": 1}}`)
	a.Report(t, map[string]any{"temp": 20.5})
	publish(b, "/b/pb-1/up", "temp=21,hum=40")

	via := c.nodes[2].Client(c.admin.Token)
	da := testutil.WaitDevice(t, via, "pa-1", "online on node1 with its official report", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node1" && d.Properties["temp"] == 20.5
	})
	db := testutil.WaitDevice(t, via, "pb-1", "online on node2 with its codec-decoded report", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node2" && d.Properties["temp"] == float64(21) && d.Properties["hum"] == float64(40)
	})
	if _, ok := da.Properties["crossA"]; ok {
		t.Fatalf("the official gateway decoded the codec's text for pa-1: %v", da.Properties)
	}
	if _, ok := db.Properties["crossB"]; ok {
		t.Fatalf("the codec's device had an official JSON report decoded: %v", db.Properties)
	}
	if n := testutil.Metric(t, c.nodes[1].Client(c.admin.Token), "linkops_codec_errors_total", map[string]string{"gateway": "gw-b", "reason": "reported"}); n != 1 {
		t.Fatalf("gw-b's codec reported %v errors, want 1 (the official JSON it was given)", n)
	}
	if s := sessionsOf(t, c, "gw-a"); len(s) != 1 || s["pa-1"] != "node1" {
		t.Fatalf("gw-a sessions %v, want pa-1 on node1 only", s)
	}
	if s := sessionsOf(t, c, "gw-b"); len(s) != 1 || s["pb-1"] != "node2" {
		t.Fatalf("gw-b sessions %v, want pb-1 on node2 only", s)
	}

	// The codec exports no authenticate: its devices log in with the official md5
	// signature of their own product, nothing else.
	addr := hostPort(2, port)
	o := testutil.MQTTOptions(addr, "pb-1", pb, false)
	o.SetPassword("0123456789abcdef0123456789abcdef")
	refusedWith(t, "the codec's device with a wrong password", o, packets.ErrorRefusedBadUsernameOrPassword)
	refusedWith(t, "the codec's device signing with the official product's key", testutil.MQTTOptions(addr, "pb-1", pa, false), packets.ErrorRefusedBadUsernameOrPassword)
	again := testutil.ConnectMQTTDevice(t, addr, "pb-1", pb)
	tok := again.Client.Publish("/b/pb-1/up", 1, false, "temp=22")
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	testutil.WaitDevice(t, c.admin, "pb-1", "online on node3 after reconnecting", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node3" && d.Properties["temp"] == float64(22)
	})
}

// TestTransportTCPUntypedDeviceID: a TCP gateway set to binaryDeviceId "untyped" speaks
// what jetlinks-official-protocol 3.x devices write (the deviceId as a bare uint16 length
// and UTF-8): such a device logs in, reports, and is acked in the same dialect.
func TestTransportTCPUntypedDeviceID(t *testing.T) {
	c := startCluster(t)
	dumpLogs(t, c)
	port := testutil.FreePort(t, "tcp")
	c.create(t, testutil.PerNodeComponent("tcp-ref", "TCP_SERVER", port, map[string]any{
		"parserType": "LENGTH_FIELD", "parserConfiguration": map[string]any{"offset": 0, "length": 4}}))
	testutil.WaitComponentStates(t, c.admin, "tcp-ref", allRunning)
	c.do(t, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "gw-ref", "name": "gw-ref", "provider": "tcp-server-gateway",
		"channelId": "tcp-ref", "protocol": "official", "state": "enabled", "configuration": map[string]any{"binaryDeviceId": "untyped"}}, nil)
	p := testutil.CreateProductWithDevices(t, c.admin, "legacy", "gw-ref", "legacy-1")
	c.synced(t)

	ref := official.Dialect{UntypedDeviceID: true}
	conn, err := net.Dial("tcp", hostPort(0, port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	send := func(f official.Frame) {
		b, err := ref.EncodeTCP(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	readAck := func(seq uint16) {
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		f, err := ref.ReadTCP(conn, 1<<20)
		if err != nil || f.Type != official.FrameAck || f.AckCode != official.AckOK || f.Seq != seq || f.DeviceID != "legacy-1" {
			t.Fatalf("ack of seq %d in the reference dialect: %+v %v", seq, f, err)
		}
	}
	send(official.Frame{Type: official.FrameOnline, Timestamp: time.Now().UnixMilli(), Seq: 1, DeviceID: "legacy-1", Key: p.SecureKey})
	readAck(1)
	send(official.Frame{Type: official.FrameReportProperty, Timestamp: time.Now().UnixMilli(), Seq: 2, DeviceID: "legacy-1",
		Message: protocol.Message{Properties: map[string]any{"volts": 230}}})
	readAck(2)
	testutil.WaitDevice(t, c.admin, "legacy-1", "online with its report", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node1" && d.Properties["volts"] == float64(230)
	})

	var problem *client.Problem
	_, err = c.admin.Do(context.Background(), http.MethodPost, "/api/v1/gateways", map[string]any{"id": "gw-bad", "name": "gw-bad",
		"provider": "tcp-server-gateway", "channelId": "tcp-ref", "protocol": "official", "configuration": map[string]any{"binaryDeviceId": "maybe"}}, nil)
	if !errors.As(err, &problem) || problem.Status != http.StatusBadRequest || len(problem.Errors) == 0 || problem.Errors[0].Field != "configuration.binaryDeviceId" {
		t.Fatalf("an unknown dialect: %v, want 400 naming configuration.binaryDeviceId", err)
	}
}
