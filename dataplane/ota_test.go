package dataplane_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/resource"
)

// firmwareBytes is a small firmware file whose content depends on its version.
func firmwareBytes(version string, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7) ^ version[i%len(version)]
	}
	return b
}

func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func md5Hex(b []byte) string    { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

// otaCluster is a 3-node cluster with an official MQTT gateway, a product with n devices
// and a firmware "fw2" (version 2.0) of it.
func otaCluster(t *testing.T, n int) (*cluster, int, testutil.Product, []string, *resource.Firmware, []byte) {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("ota-%03d", i)
	}
	c, port, p := officialMQTTCluster(t, "mqtt-ota", "gw-ota", "prod-ota", ids...)
	content := firmwareBytes("2.0", 64<<10)
	fw := testutil.MustUploadFirmware(t, c.admin, testutil.FirmwareForm{ID: "fw2", Name: "fw2", ProductID: p.ID, Version: "2.0",
		VersionOrder: 2, SignMethod: "sha256", Sign: sha256Hex(content)}, content)
	c.synced(t)
	return c, port, p, ids, fw, content
}

// connectOTA connects device i to node i%3.
func connectOTA(t *testing.T, port int, p testutil.Product, id string, i int, b testutil.OTABehaviour) *testutil.OTADevice {
	return testutil.ConnectOTADevice(t, fmt.Sprintf("%s:%d", testutil.NodeHosts[i%3], port), id, p, "1.0", b)
}

// TestOTAPushCampaign: a push task over 200 official devices spread over three nodes. Every
// device gets one push, downloads through its signed link without a token (some through
// another node, one resuming with Range), checks the sign and reports progress to success;
// their firmwareVersion shows the new version. A tampered or expired link is refused.
func TestOTAPushCampaign(t *testing.T) {
	c, port, p, ids, fw, content := otaCluster(t, 200)
	devices := make([]*testutil.OTADevice, len(ids))
	for i, id := range ids {
		b := testutil.OTABehaviour{}
		switch {
		case i == 7:
			b.Resume = true
		case i%10 == 3:
			// Downloads through the API of the next node, not the one it is connected to.
			b.DownloadVia = strings.TrimPrefix(c.nodes[(i+1)%3].Client("").Addr, "http://")
		case i%10 == 5:
			b.ByReport = true
		}
		devices[i] = connectOTA(t, port, p, id, i, b)
	}
	testutil.WaitFor(t, 30*time.Second, "every device online", func() bool {
		var l struct{ Total int }
		testutil.Do(t, c.admin, http.MethodGet, "/api/v1/devices?state=online&pageSize=1", nil, &l)
		return l.Total == len(ids)
	})
	task := testutil.CreateTask(t, c.admin, map[string]any{"name": "push 2.0", "firmwareId": fw.ID, "mode": "push",
		"rollout": map[string]any{"maxInFlight": 500}})
	if task.State != resource.TaskRunning || task.Counts.Waiting != len(ids) || task.ProductID != p.ID {
		t.Fatalf("new task: state %s counts %+v product %q", task.State, task.Counts, task.ProductID)
	}
	done := testutil.WaitTask(t, c.admin, task.ID, "completed", func(t *testutil.Task) bool { return t.State == resource.TaskCompleted })
	if done.Counts.Success != len(ids) || done.Progress != 100 {
		for _, d := range devices {
			if errs := d.Errors(); len(errs) > 0 {
				t.Logf("device %s: %v", d.ID, errs)
			}
		}
		t.Fatalf("completed with counts %+v progress %d, want all %d success", done.Counts, done.Progress, len(ids))
	}
	for _, d := range devices {
		if n := len(d.Pushes()); n != 1 {
			t.Errorf("device %s received %d pushes, want 1", d.ID, n)
		}
		if errs := d.Errors(); len(errs) > 0 {
			t.Errorf("device %s: %v", d.ID, errs)
		}
	}
	records := testutil.TaskRecords(t, c.admin, task.ID, "")
	for _, id := range ids {
		r := records[id]
		if r.State != resource.RecordSuccess || r.UpgradeTime == nil || r.CompleteTime == nil {
			t.Errorf("record of %s: %+v", id, r)
		}
	}
	for i, n := range c.nodes {
		d := testutil.GetDevice(t, n.Client(c.admin.Token), ids[i*31])
		if d.FirmwareVersion != "2.0" {
			t.Errorf("node %s shows %s running firmware %q, want 2.0", n.ID(), d.ID, d.FirmwareVersion)
		}
	}
	// The push carried a signed link; the sign was checked on the device.
	push := devices[0].Pushes()[0]
	if push.Sign != sha256Hex(content) || push.SignMethod != "sha256" || push.Size != int64(len(content)) || push.Version != "2.0" {
		t.Errorf("push payload: %+v", push)
	}
	u, _ := url.Parse(push.URL)
	q := u.Query()
	get := func(link string) int {
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(u.String()); code != http.StatusOK {
		t.Fatalf("the link answers %d", code)
	}
	tampered := *u
	q2 := url.Values{"expires": {q.Get("expires")}, "signature": {flipHex(q.Get("signature"))}}
	tampered.RawQuery = q2.Encode()
	if code := get(tampered.String()); code != http.StatusForbidden {
		t.Errorf("tampered signature answers %d, want 403", code)
	}
	longer := *u
	longer.RawQuery = url.Values{"expires": {fmt.Sprint(time.Now().Add(48 * time.Hour).Unix())}, "signature": {q.Get("signature")}}.Encode()
	if code := get(longer.String()); code != http.StatusForbidden {
		t.Errorf("a link whose expiry was moved answers %d, want 403", code)
	}
	if testutil.Metric(t, c.admin, "linkops_firmware_bytes_served_total", nil) == 0 && testutil.Metric(t, c.nodes[1].Client(c.admin.Token), "linkops_firmware_bytes_served_total", nil) == 0 {
		t.Error("no firmware bytes counted as served")
	}
}

func flipHex(s string) string {
	if s == "" {
		return "00"
	}
	b := []byte(s)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}

// problemCode returns the code of an API problem (or "" for success / another error).
func problemCode(err error) string {
	var p *client.Problem
	if errors.As(err, &p) {
		return p.Code
	}
	return ""
}

var _ = context.Background
var _ = io.EOF
var _ = md5Hex
