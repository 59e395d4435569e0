package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Errors of Invite that callers match with errors.Is.
var (
	// ErrNotRegistered: the device has no registration on this node (offline, or held by
	// another node).
	ErrNotRegistered = errors.New("the device is not registered on this node")
	// ErrInviteTimeout: the camera gave no final answer in time.
	ErrInviteTimeout = errors.New("the camera did not answer the INVITE in time")
)

// RefusedError is a camera's non-2xx final answer to an INVITE.
type RefusedError struct {
	Code   int
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the camera refused the INVITE: %d %s", e.Code, e.Reason)
}

// Offer is where a play asks the camera to send a channel's stream: PS over RTP to
// RTPIP:RTPPort with SSRC (GB/T 28181 §9.2 and Annex F).
type Offer struct {
	ChannelID string
	RTPIP     string
	RTPPort   int
	SSRC      string
}

// Call is an INVITE dialog this node established with a camera.
type Call struct {
	DeviceID, ChannelID, GatewayID, SSRC string
	// Answer is the camera's SDP.
	Answer string

	dialog *sipgo.DialogClientSession
	srv    *server
}

// SDP is the offer's session description, as GB/T 28181 cameras expect it: a receive-only
// PS stream on payload type 96 and the SSRC in a y= line.
func (o Offer) SDP(sipID string) string {
	return "v=0\r\n" +
		"o=" + sipID + " 0 0 IN IP4 " + o.RTPIP + "\r\n" +
		"s=Play\r\n" +
		"c=IN IP4 " + o.RTPIP + "\r\n" +
		"t=0 0\r\n" +
		"m=video " + strconv.Itoa(o.RTPPort) + " RTP/AVP 96\r\n" +
		"a=recvonly\r\n" +
		"a=rtpmap:96 PS/90000\r\n" +
		"y=" + o.SSRC + "\r\n"
}

// Invite asks the camera deviceID, registered on this node, to stream a channel as offer
// says, waits up to timeout for its answer and ACKs it. Without a final answer in time
// the INVITE is abandoned (CANCELled when the camera sent a provisional answer, else the
// transaction is dropped, as sipgo's force-cancel does) and ErrInviteTimeout returned at
// once; a 200 that still arrives later is ACKed and ended with a BYE, so no camera is left
// streaming to a port nobody reads.
func (s *Service) Invite(ctx context.Context, deviceID string, o Offer, timeout time.Duration) (*Call, error) {
	s.devMu.Lock()
	d := s.devices[deviceID]
	var source, transport, gatewayID string
	if d != nil && s.cfg.Sessions.Get(deviceID) == d.sess {
		source, transport, gatewayID = d.source, d.transport, d.gatewayID
	}
	s.devMu.Unlock()
	if gatewayID == "" {
		return nil, ErrNotRegistered
	}
	g := s.liveServer(gatewayID)
	gw := s.gateway(gatewayID)
	if g == nil || gw == nil {
		return nil, ErrNotRegistered
	}
	outcome := InviteFailed
	defer func() { s.cfg.Metrics.invites.WithLabelValues(gatewayID, outcome).Inc() }()

	host, portStr, err := net.SplitHostPort(source)
	if err != nil {
		return nil, fmt.Errorf("the camera's address %q: %w", source, err)
	}
	port, _ := strconv.Atoi(portStr)
	cfg := gw.Configuration
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: o.ChannelID, Host: host, Port: port})
	req.SetDestination(source)
	req.SetTransport(transport)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: cfg.SIPID, Host: cfg.Domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: o.ChannelID, Host: cfg.Domain}})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: cfg.SIPID, Host: g.host, Port: g.port}})
	// GB/T 28181 §8.1.2: sender channel:SSRC, receiver id:its stream number.
	req.AppendHeader(sip.NewHeader("Subject", o.ChannelID+":"+o.SSRC+","+cfg.SIPID+":0"))
	req.AppendHeader(sip.NewHeader("Content-Type", "APPLICATION/SDP"))
	req.SetBody([]byte(o.SDP(cfg.SIPID)))

	dialog, err := g.dialogs.WriteInvite(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("sending the INVITE to %s: %w", source, err)
	}
	var provisional atomic.Bool
	wctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil) // a no-op once a cause is set below
	answered := make(chan error, 1)
	go func() {
		answered <- dialog.WaitAnswer(wctx, sipgo.AnswerOptions{OnResponse: func(r *sip.Response) error {
			if r.IsProvisional() {
				provisional.Store(true)
			}
			return nil
		}})
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err = <-answered:
		cancel(nil)
	case <-timer.C:
		err = ErrInviteTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil && (errors.Is(err, ErrInviteTimeout) || ctx.Err() != nil) {
		outcome = InviteTimeout
		if provisional.Load() {
			cancel(context.Canceled) // sipgo sends CANCEL and waits for the 487 in the goroutine
		} else {
			cancel(sipgo.WaitAnswerForceCancelErr) // nothing to CANCEL: drop the transaction now
		}
		go g.abandoned(dialog, answered, deviceID, o.ChannelID)
		return nil, err
	}
	if err != nil {
		defer dialog.Close()
		var re *sipgo.ErrDialogResponse
		if errors.As(err, &re) {
			outcome = InviteRefused
			return nil, &RefusedError{Code: re.Res.StatusCode, Reason: re.Res.Reason}
		}
		return nil, fmt.Errorf("the INVITE to %s failed: %w", deviceID, err)
	}
	if err := dialog.Ack(ctx); err != nil {
		_ = dialog.Close()
		return nil, fmt.Errorf("sending the ACK to %s: %w", deviceID, err)
	}
	outcome = InviteAnswered
	call := &Call{DeviceID: deviceID, ChannelID: o.ChannelID, GatewayID: gatewayID, SSRC: o.SSRC,
		Answer: string(dialog.InviteResponse.Body()), dialog: dialog, srv: g}
	s.devMu.Lock()
	s.calls[dialog.ID] = call
	s.devMu.Unlock()
	s.cfg.Metrics.calls.WithLabelValues(gatewayID).Inc()
	g.log.Info("camera streaming", "device", deviceID, "channel", o.ChannelID, "ssrc", o.SSRC,
		"rtp", net.JoinHostPort(o.RTPIP, strconv.Itoa(o.RTPPort)))
	return call, nil
}

