package api

import (
	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/resource"
)

func (s *Server) registerCertificateRoutes() {
	register(s, collection[*resource.Certificate]{
		kind: resource.Certificates, path: "/api/v1/certificates", tag: "certificates", access: Viewer,
		prepare: func(_ echo.Context, c, old *resource.Certificate) resource.Errors { return c.ValidateAgainst(old) },
	})
}
