package dataplane_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/node"
	"github.com/linkops/linkops/resource"
)

// firmwareCount is how many firmwares a node lists.
func firmwareCount(t *testing.T, c *client.Client) int {
	t.Helper()
	var l struct{ Total int }
	testutil.Do(t, c, http.MethodGet, "/api/v1/firmwares?pageSize=1", nil, &l)
	return l.Total
}

// rangeGet downloads bytes [from, to] of path through c and checks the answer's status
// and ETag.
func rangeGet(t *testing.T, c *client.Client, path string, from, to int, wantETag string) []byte {
	t.Helper()
	h := http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", from, to)}}
	resp, err := c.Raw(context.Background(), http.MethodGet, path, nil, "", h)
	if err != nil {
		t.Fatalf("GET %s with Range on %s: %v", path, c.Addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("GET %s with Range on %s: %s, want 206", path, c.Addr, resp.Status)
	}
	if got := resp.Header.Get("ETag"); got != `"`+wantETag+`"` {
		t.Errorf("ETag %s, want the sha256 %q", got, wantETag)
	}
	b, _ := io.ReadAll(resp.Body)
	return b
}

// blobFiles lists the files under a node's local blob store (temporary ones excluded).
func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dir, "blobs")
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && filepath.Base(filepath.Dir(p)) != ".tmp" {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestFirmwareFilesOnEveryNode: with file:// stores, an upload through one node is
// downloadable with Range from every node (the others fetch it from a peer and keep a
// verified copy); md5 and sha256 signs are checked; a wrong sign leaves neither blob nor
// record; deleting the firmware removes its files, and a firmware a task uses cannot be
// deleted.
func TestFirmwareFilesOnEveryNode(t *testing.T) {
	c, _, p := officialMQTTCluster(t, "mqtt-fw", "gw-fw", "prod-fw", "fw-dev-1")
	content := firmwareBytes("3.1", 300<<10)
	up := c.nodes[1].Client(c.admin.Token) // a follower or the leader: either must work
	sha := testutil.MustUploadFirmware(t, up, testutil.FirmwareForm{ID: "fw-sha", Name: "sha", ProductID: p.ID, Version: "3.1",
		VersionOrder: 31, SignMethod: "sha256", Sign: sha256Hex(content)}, content)
	md := testutil.MustUploadFirmware(t, up, testutil.FirmwareForm{ID: "fw-md5", Name: "md5", ProductID: p.ID, Version: "3.2",
		VersionOrder: 32, SignMethod: "md5", Sign: md5Hex(content)}, content)
	if sha.Size != int64(len(content)) || sha.SHA256 != sha256Hex(content) || md.Sign != md5Hex(content) || md.MD5 != md5Hex(content) {
		t.Fatalf("stored records: %+v / %+v", sha, md)
	}
	// Without a sign, it is computed.
	computed := testutil.MustUploadFirmware(t, up, testutil.FirmwareForm{ID: "fw-auto", Name: "auto", ProductID: p.ID, Version: "3.3",
		VersionOrder: 33, SignMethod: "md5"}, content)
	if computed.Sign != md5Hex(content) {
		t.Errorf("computed sign %q, want %q", computed.Sign, md5Hex(content))
	}
	c.synced(t)
	for _, n := range c.nodes {
		nc := n.Client(c.admin.Token)
		if got := firmwareCount(t, nc); got != 3 {
			t.Errorf("node %s lists %d firmwares, want 3", n.ID(), got)
		}
		for _, fw := range []*resource.Firmware{sha, md} {
			part := rangeGet(t, nc, "/api/v1/firmwares/"+fw.ID+"/file", 1000, 200999, fw.SHA256)
			if string(part) != string(content[1000:201000]) {
				t.Errorf("node %s served wrong bytes of %s", n.ID(), fw.ID)
			}
		}
	}
	// Every node now holds its own verified copy (a peer fetch or the replicator's).
	fetched := 0.0
	for _, n := range c.nodes {
		testutil.WaitFor(t, 20*time.Second, "a copy of every firmware file on "+n.ID(), func() bool { return len(blobFiles(t, n.Dir)) == 3 })
		fetched += testutil.Metric(t, n.Client(c.admin.Token), "linkops_firmware_peer_fetches_total", map[string]string{"result": "ok"})
	}
	if fetched < 6 {
		t.Errorf("%v files were copied from peers, want 6 (3 files to 2 nodes)", fetched)
	}

	// A wrong sign: 400 sign_mismatch, nothing new listed or stored, on any node.
	before := len(blobFiles(t, c.nodes[0].Dir)) + len(blobFiles(t, c.nodes[1].Dir)) + len(blobFiles(t, c.nodes[2].Dir))
	_, err := testutil.UploadFirmware(up, testutil.FirmwareForm{ID: "fw-bad", Name: "bad", ProductID: p.ID, Version: "9",
		VersionOrder: 90, SignMethod: "sha256", Sign: sha256Hex([]byte("something else"))}, bytesOf(content))
	if problemCode(err) != "sign_mismatch" {
		t.Fatalf("wrong sign: %v, want sign_mismatch", err)
	}
	c.synced(t)
	after := len(blobFiles(t, c.nodes[0].Dir)) + len(blobFiles(t, c.nodes[1].Dir)) + len(blobFiles(t, c.nodes[2].Dir))
	if after != before || firmwareCount(t, c.admin) != 3 {
		t.Errorf("after a sign mismatch: %d blob files (was %d), %d firmwares listed", after, before, firmwareCount(t, c.admin))
	}
	// The same versionOrder again is refused.
	if _, err := testutil.UploadFirmware(up, testutil.FirmwareForm{ID: "fw-dup", Name: "dup", ProductID: p.ID, Version: "3.9",
		VersionOrder: 31, SignMethod: "sha256"}, bytesOf(content)); problemCode(err) != "version_order_exists" {
		t.Errorf("duplicate versionOrder: %v, want version_order_exists", err)
	}

	// A firmware a task refers to cannot be deleted; without the task its files go too.
	task := testutil.CreateTask(t, c.admin, map[string]any{"name": "hold", "firmwareId": md.ID, "mode": "pull"})
	if _, err := c.admin.Do(context.Background(), http.MethodDelete, "/api/v1/firmwares/"+md.ID, nil, nil); problemCode(err) != "firmware_has_tasks" {
		t.Fatalf("delete with a task: %v, want firmware_has_tasks", err)
	}
	testutil.Do(t, c.admin, http.MethodPost, "/api/v1/upgrade-tasks/"+task.ID+"/stop", nil, nil)
	testutil.Do(t, c.admin, http.MethodDelete, "/api/v1/upgrade-tasks/"+task.ID, nil, nil)
	testutil.Do(t, c.admin, http.MethodDelete, "/api/v1/firmwares/"+md.ID, nil, nil)
	for _, n := range c.nodes {
		testutil.WaitFor(t, 20*time.Second, "the deleted firmware's file gone from "+n.ID(), func() bool { return len(blobFiles(t, n.Dir)) == 2 })
	}
	if _, err := c.admin.Raw(context.Background(), http.MethodGet, "/api/v1/firmwares/"+md.ID+"/file", nil, "", nil); problemCode(err) != "not_found" {
		t.Errorf("download of a deleted firmware: %v, want not_found", err)
	}
}

func bytesOf(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestFirmwareOnS3: three nodes sharing an S3 bucket (a real versitygw): uploads are
// verified and every node serves them with Range; with S3 stopped an upload is 503
// blob_store_unavailable and leaves no record; once S3 is back, uploads work again.
func TestFirmwareOnS3(t *testing.T) {
	s3 := testutil.StartS3(t)
	env := s3.Env()
	t.Setenv("AWS_ACCESS_KEY_ID", env("AWS_ACCESS_KEY_ID"))
	t.Setenv("AWS_SECRET_ACCESS_KEY", env("AWS_SECRET_ACCESS_KEY"))
	c := startCluster(t, func(_ int, cfg *node.Config) { cfg.BlobStore = s3.URL("firmware") })
	testutil.CreateProductWithDevices(t, c.admin, "prod-s3", "", "s3-dev")
	content := firmwareBytes("4.0", 200<<10)
	for i, method := range []string{"sha256", "md5"} {
		sign := sha256Hex(content)
		if method == "md5" {
			sign = md5Hex(content)
		}
		fw := testutil.MustUploadFirmware(t, c.admin, testutil.FirmwareForm{ID: "s3-" + method, Name: method, ProductID: "prod-s3",
			Version: fmt.Sprint("4.", i), VersionOrder: 40 + i, SignMethod: method, Sign: sign}, content)
		c.synced(t)
		for _, n := range c.nodes {
			part := rangeGet(t, n.Client(c.admin.Token), "/api/v1/firmwares/"+fw.ID+"/file", 5, 100004, fw.SHA256)
			if string(part) != string(content[5:100005]) {
				t.Errorf("node %s served wrong bytes of %s from S3", n.ID(), fw.ID)
			}
		}
	}
	// A wrong sign leaves nothing in the bucket's listing (nothing new in the API list).
	if _, err := testutil.UploadFirmware(c.admin, testutil.FirmwareForm{ID: "s3-bad", Name: "bad", ProductID: "prod-s3", Version: "5",
		VersionOrder: 50, SignMethod: "md5", Sign: md5Hex(nil)}, bytesOf(content)); problemCode(err) != "sign_mismatch" {
		t.Fatalf("wrong sign on S3: %v", err)
	}
	s3.Stop()
	_, err := testutil.UploadFirmware(c.admin, testutil.FirmwareForm{ID: "s3-down", Name: "down", ProductID: "prod-s3", Version: "6",
		VersionOrder: 60, SignMethod: "sha256"}, bytesOf(content))
	if problemCode(err) != "blob_store_unavailable" {
		t.Fatalf("upload with S3 stopped: %v, want 503 blob_store_unavailable", err)
	}
	if p, _ := err.(*client.Problem); p == nil || p.Status != http.StatusServiceUnavailable {
		t.Errorf("upload with S3 stopped: status %v, want 503", err)
	}
	if _, err := c.admin.Raw(context.Background(), http.MethodGet, "/api/v1/firmwares/s3-sha256/file", nil, "", nil); problemCode(err) != "blob_store_unavailable" {
		t.Errorf("download with S3 stopped: %v, want blob_store_unavailable", err)
	}
	if n := firmwareCount(t, c.admin); n != 2 {
		t.Errorf("%d firmwares listed after the failed uploads, want 2", n)
	}
	s3.Start()
	testutil.WaitFor(t, 30*time.Second, "uploads working again once S3 is back", func() bool {
		_, err := testutil.UploadFirmware(c.admin, testutil.FirmwareForm{ID: "s3-back", Name: "back", ProductID: "prod-s3", Version: "7",
			VersionOrder: 70, SignMethod: "sha256"}, bytesOf(content))
		return err == nil
	})
}

// TestFirmwareUploadMemory: a 1 GiB upload streams to the store while hashed; the node's
// heap grows by a few MiB, not by the file.
func TestFirmwareUploadMemory(t *testing.T) {
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	testutil.CreateProductWithDevices(t, admin, "prod-big", "", "big-dev")
	const size = 1 << 30
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak {
				peak = m.HeapInuse
			}
		}
	}()
	fw, err := testutil.UploadFirmware(admin, testutil.FirmwareForm{ID: "big", Name: "big", ProductID: "prod-big", Version: "1",
		VersionOrder: 1, SignMethod: "sha256"}, io.LimitReader(zeros{}, size))
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if fw.Size != size {
		t.Fatalf("stored size %d, want %d", fw.Size, size)
	}
	growth := float64(int64(peak)-int64(base.HeapInuse)) / (1 << 20)
	t.Logf("1 GiB upload: peak heap growth %.1f MiB", growth)
	if growth > 16 {
		t.Errorf("a 1 GiB upload grew the heap by %.1f MiB; it must stream (a few MiB)", growth)
	}
	// Over the limit: 413, and nothing kept.
	small := testutil.StartNode(t, "", func(c *node.Config) { c.FirmwareMaxBytes = 1 << 20 })
	sa := small.Admin(t)
	testutil.CreateProductWithDevices(t, sa, "prod-small", "", "small-dev")
	_, err = testutil.UploadFirmware(sa, testutil.FirmwareForm{ID: "huge", Name: "huge", ProductID: "prod-small", Version: "1",
		VersionOrder: 1, SignMethod: "sha256"}, io.LimitReader(zeros{}, 2<<20))
	if p, ok := err.(*client.Problem); !ok || p.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("upload over --firmware-max-bytes: %v, want 413", err)
	}
	if files := blobFiles(t, small.Dir); len(files) != 0 || firmwareCount(t, sa) != 0 {
		t.Errorf("after a 413: files %v, %d firmwares", files, firmwareCount(t, sa))
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
