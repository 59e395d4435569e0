package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/auth"
	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

const userKey = "linkops.user"

// LoginRequest is the body of POST /api/v1/auth/login.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password" secret:"true"`
}

// LoginResponse carries a bearer token.
type LoginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
	Username  string    `json:"username"`
	Role      string    `json:"role"`
}

func (s *Server) registerAuthRoutes() {
	s.add(&Route{Method: http.MethodPost, Path: "/api/v1/auth/login", Access: Public, Tag: "auth", ReadOnly: true,
		Summary: "Exchange a username and password for a bearer token",
		Request: LoginRequest{}, Response: LoginResponse{}}, s.login)
}

func (s *Server) login(c echo.Context) error {
	var req LoginRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var errs resource.Errors
	if req.Username == "" {
		errs.Add("username", "is required")
	}
	if req.Password == "" {
		errs.Add("password", "is required")
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	key := s.cfg.Store.Meta(fsm.MetaTokenKey)
	if key == nil {
		return problem(http.StatusServiceUnavailable, "not_initialized", "the cluster has not been initialized yet (no leader has been elected); retry shortly")
	}
	obj, err := s.cfg.Store.GetBy(resource.Users, "username", req.Username)
	if err != nil || !auth.CheckPassword(obj.(*resource.User).PasswordHash, req.Password) {
		s.log.Warn("login failed", "username", req.Username, "ip", c.RealIP())
		return problem(http.StatusUnauthorized, "invalid_credentials", "invalid username or password")
	}
	u := obj.(*resource.User)
	token, exp, err := auth.Issue(key, u.ID, u.PasswordSetAt, s.now(), s.cfg.TokenTTL)
	if err != nil {
		return err
	}
	s.log.Info("login", "username", u.Username, "ip", c.RealIP())
	return c.JSON(http.StatusOK, LoginResponse{Token: token, ExpiresAt: exp, Username: u.Username, Role: u.Role})
}

// authenticate enforces a route's access level: no or bad token → 401, role too low → 403.
// A viewer may use only reads.
func (s *Server) authenticate(access Access) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		switch access {
		case Public:
			return next
		case Internal:
			return func(c echo.Context) error {
				if err := s.cfg.Raft.VerifyRequest(c.Request()); err != nil {
					s.log.Warn("refused an internal call", "path", c.Request().URL.Path, "ip", c.RealIP(), "error", err)
					return problem(http.StatusUnauthorized, "unauthorized", "internal endpoint: %v", err)
				}
				return next(c)
			}
		}
		return func(c echo.Context) error {
			u, p := s.principal(c)
			if p != nil {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="linkops"`)
				return p
			}
			if u.Role != resource.RoleAdmin && (access == Admin || isWrite(c.Request().Method)) {
				return problem(http.StatusForbidden, "forbidden", "user %q has role %q; this action needs admin", u.Username, u.Role)
			}
			c.Set(userKey, u)
			return next(c)
		}
	}
}

// principal resolves the bearer token to a user.
func (s *Server) principal(c echo.Context) (*resource.User, *Problem) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return nil, problem(http.StatusUnauthorized, "unauthorized", "missing bearer token: log in with POST /api/v1/auth/login and send Authorization: Bearer <token>")
	}
	bad := problem(http.StatusUnauthorized, "unauthorized", "invalid or expired token; log in again")
	key := s.cfg.Store.Meta(fsm.MetaTokenKey)
	if key == nil {
		// A node that has just started may not have replayed the key yet: catch up first,
		// and if that is impossible say so (503) rather than calling a good token bad.
		if err := s.readBarrier(c.Request().Context()); err != nil {
			p, _ := toProblem(err)
			return nil, p
		}
		key = s.cfg.Store.Meta(fsm.MetaTokenKey)
	}
	claims, err := s.tokens.verify(key, strings.TrimSpace(token))
	if err != nil {
		return nil, bad
	}
	obj, err := s.cfg.Store.Get(resource.Users, claims.Subject)
	if errors.Is(err, fsm.ErrNotFound) {
		// A token for a user created a moment ago on the leader: catch up, then look again.
		if s.readBarrier(c.Request().Context()) == nil {
			obj, err = s.cfg.Store.Get(resource.Users, claims.Subject)
		}
	}
	if err != nil {
		return nil, bad // user deleted
	}
	u := obj.(*resource.User)
	if !auth.StillValidFor(claims, u.PasswordSetAt) {
		return nil, bad // password changed after the token was issued
	}
	return u, nil
}

// currentUser is the authenticated caller of a protected route.
func currentUser(c echo.Context) *resource.User {
	u, _ := c.Get(userKey).(*resource.User)
	return u
}
