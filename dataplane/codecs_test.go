package dataplane_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/internal/testutil"
)

// lineCodec decodes "<deviceId> <property>=<number>" lines; "loop" never returns and
// "throw" throws, so that a codec's failures can be provoked per message.
const lineCodec = `
function decode(input) {
  var text = String.fromCharCode.apply(null, input.bytes);
  var parts = text.split(" ");
  if (parts[1] === "loop") { while (true) {} }
  if (parts[1] === "throw") { throw new Error("cannot read " + text); }
  var kv = parts[1].split("=");
  var props = {};
  props[kv[0]] = Number(kv[1]);
  return {messages: [{type: "reportProperty", deviceId: parts[0], properties: props}]};
}
function encode(msg) { return {bytes: []}; }
`

// TestUploadedCodecOverTCP: a TCP gateway with DELIMITED framing and an uploaded codec
// decodes lines into reports; a call that loops is interrupted and costs that one message
// while another device on the same node keeps being served; a codec that throws costs
// exactly one message, counted (issue 10, acceptance 6).
func TestUploadedCodecOverTCP(t *testing.T) {
	c := startCluster(t)
	dumpLogs(t, c)
	testutil.UploadProtocol(t, c.admin, "lines", testutil.ProtocolZip(t, map[string]string{
		"manifest.json": testutil.Manifest("lines", "TCP"), "codec.js": lineCodec}))
	port := testutil.FreePort(t, "tcp")
	c.create(t, testutil.PerNodeComponent("tcp-lines", "TCP_SERVER", port, map[string]any{
		"parserType": "DELIMITED", "parserConfiguration": map[string]any{"delimited": `\n`}}))
	testutil.WaitComponentStates(t, c.admin, "tcp-lines", allRunning)
	c.do(t, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "gw-lines", "name": "gw-lines", "provider": "tcp-server-gateway",
		"channelId": "tcp-lines", "protocol": "lines", "state": "enabled"}, nil)
	testutil.CreateProductWithDevices(t, c.admin, "sensor", "gw-lines", "s-a", "s-b")
	c.synced(t)

	dial := func() net.Conn {
		conn, err := net.Dial("tcp", hostPort(1, port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	a, b := dial(), dial()
	fmt.Fprintf(a, "s-a temp=1\n")
	testutil.WaitDevice(t, c.admin, "s-a", "reporting temp=1 on node2", func(d testutil.Device) bool {
		return d.State == "online" && d.ServerID == "node2" && d.Properties["temp"] == float64(1)
	})

	// s-a's codec call loops; s-b keeps being served meanwhile.
	fmt.Fprintf(a, "s-a loop\n")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(b, "s-b temp=%d\n", i)
	}
	testutil.WaitDevice(t, c.admin, "s-b", "served while s-a's codec loops", func(d testutil.Device) bool { return d.Properties["temp"] == float64(20) })
	// The loop cost that one message: the connection and the device's next report work.
	fmt.Fprintf(a, "s-a temp=2\n")
	testutil.WaitDevice(t, c.admin, "s-a", "reporting again after its looping message", func(d testutil.Device) bool { return d.Properties["temp"] == float64(2) })

	fmt.Fprintf(a, "s-a throw\n")
	fmt.Fprintf(a, "s-a temp=3\n")
	testutil.WaitDevice(t, c.admin, "s-a", "reporting after a message its codec threw on", func(d testutil.Device) bool { return d.Properties["temp"] == float64(3) })

	node2 := c.nodes[1].Client(c.admin.Token)
	if n := testutil.Metric(t, node2, "linkops_codec_errors_total", map[string]string{"gateway": "gw-lines", "reason": "timeout"}); n != 1 {
		t.Fatalf("codec timeouts counted %v, want 1", n)
	}
	if n := testutil.Metric(t, node2, "linkops_codec_errors_total", map[string]string{"gateway": "gw-lines", "reason": "exception"}); n != 1 {
		t.Fatalf("codec exceptions counted %v, want 1", n)
	}
	if n := testutil.Metric(t, node2, "linkops_device_messages_total", map[string]string{"gateway": "gw-lines", "direction": "up", "type": "reportProperty"}); n != 23 {
		t.Fatalf("reports counted %v, want 23 (3 of s-a, 20 of s-b)", n)
	}

	// A new package reaches the node without dropping the connection: the same connection's
	// next line is decoded by the new codec.
	testutil.ReplacePackage(t, c.admin, "lines", testutil.ProtocolZip(t, map[string]string{
		"manifest.json": testutil.Manifest("lines", "TCP"),
		"codec.js":      strings.Replace(lineCodec, "props[kv[0]] = Number(kv[1]);", "props[kv[0]] = Number(kv[1]) * 10;", 1)}))
	deadline := time.Now().Add(30 * time.Second)
	for i := 4; ; i++ {
		fmt.Fprintf(a, "s-a temp=%d\n", i)
		d := testutil.GetDevice(t, c.admin, "s-a")
		if d.Properties["temp"] == float64(10*(i-1)) || d.Properties["temp"] == float64(10*i) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new codec never decoded s-a's lines on its old connection: %+v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A line for a device that is not registered closes the TCP connection.
	bad := dial()
	fmt.Fprintf(bad, "ghost temp=1\n")
	_ = bad.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := bufio.NewReader(bad).ReadByte(); err == nil {
		t.Fatal("a connection naming an unknown device was not closed")
	}
}

// TestDisablingAGatewayClosesItsSessions: disabling closes its sessions on every node
// and refuses new ones; enabling accepts them again (acceptance 8).
func TestDisablingAGatewayClosesItsSessions(t *testing.T) {
	c, port, p := officialMQTTCluster(t, "mqtt-dis", "gw-dis", "valve", "v1", "v2", "v3")
	var devs []*testutil.MQTTDevice
	for i, id := range []string{"v1", "v2", "v3"} {
		devs = append(devs, testutil.ConnectMQTTDevice(t, hostPort(i, port), id, p))
	}
	for i, id := range []string{"v1", "v2", "v3"} {
		testutil.WaitDevice(t, c.admin, id, "online", func(d testutil.Device) bool { return d.State == "online" && d.ServerID == fmt.Sprintf("node%d", i+1) })
	}
	before := testutil.ComponentStatus(t, c.admin, "mqtt-dis")
	c.do(t, http.MethodPost, "/api/v1/gateways/gw-dis/disable", nil, nil)
	for _, d := range devs {
		deadline := time.Now().Add(20 * time.Second)
		for d.Client.IsConnected() {
			if time.Now().After(deadline) {
				t.Fatalf("%s is still connected after its gateway was disabled", d.ID)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, id := range []string{"v1", "v2", "v3"} {
		testutil.WaitDevice(t, c.admin, id, "offline", func(d testutil.Device) bool { return d.State == "offline" })
	}
	var sessions struct{ Total int }
	c.do(t, http.MethodGet, "/api/v1/gateways/gw-dis/sessions", nil, &sessions)
	if sessions.Total != 0 {
		t.Fatalf("a disabled gateway lists %d sessions", sessions.Total)
	}
	c.do(t, http.MethodPost, "/api/v1/gateways/gw-dis/enable", nil, nil)
	for i, id := range []string{"v1", "v2", "v3"} {
		testutil.DialMQTTDeviceWhenAccepted(t, hostPort(i, port), id, p)
	}
	c.do(t, http.MethodGet, "/api/v1/gateways/gw-dis/sessions", nil, &sessions)
	if sessions.Total != 3 {
		t.Fatalf("sessions after enabling: %d, want 3", sessions.Total)
	}
	// Neither change rebound a socket: every node's listener runs since before them.
	for node, st := range testutil.ComponentStatus(t, c.admin, "mqtt-dis") {
		if st.State != "running" || st.Since == nil || before[node].Since == nil || !st.Since.Equal(*before[node].Since) {
			t.Fatalf("%s's listener is %s since %v, was running since %v: a gateway change must not rebind", node, st.State, st.Since, before[node].Since)
		}
	}
}
