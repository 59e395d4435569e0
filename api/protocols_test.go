package api_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
)

// TestProtocolPackages uploads good and bad packages: the good one loads in the sandbox;
// each bad one is refused with a clear 400 or 413 and nothing is stored.
func TestProtocolPackages(t *testing.T) {
	n := testutil.StartNode(t, "")
	c := n.Admin(t)
	manifest := testutil.Manifest("demo", "MQTT", "TCP")

	upload := func(method, path string, fields map[string]string, zipBytes []byte) (int, map[string]any) {
		st := ruleStep{method: method, path: path, upload: fields, file: zipBytes}
		status, body := send(t, c, st)
		var m map[string]any
		_ = jsonUnmarshal(body, &m)
		return status, m
	}
	count := func() int {
		var out struct{ Total int }
		testutil.MustDo(t, n, c.Token, http.MethodGet, "/api/v1/protocols?pageSize=1", nil, &out)
		return out.Total
	}

	status, good := upload(http.MethodPost, "/api/v1/protocols", map[string]string{"id": "demo", "name": "Demo"}, testutil.GoodProtocolZip(t, "demo", "MQTT", "TCP"))
	if status != http.StatusCreated {
		t.Fatalf("good package: %d %v", status, good)
	}
	if good["type"] != "package" || good["packageSha256"] == "" || good["manifest"].(map[string]any)["version"] != "1.0.0" {
		t.Errorf("good package stored as %v", good)
	}
	before := count() // official + demo

	bomb := func() []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create("manifest.json")
		_, _ = w.Write([]byte(manifest))
		w, _ = zw.Create("codec.js")
		_, _ = w.Write([]byte(testutil.GoodCodec + "\n//"))
		_, _ = w.Write(make([]byte, 64<<20)) // 64 MiB of zeros compress to ~64 KiB
		_ = zw.Close()
		return buf.Bytes()
	}()
	bigZip := func(size int) []byte {
		blob := make([]byte, size)
		_, _ = rand.Read(blob) // random bytes do not compress
		return testutil.ProtocolZip(t, map[string]string{"manifest.json": manifest, "codec.js": testutil.GoodCodec, "blob.bin": string(blob)})
	}

	for name, tc := range map[string]struct {
		zip    []byte
		status int
		code   string
		says   string
	}{
		"broken JavaScript": {testutil.ProtocolZip(t, map[string]string{"manifest.json": manifest, "codec.js": "function decode(input { return 1 }"}), 400, "invalid_package", ""},
		"missing decode":    {testutil.ProtocolZip(t, map[string]string{"manifest.json": manifest, "codec.js": "function encode(m) { return {bytes: []} }"}), 400, "invalid_package", "decode"},
		"missing encode":    {testutil.ProtocolZip(t, map[string]string{"manifest.json": manifest, "codec.js": "function decode(i) { return {messages: []} }"}), 400, "invalid_package", "encode"},
		"loops at load":     {testutil.ProtocolZip(t, map[string]string{"manifest.json": manifest, "codec.js": "while (true) {}\n" + testutil.GoodCodec}), 400, "invalid_package", "100ms"},
		"zip bomb":          {bomb, 400, "invalid_package", ""},
		"../ in a path":     {testutil.ProtocolZip(t, map[string]string{"manifest.json": manifest, "codec.js": testutil.GoodCodec, "../evil.js": "x"}), 400, "invalid_package", ".."},
		"no manifest":       {testutil.ProtocolZip(t, map[string]string{"codec.js": testutil.GoodCodec}), 400, "invalid_package", "manifest.json"},
		"bad transport":     {testutil.ProtocolZip(t, map[string]string{"manifest.json": testutil.Manifest("x", "LoRa"), "codec.js": testutil.GoodCodec}), 400, "invalid_package", "LoRa"},
		"not a zip":         {[]byte("this is not a zip file"), 400, "invalid_package", ""},
		"just over 4 MiB":   {bigZip(4<<20 + 10<<10), 413, "package_too_large", ""},
		"10 MiB":            {bigZip(10 << 20), 413, "body_too_large", ""},
	} {
		t.Run(name, func(t *testing.T) {
			status, p := upload(http.MethodPost, "/api/v1/protocols", map[string]string{"name": "bad " + name}, tc.zip)
			if status != tc.status || p["code"] != tc.code {
				t.Fatalf("create: %d %v, want %d %s", status, p, tc.status, tc.code)
			}
			detail, _ := p["detail"].(string)
			if tc.says != "" && !strings.Contains(detail, tc.says) {
				t.Errorf("detail %q does not say %q", detail, tc.says)
			}
			if tc.status == 400 && !hasField(p, "file") {
				t.Errorf("errors %v do not name the file", p["errors"])
			}
			if got := count(); got != before {
				t.Fatalf("%d protocols after a refused upload, want %d", got, before)
			}
			// The same package refused as a replacement leaves the stored one as it was.
			status, p = upload(http.MethodPut, "/api/v1/protocols/demo/package", map[string]string{}, tc.zip)
			if status != tc.status || p["code"] != tc.code {
				t.Fatalf("replace: %d %v, want %d %s", status, p, tc.status, tc.code)
			}
			var cur map[string]any
			testutil.MustDo(t, n, c.Token, http.MethodGet, "/api/v1/protocols/demo", nil, &cur)
			if cur["packageSha256"] != good["packageSha256"] {
				t.Fatalf("a refused replacement changed the package")
			}
		})
	}

	// A good replacement, as a raw application/zip body, changes the package and keeps
	// the name.
	next := testutil.ProtocolZip(t, map[string]string{"manifest.json": testutil.Manifest("demo", "MQTT", "TCP", "UDP"), "codec.js": testutil.GoodCodec})
	resp, err := c.Raw(context.Background(), http.MethodPut, "/api/v1/protocols/demo/package", bytes.NewReader(next), "application/zip", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cur map[string]any
	testutil.MustDo(t, n, c.Token, http.MethodGet, "/api/v1/protocols/demo", nil, &cur)
	if cur["packageSha256"] == good["packageSha256"] || cur["name"] != "Demo" || len(cur["manifest"].(map[string]any)["transports"].([]any)) != 3 {
		t.Errorf("after replacement: %v", cur)
	}
	// A local protocol has no package to replace.
	dir := testutil.LocalProtocolDir(t, "loc", "HTTP")
	testutil.MustDo(t, n, c.Token, http.MethodPost, "/api/v1/protocols", obj{"id": "loc", "name": "loc", "type": "local", "configuration": obj{"location": dir}}, nil)
	if status, p := upload(http.MethodPut, "/api/v1/protocols/loc/package", map[string]string{}, next); status != http.StatusConflict {
		t.Errorf("upload to a local protocol: %d %v, want 409", status, p)
	}
	// Reload bumps the generation so every node reloads it.
	var reloaded map[string]any
	testutil.MustDo(t, n, c.Token, http.MethodPost, "/api/v1/protocols/loc/reload", nil, &reloaded)
	if reloaded["generation"] != float64(1) {
		t.Errorf("generation after reload = %v, want 1", reloaded["generation"])
	}
	_ = client.Problem{}
}
