package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/cluster"
	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/ota"
	"github.com/linkops/linkops/ota/blob"
	"github.com/linkops/linkops/resource"
)

// FirmwareUploadTimeout bounds a forwarded firmware upload: gigabytes through a follower
// take far longer than an ordinary write.
const FirmwareUploadTimeout = 2 * time.Hour

// firmwareFormRoom is what a firmware upload's body may hold beside the file: the other
// fields and the multipart framing.
const firmwareFormRoom = 1 << 20

// Limits on the text fields of an upload (the properties are up to 100 entries of 4 KiB).
const (
	maxFirmwareFieldBytes      = 64 << 10
	maxFirmwarePropertiesBytes = 512 << 10
)

// firmwareFields are the text fields of an upload, in the order they are documented.
var firmwareFields = []string{"id", "name", "productId", "version", "versionOrder", "signMethod", "sign", "description", "properties"}

// firmwareUpload describes the multipart form of a firmware upload (for the OpenAPI
// document): the fields first, then the file.
type firmwareUpload struct {
	ID           string `json:"id,omitempty"`
	Name         string `json:"name"`
	ProductID    string `json:"productId"`
	Version      string `json:"version"`
	VersionOrder int    `json:"versionOrder"`
	SignMethod   string `json:"signMethod"`
	// Sign is optional: the file's hash is computed when it is absent.
	Sign        string `json:"sign,omitempty"`
	Description string `json:"description,omitempty"`
	// Properties is a JSON array of {id, name, value}.
	Properties string `json:"properties,omitempty"`
	File       string `json:"file" format:"binary"`
}

// registerFirmwareRoutes wires /api/v1/firmwares (SPEC §4.7). The create is an upload of
// its own, streamed into the blob store; the other routes are the generic ones.
func (s *Server) registerFirmwareRoutes() {
	col := collection[*resource.Firmware]{
		kind: resource.Firmwares, path: "/api/v1/firmwares", tag: "firmwares", access: Viewer,
		prepare: func(_ echo.Context, f, old *resource.Firmware) resource.Errors {
			f.URL = ""
			if old != nil {
				// An edit never changes the file nor what it was checked against (the FSM
				// keeps them too); copied first so that a body without them validates.
				f.Size, f.MD5, f.SHA256, f.BlobKey, f.Sign, f.SignMethod = old.Size, old.MD5, old.SHA256, old.BlobKey, old.Sign, old.SignMethod
			}
			return f.Validate()
		},
		present: s.presentFirmware,
	}
	sample := &resource.Firmware{}
	s.add(&Route{Method: http.MethodGet, Path: col.path, Access: Viewer, Tag: col.tag,
		Summary: "List firmwares (?productId=, ?version=, ?q=)", Response: List[*resource.Firmware]{}},
		func(c echo.Context) error { return listHandler(s, c, col) })
	s.add(&Route{Method: http.MethodPost, Path: col.path, Access: Admin, Tag: col.tag, Status: http.StatusCreated,
		BodyLimit: s.cfg.FirmwareMaxBytes + firmwareFormRoom, Timeout: FirmwareUploadTimeout,
		Summary:             "Upload a firmware: its fields, then the file (multipart/form-data, streamed into the blob store)",
		RequestContentTypes: []string{"multipart/form-data"}, Request: firmwareUpload{}, Response: sample},
		func(c echo.Context) error { return s.createFirmware(c, col) })
	s.add(&Route{Method: http.MethodGet, Path: col.path + "/:id", Access: Viewer, Tag: col.tag,
		Summary: "Get a firmware", Response: sample}, func(c echo.Context) error { return getHandler(s, c, col) })
	s.add(&Route{Method: http.MethodPut, Path: col.path + "/:id", Access: Admin, Tag: col.tag,
		Summary: "Replace the editable fields of a firmware (never its file)", Request: sample, Response: sample},
		func(c echo.Context) error { return updateHandler(s, c, col) })
	s.add(&Route{Method: http.MethodDelete, Path: col.path + "/:id", Access: Admin, Tag: col.tag, Status: http.StatusNoContent,
		Summary: "Delete a firmware and its file (refused while an upgrade task uses it)"}, s.deleteFirmware)
	s.add(&Route{Method: http.MethodGet, Path: col.path + "/:id/file", Access: Viewer, Tag: col.tag, Raw: true,
		Summary: "Download the firmware's file (Range, ETag \"<sha256>\")"}, s.serveFirmware)
	// Devices hold no token: the signed link is their credential, and any node serves it
	// from its own state and store (fetching the file from a peer when it lacks it).
	s.add(&Route{Method: http.MethodGet, Path: col.path + "/:id/download", Access: Public, Tag: col.tag, Raw: true, Local: true,
		Summary: "Download the firmware's file with a signed device link (?expires=UNIX&signature=HEX; Range)"}, s.downloadFirmware)
}

