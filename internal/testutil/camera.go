package testutil

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/linkops/linkops/client"
)

// Camera is the tests' own GB/T 28181 device: one UDP socket speaking SIP messages built
// and parsed with sipgo's sip package, so a test decides every answer (or its absence).
// sipp plays the camera for REGISTER with digest; Camera covers what sipp scenarios make
// awkward: Catalog answers, INVITE, ACK and BYE.
type Camera struct {
	ID                       string
	Domain, ServerID, Secret string

	conn   *net.UDPConn
	server *net.UDPAddr
	parser *sip.Parser
	reqs   chan *sip.Request
	resps  chan *sip.Response

	mu     sync.Mutex
	cseq   uint32
	callID string
}

// DialCamera opens a camera with SIP id id that talks to the SIP server at addr of a
// gateway with domain, sipId serverID and password secret.
func DialCamera(t testing.TB, addr, id, domain, serverID, secret string) *Camera {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &Camera{ID: id, Domain: domain, ServerID: serverID, Secret: secret, conn: conn, server: raddr,
		callID: hex.EncodeToString([]byte(id))[:16], parser: sip.NewParser(),
		reqs: make(chan *sip.Request, 64), resps: make(chan *sip.Response, 64)}
	go c.read()
	return c
}

// Addr is the camera's own address (where the server sends its requests).
func (c *Camera) Addr() string { return c.conn.LocalAddr().String() }

func (c *Camera) read() {
	buf := make([]byte, 65535)
	for {
		n, _, err := c.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		m, err := c.parser.ParseSIP(bytes.Clone(buf[:n]))
		if err != nil {
			continue
		}
		switch m := m.(type) {
		case *sip.Request:
			c.reqs <- m
		case *sip.Response:
			c.resps <- m
		}
	}
}

// Base builds a request of method from the camera to the server, with a fresh CSeq.
func (c *Camera) Base(method sip.RequestMethod) *sip.Request {
	c.mu.Lock()
	c.cseq++
	seq := c.cseq
	c.mu.Unlock()
	local := c.conn.LocalAddr().(*net.UDPAddr)
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: c.ServerID, Host: c.server.IP.String(), Port: c.server.Port})
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: local.IP.String(), Port: local.Port,
		Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranch())
	req.AppendHeader(via)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: c.ID, Host: c.Domain}, Params: sip.NewParams()}
	from.Params.Add("tag", "cam")
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: c.ID, Host: c.Domain}})
	callID := sip.CallIDHeader(c.callID + string(method))
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	maxf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	return req
}

