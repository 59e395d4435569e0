package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/cloud"
	"github.com/linkops/linkops/resource"
)

// Callbacks is what the API needs from this node's cloud side (package cloud): the pushes
// of CTWing and OneNET at a gateway's callbackUrl.
type Callbacks interface {
	// Callback answers one request: the body of a 200, or an error wrapping
	// cloud.ErrNoGateway, cloud.ErrUnauthorized, cloud.ErrBadBody or cloud.ErrMethod.
	Callback(ctx context.Context, gatewayID, method, remote string, query url.Values, body []byte) ([]byte, error)
}

// registerCallbackRoutes wires the cloud gateways' callbackUrl (SPEC §5.3). The platforms
// send no token: the gateway's own token or signature is checked by package cloud. Local:
// every node answers from its own state, so a push never waits for the leader.
func (s *Server) registerCallbackRoutes() {
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		s.add(&Route{Method: m, Path: "/api/v1/callbacks/:gatewayId", Access: Public, Tag: "gateways", Local: true, Raw: true,
			Summary: "A cloud gateway's callbackUrl: CTWing pushes (?token=), OneNET URL checks (GET) and pushes (POST)"}, s.callback)
	}
}

var errNoCallbacks = problem(http.StatusServiceUnavailable, "callbacks_unavailable", "this node serves no cloud callbacks")

func (s *Server) callback(c echo.Context) error {
	if s.cfg.Callbacks == nil {
		return errNoCallbacks
	}
	req := c.Request()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return problem(http.StatusBadRequest, "bad_request", "reading the body failed: %v", err)
	}
	out, err := s.cfg.Callbacks.Callback(req.Context(), c.Param("gatewayId"), req.Method, req.RemoteAddr, req.URL.Query(), body)
	switch {
	case errors.Is(err, cloud.ErrNoGateway):
		return problem(http.StatusNotFound, "no_gateway", "%v", err)
	case errors.Is(err, cloud.ErrUnauthorized):
		return problem(http.StatusUnauthorized, "unauthorized", "%v", err)
	case errors.Is(err, cloud.ErrBadBody):
		return problem(http.StatusBadRequest, "malformed_push", "%v", err)
	case errors.Is(err, cloud.ErrMethod):
		return problem(http.StatusMethodNotAllowed, "method_not_allowed", "%v", err)
	case err != nil:
		return err
	}
	if out == nil {
		return c.NoContent(http.StatusOK)
	}
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", out)
}

// prepareGateway validates a gateway and keeps its Ctwing callback token: generated on
// create (before raft, so that every node stores the same one), kept on update, never
// taken from the body.
func prepareGateway(g, old *resource.Gateway) resource.Errors {
	if g.ID == "" && old == nil {
		g.ID = newID() // callbackUrl names the id
	}
	errs := g.Validate()
	g.CallbackToken = ""
	if g.Provider != resource.ProviderCtwing {
		return errs
	}
	if old != nil && old.CallbackToken != "" {
		g.CallbackToken = old.CallbackToken
		return errs
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	g.CallbackToken = hex.EncodeToString(b)
	return errs
}

// presentGateway completes callbackUrl with the base URL and, for Ctwing, the token,
// read from the stored record because answers have secrets cleared.
func (s *Server) presentGateway(c echo.Context, g *resource.Gateway) *resource.Gateway {
	if g.CallbackURL == "" {
		return g
	}
	cp := resource.Copy(g)
	base := s.cfg.PublicURL
	if base == "" {
		base = baseURL(c)
	}
	cp.CallbackURL = base + resource.CallbackPath(g.ID)
	if g.Provider == resource.ProviderCtwing {
		if o, err := s.cfg.Store.Get(resource.Gateways, g.ID); err == nil {
			if token := o.(*resource.Gateway).CallbackToken; token != "" {
				cp.CallbackURL += "?token=" + url.QueryEscape(token)
			}
		}
	}
	return cp
}
