package sip

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/linkops/linkops/resource"
	"github.com/linkops/linkops/session"
)

// NonceLifetime is how long a REGISTER challenge's nonce is accepted.
const NonceLifetime = 5 * time.Minute

// DefaultRegisterExpires is the registration lifetime of a REGISTER without Expires.
const DefaultRegisterExpires = 3600

// dateLayout is GB/T 28181's Date header (cameras set their clock from it; it is not the
// RFC 3261 date).
const dateLayout = "2006-01-02T15:04:05.000"

// device is a device registered on this node.
type device struct {
	id, gatewayID, productID string
	keep                     time.Duration
	sess                     *session.Session
	// source is where the device's REGISTER came from: behind NAT the only address that
	// reaches it. transport is "UDP" or "TCP".
	source, transport string
	channels          map[string]Channel
	// catalogSN is the SN of the last Catalog query; the first answer to it replaces the
	// channels, the next ones add to them.
	catalogSN    int
	catalogFresh bool
}

type nonce struct {
	value   string
	expires time.Time
}

// server is one gateway's SIP server on this node.
type server struct {
	svc       *Service
	gatewayID string
	sp        spec
	client    *sipgo.Client
	// dialogs sends INVITEs and their BYEs; RewriteContact sends in-dialog requests to
	// the address the answer came from (NAT), not the camera's Contact.
	dialogs *sipgo.DialogUA
	// host and port are this server's address as the cameras reach it (Contact).
	host string
	port int
	log  *slog.Logger
}

// serve binds the gateway's UDP and TCP sockets and answers on them until ctx ends or a
// socket fails.
func (s *Service) serve(ctx context.Context, u *unit, log *slog.Logger) error {
	sp := u.spec
	pc, err := net.ListenPacket("udp", sp.addr())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", sp.addr())
	if err != nil {
		pc.Close()
		return err
	}
	// sipgo's transport layer logs every unparsable packet at ERROR with its bytes: on
	// a port the network can reach that is a log flood anyone can cause, so it logs at
	// DEBUG here.
	tlog := slog.New(demoted{log.Handler()})
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("linkops"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(tlog)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(tlog)))
	if err != nil {
		pc.Close()
		ln.Close()
		return err
	}
	defer ua.Close()
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		pc.Close()
		ln.Close()
		return err
	}
	host := sp.Public
	if host == "" {
		host = sp.Host
	}
	if host == "0.0.0.0" || host == "::" {
		host = localHost(pc.LocalAddr())
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname(host), sipgo.WithClientPort(sp.Port), sipgo.WithClientLogger(log))
	if err != nil {
		pc.Close()
		ln.Close()
		return err
	}
	g := &server{svc: s, gatewayID: sp.GatewayID, sp: sp, client: client, host: host, port: sp.Port, log: log}
	g.dialogs = &sipgo.DialogUA{Client: client, RewriteContact: true,
		ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: host, Port: sp.Port}}}
	srv.OnRegister(g.onRegister)
	srv.OnMessage(g.onMessage)
	srv.OnBye(g.onBye)

	errs := make(chan error, 2)
	go func() { errs <- srv.ServeUDP(&packetConn{PacketConn: pc, log: log}) }()
	go func() { errs <- srv.ServeTCP(&listener{Listener: ln, idle: TCPIdleTimeout, log: log}) }()
	log.Info("SIP server running", "udp", pc.LocalAddr().String(), "tcp", ln.Addr().String())
	u.set(StateRunning, nil, ln.Addr().String())
	u.live.Store(g)
	select {
	case <-ctx.Done():
		err = nil
	case err = <-errs:
		if err == nil {
			err = errStopped
		}
	}
	u.live.Store(nil)
	s.endCalls(func(c *Call) bool { return c.srv == g }, "the gateway's SIP server stopped on this node")
	pc.Close()
	ln.Close()
	srv.Close()
	return err
}

// demoted logs every record at DEBUG.
type demoted struct{ slog.Handler }

func (d demoted) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.Handler.Enabled(ctx, slog.LevelDebug)
}

func (d demoted) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return d.Handler.Handle(ctx, r)
}

func (d demoted) WithAttrs(a []slog.Attr) slog.Handler { return demoted{d.Handler.WithAttrs(a)} }
func (d demoted) WithGroup(n string) slog.Handler      { return demoted{d.Handler.WithGroup(n)} }

