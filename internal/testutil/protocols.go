package testutil

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkops/linkops/client"
)

// GoodCodec is a JavaScript codec that exports decode and encode: it reports the first byte
// of a message as property "value".
const GoodCodec = `
function decode(input) {
  return {messages: [{type: "reportProperty", deviceId: input.deviceId, properties: {value: input.bytes[0]}}]};
}
function encode(msg) {
  return {topic: "/down/" + msg.deviceId, bytes: [1, 2, 3]};
}
`

// Manifest returns a manifest.json for a package with the given id and transports.
func Manifest(id string, transports ...string) string {
	b, _ := json.Marshal(map[string]any{"id": id, "name": "Protocol " + id, "version": "1.0.0", "transports": transports, "main": "codec.js"})
	return string(b)
}

// ProtocolZip builds a protocol package from file names and contents.
func ProtocolZip(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// GoodProtocolZip is a package with GoodCodec for the given transports.
func GoodProtocolZip(t testing.TB, id string, transports ...string) []byte {
	return ProtocolZip(t, map[string]string{"manifest.json": Manifest(id, transports...), "codec.js": GoodCodec})
}

// LocalProtocolDir writes a local protocol's directory and returns its absolute path.
func LocalProtocolDir(t testing.TB, id string, transports ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"manifest.json": Manifest(id, transports...), "codec.js": GoodCodec} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// UploadProtocol creates a package protocol from a zip through the API (multipart, as
// browsers and the CLI send it).
func UploadProtocol(t testing.TB, admin *client.Client, id string, zip []byte) {
	t.Helper()
	sendPackage(t, admin, http.MethodPost, "/api/v1/protocols", map[string]string{"id": id, "name": id, "type": "package"}, zip)
}

// ReplacePackage uploads a new package for a protocol (PUT /api/v1/protocols/{id}/package).
func ReplacePackage(t testing.TB, admin *client.Client, id string, zip []byte) {
	t.Helper()
	sendPackage(t, admin, http.MethodPut, "/api/v1/protocols/"+id+"/package", nil, zip)
}

func sendPackage(t testing.TB, admin *client.Client, method, path string, fields map[string]string, zip []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", "package.zip")
	_, _ = fw.Write(zip)
	_ = mw.Close()
	resp, err := admin.Raw(context.Background(), method, path, &buf, mw.FormDataContentType(), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
}

// Metric sums the samples of a Prometheus metric on the node c talks to whose labels
// include every one of labels.
func Metric(t testing.TB, c *client.Client, name string, labels map[string]string) float64 {
	t.Helper()
	resp, err := c.Raw(context.Background(), http.MethodGet, "/metrics", nil, "", nil)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for k, v := range labels {
			if !strings.Contains(line, k+`="`+v+`"`) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}
