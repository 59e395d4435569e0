package ota

import (
	"errors"
	"time"
)

// Errors callers match with errors.Is.
var (
	// ErrTooLarge: the upload exceeded the firmware size limit; nothing was kept.
	ErrTooLarge = errors.New("firmware file too large")
	// ErrBadSignature and ErrExpired refuse a device download link.
	ErrBadSignature = errors.New("bad download signature")
	ErrExpired      = errors.New("download link expired")
)

// Upload is what streaming a firmware file found: its size and both hashes (hex).
type Upload struct {
	Key    string
	Size   int64
	MD5    string
	SHA256 string
}

// Push is one firmware/upgrade message the leader asks a device's node to deliver.
type Push struct {
	TaskID     string `json:"taskId"`
	DeviceID   string `json:"deviceId"`
	FirmwareID string `json:"firmwareId"`
	// Expires is when the download link in the message stops working.
	Expires time.Time `json:"expires"`
}

// Push outcomes.
const (
	PushSent    = "sent"
	PushOffline = "offline"
	PushFailed  = "failed"
)

// PushResult is what became of one Push.
type PushResult struct {
	DeviceID string `json:"deviceId"`
	Outcome  string `json:"outcome"`
	Error    string `json:"error,omitempty"`
}