// localHost is an address of this machine to name in Via when bound to every interface.
func localHost(net.Addr) string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil && !ip.IP.IsLoopback() {
				return ip.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// deviceID is the 20-digit SIP id a request comes from: the From user, else the To user.
func deviceID(req *sip.Request) string {
	if f := req.From(); f != nil && f.Address.User != "" {
		return f.Address.User
	}
	if t := req.To(); t != nil {
		return t.Address.User
	}
	return ""
}

// respond answers req; every handler calls it before it returns (sipgo terminates the
// transaction when the handler returns).
func (g *server) respond(req *sip.Request, tx sip.ServerTransaction, code int, reason string, headers ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range headers {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		g.log.Debug("SIP answer not sent", "code", code, "error", err)
	}
}

// known reports whether id is a registered device of a product of gateway g.
func (g *server) known(id string) (*resource.Device, bool) {
	o, err := g.svc.cfg.Store.Get(resource.Devices, id)
	if err != nil {
		return nil, false
	}
	d := o.(*resource.Device)
	p, err := g.svc.cfg.Store.Get(resource.Products, d.ProductID)
	if err != nil || p.(*resource.Product).GatewayID != g.gatewayID {
		return nil, false
	}
	return d, true
}

func (g *server) count(outcome string) {
	g.svc.cfg.Metrics.registrations.WithLabelValues(g.gatewayID, outcome).Inc()
}

func (g *server) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	gw := g.svc.gateway(g.gatewayID)
	if gw == nil {
		g.respond(req, tx, 503, "Service Unavailable")
		return
	}
	id := deviceID(req)
	dev, ok := g.known(id)
	if !ok {
		g.count(OutcomeUnknown)
		g.respond(req, tx, 403, "Forbidden")
		return
	}
	realm := gw.Configuration.Domain
	h := req.GetHeader("Authorization")
	if h == nil {
		g.challenge(req, tx, id, realm)
		return
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil {
		g.count(OutcomeRefused)
		g.respond(req, tx, 403, "Forbidden")
		return
	}
	if !g.svc.nonceValid(id, cred.Nonce) {
		// Expired or from another node: a fresh challenge, as RFC 2617's stale nonce.
		g.challenge(req, tx, id, realm)
		return
	}
	if !digestOK(cred, "REGISTER", realm, gw.Configuration.Password) {
		g.svc.dropNonce(id)
		g.count(OutcomeRefused)
		g.respond(req, tx, 403, "Forbidden")
		return
	}
	expires := registerExpires(req)
	now := g.svc.cfg.Now()
	date := sip.NewHeader("Date", now.Format(dateLayout))
	if expires == 0 {
		g.svc.unregister(id)
		g.count(OutcomeUnregistered)
		g.respond(req, tx, 200, "OK", sip.NewHeader("Expires", "0"), date)
		return
	}
	d := g.svc.register(dev, gw, req.Source(), strings.ToUpper(req.Transport()), keepaliveTimeout(gw))
	g.count(OutcomeRegistered)
	g.respond(req, tx, 200, "OK", sip.NewHeader("Expires", strconv.Itoa(expires)), date)
	go g.queryCatalog(d, gw)
}

func (g *server) challenge(req *sip.Request, tx sip.ServerTransaction, id, realm string) {
	n := g.svc.newNonce(id)
	g.count(OutcomeChallenged)
	g.respond(req, tx, 401, "Unauthorized",
		sip.NewHeader("WWW-Authenticate", `Digest realm="`+realm+`", nonce="`+n+`", algorithm=MD5`))
}

// digestOK checks an RFC 2617 digest without qop, as GB/T 28181 cameras send it:
// response = md5(md5(user:realm:password):nonce:md5(method:uri)).
func digestOK(c *digest.Credentials, method, realm, password string) bool {
	if c.Algorithm != "" && !strings.EqualFold(c.Algorithm, "MD5") {
		return false
	}
	ha1 := md5hex(c.Username + ":" + realm + ":" + password)
	ha2 := md5hex(method + ":" + c.URI)
	var want string
	if c.QOP != "" {
		want = md5hex(ha1 + ":" + c.Nonce + ":" + nc(c.Nc) + ":" + c.Cnonce + ":" + c.QOP + ":" + ha2)
	} else {
		want = md5hex(ha1 + ":" + c.Nonce + ":" + ha2)
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(c.Response))) == 1
}

func nc(n int) string {
	s := strconv.FormatInt(int64(n), 16)
	return strings.Repeat("0", max(0, 8-len(s))) + s
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// registerExpires is the lifetime a REGISTER asks for: its Expires header, else its
// Contact's expires parameter, else DefaultRegisterExpires.
func registerExpires(req *sip.Request) int {
	if h := req.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n >= 0 {
			return n
		}
	}
	if c := req.Contact(); c != nil {
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return n
			}
		}
	}
	return DefaultRegisterExpires
}

func (s *Service) newNonce(id string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	v := hex.EncodeToString(b)
	s.devMu.Lock()
	s.nonces[id] = nonce{value: v, expires: s.cfg.Now().Add(NonceLifetime)}
	s.devMu.Unlock()
	return v
}

func (s *Service) nonceValid(id, v string) bool {
	s.devMu.Lock()
	defer s.devMu.Unlock()
	n, ok := s.nonces[id]
	return ok && n.value == v && s.cfg.Now().Before(n.expires)
}

func (s *Service) dropNonce(id string) {
	s.devMu.Lock()
	delete(s.nonces, id)
	s.devMu.Unlock()
}

