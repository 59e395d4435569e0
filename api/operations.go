package api

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
)

// registerOperationRoutes wires the resources of the manual's 运维管理 menu (SPEC §4.3–4.6).
// Field validation happens here, before raft; rules that depend on other resources are
// checked by the FSM (fsm/rules_ops.go).
func (s *Server) registerOperationRoutes() {
	register(s, collection[*resource.NetworkComponent]{
		kind: resource.NetworkComponents, path: "/api/v1/network-components", tag: "network-components", access: Viewer,
		prepare: func(_ echo.Context, n, _ *resource.NetworkComponent) resource.Errors {
			errs := n.Validate()
			paths, cfgs := n.Configs()
			for i, cfg := range cfgs {
				if pc := cfg.ParserConfiguration; cfg.ParserType == resource.ParserScript && pc != nil && pc.Script != "" {
					if err := protocol.CheckScript(pc.Script); err != nil {
						errs.Add(paths[i]+".parserConfiguration.script", "%v", err)
					}
				}
			}
			return errs
		},
	})
	register(s, collection[*resource.Gateway]{
		kind: resource.Gateways, path: "/api/v1/gateways", tag: "gateways", access: Viewer,
		prepare: func(_ echo.Context, g, old *resource.Gateway) resource.Errors { return prepareGateway(g, old) },
		present: s.presentGateway,
	})
	register(s, collection[*resource.MediaServer]{
		kind: resource.MediaServers, path: "/api/v1/media-servers", tag: "media-servers", access: Viewer,
		prepare: func(_ echo.Context, m, _ *resource.MediaServer) resource.Errors { return m.Validate() },
	})
	register(s, collection[*resource.Product]{
		kind: resource.Products, path: "/api/v1/products", tag: "products", access: Viewer,
		prepare: func(_ echo.Context, p, _ *resource.Product) resource.Errors { return p.Validate() },
	})
	register(s, collection[*resource.Device]{
		kind: resource.Devices, path: "/api/v1/devices", tag: "devices", access: Viewer,
		prepare: func(_ echo.Context, d, old *resource.Device) resource.Errors {
			d.KeepSession(old)
			return d.Validate("")
		},
		presentPage: func(c echo.Context, devices []*resource.Device) []*resource.Device {
			out := make([]*resource.Device, len(devices))
			for i, d := range devices {
				out[i] = resource.Copy(d)
			}
			s.presentDevices(c.Request().Context(), out)
			return out
		},
		filters: map[string]func() func(resource.Object) string{"state": s.deviceStates},
	})
	s.add(&Route{Method: http.MethodPost, Path: "/api/v1/devices/batch", Access: Admin, Tag: "devices", Status: http.StatusCreated,
		BodyLimit: MaxBatchBodyBytes, Summary: fmt.Sprintf("Create up to %d devices at once, all or none", resource.MaxBatchDevices),
		Request: []*resource.Device{}, Response: List[*resource.Device]{}}, s.batchCreateDevices)
	s.registerProtocolRoutes()
}

// MaxBatchBodyBytes is the body limit of POST /api/v1/devices/batch (SPEC §3).
const MaxBatchBodyBytes = 8 << 20

// batchCreateDevices validates every entry, naming bad fields by their position
// ("[3].productId"), and creates them in one raft command so that either all or none exist.
func (s *Server) batchCreateDevices(c echo.Context) error {
	var devices []*resource.Device
	if err := decodeJSON(c, &devices); err != nil {
		return err
	}
	var errs resource.Errors
	switch {
	case len(devices) == 0:
		errs.Add("", "send a JSON array of 1 to %d devices", resource.MaxBatchDevices)
	case len(devices) > resource.MaxBatchDevices:
		errs.Add("", "holds %d devices; at most %d may be created at once", len(devices), resource.MaxBatchDevices)
	}
	seen := make(map[string]int, len(devices))
	for i, d := range devices {
		prefix := fmt.Sprintf("[%d].", i)
		if d == nil {
			errs.Add(fmt.Sprintf("[%d]", i), "must be a device object, not null")
			continue
		}
		errs = append(errs, d.Validate(prefix)...)
		if d.ID == "" {
			d.ID = newID()
		}
		if j, dup := seen[d.ID]; dup {
			errs.Add(prefix+"id", "%q is also the id of entry %d", d.ID, j)
		}
		seen[d.ID] = i
		d.KeepSession(nil)
		if len(errs) > 100 {
			errs.Add("", "stopped after 100 errors")
			break
		}
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	cmd, err := fsm.NewBatchCreate(resource.Devices, devices, s.now())
	if err != nil {
		return err
	}
	stored, err := s.cfg.Raft.Apply(c.Request().Context(), cmd)
	if err != nil {
		return err
	}
	objs := stored.([]resource.Object)
	out := List[*resource.Device]{Items: make([]*resource.Device, len(objs)), Total: len(objs), Page: 1, PageSize: len(objs)}
	for i, o := range objs {
		out.Items[i] = o.(*resource.Device)
	}
	s.log.Info("created devices in a batch", "count", len(objs), "user", currentUser(c).Username)
	return c.JSON(http.StatusCreated, out)
}

// baseURL is the scheme and host the client used to reach this node, for absolute URLs in
// responses (a cloud gateway's callbackUrl).
func baseURL(c echo.Context) string {
	r := c.Request()
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	host := r.Host
	if h := r.Header.Get("X-Forwarded-Host"); h != "" {
		host = h
	}
	return scheme + "://" + host
}
