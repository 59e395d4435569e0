package testutil

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
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