// register puts the device online here (or refreshes its registration) and remembers
// where to reach it.
func (s *Service) register(dev *resource.Device, gw *resource.Gateway, source, transport string, keep time.Duration) *device {
	sess := s.seen(dev.ID, dev.ProductID, gw.ID, source, transport, keep)
	s.devMu.Lock()
	defer s.devMu.Unlock()
	d := s.devices[dev.ID]
	if d == nil || d.sess != sess {
		d = &device{id: dev.ID, gatewayID: gw.ID, productID: dev.ProductID, sess: sess, channels: map[string]Channel{}}
		s.devices[dev.ID] = d
	}
	d.source, d.transport, d.keep = source, transport, keep
	return d
}

// seen refreshes the device's session, or opens one (a REGISTER, or a keepalive racing
// the session's expiry).
func (s *Service) seen(id, productID, gatewayID, source, transport string, keep time.Duration) *session.Session {
	return s.cfg.Sessions.Seen(id, gatewayID, source, nil, func() *session.Session {
		return &session.Session{DeviceID: id, ProductID: productID, GatewayID: gatewayID, Transport: "SIP/" + transport,
			Remote: source, KeepOnline: keep}
	})
}

// unregister takes the device offline (REGISTER with Expires: 0).
func (s *Service) unregister(id string) {
	s.devMu.Lock()
	delete(s.devices, id)
	s.devMu.Unlock()
	go s.endCalls(func(c *Call) bool { return c.DeviceID == id }, "the camera unregistered")
	if sess := s.cfg.Sessions.Get(id); sess != nil {
		s.cfg.Sessions.Closed(sess, "unregistered (REGISTER with Expires: 0)")
	}
}

// current is the device registered here through gateway gw, or nil.
func (s *Service) current(id, gw string) *device {
	s.devMu.Lock()
	defer s.devMu.Unlock()
	d := s.devices[id]
	if d == nil || d.gatewayID != gw || s.cfg.Sessions.Get(id) != d.sess {
		return nil
	}
	return d
}

func (g *server) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	id := deviceID(req)
	cmd, err := DecodeCommand(req.Body())
	if err != nil {
		g.respond(req, tx, 400, "Bad Request")
		return
	}
	d := g.svc.current(id, g.gatewayID)
	if d == nil {
		// Not registered here: the device must REGISTER (again) first.
		g.respond(req, tx, 403, "Forbidden")
		return
	}
	switch {
	case cmd.Kind == KindNotify && cmd.CmdType == CmdKeepalive:
		g.svc.devMu.Lock()
		d.source, d.transport = req.Source(), strings.ToUpper(req.Transport())
		productID, keep := d.productID, d.keep
		g.svc.devMu.Unlock()
		if sess := g.svc.seen(id, productID, g.gatewayID, req.Source(), strings.ToUpper(req.Transport()), keep); sess != d.sess {
			g.svc.devMu.Lock()
			d.sess = sess
			g.svc.devMu.Unlock()
		}
		g.svc.cfg.Metrics.keepalives.WithLabelValues(g.gatewayID).Inc()
	case cmd.Kind == KindResponse && cmd.CmdType == CmdCatalog:
		g.svc.catalog(d, cmd)
	}
	g.respond(req, tx, 200, "OK")
}

// catalog adds one Catalog answer to the device's channels.
func (s *Service) catalog(d *device, cmd *Command) {
	s.devMu.Lock()
	defer s.devMu.Unlock()
	if cmd.SN == d.catalogSN && d.catalogFresh {
		d.channels = map[string]Channel{}
		d.catalogFresh = false
	}
	for _, c := range cmd.Items {
		d.channels[c.ChannelID] = c
	}
}

// queryCatalog asks the device for its channels, at the address its REGISTER came from.
func (g *server) queryCatalog(d *device, gw *resource.Gateway) {
	sn := g.svc.nextSN()
	g.svc.devMu.Lock()
	d.catalogSN, d.catalogFresh = sn, true
	source, transport := d.source, d.transport
	g.svc.devMu.Unlock()
	host, portStr, err := net.SplitHostPort(source)
	if err != nil {
		return
	}
	port, _ := strconv.Atoi(portStr)
	req := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: d.id, Host: host, Port: port})
	req.SetDestination(source)
	req.SetTransport(transport)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: gw.Configuration.SIPID, Host: gw.Configuration.Domain}}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: d.id, Host: gw.Configuration.Domain}})
	req.AppendHeader(sip.NewHeader("Content-Type", "Application/MANSCDP+xml"))
	req.SetBody(CatalogQuery(sn, d.id))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := g.client.Do(ctx, req)
	switch {
	case err != nil && !errors.Is(err, context.Canceled):
		g.log.Info("Catalog query unanswered", "device", d.id, "error", err)
	case err == nil && !res.IsSuccess():
		g.log.Info("Catalog query refused", "device", d.id, "status", res.StatusCode)
	}
}
