package sip_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
	lsip "github.com/linkops/linkops/sip"
)

const (
	domain   = "3402000000"
	serverID = "34020000002000000001"
	password = "gb-secret-1"
	camSipp  = "34020000001320000001"
	camGo    = "34020000001320000002"
	camLate  = "34020000001320000003"
	stranger = "34020000001320000099"
)

func TestGB28181OnThreeNodes(t *testing.T) {
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Fatalf("sipp is needed (scripts/test-deps.sh installs sip-tester): %v", err)
	}
	nodes := testutil.StartCluster(t, 3)
	admin := nodes[0].Admin(t)
	port := testutil.FreePort(t, "udp")
	testutil.GB28181PerNode(t, admin, len(nodes), port, serverID, domain, password, map[string]any{"keepaliveTimeoutSeconds": 10})
	testutil.CreateProductWithDevices(t, admin, "cams", "gb", camSipp, camGo, camLate)
	node2 := net.JoinHostPort(testutil.NodeHosts[1], strconv.Itoa(port))
	node3 := net.JoinHostPort(testutil.NodeHosts[2], strconv.Itoa(port))
	testutil.WaitSIP(t, node2)
	testutil.WaitSIP(t, node3)

	online := func(d testutil.Device) bool { return d.State == "online" }
	offline := func(d testutil.Device) bool { return d.State == "offline" }

	t.Run("gateway status names each node's SIP server", func(t *testing.T) {
		testutil.WaitFor(t, 20*time.Second, "the SIP server running on every node", func() bool {
			var st struct {
				Items []struct{ ServerID, State, Address string }
			}
			testutil.Do(t, admin, http.MethodGet, "/api/v1/gateways/gb/status", nil, &st)
			running := 0
			for _, it := range st.Items {
				i := int(it.ServerID[len(it.ServerID)-1] - '1')
				if it.State == "running" && i >= 0 && i < 3 && it.Address == net.JoinHostPort(testutil.NodeHosts[i], strconv.Itoa(port)) {
					running++
				}
			}
			return len(st.Items) == 3 && running == 3
		})
	})

	t.Run("garbage costs nothing", func(t *testing.T) {
		junk := make([]byte, 2000)
		for range 20 {
			_, _ = rand.Read(junk)
			if c, err := net.Dial("udp", node2); err == nil {
				_, _ = c.Write(junk)
				_, _ = c.Write([]byte("REGISTER sip:x SIP/2.0\r\nVia: garbage\r\n\r\n"))
				c.Close()
			}
			if c, err := net.Dial("tcp", node2); err == nil {
				_, _ = c.Write(junk)
				c.Close()
			}
		}
	})

	t.Run("sipp registers with digest and keeps itself online with keepalives", func(t *testing.T) {
		// Four keepalives 4 s apart outlast the gateway's keepaliveTimeoutSeconds (10 s).
		done := make(chan struct{})
		go func() {
			defer close(done)
			runSippScenario(t, "u1", node2, camSipp, password, sippWithKeepalives(4, 4*time.Second))
		}()
		for _, n := range nodes {
			testutil.WaitDevice(t, n.Admin(t), camSipp, "online", online)
		}
		registered := time.Now()
		<-done
		if t.Failed() {
			return
		}
		t.Logf("sipp sent its keepalives over %s", time.Since(registered).Round(time.Second))
		for _, n := range nodes {
			if d := testutil.GetDevice(t, n.Admin(t), camSipp); d.State != "online" {
				t.Fatalf("%s shows sipp's camera %s after its keepalives, want online", n.ID(), d.State)
			}
		}
		if m := testutil.Metric(t, nodes[1].Admin(t), "linkops_sip_keepalives_total", map[string]string{"gateway": "gb"}); m != 4 {
			t.Fatalf("node2 counted %v keepalives from sipp, want 4", m)
		}
	})

	t.Run("sipp with a wrong password is refused", func(t *testing.T) {
		runSipp(t, node2, camLate, "not-the-password", "403")
		if d := testutil.GetDevice(t, admin, camLate); d.State == "online" {
			t.Fatalf("refused camera is online: %+v", d)
		}
	})

	t.Run("sipp registers over TCP", func(t *testing.T) {
		runSippOver(t, "t1", node2, camLate, password, "200")
		testutil.WaitDevice(t, nodes[2].Admin(t), camLate, "online", online)
	})

	t.Run("an unknown device gets 403 without a challenge", func(t *testing.T) {
		cam := testutil.DialCamera(t, node3, stranger, domain, serverID, password)
		if res := cam.Request(t, cam.RegisterRequest(3600, nil)); res.StatusCode != 403 {
			t.Fatalf("unknown device: %d, want 403", res.StatusCode)
		}
	})

	t.Run("keepalives, Catalog in two MESSAGEs, Expires 0", func(t *testing.T) {
		cam := testutil.DialCamera(t, node3, camGo, domain, serverID, password)
		res := cam.Request(t, cam.RegisterRequest(3600, nil))
		if res.StatusCode != 401 {
			t.Fatalf("first REGISTER: %d, want 401", res.StatusCode)
		}
		res = cam.Request(t, cam.RegisterRequest(3600, res))
		if res.StatusCode != 200 || res.GetHeader("Date") == nil || res.GetHeader("Expires") == nil {
			t.Fatalf("authenticated REGISTER: %s", res.String())
		}
		// The server asks for the catalog right after the registration.
		q := cam.NextRequest(t, sip.MESSAGE)
		cmd, err := lsip.DecodeCommand(q.Body())
		if err != nil || cmd.Kind != lsip.KindQuery || cmd.CmdType != lsip.CmdCatalog || cmd.DeviceID != camGo {
			t.Fatalf("expected a Catalog query, got %q (%v)", q.Body(), err)
		}
		cam.Answer(t, q, 200, nil)
		first := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><Response><CmdType>Catalog</CmdType><SN>%d</SN><DeviceID>%s</DeviceID><SumNum>2</SumNum><DeviceList Num="1"><Item><DeviceID>34020000001310000001</DeviceID><Name>Gate</Name><Manufacturer>Hikvision</Manufacturer><Model>DS-2CD</Model><Status>ON</Status><ParentID>%s</ParentID></Item></DeviceList></Response>`, cmd.SN, camGo, camGo)
		second, err := simplifiedchinese.GBK.NewEncoder().String(fmt.Sprintf(`<?xml version="1.0" encoding="GB2312"?><Response><CmdType>Catalog</CmdType><SN>%d</SN><DeviceID>%s</DeviceID><SumNum>2</SumNum><DeviceList Num="1"><Item><DeviceID>34020000001310000002</DeviceID><Name>停车场</Name><Manufacturer>大华</Manufacturer><Model>IPC</Model><Status>OFF</Status><ParentID>%s</ParentID></Item></DeviceList></Response>`, cmd.SN, camGo, camGo))
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range []string{first, second} {
			if res := cam.Request(t, cam.Message(body)); res.StatusCode != 200 {
				t.Fatalf("Catalog answer: %d", res.StatusCode)
			}
		}
		want := []lsip.Channel{
			{ChannelID: "34020000001310000001", Name: "Gate", Manufacturer: "Hikvision", Model: "DS-2CD", Status: "ON", ParentID: camGo},
			{ChannelID: "34020000001310000002", Name: "停车场", Manufacturer: "大华", Model: "IPC", Status: "OFF", ParentID: camGo},
		}
		// Asked through node1 once it sees the registration on node3.
		testutil.WaitDevice(t, admin, camGo, "online", online)
		var got struct{ Items []lsip.Channel }
		testutil.Do(t, admin, http.MethodGet, "/api/v1/devices/"+camGo+"/channels", nil, &got)
		if fmt.Sprint(got.Items) != fmt.Sprint(want) {
			t.Fatalf("channels through node1: %+v, want %+v", got.Items, want)
		}

		for range 3 {
			ka := fmt.Sprintf(`<?xml version="1.0"?><Notify><CmdType>Keepalive</CmdType><SN>9</SN><DeviceID>%s</DeviceID><Status>OK</Status></Notify>`, camGo)
			if res := cam.Request(t, cam.Message(ka)); res.StatusCode != 200 {
				t.Fatalf("keepalive: %d", res.StatusCode)
			}
		}
		for _, n := range nodes {
			testutil.WaitDevice(t, n.Admin(t), camGo, "online", online)
		}

		// A change that is not the sockets' keeps the server and its registrations.
		var gw map[string]any
		testutil.Do(t, admin, http.MethodGet, "/api/v1/gateways/gb", nil, &gw)
		gw["description"] = "lobby cameras"
		testutil.Do(t, admin, http.MethodPut, "/api/v1/gateways/gb", gw, nil)
		testutil.WaitFor(t, 10*time.Second, "the update applied on node3", func() bool {
			var g map[string]any
			testutil.Do(t, nodes[2].Admin(t), http.MethodGet, "/api/v1/gateways/gb", nil, &g)
			return g["description"] == "lobby cameras"
		})
		ka := fmt.Sprintf(`<?xml version="1.0"?><Notify><CmdType>Keepalive</CmdType><SN>10</SN><DeviceID>%s</DeviceID><Status>OK</Status></Notify>`, camGo)
		if res := cam.Request(t, cam.Message(ka)); res.StatusCode != 200 {
			t.Fatalf("keepalive after a description change: %d (the registration was lost)", res.StatusCode)
		}
		if d := testutil.GetDevice(t, nodes[2].Admin(t), camGo); d.State != "online" {
			t.Fatalf("camera went %s after a description change", d.State)
		}

		res = cam.Request(t, cam.RegisterRequest(3600, nil))
		res = cam.Request(t, cam.RegisterRequest(0, res))
		if res.StatusCode != 200 {
			t.Fatalf("REGISTER Expires 0: %d", res.StatusCode)
		}
		for _, n := range nodes {
			testutil.WaitDevice(t, n.Admin(t), camGo, "offline after Expires: 0", offline)
		}
	})

	t.Run("silence turns the camera offline", func(t *testing.T) {
		// sipp's camera sent no keepalive: offline within keepaliveTimeoutSeconds (10 s).
		for _, n := range nodes {
			testutil.WaitDevice(t, n.Admin(t), camSipp, "offline after silence", offline)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		m2, m3 := metrics(t, nodes[1].Admin(t)), metrics(t, nodes[2].Admin(t))
		for _, want := range []string{
			`linkops_sip_registrations_total{gateway="gb",outcome="registered"} 2`, // sipp over UDP and TCP
			`linkops_sip_registrations_total{gateway="gb",outcome="refused"} 1`,
		} {
			if !strings.Contains(m2, want+"\n") {
				t.Errorf("node2's /metrics lacks %s", want)
			}
		}
		for _, want := range []string{
			`linkops_sip_registrations_total{gateway="gb",outcome="unknown_device"} 1`,
			`linkops_sip_registrations_total{gateway="gb",outcome="unregistered"} 1`,
			`linkops_sip_keepalives_total{gateway="gb"} 4`,
		} {
			if !strings.Contains(m3, want+"\n") {
				t.Errorf("node3's /metrics lacks %s", want)
			}
		}
	})

	t.Run("disabling stops the SIP servers", func(t *testing.T) {
		testutil.Do(t, admin, http.MethodPost, "/api/v1/gateways/gb/disable", nil, nil)
		testutil.WaitFor(t, 10*time.Second, "node2's SIP port closed", func() bool {
			c, err := net.Dial("tcp", node2)
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		testutil.WaitFor(t, 10*time.Second, "every node's SIP server stopped in the gateway status", func() bool {
			var st struct {
				Items []struct{ ServerID, State string }
			}
			testutil.Do(t, admin, http.MethodGet, "/api/v1/gateways/gb/status", nil, &st)
			stopped := 0
			for _, it := range st.Items {
				if it.State == "stopped" {
					stopped++
				}
			}
			return len(st.Items) == 3 && stopped == 3
		})
	})
}

// metrics is a node's own /metrics text.
func metrics(t *testing.T, c *client.Client) string {
	t.Helper()
	resp, err := c.Raw(context.Background(), http.MethodGet, "/metrics", nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const sippScenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="gb28181 register">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[field1]>;tag=[call_number]
      To: <sip:[field0]@[field1]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Expires: 3600
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[field1]>;tag=[call_number]
      To: <sip:[field0]@[field1]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      [authentication username=CAMID password=CAMPASS]
      Max-Forwards: 70
      Expires: 3600
      Content-Length: 0

    ]]>
  </send>
  <recv response="WANT"/>
</scenario>
`

// sippKeepalive is one keepalive MESSAGE of the registered sipp camera after a pause,
// appended to sippScenario as many times as a test wants.
const sippKeepalive = `
  <pause milliseconds="PAUSE"/>
  <send retrans="500">
    <![CDATA[
      MESSAGE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[field1]>;tag=[call_number]
      To: <sip:[field0]@[field1]>
      Call-ID: [call_id]
      CSeq: SEQ MESSAGE
      Max-Forwards: 70
      Content-Type: Application/MANSCDP+xml
      Content-Length: [len]

      <?xml version="1.0"?><Notify><CmdType>Keepalive</CmdType><SN>SEQ</SN><DeviceID>[field0]</DeviceID><Status>OK</Status></Notify>
    ]]>
  </send>
  <recv response="200"/>
`

// runSipp registers id to addr with sipp and password, expecting the final status want.
func runSipp(t *testing.T, addr, id, pass, want string) { runSippOver(t, "u1", addr, id, pass, want) }

// runSippOver is runSipp over a sipp transport: u1 (UDP) or t1 (TCP).
func runSippOver(t *testing.T, transport, addr, id, pass, want string) {
	t.Helper()
	runSippScenario(t, transport, addr, id, pass, strings.ReplaceAll(sippScenario, "WANT", want))
}

// sippWithKeepalives is the registration, then n keepalives every pause.
func sippWithKeepalives(n int, pause time.Duration) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(strings.NewReplacer("PAUSE", strconv.Itoa(int(pause.Milliseconds())), "SEQ", strconv.Itoa(3+i)).Replace(sippKeepalive))
	}
	return strings.Replace(strings.ReplaceAll(sippScenario, "WANT", "200"), "</scenario>", b.String()+"</scenario>", 1)
}

// runSippScenario runs scenario (CAMID and CAMPASS replaced) against addr.
func runSippScenario(t *testing.T, transport, addr, id, pass, scenario string) {
	t.Helper()
	dir := t.TempDir()
	scen := filepath.Join(dir, "register.xml")
	if err := os.WriteFile(scen, []byte(strings.NewReplacer("CAMID", id, "CAMPASS", pass).Replace(scenario)), 0o600); err != nil {
		t.Fatal(err)
	}
	inf := filepath.Join(dir, "cams.csv")
	if err := os.WriteFile(inf, []byte("SEQUENTIAL\n"+id+";"+domain+";"+pass+";\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sipp", addr, "-sf", scen, "-inf", inf, "-m", "1", "-i", "127.0.0.1", "-p", "0",
		"-t", transport, "-timeout", "20s", "-trace_err", "-nostdin")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		logs, _ := filepath.Glob(filepath.Join(dir, "*errors.log"))
		var errs []byte
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			errs = append(errs, b...)
		}
		// Errorf: a test may run sipp on another goroutine.
		t.Errorf("sipp: %v\n%s\n%s", err, out, errs)
	}
}
