package api

import (
	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/auth"
	"github.com/linkops/linkops/resource"
)

// Users are visible to admins only: even their names are not a viewer's business.
func (s *Server) registerUserRoutes() {
	register(s, collection[*resource.User]{
		kind: resource.Users, path: "/api/v1/users", tag: "users", access: Admin,
		prepare: func(_ echo.Context, u, old *resource.User) resource.Errors {
			// The hash and its timestamp are the server's: never taken from a body.
			u.PasswordHash, u.PasswordSetAt = "", s.now()
			if old != nil {
				u.PasswordHash, u.PasswordSetAt = old.PasswordHash, old.PasswordSetAt
			}
			errs := u.Validate(old == nil)
			if len(errs) > 0 {
				return errs
			}
			if u.Password != "" {
				h, err := auth.HashPassword(u.Password)
				if err != nil {
					errs.Add("password", "cannot be hashed: %v", err)
					return errs
				}
				u.PasswordHash, u.PasswordSetAt = h, s.now()
			}
			u.Password = ""
			return nil
		},
	})
}