// presentFirmware adds the file's URL to an answer, on a copy: obj may be the stored object.
func (s *Server) presentFirmware(c echo.Context, f *resource.Firmware) *resource.Firmware {
	cp := resource.Copy(f)
	cp.BlobKey = ""
	cp.URL = s.publicBase(c) + "/api/v1/firmwares/" + url.PathEscape(f.ID) + "/file"
	return cp
}

// publicBase is the base URL clients reach this node at: --public-url, else the scheme and
// host of the request.
func (s *Server) publicBase(c echo.Context) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	return baseURL(c)
}

// createFirmware reads an upload's fields, checks them and everything that would refuse
// the record anyway before the file is read (a gigabyte upload with a bad field fails at
// once), then streams the file into the blob store and records it.
func (s *Server) createFirmware(c echo.Context, col collection[*resource.Firmware]) error {
	o, err := s.otaSide()
	if err != nil {
		return err
	}
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if mt != "multipart/form-data" {
		return problem(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"upload a firmware as multipart/form-data: the fields (%s) first, then the file in a part named file, as curl -F does (got %q)",
			strings.Join(firmwareFields, ", "), mt)
	}
	mr, err := c.Request().MultipartReader()
	if err != nil {
		return problem(http.StatusBadRequest, "bad_request", "the body is not a valid multipart form: %v", err)
	}
	fw := &resource.Firmware{}
	var errs resource.Errors
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			errs = mergeErrors(errs, fw.Validate())
			errs.Add("file", "is required: the firmware file, in a part named file after the other fields")
			return invalid(errs)
		}
		if err != nil {
			return uploadError(err)
		}
		if part.FormName() == "file" {
			return s.uploadFirmware(c, col, o, fw, errs, part, mr)
		}
		if err := readFirmwareField(fw, &errs, part); err != nil {
			return err
		}
	}
}

// readFirmwareField sets one text field of an upload, noting what is wrong with it.
func readFirmwareField(fw *resource.Firmware, errs *resource.Errors, part *multipart.Part) error {
	name := part.FormName()
	limit := maxFirmwareFieldBytes
	if name == "properties" {
		limit = maxFirmwarePropertiesBytes
	}
	b, err := io.ReadAll(io.LimitReader(part, int64(limit)+1))
	if err != nil {
		return uploadError(err)
	}
	if len(b) > limit {
		errs.Add(name, "must be at most %d bytes", limit)
		return nil
	}
	v := string(b)
	switch name {
	case "id":
		fw.ID = v
	case "name":
		fw.Name = v
	case "productId":
		fw.ProductID = v
	case "version":
		fw.Version = v
	case "versionOrder":
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			errs.Add(name, "must be an integer from 1 to %d, not %q", resource.MaxVersionOrder, v)
		}
		fw.VersionOrder = n
	case "signMethod":
		fw.SignMethod = v
	case "sign":
		fw.Sign = v
	case "description":
		fw.Description = v
	case "properties":
		if strings.TrimSpace(v) == "" {
			return nil
		}
		if err := json.Unmarshal(b, &fw.Properties); err != nil {
			errs.Add(name, "must be a JSON array of {\"id\", \"name\", \"value\"} objects with string values: %v", err)
		}
	case "":
		errs.Add("", "a form part has no name; send the fields %s, then file", strings.Join(firmwareFields, ", "))
	default:
		errs.Add(name, "is not a field of this form; send %s, then file", strings.Join(firmwareFields, ", "))
	}
	return nil
}