// RegisterRequest builds a REGISTER, answering the challenge of prev when given.
func (c *Camera) RegisterRequest(expires int, prev *sip.Response) *sip.Request {
	req := c.Base(sip.REGISTER)
	local := c.conn.LocalAddr().(*net.UDPAddr)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: c.ID, Host: local.IP.String(), Port: local.Port}})
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	if prev != nil {
		h := prev.GetHeader("WWW-Authenticate").Value()
		nonce := Between(h, `nonce="`, `"`)
		realm := Between(h, `realm="`, `"`)
		uri := req.Recipient.String()
		ha1 := md5Hex(c.ID + ":" + realm + ":" + c.Secret)
		resp := md5Hex(ha1 + ":" + nonce + ":" + md5Hex("REGISTER:"+uri))
		req.AppendHeader(sip.NewHeader("Authorization", fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5`,
			c.ID, realm, nonce, uri, resp)))
	}
	req.SetBody(nil)
	return req
}

// Register registers the camera (the challenge, then the digest) and answers the Catalog
// query that follows with no channels; it fails the test unless both REGISTERs are
// answered as a camera expects.
func (c *Camera) Register(t testing.TB) {
	t.Helper()
	c.RegisterWithChannels(t)
}

// Channel is one channel a camera lists in its Catalog answer.
type Channel struct {
	ID, Name, Manufacturer, Model, Status string
}

// RegisterWithChannels is Register, then the camera answers the server's Catalog query
// with these channels in one MESSAGE (none: no answer but the 200).
func (c *Camera) RegisterWithChannels(t testing.TB, channels ...Channel) {
	t.Helper()
	res := c.Request(t, c.RegisterRequest(3600, nil))
	if res.StatusCode != 401 {
		t.Fatalf("camera %s: first REGISTER answered %d, want 401", c.ID, res.StatusCode)
	}
	if res = c.Request(t, c.RegisterRequest(3600, res)); res.StatusCode != 200 {
		t.Fatalf("camera %s: REGISTER with digest answered %d, want 200", c.ID, res.StatusCode)
	}
	q := c.NextRequest(t, sip.MESSAGE)
	c.Answer(t, q, 200, nil)
	if len(channels) == 0 {
		return
	}
	sn := Between(string(q.Body()), "<SN>", "</SN>")
	var items strings.Builder
	for _, ch := range channels {
		fmt.Fprintf(&items, "<Item><DeviceID>%s</DeviceID><Name>%s</Name><Manufacturer>%s</Manufacturer><Model>%s</Model><Status>%s</Status><ParentID>%s</ParentID></Item>",
			ch.ID, ch.Name, ch.Manufacturer, ch.Model, ch.Status, c.ID)
	}
	catalog := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><Response><CmdType>Catalog</CmdType><SN>%s</SN><DeviceID>%s</DeviceID><SumNum>%d</SumNum><DeviceList Num="%d">%s</DeviceList></Response>`,
		sn, c.ID, len(channels), len(channels), items.String())
	if res := c.Request(t, c.Message(catalog)); res.StatusCode != 200 {
		t.Fatalf("camera %s: Catalog answer answered %d", c.ID, res.StatusCode)
	}
}

// Message builds a MANSCDP MESSAGE carrying body.
func (c *Camera) Message(body string) *sip.Request {
	req := c.Base(sip.MESSAGE)
	req.AppendHeader(sip.NewHeader("Content-Type", "Application/MANSCDP+xml"))
	req.SetBody([]byte(body))
	return req
}

// Keepalive sends a keepalive and returns the server's status code.
func (c *Camera) Keepalive(t testing.TB) int {
	t.Helper()
	ka := fmt.Sprintf(`<?xml version="1.0"?><Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>%s</DeviceID><Status>OK</Status></Notify>`, c.ID)
	return c.Request(t, c.Message(ka)).StatusCode
}

// Request sends req and returns the server's final answer to it.
func (c *Camera) Request(t testing.TB, req *sip.Request) *sip.Response {
	t.Helper()
	if _, err := c.conn.WriteToUDP([]byte(req.String()), c.server); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case res := <-c.resps:
			if res.IsProvisional() || res.CSeq().SeqNo != req.CSeq().SeqNo {
				continue
			}
			return res
		case <-timeout:
			t.Fatalf("camera %s: no answer to %s", c.ID, req.Short())
		}
	}
}

// NextRequest waits for the server's next request of method ("" for any), skipping
// others (a retransmission, a late Catalog query).
func (c *Camera) NextRequest(t testing.TB, method sip.RequestMethod) *sip.Request {
	t.Helper()
	r, ok := c.WaitRequest(method, 10*time.Second)
	if !ok {
		t.Fatalf("camera %s: the server sent no %s", c.ID, method)
	}
	return r
}

// WaitRequest is NextRequest that reports a timeout instead of failing.
func (c *Camera) WaitRequest(method sip.RequestMethod, timeout time.Duration) (*sip.Request, bool) {
	deadline := time.After(timeout)
	for {
		select {
		case r := <-c.reqs:
			if method == "" || r.Method == method {
				return r, true
			}
		case <-deadline:
			return nil, false
		}
	}
}

// Answer responds to a request of the server with code and, when given, an SDP body.
func (c *Camera) Answer(t testing.TB, req *sip.Request, code int, sdp []byte) {
	t.Helper()
	res := sip.NewResponseFromRequest(req, code, "OK", sdp)
	if code > 100 && res.To() != nil && res.To().Params != nil {
		// A fixed tag per camera (sipgo's own is random), so that Bye can name the dialog.
		res.To().Params.Remove("tag")
		res.To().Params.Add("tag", c.answerTag())
	}
	if sdp != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: c.ID, Host: "127.0.0.1",
			Port: c.conn.LocalAddr().(*net.UDPAddr).Port}})
	}
	if _, err := c.conn.WriteToUDP([]byte(res.String()), c.server); err != nil {
		t.Fatal(err)
	}
}

