package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/linkops/linkops/internal/testutil"
)

// TestCLIOTA drives remote upgrade with the binary's client commands against one real
// agent, as an operator would (SPEC §4.7, §4.8, issue 11): a firmware upload shows the
// file's size and sha256 sign, list and get show it, a download (and a resumed one) gives
// back the very bytes, and a second firmware with the same order is refused naming
// version_order_exists. Then a push task over three official MQTT devices that upgrade
// themselves is followed by `task watch` to completion, shown, listed per device and
// retried; a pull task refuses retry with retry_push_only; the firmware cannot go while
// tasks refer to it (firmware_has_tasks) and goes once they are deleted.
func TestCLIOTA(t *testing.T) {
	cli, fails, _, _, dir, port, p := officialCLI(t, "ota1")
	ids := []string{"meter-1", "meter-2", "meter-3"}
	for _, id := range ids {
		cli("device", "create", "--id", id, "--name", id, "--product-id", p.ID)
	}

	content := make([]byte, 200<<10+123)
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	sign := hex.EncodeToString(sum[:])
	fwFile := filepath.Join(dir, "meter-2.0.bin")
	if err := os.WriteFile(fwFile, content, 0o644); err != nil {
		t.Fatal(err)
	}

	var fwID string
	t.Run("firmware upload, list, get", func(t *testing.T) {
		r := cli("firmware", "upload", fwFile, "--product", p.ID, "--version", "2.0", "--order", "2", "-o", "json")
		fw := decodeJSON(t, r)
		fwID, _ = fw["id"].(string)
		if fwID == "" || fw["size"] != float64(len(content)) || fw["sign"] != sign || fw["signMethod"] != "sha256" ||
			fw["sha256"] != sign || fw["version"] != "2.0" || fw["versionOrder"] != float64(2) ||
			fw["productId"] != p.ID || fw["name"] != "meter-2.0.bin" {
			t.Fatalf("firmware upload printed %v; want size %d, sign and sha256 %s", fw, len(content), sign)
		}
		if _, ok := fw["blobKey"]; ok {
			t.Errorf("firmware upload printed the internal blobKey: %v", fw)
		}

		row := tableRow(t, cli("firmware", "list", "--product", p.ID).stdout, fwID)
		want := fmt.Sprintf(`^%s\s+meter-2\.0\.bin\s+meter\s+2\.0\s+2\s+%d\s+sha256\s*$`, regexp.QuoteMeta(fwID), len(content))
		if !regexp.MustCompile(want).MatchString(row) {
			t.Errorf("firmware list row %q, want %s", row, want)
		}
		if r := cli("firmware", "list", "-o", "json"); decodeJSON(t, r)["total"] != float64(1) {
			t.Errorf("firmware list -o json:\n%s", r.stdout)
		}
		if row := tableRow(t, cli("firmware", "get", fwID).stdout, fwID); !regexp.MustCompile(want).MatchString(row) {
			t.Errorf("firmware get row %q, want %s", row, want)
		}
		got := decodeJSON(t, cli("firmware", "get", fwID, "-o", "json"))
		if got["sign"] != sign || got["size"] != float64(len(content)) || !strings.HasSuffix(fmt.Sprint(got["url"]), "/api/v1/firmwares/"+fwID+"/file") {
			t.Errorf("firmware get -o json: %v", got)
		}
	})
	if fwID == "" {
		t.FailNow()
	}

	t.Run("firmware download and resume", func(t *testing.T) {
		out := filepath.Join(dir, "downloaded.bin")
		r := cli("firmware", "download", fwID, "-o", out)
		if !strings.Contains(r.stdout, fmt.Sprintf("(%d bytes, sha256 %s)", len(content), sign)) {
			t.Errorf("firmware download said:\n%s", r.stdout)
		}
		sameFile(t, out, content)

		// A download that broke off a third of the way.
		if err := os.Truncate(out, int64(len(content)/3)); err != nil {
			t.Fatal(err)
		}
		r = cli("firmware", "download", fwID, "-o", out, "--resume")
		if !strings.Contains(r.stdout, fmt.Sprintf("(%d bytes, sha256 %s)", len(content), sign)) {
			t.Errorf("firmware download --resume said:\n%s", r.stdout)
		}
		sameFile(t, out, content)

		// Resuming a file already whole changes nothing.
		cli("firmware", "download", fwID, "-o", out, "--resume")
		sameFile(t, out, content)

		// --resume keeps the bytes already there and checks the whole file: a damaged
		// start is caught, and the file is removed so that nobody flashes it.
		damaged := append([]byte(nil), content[:len(content)/2]...)
		damaged[10] ^= 0xff
		if err := os.WriteFile(out, damaged, 0o644); err != nil {
			t.Fatal(err)
		}
		r = fails("firmware", "download", fwID, "-o", out, "--resume")
		if !strings.Contains(r.stderr, "sha256 mismatch") {
			t.Errorf("resume onto a damaged start: stderr %q, want a sha256 mismatch", r.stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("the damaged download %s was left in place (stat: %v)", out, err)
		}
	})

	t.Run("duplicate version order", func(t *testing.T) {
		r := fails("firmware", "upload", fwFile, "--product", p.ID, "--version", "2.0-bis", "--order", "2")
		if !strings.Contains(r.stderr, "409") || !strings.Contains(r.stderr, "version_order_exists") {
			t.Errorf("second firmware with order 2: stderr %q, want 409 version_order_exists", r.stderr)
		}
		if r := cli("firmware", "list", "-o", "json"); decodeJSON(t, r)["total"] != float64(1) {
			t.Errorf("the refused upload left a record:\n%s", r.stdout)
		}
	})

	// The gateway table follows the state in the background: the first connects may come
	// before it knows the gateway, so a probe waits for it before the devices connect.
	waitCLI(t, "the MQTT component running", func() error {
		items, _ := decodeJSON(t, cli("network", "status", "mqtt", "-o", "json"))["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["state"] != "running" {
			return fmt.Errorf("status %v", items)
		}
		return nil
	})
	broker := fmt.Sprintf("127.0.0.1:%d", port)
	waitCLI(t, "the gateway accepting devices", func() error {
		d, err := testutil.DialMQTTDevice(broker, ids[0], p, testutil.MQTTOptions(broker, ids[0], p, false))
		if err != nil {
			return err
		}
		d.Close()
		return nil
	})
	devices := make([]*testutil.OTADevice, len(ids))
	for i, id := range ids {
		devices[i] = testutil.ConnectOTADevice(t, broker, id, p, "1.0", testutil.OTABehaviour{})
	}
	waitCLI(t, "every device online", func() error {
		m := decodeJSON(t, cli("device", "list", "--filter", "state=online", "-o", "json"))
		if m["total"] != float64(len(ids)) {
			return fmt.Errorf("%v online", m["total"])
		}
		return nil
	})

	var pushID string
	t.Run("push task", func(t *testing.T) {
		task := decodeJSON(t, cli("task", "create", "--firmware", fwID, "--name", "t1", "--max-in-flight", "2", "-o", "json"))
		pushID, _ = task["id"].(string)
		if pushID == "" || task["mode"] != "push" || task["productId"] != p.ID {
			t.Fatalf("task create: %v", task)
		}
		if rollout, _ := task["rollout"].(map[string]any); rollout["maxInFlight"] != float64(2) {
			t.Errorf("task create: rollout %v, want maxInFlight 2", task["rollout"])
		}

		r := cli("task", "watch", pushID, "--interval", "200ms")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		// Whenever the watch looked, at most --max-in-flight devices were processing.
		for _, line := range lines {
			var processing int
			if m := regexp.MustCompile(`processing (\d+)`).FindStringSubmatch(line); m == nil {
				t.Errorf("task watch line %q has no processing count", line)
			} else if fmt.Sscan(m[1], &processing); processing > 2 {
				t.Errorf("task watch line %q: more devices processing than --max-in-flight 2", line)
			}
		}
		last := lines[len(lines)-1]
		if !regexp.MustCompile(`^completed\s+waiting 0\s+processing 0\s+success 3\s+failed 0\s+canceled 0\s+100%$`).MatchString(last) {
			t.Errorf("task watch's last line %q, want completed with success 3\n%s", last, r.stdout)
		}
		for i, d := range devices {
			if n := len(d.Pushes()); n != 1 {
				t.Errorf("device %s received %d pushes, want 1", ids[i], n)
			}
			if errs := d.Errors(); len(errs) > 0 {
				t.Errorf("device %s: %v", ids[i], errs)
			}
			if d.Version() != "2.0" {
				t.Errorf("device %s runs %q, want 2.0", ids[i], d.Version())
			}
		}

		shown := decodeJSON(t, cli("task", "show", pushID, "-o", "json"))
		counts, _ := shown["counts"].(map[string]any)
		if shown["state"] != "completed" || counts["success"] != float64(3) || counts["failed"] != float64(0) || shown["progress"] != float64(100) {
			t.Errorf("task show -o json: %v", shown)
		}
		table := cli("task", "show", pushID).stdout
		if !regexp.MustCompile(`(?m)^State:\s+completed\s*$`).MatchString(table) || !regexp.MustCompile(`(?m)^\s+success:\s+3\s*$`).MatchString(table) {
			t.Errorf("task show table:\n%s", table)
		}

		r = cli("task", "devices", pushID)
		for _, id := range ids {
			row := tableRow(t, r.stdout, id)
			if !regexp.MustCompile(`^` + id + `\s+success\s+100\s+-\s+\S+\s+\S+\s+\S+\s*$`).MatchString(row) {
				t.Errorf("task devices row %q, want success at 100%% with its times\n%s", row, r.stdout)
			}
		}
		if !strings.Contains(r.stdout, "(3 in all, page 1)") {
			t.Errorf("task devices footer:\n%s", r.stdout)
		}
		for _, id := range ids {
			if m := decodeJSON(t, cli("device", "get", id, "-o", "json")); m["firmwareVersion"] != "2.0" {
				t.Errorf("device get %s: firmwareVersion %v, want 2.0", id, m["firmwareVersion"])
			}
		}

		// Nothing failed: a retry has nothing to send, and the task stays completed.
		retried := decodeJSON(t, cli("task", "retry", pushID, "-o", "json"))
		if retried["state"] != "completed" || retried["counts"].(map[string]any)["success"] != float64(3) {
			t.Errorf("task retry of a task with no failure: %v", retried)
		}
		for i, d := range devices {
			if n := len(d.Pushes()); n != 1 {
				t.Errorf("after the retry, device %s received %d pushes, want 1", ids[i], n)
			}
		}
	})
	if pushID == "" {
		t.FailNow()
	}

	t.Run("pull task, deletes", func(t *testing.T) {
		task := decodeJSON(t, cli("task", "create", "--firmware", fwID, "--name", "t2", "--mode", "pull", "-o", "json"))
		pullID, _ := task["id"].(string)
		if pullID == "" || task["mode"] != "pull" || task["state"] != "running" {
			t.Fatalf("task create --mode pull: %v", task)
		}
		if r := fails("task", "retry", pullID); !strings.Contains(r.stderr, "409") || !strings.Contains(r.stderr, "retry_push_only") {
			t.Errorf("retry of a pull task: stderr %q, want 409 retry_push_only", r.stderr)
		}
		if r := fails("task", "delete", pullID); !strings.Contains(r.stderr, "task_running") {
			t.Errorf("delete of a running task: stderr %q, want task_running", r.stderr)
		}
		if r := fails("firmware", "delete", fwID); !strings.Contains(r.stderr, "409") || !strings.Contains(r.stderr, "firmware_has_tasks") {
			t.Errorf("delete of a firmware with tasks: stderr %q, want 409 firmware_has_tasks", r.stderr)
		}

		stopped := decodeJSON(t, cli("task", "stop", pullID, "-o", "json"))
		if counts, _ := stopped["counts"].(map[string]any); stopped["state"] != "stopped" || counts["canceled"] != float64(3) {
			t.Errorf("task stop: %v", stopped)
		}
		if r := fails("task", "watch", pullID); !strings.Contains(r.stderr, "task stopped") || !strings.Contains(r.stdout, "stopped") {
			t.Errorf("task watch of a stopped task: stdout %q stderr %q", r.stdout, r.stderr)
		}
		for _, id := range []string{pushID, pullID} {
			if r := cli("task", "delete", id); !strings.Contains(r.stdout, "Deleted task "+id) {
				t.Errorf("task delete %s: %q", id, r.stdout)
			}
			if r := fails("task", "get", id); !strings.Contains(r.stderr, "404") {
				t.Errorf("task get of the deleted %s: stderr %q", id, r.stderr)
			}
		}

		cli("firmware", "delete", fwID)
		if r := fails("firmware", "get", fwID); !strings.Contains(r.stderr, "404") || !strings.Contains(r.stderr, "not_found") {
			t.Errorf("firmware get of the deleted firmware: stderr %q, want 404 not_found", r.stderr)
		}
		if r := fails("firmware", "download", fwID, "-o", filepath.Join(dir, "gone.bin")); !strings.Contains(r.stderr, "404") {
			t.Errorf("download of the deleted firmware: stderr %q, want 404", r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "gone.bin")); !os.IsNotExist(err) {
			t.Errorf("the refused download left a file gone.bin (stat: %v)", err)
		}
		if r := cli("firmware", "list", "-o", "json"); decodeJSON(t, r)["total"] != float64(0) {
			t.Errorf("firmware list after the delete:\n%s", r.stdout)
		}
	})
}

// sameFile fails unless the file at path holds exactly want.
func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes differing from the %d uploaded", path, len(got), len(want))
	}
}