// mergeErrors adds to errs those of more about fields errs does not already name (a
// versionOrder that is not a number is one error, not two).
func mergeErrors(errs, more resource.Errors) resource.Errors {
	named := map[string]bool{}
	for _, e := range errs {
		named[e.Field] = true
	}
	for _, e := range more {
		if !named[e.Field] {
			errs = append(errs, e)
		}
	}
	return errs
}

// uploadFirmware is createFirmware from the file part on.
func (s *Server) uploadFirmware(c echo.Context, col collection[*resource.Firmware], o OTA, fw *resource.Firmware, errs resource.Errors,
	part *multipart.Part, mr *multipart.Reader) error {
	if errs = mergeErrors(errs, fw.Validate()); len(errs) > 0 {
		return invalid(errs)
	}
	if fw.ID == "" {
		fw.ID = newID()
	}
	if err := s.firmwareConflicts(fw); err != nil {
		return err
	}
	key := "firmwares/" + fw.ID + "/" + randomHex(8)
	body := &clientBody{r: part}
	up, err := o.Upload(c.Request().Context(), key, body, s.cfg.FirmwareMaxBytes)
	if err != nil {
		return s.uploadProblem(err, body.err)
	}
	if up.Key != "" {
		key = up.Key
	}
	fw.Size, fw.MD5, fw.SHA256, fw.BlobKey = up.Size, up.MD5, up.SHA256, key
	// A field after the file would be silently lost: the record is made from what came
	// before it.
	if next, err := mr.NextPart(); !errors.Is(err, io.EOF) {
		s.removeBlob(o, fw, "the form went on after the file")
		if err != nil {
			return uploadError(err)
		}
		return invalid(resource.Errors{{Field: next.FormName(), Message: "must come before the file part: the file is the form's last part"}})
	}
	got := fw.SignOf(up.MD5, up.SHA256)
	if fw.Sign == "" {
		fw.Sign = got
	} else if !strings.EqualFold(fw.Sign, got) {
		s.removeBlob(o, fw, "sign mismatch")
		p := problem(http.StatusBadRequest, "sign_mismatch", "the file's %s does not match sign; nothing was kept", fw.SignMethod)
		p.Errors = resource.Errors{{Field: "sign", Message: fmt.Sprintf("the file's %s is %s, not %s", fw.SignMethod, got, fw.Sign)}}
		return p
	}
	cmd, err := fsm.NewUpsert(resource.Firmwares, fw, true, 0, s.now())
	if err != nil {
		s.removeBlob(o, fw, "the record could not be encoded")
		return err
	}
	stored, err := s.cfg.Raft.Apply(c.Request().Context(), cmd)
	if err != nil {
		// When raft cannot say whether the record committed, the blob stays: a record
		// without its file is worse than a file without a record.
		if errors.Is(err, cluster.ErrOutcomeUnknown) {
			s.log.Warn("firmware upload: the record's outcome is unknown, so its blob is kept", "firmware", fw.ID, "error", err)
		} else {
			s.removeBlob(o, fw, "the record was refused")
		}
		return err
	}
	s.log.Info("firmware uploaded", "firmware", fw.ID, "size", fw.Size, "user", currentUser(c).Username)
	setETag(c, stored.(resource.Object).Base().Index)
	return c.JSON(http.StatusCreated, col.out(c, stored.(*resource.Firmware)))
}

// firmwareConflicts checks this node's state for what the FSM would refuse anyway, so that
// the file is not read (and stored) for nothing. The FSM checks again when it applies.
func (s *Server) firmwareConflicts(fw *resource.Firmware) error {
	if _, err := s.cfg.Store.Get(resource.Firmwares, fw.ID); err == nil {
		return fsm.ErrExists
	}
	if _, err := s.cfg.Store.Get(resource.Products, fw.ProductID); errors.Is(err, fsm.ErrNotFound) {
		return fsm.Invalid("productId", "there is no product %q", fw.ProductID)
	} else if err != nil {
		return err
	}
	all, _ := s.cfg.Store.List(resource.Firmwares)
	for _, obj := range all {
		if o := obj.(*resource.Firmware); o.ProductID == fw.ProductID && o.VersionOrder == fw.VersionOrder {
			return &fsm.RuleError{Code: "version_order_exists", Status: http.StatusConflict, Field: "versionOrder",
				Message: fmt.Sprintf("firmware %q of product %q already has versionOrder %d; each firmware of a product needs its own order", o.ID, fw.ProductID, fw.VersionOrder)}
		}
	}
	return nil
}

