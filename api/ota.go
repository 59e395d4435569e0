package api

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/ota"
	"github.com/linkops/linkops/ota/blob"
	"github.com/linkops/linkops/resource"
)

// OTA is what the API needs from this node's OTA side (package ota).
type OTA interface {
	// Upload streams a firmware file into the blob store under key while hashing it. More than max bytes → ota.ErrTooLarge
	// (nothing kept); a store failure wraps blob.ErrUnavailable (github.com/linkops/linkops/ota/blob).
	Upload(ctx context.Context, key string, r io.Reader, max int64) (ota.Upload, error)
	// Remove deletes a firmware's blob (after its record is gone).
	Remove(ctx context.Context, fw *resource.Firmware) error
	// Serve answers a download of fw with Range, ETag "<sha256 hex>", fetching the blob from a peer first when this node's
	// own store lacks it. Errors (before anything is written): blob.ErrNotFound (no node has it), blob.ErrUnavailable.
	Serve(w http.ResponseWriter, r *http.Request, fw *resource.Firmware) error
	// ServeBlob streams a blob this node holds to a peer (internal).
	ServeBlob(w http.ResponseWriter, r *http.Request, key string) error
	// CheckSignature verifies a device link's expires (unix seconds) and signature for firmware id: ota.ErrBadSignature, ota.ErrExpired.
	CheckSignature(id, expires, signature string) error
	// Push delivers firmware/upgrade messages to devices this node holds (internal, from the leader's engine).
	Push(ctx context.Context, pushes []ota.Push) []ota.PushResult
}

// Internal paths of the OTA side: a node that lacks a firmware blob fetches it from a peer
// (GET InternalBlobsPath + key), and the leader's engine hands pushes to the node holding
// the devices.
const (
	InternalBlobsPath   = "/internal/v1/blobs/"
	InternalOTAPushPath = "/internal/v1/ota/push"
)

// DefaultFirmwareMaxBytes is --firmware-max-bytes' default (SPEC §2.2).
const DefaultFirmwareMaxBytes = 2 << 30

// OTAPushRequest carries pushes from the leader to the node that holds the devices.
type OTAPushRequest struct {
	Pushes []ota.Push `json:"pushes"`
}

// OTAPushResponse says what became of each push.
type OTAPushResponse struct {
	Results []ota.PushResult `json:"results"`
}

// maxPushBodyBytes bounds a push batch: a campaign's worth of devices on one node.
const maxPushBodyBytes = MaxBatchBodyBytes

// errNoOTA is the answer of firmware routes on a server built without an OTA side (some
// tests): a 503 like a store that cannot be reached, never a nil dereference.
var errNoOTA = problem(http.StatusServiceUnavailable, "blob_store_unavailable", "this node has no firmware blob store")

// otaSide returns the node's OTA side, or the 503 when there is none.
func (s *Server) otaSide() (OTA, error) {
	if s.cfg.OTA == nil {
		return nil, errNoOTA
	}
	return s.cfg.OTA, nil
}

// otaProblem turns the OTA side's sentinel errors into problems; others pass through.
func otaProblem(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, blob.ErrUnavailable):
		return problem(http.StatusServiceUnavailable, "blob_store_unavailable", "%v", err)
	case errors.Is(err, blob.ErrNotFound):
		return problem(http.StatusNotFound, "firmware_file_missing", "no node holds the firmware file: %v", err)
	case errors.Is(err, blob.ErrBadKey):
		return problem(http.StatusBadRequest, "bad_request", "%v", err)
	case errors.Is(err, ota.ErrBadSignature):
		return problem(http.StatusForbidden, "bad_signature", "%v", err)
	case errors.Is(err, ota.ErrExpired):
		return problem(http.StatusForbidden, "link_expired", "%v: ask the platform for a new download link", err)
	}
	return err
}

func (s *Server) registerOTAInternalRoutes() {
	s.add(&Route{Method: http.MethodGet, Path: InternalBlobsPath + "*", Access: Internal, Tag: "internal", Local: true, Raw: true,
		Summary: "Stream a blob this node holds to a peer that lacks it (the rest of the path is the key)"}, func(c echo.Context) error {
		o, err := s.otaSide()
		if err != nil {
			return err
		}
		return otaProblem(o.ServeBlob(c.Response(), c.Request(), c.Param("*")))
	})
	s.add(&Route{Method: http.MethodPost, Path: InternalOTAPushPath, Access: Internal, Tag: "internal", Local: true, BodyLimit: maxPushBodyBytes,
		Summary: "Deliver firmware/upgrade messages to devices held on this node", Request: OTAPushRequest{}, Response: OTAPushResponse{}},
		func(c echo.Context) error {
			o, err := s.otaSide()
			if err != nil {
				return err
			}
			var req OTAPushRequest
			if err := decodeJSON(c, &req); err != nil {
				return err
			}
			// Recorded pushes are delivered even if the leader gives up waiting: they are
			// never sent again, so a push dropped here is a device failed by its timeout.
			results := o.Push(context.WithoutCancel(c.Request().Context()), req.Pushes)
			if results == nil {
				results = []ota.PushResult{}
			}
			return c.JSON(http.StatusOK, OTAPushResponse{Results: results})
		})
}
