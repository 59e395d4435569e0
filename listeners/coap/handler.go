package coap

import (
	"bytes"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/linkops/linkops/listeners"
)

// maxDiagnostic bounds the diagnostic payload of an error response (RFC 7252 §5.5.2).
const maxDiagnostic = 128

// errNoDownlink is what Send answers: a CoAP request is answered by its Reply only.
var errNoDownlink = errors.New("coap: a request has no downlink; answer it with the Reply")

// request is one CoAP request as the handler sees it.
type request struct{ info listeners.ConnInfo }

func (r *request) Info() listeners.ConnInfo   { return r.info }
func (r *request) Send(listeners.Frame) error { return errNoDownlink }
func (r *request) Close(string)               {}

var methods = map[codes.Code]string{codes.GET: "GET", codes.POST: "POST", codes.PUT: "PUT", codes.DELETE: "DELETE"}

// success is the code of a Reply that gives none (RFC 7252 §5.8).
var success = map[codes.Code]codes.Code{codes.GET: codes.Content, codes.POST: codes.Changed, codes.PUT: codes.Changed, codes.DELETE: codes.Deleted}

// handle turns one request (its body reassembled by go-coap) into one message.
func (s *server) handle(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) {
	if !isRequest(r.Code()) || !s.enter() {
		return // a stray response, or Serve is returning
	}
	defer s.leave()
	defer func() {
		if p := recover(); p != nil {
			s.env.Error("panic")
			s.env.Log.Error("coap request handling panicked", "component", s.env.ComponentID, "panic", p)
			respond(w, codes.InternalServerError, "internal error")
		}
	}()
	method, ok := methods[r.Code()]
	if !ok {
		respond(w, codes.MethodNotAllowed, "use GET, POST, PUT or DELETE")
		return
	}
	path, err := r.Options().Path()
	if errors.Is(err, message.ErrOptionNotFound) {
		path, err = "/", nil
	}
	if err != nil {
		s.env.Error("garbage")
		respond(w, codes.BadRequest, "bad Uri-Path: "+err.Error())
		return
	}
	body, err := r.ReadBody()
	if err != nil {
		s.env.Error("garbage")
		respond(w, codes.BadRequest, "unreadable body")
		return
	}
	if int64(len(body)) > s.lim.body {
		s.env.Error("oversize")
		tooLarge(w, s.lim.body)
		return
	}
	info := listeners.ConnInfo{Transport: listeners.TransportCoAP, Remote: w.Conn().RemoteAddr().String(),
		Method: method, Path: path, TLS: s.spec.Config.Secure, Header: privateOptions(r.Options())}
	reply, err := s.env.Request(s.ctx, &request{info: info}, listeners.Frame{Topic: path, Payload: body})
	if err != nil {
		s.refuse(w, err)
		return
	}
	s.reply(w, r.Code(), reply)
}

// refuse answers a handler's refusal (SPEC §4.3.1, §5.2).
func (s *server) refuse(w *responsewriter.ResponseWriter[*udpClient.Conn], err error) {
	switch {
	case errors.Is(err, listeners.ErrNoGateway):
		respond(w, codes.NotFound, err.Error())
	case errors.Is(err, listeners.ErrNotAuthorized), errors.Is(err, listeners.ErrBadCredentials):
		respond(w, codes.Unauthorized, err.Error())
	case errors.Is(err, listeners.ErrTooLarge):
		tooLarge(w, s.lim.body)
	default:
		respond(w, codes.BadRequest, err.Error())
	}
}

func (s *server) reply(w *responsewriter.ResponseWriter[*udpClient.Conn], method codes.Code, reply *listeners.Reply) {
	if reply == nil {
		reply = &listeners.Reply{}
	}
	code := success[method]
	if reply.Code != 0 {
		code = codes.Code(reply.Code)
		if reply.Code < 0x40 || reply.Code >= 0xc0 { // classes 2 to 5
			s.env.Error("handler")
			s.env.Log.Warn("coap handler replied with no response code", "component", s.env.ComponentID, "code", reply.Code)
			respond(w, codes.InternalServerError, "bad response code")
			return
		}
	}
	if err := w.SetResponse(code, message.TextPlain, nil); err != nil {
		return // the request's No-Response option suppresses this answer (RFC 7967)
	}
	if len(reply.Payload) > 0 {
		if cf, ok := contentFormat(reply.ContentType); ok {
			w.Message().SetContentFormat(cf)
		}
		w.Message().SetBody(bytes.NewReader(reply.Payload))
	}
}

// contentFormat maps the media types CoAP has a number for that devices use.
func contentFormat(contentType string) (message.MediaType, bool) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, false
	}
	switch mt {
	case "application/json":
		return message.AppJSON, true
	case "application/cbor":
		return message.AppCBOR, true
	case "text/plain":
		return message.TextPlain, true
	case "application/octet-stream":
		return message.AppOctets, true
	}
	return 0, false
}

// respond sets an error response with a diagnostic payload, which carries no
// Content-Format (RFC 7252 §5.5.2).
// It reports false when the request's No-Response option suppresses the answer.
func respond(w *responsewriter.ResponseWriter[*udpClient.Conn], code codes.Code, diagnostic string) bool {
	if err := w.SetResponse(code, message.TextPlain, nil); err != nil {
		return false
	}
	if d := diagnosticPayload(diagnostic); len(d) > 0 {
		w.Message().SetBody(bytes.NewReader(d))
	}
	return true
}

// tooLarge answers 4.13 with the largest body accepted in Size1 (RFC 7959 §2.9.3).
func tooLarge(w *responsewriter.ResponseWriter[*udpClient.Conn], limit int64) {
	if respond(w, codes.RequestEntityTooLarge, "request body too large") {
		w.Message().SetOptionUint32(message.Size1, uint32(limit))
	}
}

// diagnosticPayload cuts s to maxDiagnostic bytes without splitting a character.
func diagnosticPayload(s string) []byte {
	if len(s) <= maxDiagnostic {
		return []byte(s)
	}
	cut := maxDiagnostic
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return []byte(s[:cut])
}

// isRequest reports whether c is a method code (0.01–0.31).
func isRequest(c codes.Code) bool { return c >= codes.GET && c < 32 }

// privateOptions returns the request's options of the experimental and private ranges
// (2048 and up, RFC 7252 §12.2) by number, as text: devices carry their own fields there
// (JetLinks devices may send their id in option 2100).
func privateOptions(opts message.Options) http.Header {
	var h http.Header
	for _, o := range opts {
		if o.ID < 2048 {
			continue
		}
		if h == nil {
			h = http.Header{}
		}
		h[strconv.Itoa(int(o.ID))] = append(h[strconv.Itoa(int(o.ID))], string(o.Value))
	}
	return h
}
