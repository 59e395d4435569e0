package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
)

// MaxUploadBodyBytes bounds a protocol upload: the package limit plus room for the form's
// other fields and multipart framing. A file part over protocol.MaxPackageBytes is refused
// on its own with 413 package_too_large.
const MaxUploadBodyBytes = protocol.MaxPackageBytes + 256<<10

// protocolUpload describes the multipart form of a package upload (for the OpenAPI
// document).
type protocolUpload struct {
	ID          string `json:"id,omitempty"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
	File        string `json:"file" format:"binary"`
}

type packageUpload struct {
	File string `json:"file" format:"binary"`
}

func (s *Server) registerProtocolRoutes() {
	col := collection[*resource.Protocol]{
		kind: resource.Protocols, path: "/api/v1/protocols", tag: "protocols", access: Viewer,
		decode:  s.decodeProtocol,
		prepare: s.prepareProtocol,
		// A create may be a multipart upload: raise its body limit and describe the form.
		createRoute: func(r *Route) {
			r.BodyLimit, r.Request, r.RequestContentTypes = MaxUploadBodyBytes, protocolUpload{}, []string{"multipart/form-data", echo.MIMEApplicationJSON}
			r.Summary = "Create a protocol: upload a package (multipart/form-data) or name a local directory (JSON)"
		},
	}
	register(s, col)
	s.add(&Route{Method: http.MethodPut, Path: col.path + "/:id/package", Access: Admin, Tag: col.tag, BodyLimit: MaxUploadBodyBytes,
		Summary: "Replace a package protocol's code (multipart field file, or an application/zip body)", Request: packageUpload{},
		RequestContentTypes: []string{"multipart/form-data", "application/zip"}, Response: &resource.Protocol{}},
		func(c echo.Context) error { return s.replaceProtocol(c, col, true) })
	s.add(&Route{Method: http.MethodPost, Path: col.path + "/:id/reload", Access: Admin, Tag: col.tag,
		Summary: "Read a local protocol's directory again; every node reloads it", Response: &resource.Protocol{}},
		func(c echo.Context) error { return s.replaceProtocol(c, col, false) })
}

// decodeProtocol reads a protocol from JSON (local protocols, updates) or from a multipart
// upload (package protocols). Whatever a body says about the package or its derived fields
// is dropped: only a verified upload sets them.
func (s *Server) decodeProtocol(c echo.Context, p *resource.Protocol) error {
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if mt != "multipart/form-data" {
		if err := decodeJSON(c, p); err != nil {
			return err
		}
		p.Package, p.Manifest, p.PackageSize, p.PackageSHA256, p.Builtin, p.Generation = nil, nil, 0, "", false, 0
		return nil
	}
	if c.Request().Method != http.MethodPost {
		return problem(http.StatusUnsupportedMediaType, "unsupported_media_type", "update a protocol's fields with JSON; replace its code with PUT /api/v1/protocols/{id}/package")
	}
	fields, zip, err := readUpload(c, "id", "name", "type", "description")
	if err != nil {
		return err
	}
	p.ID, p.Name, p.Type, p.Description = fields["id"], fields["name"], fields["type"], fields["description"]
	if p.Type == "" {
		p.Type = resource.ProtocolPackage
	}
	if p.Type != resource.ProtocolPackage {
		return invalid(resource.Errors{{Field: "type", Message: "an uploaded file makes a package protocol; create a local protocol with a JSON body"}})
	}
	if zip == nil {
		return invalid(resource.Errors{{Field: "file", Message: "is required: the protocol package (.zip)"}})
	}
	return setPackage(p, zip)
}

// readUpload streams a multipart form: the named text fields and the "file" part, which
// may not exceed protocol.MaxPackageBytes.
func readUpload(c echo.Context, names ...string) (map[string]string, []byte, error) {
	mr, err := c.Request().MultipartReader()
	if err != nil {
		return nil, nil, problem(http.StatusBadRequest, "bad_request", "the body is not a valid multipart form: %v", err)
	}
	fields := map[string]string{}
	var file []byte
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, uploadError(err)
		}
		name := part.FormName()
		switch {
		case name == "file":
			b, err := io.ReadAll(io.LimitReader(part, protocol.MaxPackageBytes+1))
			if err != nil {
				return nil, nil, uploadError(err)
			}
			if len(b) > protocol.MaxPackageBytes {
				return nil, nil, problem(http.StatusRequestEntityTooLarge, "package_too_large", "the package is larger than %d bytes (4 MiB)", protocol.MaxPackageBytes)
			}
			file = b
		case slices.Contains(names, name):
			b, err := io.ReadAll(io.LimitReader(part, 64<<10))
			if err != nil {
				return nil, nil, uploadError(err)
			}
			fields[name] = string(b)
		default:
			return nil, nil, invalid(resource.Errors{{Field: name, Message: "is not a field of this form; send " + strings.Join(append(names, "file"), ", ")}})
		}
	}
	return fields, file, nil
}

func uploadError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return problem(http.StatusBadRequest, "bad_request", "reading the upload failed: %v", err)
}

// setPackage verifies a zip (manifest, codec loads in the sandbox and exports decode and
// encode) and stores it with its derived fields.
func setPackage(p *resource.Protocol, zip []byte) error {
	pkg, err := protocol.Verify(zip)
	if err != nil {
		return packageProblem(err)
	}
	sum := sha256.Sum256(zip)
	p.Package, p.PackageSize, p.PackageSHA256 = zip, len(zip), hex.EncodeToString(sum[:])
	p.Manifest = manifestOf(pkg)
	return nil
}

func manifestOf(pkg *protocol.Package) *resource.ProtocolManifest {
	m := pkg.Manifest
	return &resource.ProtocolManifest{ID: m.ID, Name: m.Name, Version: m.Version, Transports: m.Transports, Main: m.Main}
}

// packageProblem turns a refused package into a 400 (or 413) naming the upload.
func packageProblem(err error) error {
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		return err
	}
	if pe.TooLarge {
		return problem(http.StatusRequestEntityTooLarge, "package_too_large", "%s", pe.Message)
	}
	field := "file"
	if pe.Field == "location" {
		field = "configuration.location"
	}
	p := problem(http.StatusBadRequest, "invalid_package", "%s", pe.Message)
	p.Errors = resource.Errors{{Field: field, Message: pe.Message}}
	return p
}

// loadLocal reads and compiles a local protocol's directory on this node.
func loadLocal(p *resource.Protocol) error {
	pkg, err := protocol.LoadDir(p.Configuration.Location)
	if err == nil {
		_, err = protocol.Compile(pkg)
	}
	if err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			pe.Field = "location"
		}
		return packageProblem(err)
	}
	p.Manifest = manifestOf(pkg)
	return nil
}

// prepareProtocol validates a create or an update. An update never changes the package
// (PUT /{id}/package does); a local protocol whose location changes is loaded again.
func (s *Server) prepareProtocol(c echo.Context, p, old *resource.Protocol) resource.Errors {
	if old != nil {
		p.Package, p.Manifest, p.PackageSize, p.PackageSHA256, p.Generation = old.Package, old.Manifest, old.PackageSize, old.PackageSHA256, old.Generation
	}
	errs := p.Validate()
	if len(errs) > 0 {
		return errs
	}
	switch {
	case p.Type == resource.ProtocolPackage && old == nil && p.Package == nil:
		errs.Add("file", "is required: upload the package (.zip) as multipart/form-data")
	case p.Type == resource.ProtocolLocal && (old == nil || old.Configuration.Location != p.Configuration.Location):
		if err := loadLocal(p); err != nil {
			var pr *Problem
			if errors.As(err, &pr) && len(pr.Errors) > 0 {
				return pr.Errors
			}
			errs.Add("configuration.location", "%v", err)
		}
		if old != nil {
			p.Generation = old.Generation + 1
		}
	}
	return errs
}

// replaceProtocol is PUT /{id}/package (upload) and POST /{id}/reload (local directory).
// The change applies only if the protocol is still the one read (If-Match, or the index
// read here), so a concurrent rename is not lost.
func (s *Server) replaceProtocol(c echo.Context, col collection[*resource.Protocol], upload bool) error {
	id := c.Param("id")
	expect, err := ifMatch(c)
	if err != nil {
		return err
	}
	var zip []byte
	if upload {
		if zip, err = readPackageBody(c); err != nil {
			return err
		}
	}
	cur, err := s.cfg.Store.Get(resource.Protocols, id)
	if err != nil {
		return err
	}
	old := cur.(*resource.Protocol)
	if old.Builtin {
		return fsm.Refuse("protocol_builtin", "protocol %q is built in and cannot be changed or deleted", id)
	}
	if expect != 0 && old.Index != expect {
		return fsm.ErrIndexMismatch
	}
	next := resource.Copy(old)
	switch {
	case upload && old.Type != resource.ProtocolPackage:
		return fsm.Refuse("protocol_not_package", "protocol %q is a %s protocol; only package protocols take an upload", id, old.Type)
	case upload:
		if err := setPackage(next, zip); err != nil {
			return err
		}
	case old.Type != resource.ProtocolLocal:
		return fsm.Refuse("protocol_not_local", "protocol %q is a %s protocol; only local protocols are reloaded from a directory", id, old.Type)
	default:
		if err := loadLocal(next); err != nil {
			return err
		}
		next.Generation++
	}
	cmd, err := fsm.NewUpsert(resource.Protocols, next, false, old.Index, s.now())
	if err != nil {
		return err
	}
	stored, err := s.cfg.Raft.Apply(c.Request().Context(), cmd)
	if err != nil {
		return err
	}
	s.log.Info("protocol code replaced", "id", id, "upload", upload, "user", currentUser(c).Username)
	setETag(c, stored.(resource.Object).Base().Index)
	return c.JSON(http.StatusOK, col.out(c, stored.(*resource.Protocol)))
}

// readPackageBody reads a package from a multipart form (field file) or a raw zip body.
func readPackageBody(c echo.Context) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if mt == "multipart/form-data" {
		_, zip, err := readUpload(c)
		if err != nil {
			return nil, err
		}
		if zip == nil {
			return nil, invalid(resource.Errors{{Field: "file", Message: "is required: the protocol package (.zip)"}})
		}
		return zip, nil
	}
	if mt != "application/zip" && mt != "application/octet-stream" {
		return nil, problem(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the package as multipart/form-data (field file) or as an application/zip body (got %q)", mt)
	}
	b, err := io.ReadAll(io.LimitReader(c.Request().Body, protocol.MaxPackageBytes+1))
	if err != nil {
		return nil, uploadError(err)
	}
	if len(b) > protocol.MaxPackageBytes {
		return nil, problem(http.StatusRequestEntityTooLarge, "package_too_large", "the package is larger than %d bytes (4 MiB)", protocol.MaxPackageBytes)
	}
	return bytes.Clone(b), nil
}