// abandoned waits out an INVITE given up on: a late 200 is ACKed and ended by a BYE.
func (g *server) abandoned(dialog *sipgo.DialogClientSession, answered <-chan error, deviceID, channelID string) {
	defer dialog.Close()
	if err := <-answered; err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dialog.Ack(ctx); err == nil {
		err = dialog.Bye(ctx)
		g.log.Info("a camera answered an INVITE after it was given up; ended it with BYE", "device", deviceID,
			"channel", channelID, "error", err)
	}
}

// Bye ends a call this node established (video stop). The call is forgotten whatever the
// camera answers: a camera that is gone cannot stream.
func (s *Service) Bye(ctx context.Context, c *Call) error {
	if !s.forgetCall(c) {
		return nil
	}
	defer c.dialog.Close()
	if err := c.dialog.Bye(ctx); err != nil {
		return fmt.Errorf("BYE to %s: %w", c.DeviceID, err)
	}
	return nil
}

// forgetCall drops c from the calls; false when it was already gone.
func (s *Service) forgetCall(c *Call) bool {
	s.devMu.Lock()
	cur, ok := s.calls[c.dialog.ID]
	if ok && cur == c {
		delete(s.calls, c.dialog.ID)
	}
	s.devMu.Unlock()
	if ok && cur == c {
		s.cfg.Metrics.calls.WithLabelValues(c.GatewayID).Dec()
		return true
	}
	return false
}

// onBye answers a camera that ends a call itself and reports the end.
func (g *server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	id, err := sip.DialogIDFromRequestUAC(req)
	g.svc.devMu.Lock()
	c := g.svc.calls[id]
	g.svc.devMu.Unlock()
	if err != nil || c == nil {
		g.respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	if err := c.dialog.ReadBye(req, tx); err != nil {
		g.log.Debug("answering a camera's BYE failed", "device", c.DeviceID, "error", err)
	}
	if g.svc.forgetCall(c) {
		_ = c.dialog.Close()
		g.svc.ended(c, "the camera ended the stream (BYE)")
	}
}

// endCalls ends the calls that match with a BYE each, best effort, and reports them ended.
func (s *Service) endCalls(match func(*Call) bool, reason string) {
	s.devMu.Lock()
	var ending []*Call
	for _, c := range s.calls {
		if match(c) {
			ending = append(ending, c)
		}
	}
	s.devMu.Unlock()
	for _, c := range ending {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.Bye(ctx, c)
		cancel()
		s.ended(c, reason)
	}
}

func (s *Service) ended(c *Call, reason string) {
	s.log.Info("video stream ended", "device", c.DeviceID, "channel", c.ChannelID, "reason", reason)
	if s.cfg.CallEnded != nil {
		s.cfg.CallEnded(c.DeviceID, c.ChannelID, reason)
	}
}

// SSRC builds a GB/T 28181 SSRC: 0 (live), digits 4–8 of the SIP domain, then seq as four
// digits.
func SSRC(domain string, seq int) string {
	d := domain + strings.Repeat("0", max(0, 8-len(domain)))
	return fmt.Sprintf("0%s%04d", d[3:8], seq%10000)
}

// Registration is the gateway and SIP domain of a device registered on this node; false
// when it is not registered here.
func (s *Service) Registration(deviceID string) (gatewayID, domain string, ok bool) {
	s.devMu.Lock()
	d := s.devices[deviceID]
	if d != nil && s.cfg.Sessions.Get(deviceID) == d.sess {
		gatewayID = d.gatewayID
	}
	s.devMu.Unlock()
	if gatewayID == "" {
		return "", "", false
	}
	gw := s.gateway(gatewayID)
	if gw == nil {
		return "", "", false
	}
	return gatewayID, gw.Configuration.Domain, true
}