// AnswerInvite accepts an INVITE as a camera does: 200 with an SDP that sends PS over RTP
// to the offer's address and port, with the offer's SSRC.
func (c *Camera) AnswerInvite(t testing.TB, invite *sip.Request) {
	t.Helper()
	offer := ParseSDP(string(invite.Body()))
	sdp := fmt.Sprintf("v=0\r\no=%s 0 0 IN IP4 127.0.0.1\r\ns=Play\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 15060 RTP/AVP 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\ny=%s\r\n",
		c.ID, offer.SSRC)
	c.Answer(t, invite, 200, []byte(sdp))
}

// SDP is what a test checks in an INVITE's offer.
type SDP struct {
	Session, IP, Media, SSRC string
	Port                     int
	Attributes               []string
}

// ParseSDP reads the lines of an SDP body a GB/T 28181 offer carries.
func ParseSDP(body string) SDP {
	var s SDP
	for _, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "s":
			s.Session = v
		case "c":
			f := strings.Fields(v)
			s.IP = f[len(f)-1]
		case "m":
			s.Media = v
			if f := strings.Fields(v); len(f) > 1 {
				s.Port, _ = strconv.Atoi(f[1])
			}
		case "a":
			s.Attributes = append(s.Attributes, v)
		case "y":
			s.SSRC = v
		}
	}
	return s
}

// Between is the text of s between the first a and the next b ("" without a).
func Between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	if j := strings.Index(s, b); j >= 0 {
		return s[:j]
	}
	return s
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Bye ends the call an INVITE (answered by AnswerInvite) set up, as a camera that stops
// streaming does, and returns the server's answer.
func (c *Camera) Bye(t testing.TB, invite *sip.Request) *sip.Response {
	t.Helper()
	c.mu.Lock()
	c.cseq++
	seq := c.cseq
	c.mu.Unlock()
	local := c.conn.LocalAddr().(*net.UDPAddr)
	target := invite.Contact().Address
	req := sip.NewRequest(sip.BYE, sip.Uri{Scheme: "sip", User: target.User, Host: target.Host, Port: target.Port})
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: local.IP.String(), Port: local.Port,
		Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranch())
	req.AppendHeader(via)
	// The camera is the dialog's callee: From is the INVITE's To (with the tag the answer
	// added), To is the INVITE's From.
	to := invite.To()
	from := &sip.FromHeader{DisplayName: to.DisplayName, Address: to.Address, Params: sip.NewParams()}
	from.Params.Add("tag", c.answerTag())
	req.AppendHeader(from)
	f := invite.From()
	req.AppendHeader(&sip.ToHeader{DisplayName: f.DisplayName, Address: f.Address, Params: f.Params.Clone()})
	req.AppendHeader(sip.HeaderClone(invite.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.BYE})
	maxf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	req.SetBody(nil)
	return c.Request(t, req)
}

func (c *Camera) answerTag() string { return "cam-" + c.ID[len(c.ID)-4:] }

// GB28181PerNode creates the enabled gb28181-2016 gateway "gb" with a per-node SIP server
// on each of n nodes (node1 on NodeHosts[0], …), all on port, with configuration extra
// added (keepaliveTimeoutSeconds, say).
func GB28181PerNode(t testing.TB, admin *client.Client, n, port int, sipID, domain, password string, extra map[string]any) {
	t.Helper()
	var cluster []map[string]any
	for i := range n {
		cluster = append(cluster, map[string]any{"serverId": fmt.Sprintf("node%d", i+1),
			"configuration": map[string]any{"host": NodeHosts[i], "port": port}})
	}
	conf := map[string]any{"sipId": sipID, "domain": domain, "password": password, "shareCluster": false, "cluster": cluster}
	for k, v := range extra {
		conf[k] = v
	}
	Do(t, admin, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "gb", "name": "gb", "provider": "gb28181-2016",
		"configuration": conf, "state": "enabled"}, nil)
}

// WaitSIP waits until the SIP server at addr accepts TCP connections.
func WaitSIP(t testing.TB, addr string) {
	t.Helper()
	WaitFor(t, 20*time.Second, "SIP server at "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}
