package testutil

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/resource"
)

// FirmwareForm are the text fields of a firmware upload, sent in this order before the
// file, as browsers and curl -F send them.
type FirmwareForm struct {
	ID, Name, ProductID, Version, SignMethod, Sign, Description string
	VersionOrder                                                int
}

// UploadFirmware streams file as a firmware upload and returns the stored record, or the
// problem the API answered.
func UploadFirmware(admin *client.Client, f FirmwareForm, file io.Reader) (*resource.Firmware, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fields := [][2]string{{"id", f.ID}, {"name", f.Name}, {"productId", f.ProductID}, {"version", f.Version},
			{"versionOrder", fmt.Sprint(f.VersionOrder)}, {"signMethod", f.SignMethod}, {"sign", f.Sign}, {"description", f.Description}}
		for _, kv := range fields {
			if kv[1] == "" {
				continue
			}
			if err := mw.WriteField(kv[0], kv[1]); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		w, err := mw.CreateFormFile("file", f.Name+".bin")
		if err == nil {
			_, err = io.Copy(w, file)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	resp, err := admin.Raw(ctx, http.MethodPost, "/api/v1/firmwares", pr, mw.FormDataContentType(), nil)
	pr.Close()
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var fw resource.Firmware
	if err := json.NewDecoder(resp.Body).Decode(&fw); err != nil {
		return nil, err
	}
	return &fw, nil
}

// MustUploadFirmware uploads or fails the test.
func MustUploadFirmware(t testing.TB, admin *client.Client, f FirmwareForm, content []byte) *resource.Firmware {
	t.Helper()
	fw, err := UploadFirmware(admin, f, bytes.NewReader(content))
	if err != nil {
		t.Fatalf("upload firmware %s: %v", f.ID, err)
	}
	return fw
}

// Task is an upgrade task as the API answers it.
type Task = resource.UpgradeTask

// CreateTask creates an upgrade task.
func CreateTask(t testing.TB, admin *client.Client, body map[string]any) *Task {
	t.Helper()
	var task Task
	Do(t, admin, http.MethodPost, "/api/v1/upgrade-tasks", body, &task)
	return &task
}

// GetTask reads a task.
func GetTask(t testing.TB, c *client.Client, id string) *Task {
	t.Helper()
	var task Task
	Do(t, c, http.MethodGet, "/api/v1/upgrade-tasks/"+id, nil, &task)
	return &task
}

// WaitTask waits until the task satisfies ok and returns it.
func WaitTask(t testing.TB, c *client.Client, id, what string, ok func(*Task) bool) *Task {
	t.Helper()
	var last *Task
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		last = GetTask(t, c, id)
		if ok(last) {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("task %s: %s did not happen; last: state %s counts %+v", id, what, last.State, last.Counts)
	return nil
}

// TaskRecord is one device's record in a task.
type TaskRecord struct {
	DeviceID     string     `json:"deviceId"`
	State        string     `json:"state"`
	Progress     int        `json:"progress"`
	ErrorReason  string     `json:"errorReason"`
	UpgradeTime  *time.Time `json:"upgradeTime"`
	CompleteTime *time.Time `json:"completeTime"`
}

// TaskRecords lists a task's records (all of them, by device id).
func TaskRecords(t testing.TB, c *client.Client, id, state string) map[string]TaskRecord {
	t.Helper()
	out := map[string]TaskRecord{}
	for page := 1; ; page++ {
		var list struct {
			Items []TaskRecord `json:"items"`
			Total int          `json:"total"`
		}
		Do(t, c, http.MethodGet, fmt.Sprintf("/api/v1/upgrade-tasks/%s/devices?state=%s&page=%d&pageSize=500", id, state, page), nil, &list)
		for _, r := range list.Items {
			out[r.DeviceID] = r
		}
		if len(list.Items) == 0 || len(out) >= list.Total {
			return out
		}
	}
}