// clientBody remembers the first error reading the client's upload, so that a failed
// Upload is blamed on the client (a broken or oversized body) or on the store, whatever the
// OTA side wrapped the error in.
type clientBody struct {
	r   io.Reader
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// uploadProblem answers a failed Upload.
func (s *Server) uploadProblem(err, bodyErr error) error {
	switch {
	case errors.Is(err, ota.ErrTooLarge):
		return problem(http.StatusRequestEntityTooLarge, "firmware_too_large",
			"the firmware file is larger than %d bytes, the limit set by --firmware-max-bytes; nothing was kept", s.cfg.FirmwareMaxBytes)
	case bodyErr != nil:
		return uploadError(bodyErr)
	case errors.Is(err, blob.ErrUnavailable):
		return otaProblem(err)
	}
	return err
}

// removeBlob deletes a blob no record will name; a failure leaves an unused blob, logged.
func (s *Server) removeBlob(o OTA, fw *resource.Firmware, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	if err := o.Remove(ctx, fw); err != nil {
		s.log.Warn("a firmware blob could not be removed; it stays in the store unused", "firmware", fw.ID, "why", why, "error", err)
	}
}

// deleteFirmware deletes the record, then its blob. The record deleted is the one read
// (its index is the delete's condition), so the blob removed is the one it named.
func (s *Server) deleteFirmware(c echo.Context) error {
	o, err := s.otaSide()
	if err != nil {
		return err
	}
	id := c.Param("id")
	expect, err := ifMatch(c)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		cur, err := s.cfg.Store.Get(resource.Firmwares, id)
		if err != nil {
			return err
		}
		fw := cur.(*resource.Firmware)
		if expect != 0 && fw.Index != expect {
			return fsm.ErrIndexMismatch
		}
		cmd, err := fsm.NewDelete(resource.Firmwares, id, fw.Index)
		if err != nil {
			return err
		}
		_, err = s.cfg.Raft.Apply(c.Request().Context(), cmd)
		if errors.Is(err, fsm.ErrIndexMismatch) && expect == 0 && attempt < maxUpdateAttempts {
			continue // edited meanwhile: the caller asked for no condition
		}
		if err != nil {
			return err
		}
		s.log.Info("deleted", "kind", resource.Firmwares.Name, "id", id, "user", currentUser(c).Username)
		s.removeBlob(o, fw, "the firmware was deleted")
		return c.NoContent(http.StatusNoContent)
	}
}

// serveFirmware is the token-holder's download.
func (s *Server) serveFirmware(c echo.Context) error {
	o, err := s.otaSide()
	if err != nil {
		return err
	}
	cur, err := s.cfg.Store.Get(resource.Firmwares, c.Param("id"))
	if err != nil {
		return err
	}
	return otaProblem(o.Serve(c.Response(), c.Request(), cur.(*resource.Firmware)))
}

// downloadFirmware is the device's download: the link's signature is checked before
// anything else, so that an unsigned caller cannot even learn which firmware ids exist.
func (s *Server) downloadFirmware(c echo.Context) error {
	o, err := s.otaSide()
	if err != nil {
		return err
	}
	id := c.Param("id")
	if err := o.CheckSignature(id, c.QueryParam("expires"), c.QueryParam("signature")); err != nil {
		return otaProblem(err)
	}
	cur, err := s.cfg.Store.Get(resource.Firmwares, id)
	if err != nil {
		return err
	}
	return otaProblem(o.Serve(c.Response(), c.Request(), cur.(*resource.Firmware)))
}

// randomHex makes n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
