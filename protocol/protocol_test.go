package protocol

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dop251/goja"
)

// hang bounds calls that must be stopped by a timeout: far above the timeouts, so a busy
// machine never fails a test, yet a call that was never stopped does.
const hang = 30 * time.Second

// sensorCodec decodes frames [0x01, int16 big-endian temperature × 10] and encodes property
// writes the same way. Its functions are named dec and enc so each export style below must
// do its own exporting.
const sensorCodec = `
function dec(input) {
  var b = input.bytes;
  if (b[0] !== 1) {
    return {messages: [], errors: ["unknown frame type " + b[0]]};
  }
  var raw = (b[1] << 8) | b[2];
  if (raw & 0x8000) raw -= 0x10000;
  return {messages: [{
    messageType: "REPORT_PROPERTY",
    deviceId: input.deviceId,
    topic: input.topic,
    transport: input.transport,
    properties: {temperature: raw / 10},
    seen: (input.session.seen || 0) + 1
  }]};
}
function enc(msg) {
  var raw = Math.round(msg.properties.temperature * 10);
  if (raw < 0) raw += 0x10000;
  return {topic: "/" + msg.deviceId + "/properties/write", bytes: [1, (raw >> 8) & 0xff, raw & 0xff]};
}
`

var exportStyles = map[string]string{
	"global functions": sensorCodec + `
function decode(input) { return dec(input); }
function encode(msg) { return enc(msg); }`,
	"global let bindings": sensorCodec + `
let decode = dec;
const encode = enc;`,
	"module.exports": `(function () {` + sensorCodec + `
module.exports = {decode: dec, encode: enc};
})();`,
	"exports.x": `(function () {` + sensorCodec + `
exports.decode = dec;
exports.encode = enc;
})();`,
	"methods using this": `(function () {` + sensorCodec + `
module.exports = {
  d: dec, e: enc,
  decode(input) { return this.d(input); },
  encode(msg) { return this.e(msg); },
};
})();`,
}

type entry struct{ name, body string }

// zipOf builds a zip with the entries in order.
func zipOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func manifestWith(change func(m map[string]any)) string {
	m := map[string]any{"id": "sensor", "name": "Temperature sensor", "version": "1.0.0", "transports": []string{"MQTT", "tcp"}}
	if change != nil {
		change(m)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

var goodManifest = manifestWith(nil)

func goodZip(t testing.TB) []byte {
	return zipOf(t, entry{"manifest.json", goodManifest}, entry{"codec.js", exportStyles["global functions"]})
}

func compileSource(t *testing.T, src string) *Codec {
	t.Helper()
	c, err := Compile(&Package{Manifest: Manifest{Main: "codec.js"}, Source: src})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

func TestGoodPackageRoundTrips(t *testing.T) {
	for style, src := range exportStyles {
		t.Run(style, func(t *testing.T) {
			p, err := Verify(zipOf(t, entry{"manifest.json", goodManifest}, entry{"codec.js", src}))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := Manifest{ID: "sensor", Name: "Temperature sensor", Version: "1.0.0", Transports: []string{"MQTT", "TCP"}, Main: "codec.js"}
			if !reflect.DeepEqual(p.Manifest, want) {
				t.Fatalf("manifest = %+v, want %+v", p.Manifest, want)
			}
			c, err := Compile(p)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()

			enc, err := c.Encode(ctx, map[string]any{"deviceId": "d1", "properties": map[string]any{"temperature": -12.5}})
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if enc.Topic != "/d1/properties/write" || !bytes.Equal(enc.Bytes, []byte{1, 0xff, 0x83}) {
				t.Fatalf("Encode = %+v", enc)
			}

			dec, err := c.Decode(ctx, DecodeInput{Transport: "MQTT", Topic: "/sensor/d1/report", DeviceID: "d1",
				Bytes: enc.Bytes, Session: map[string]any{"seen": 41}})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			wantMsg := map[string]any{"messageType": "REPORT_PROPERTY", "deviceId": "d1", "topic": "/sensor/d1/report",
				"transport": "MQTT", "properties": map[string]any{"temperature": -12.5}, "seen": float64(42)}
			if len(dec.Messages) != 1 || !reflect.DeepEqual(dec.Messages[0], wantMsg) || dec.Errors != nil {
				t.Fatalf("Decode = %+v", dec)
			}

			dec, err = c.Decode(ctx, DecodeInput{Transport: "TCP", Bytes: []byte{9, 0, 0}})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(dec.Messages) != 0 || dec.Messages == nil || !reflect.DeepEqual(dec.Errors, []string{"unknown frame type 9"}) {
				t.Fatalf("Decode of an unknown frame = %+v", dec)
			}
		})
	}
}

func TestPackageInTopLevelFolder(t *testing.T) {
	p, err := Verify(zipOf(t,
		entry{"myproto/", ""},
		entry{"myproto/manifest.json", manifestWith(func(m map[string]any) { m["main"] = "./src/codec.js" })},
		entry{"myproto/src/codec.js", exportStyles["module.exports"]},
		entry{"myproto/README.md", "# not read"},
		entry{"__MACOSX/myproto/._manifest.json", "finder junk"},
	))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.Manifest.Main != "src/codec.js" || !strings.Contains(p.Source, "module.exports") {
		t.Fatalf("package = %+v", p)
	}
}

func TestManifestDefaultsAndCanonicalSpelling(t *testing.T) {
	m := manifestWith(func(m map[string]any) { m["transports"] = []string{"coap", "WEBSOCKET", "Http", "udp"} })
	// With a byte order mark, as Windows editors save it.
	p, err := ParsePackage(zipOf(t, entry{"manifest.json", "\uFEFF" + m}, entry{"codec.js", "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"CoAP", "WebSocket", "HTTP", "UDP"}; !reflect.DeepEqual(p.Manifest.Transports, want) {
		t.Fatalf("transports = %q, want %q", p.Manifest.Transports, want)
	}
	if p.Manifest.Main != "codec.js" {
		t.Fatalf("main = %q, want codec.js", p.Manifest.Main)
	}
}

// deflated returns n zero bytes, deflated.
func deflated(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for ; n > 0; n -= len(chunk) {
		if _, err := fw.Write(chunk[:min(n, len(chunk))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawZip builds a zip whose headers say what the test wants, whatever the bodies hold.
func rawZip(t testing.TB, headers []*zip.FileHeader, bodies [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i, h := range headers {
		w, err := zw.CreateRaw(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(bodies[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRefusedPackages(t *testing.T) {
	codec := exportStyles["global functions"]
	good := func(extra ...entry) []byte {
		return zipOf(t, append([]entry{{"manifest.json", goodManifest}, {"codec.js", codec}}, extra...)...)
	}
	withManifest := func(m string) []byte {
		return zipOf(t, entry{"manifest.json", m}, entry{"codec.js", codec})
	}
	withCodec := func(src string) []byte {
		return zipOf(t, entry{"manifest.json", goodManifest}, entry{"codec.js", src})
	}

	bomb := deflated(t, 64<<20)
	zeros2MiB := deflated(t, 2<<20)
	symlink := &zip.FileHeader{Name: "link.js"}
	symlink.SetMode(fs.ModeSymlink | 0o777)
	var many []entry
	for i := range MaxEntries {
		many = append(many, entry{"f" + strconv.Itoa(i) + ".txt", ""})
	}

	tests := []struct {
		name     string
		zip      []byte
		field    string
		contains string
		tooLarge bool
	}{
		{"not a zip", []byte("PK? no, just text"), "file", "not a zip archive", false},
		{"empty", nil, "file", "not a zip archive", false},
		{"over 4 MiB", make([]byte, MaxPackageBytes+1), "file", "at most 4194304", true},
		{"missing manifest", zipOf(t, entry{"codec.js", codec}), "file", "manifest.json is missing", false},
		{"manifest in a nested folder only", zipOf(t, entry{"a/b/manifest.json", goodManifest}, entry{"a/b/codec.js", codec}), "file", "manifest.json is missing", false},
		{"two top-level folders", zipOf(t, entry{"a/manifest.json", goodManifest}, entry{"b/codec.js", codec}), "file", "manifest.json is missing", false},
		{"parent traversal", good(entry{"../evil.js", "x"}), "file", `entry "../evil.js" leaves the package`, false},
		{"inner traversal", good(entry{"lib/../../evil.js", "x"}), "file", "leaves the package", false},
		{"absolute entry", good(entry{"/etc/x", "x"}), "file", `entry "/etc/x" is an absolute path`, false},
		{"drive letter", good(entry{"C:/x", "x"}), "file", "is an absolute path", false},
		{"backslash", good(entry{`lib\evil.js`, "x"}), "file", "contains a backslash", false},
		{"NUL byte", good(entry{"evil\x00.js", "x"}), "file", "contains a NUL byte", false},
		{"symlink", rawZip(t, []*zip.FileHeader{symlink}, [][]byte{[]byte("/etc/passwd")}), "file", "is a symlink", false},
		{"too many entries", zipOf(t, append(many, entry{"manifest.json", goodManifest})...), "file", "at most 256 are allowed", false},
		{"duplicate entry", good(entry{"codec.js", "function decode(){}"}), "file", `entry "codec.js" appears twice`, false},
		{"64 MiB of zeros", rawZip(t,
			[]*zip.FileHeader{{Name: "manifest.json", Method: zip.Store, UncompressedSize64: uint64(len(goodManifest)), CompressedSize64: uint64(len(goodManifest))},
				{Name: "codec.js", Method: zip.Deflate, UncompressedSize64: 64 << 20, CompressedSize64: uint64(len(bomb))}},
			[][]byte{[]byte(goodManifest), bomb}), "file", "more than 16777216 bytes", false},
		{"compression ratio over 100:1", rawZip(t,
			[]*zip.FileHeader{{Name: "manifest.json", Method: zip.Store, UncompressedSize64: uint64(len(goodManifest)), CompressedSize64: uint64(len(goodManifest))},
				{Name: "zeros.bin", Method: zip.Deflate, UncompressedSize64: 2 << 20, CompressedSize64: uint64(len(zeros2MiB))}},
			[][]byte{[]byte(goodManifest), zeros2MiB}), "file", `entry "zeros.bin" is compressed more than 100:1`, false},
		{"header lies about the size", rawZip(t,
			[]*zip.FileHeader{{Name: "manifest.json", Method: zip.Store, UncompressedSize64: uint64(len(goodManifest)), CompressedSize64: uint64(len(goodManifest))},
				{Name: "codec.js", Method: zip.Deflate, UncompressedSize64: 100, CompressedSize64: uint64(len(bomb))}},
			[][]byte{[]byte(goodManifest), bomb}), "file", `entry "codec.js" does not unpack to the size its header declares`, false},
		{"header lies about a huge size", rawZip(t,
			[]*zip.FileHeader{{Name: "manifest.json", Method: zip.Store, UncompressedSize64: 1<<64 - 1, CompressedSize64: uint64(len(goodManifest))}},
			[][]byte{[]byte(goodManifest)}), "file", "more than 16777216 bytes", false},
		{"manifest too large to read", zipOf(t, entry{"manifest.json", goodManifest + strings.Repeat(" ", 100<<10)}, entry{"codec.js", codec}),
			"file", `entry "manifest.json" unpacks to more than 65536 bytes`, false},

		{"manifest not JSON", withManifest(`{"id": "x",`), "manifest", "manifest.json: not valid JSON", false},
		{"manifest not an object", withManifest(`["MQTT"]`), "manifest", "manifest.json: not a JSON object", false},
		{"manifest transports of the wrong type", withManifest(manifestWith(func(m map[string]any) { m["transports"] = "MQTT" })),
			"manifest", "manifest.json: transports must be an array of strings, not string", false},
		{"manifest id of the wrong type", withManifest(manifestWith(func(m map[string]any) { m["id"] = 7 })),
			"manifest", "manifest.json: id must be a string, not number", false},
		{"missing id", withManifest(manifestWith(func(m map[string]any) { delete(m, "id") })), "manifest", "manifest.json: id is required", false},
		{"bad id", withManifest(manifestWith(func(m map[string]any) { m["id"] = "a b" })), "manifest", `id "a b" must be 1 to 64 letters`, false},
		{"long name", withManifest(manifestWith(func(m map[string]any) { m["name"] = strings.Repeat("n", 65) })), "manifest", "name must be at most 64 characters", false},
		{"missing version", withManifest(manifestWith(func(m map[string]any) { m["version"] = "" })), "manifest", "version is required", false},
		{"long version", withManifest(manifestWith(func(m map[string]any) { m["version"] = strings.Repeat("1", 33) })), "manifest", "version must be at most 32 characters", false},
		{"bad transport", withManifest(manifestWith(func(m map[string]any) { m["transports"] = []string{"MQTT", "FOO"} })),
			"manifest", `manifest.json: transports[1] "FOO" is not one of MQTT, TCP, UDP, CoAP, HTTP, WebSocket`, false},
		{"empty transports", withManifest(manifestWith(func(m map[string]any) { m["transports"] = []string{} })), "manifest", "transports is required", false},
		{"duplicate transport", withManifest(manifestWith(func(m map[string]any) { m["transports"] = []string{"MQTT", "mqtt"} })),
			"manifest", `transports[1] "mqtt" repeats transports[0]`, false},
		{"main missing from the zip", withManifest(manifestWith(func(m map[string]any) { m["main"] = "lib/codec.js" })),
			"manifest", `main "lib/codec.js" is not in the package`, false},
		{"main escapes", withManifest(manifestWith(func(m map[string]any) { m["main"] = "../codec.js" })), "manifest", `main "../codec.js" leaves the package`, false},
		{"main absolute", withManifest(manifestWith(func(m map[string]any) { m["main"] = "/codec.js" })), "manifest", "is an absolute path", false},
		{"main not JavaScript", withManifest(manifestWith(func(m map[string]any) { m["main"] = "manifest.json" })), "manifest", "must name a .js file", false},
		{"several problems", withManifest(`{"name": "x", "version": "1"}`), "manifest", "id is required; transports is required", false},

		{"syntax error", withCodec("function decode(input) {\n  return {messages: [};\n}"), "codec", "codec.js has a syntax error at line 2, column", false},
		{"not UTF-8", withCodec("function decode() {} // \xff"), "codec", "not UTF-8", false},
		{"missing decode", withCodec("function encode(msg) { return {bytes: []}; }"), "codec", "defines no decode function", false},
		{"missing encode", withCodec("exports.decode = function (input) { return {messages: []}; };"), "codec", "defines no encode function", false},
		{"decode not a function", withCodec("module.exports = {decode: 5, encode: function () {}};"), "codec", "module.exports.decode is a number, not a function", false},
		{"throws at load", withCodec("function decode(){}\nfunction encode(){}\nthrow new Error('no config');"), "codec", "codec.js threw while loading: Error: no config (at codec.js:3:", false},
		{"throws a hostile value at load", withCodec("throw {toString: function () { while (true) {} }};"), "codec", "threw while loading", false},
		{"loops at load", withCodec("while (true) {}"), "codec", "codec did not finish loading within 100ms (an endless loop?)", false},
		{"recurses at load", withCodec("function f() { return f() + 1; } f();"), "codec", "overflowed the call stack", false},
		{"export getter loops", withCodec("Object.defineProperty(module, 'exports', {get: function () { for (;;) {} }});"), "codec", "within 100ms", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Verify(tt.zip)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Verify = %v, want an *Error", err)
			}
			if pe.Field != tt.field || !strings.Contains(pe.Message, tt.contains) || pe.TooLarge != tt.tooLarge {
				t.Fatalf("Verify = %#v\nwant field %q, message containing %q, TooLarge %v", pe, tt.field, tt.contains, tt.tooLarge)
			}
			if d := time.Since(start); d > hang {
				t.Fatalf("refusing took %v", d) // bounds a hang, not a speed
			}
		})
	}
}

func TestLoadLoopIsRefusedAndTheProcessGoesOn(t *testing.T) {
	start := time.Now()
	_, err := Compile(&Package{Manifest: Manifest{Main: "codec.js"}, Source: "var n = 0; while (true) { n++; }"})
	if err == nil || err.Error() != "codec did not finish loading within 100ms (an endless loop?)" {
		t.Fatalf("Compile = %v", err)
	}
	if d := time.Since(start); d > hang {
		t.Fatalf("Compile returned after %v", d) // bounds a hang, not a speed
	}
	// The process and the package go on: the next codec loads and runs.
	c := compileSource(t, exportStyles["global functions"])
	if _, err := c.Decode(context.Background(), DecodeInput{Bytes: []byte{1, 0, 10}}); err != nil {
		t.Fatal(err)
	}
}

// loopCodec loops in decode when the first byte is 0xff, and keeps a call counter in a global.
const loopCodec = `
var calls = 0;
function decode(input) {
  calls++;
  if (input.bytes[0] === 0xff) { for (;;) {} }
  if (input.bytes[0] === 0xfe) { return decode(input); }
  if (input.bytes[0] === 0xfd) { throw new TypeError("bad frame " + input.bytes.length); }
  if (input.bytes[0] === 0xfc) { throw {toString: function () { for (;;) {} }}; }
  return {messages: [{calls: calls}]};
}
function encode(msg) { return {bytes: []}; }
`

func TestFailedCallsLeaveTheCodecUsable(t *testing.T) {
	c := compileSource(t, loopCodec)
	ctx := context.Background()
	tests := []struct {
		first    byte
		sentinel error
		contains string
	}{
		{0xff, ErrTimeout, "decode did not finish within 100ms (an endless loop?)"},
		{0xfe, ErrException, "decode overflowed the call stack"},
		{0xfd, ErrException, "decode threw TypeError: bad frame 1 (at codec.js:7:"},
		{0xfc, ErrException, "decode threw"},
	}
	prev := 0.0
	for _, tt := range tests {
		start := time.Now()
		_, err := c.Decode(ctx, DecodeInput{Bytes: []byte{tt.first}})
		if !errors.Is(err, tt.sentinel) || !strings.Contains(err.Error(), tt.contains) {
			t.Fatalf("Decode(%#x) = %v, want %v containing %q", tt.first, err, tt.sentinel, tt.contains)
		}
		if d := time.Since(start); d > hang {
			t.Fatalf("Decode(%#x) took %v", tt.first, d) // bounds a hang, not a speed
		}
		res, err := c.Decode(ctx, DecodeInput{Bytes: []byte{0}})
		if err != nil {
			t.Fatalf("Decode after %#x: %v", tt.first, err)
		}
		// The codec's globals survive a failed call.
		calls := res.Messages[0]["calls"].(float64)
		if calls < prev+2 {
			t.Fatalf("calls = %v after %#x, was %v", calls, tt.first, prev)
		}
		prev = calls
	}
}

func TestCallHonoursItsContext(t *testing.T) {
	c := compileSource(t, loopCodec)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	// The context's error, not ErrTimeout, shows the call stopped at the context's deadline
	// rather than at CallTimeout.
	_, err := c.Decode(ctx, DecodeInput{Bytes: []byte{0xff}})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
		t.Fatalf("Decode = %v, want the context's deadline", err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Decode(cancelled, DecodeInput{Bytes: []byte{0}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Decode with a cancelled context = %v", err)
	}
	if _, err := c.Decode(context.Background(), DecodeInput{Bytes: []byte{0}}); err != nil {
		t.Fatal(err)
	}
}

// A codec stuck inside a built-in cannot be interrupted: the caller still gets its answer on
// time, the codec stays busy until the built-in returns, then works again.
func TestCallStuckInABuiltin(t *testing.T) {
	c := compileSource(t, `
function decode(input) {
  if (input.bytes[0] === 1) {
    // Two built-in calls and no loop, so the interrupt has no instruction to land on; the
    // stringify is quadratic in the depth in goja.
    var depth = input.bytes[1] * 1000;
    JSON.stringify(JSON.parse("[".repeat(depth) + "]".repeat(depth)));
  }
  return {messages: []};
}
function encode() { return {bytes: []}; }`)
	// How long the built-in takes depends on the machine, so the depth doubles until it
	// outlasts CallTimeout and its grace: on a fast machine a shallow one returns in time
	// and the interrupt lands on the next instruction.
	var err error
	for depth := 8; depth <= 128; depth *= 2 {
		_, err = c.Decode(context.Background(), DecodeInput{Bytes: []byte{1, byte(depth)}})
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("Decode at depth %d000 = %v, want a timeout", depth, err)
		}
		// "stuck" is only said when the answer came before the call ended: on time.
		if strings.Contains(err.Error(), "stuck in a built-in") {
			break
		}
		t.Logf("depth %d000 returned within the grace: %v", depth, err)
	}
	if !strings.Contains(err.Error(), "stuck in a built-in") {
		t.Fatalf("Decode = %v, want stuck", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Decode(ctx, DecodeInput{Bytes: []byte{0}}); err != nil {
		t.Fatalf("Decode once the built-in returned: %v", err)
	}
}

// bounded answers a job that ignores its interrupt without waiting for it, and the job's
// release runs only once the job is over, so the runtime is never shared.
func TestBoundedGivesUpOnAJobThatIgnoresItsInterrupt(t *testing.T) {
	unblock := make(chan struct{})
	released := make(chan struct{})
	_, err := bounded(context.Background(), goja.New(), time.Millisecond, func() { close(released) }, func() (int, error) {
		<-unblock // like a long built-in: goja's interrupt cannot reach it
		return 1, nil
	})
	if !errors.Is(err, errStuck) {
		t.Fatalf("bounded = %v, want errStuck", err)
	}
	select {
	case <-released:
		t.Fatal("released while the job still runs")
	default:
	}
	close(unblock)
	<-released
}

func TestGarbageResults(t *testing.T) {
	c := compileSource(t, `
var results = {
  1: function () { return null; },
  2: function () { return [1, 2]; },
  3: function () { return {}; },
  4: function () { return {messages: 5}; },
  5: function () { return {messages: [1]}; },
  6: function () { return {messages: [], errors: [1]}; },
  7: function () { var a = []; for (var i = 0; i < 1001; i++) a.push({}); return {messages: a}; },
  8: function () { var o = {}; o.self = o; return {messages: [o]}; },
  9: function () { return undefined; },
  10: function () { return {messages: [{n: 10n}]}; },
};
function decode(input) { return results[input.bytes[0]](); }
var encodings = {
  1: {topic: 5, bytes: []},
  2: {bytes: [256]},
  3: {bytes: [1.5]},
  4: {bytes: ["1"]},
  5: {bytes: "\x01"},
  6: {topic: "t"},
  7: {bytes: [-1]},
};
function encode(msg) { return encodings[msg.n]; }`)
	ctx := context.Background()
	for n, want := range map[byte]string{
		1:  "decode must return an object like {messages: [...]}, not null",
		2:  "decode must return an object like {messages: [...]}, not an array",
		3:  "messages is missing",
		4:  "decode must return messages as an array, not a number",
		5:  "decode returned messages[0] as a number, not an object",
		6:  "decode must return errors as an array of strings",
		7:  "decode returned 1001 messages; at most 1000 are allowed",
		8:  "decode returned a value JSON cannot hold: TypeError",
		9:  "decode must return an object like {messages: [...]}, not undefined",
		10: "decode returned a value JSON cannot hold",
	} {
		_, err := c.Decode(ctx, DecodeInput{Bytes: []byte{n}})
		if !errors.Is(err, ErrGarbage) || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "codec returned garbage: ") {
			t.Errorf("Decode(%d) = %v, want garbage containing %q", n, err, want)
		}
	}
	for n, want := range map[int]string{
		1: "encode must return topic as a string, not a number",
		2: "encode returned bytes[0] = 256; bytes must be integers from 0 to 255",
		3: "bytes[0] = 1.5",
		4: `bytes[0] = "1"`,
		5: "encode must return bytes as an array of numbers, not a string",
		6: "bytes is missing",
		7: "bytes[0] = -1",
	} {
		_, err := c.Encode(ctx, map[string]any{"n": n})
		if !errors.Is(err, ErrGarbage) || !strings.Contains(err.Error(), want) {
			t.Errorf("Encode(%d) = %v, want garbage containing %q", n, err, want)
		}
	}
}

func TestInputLimits(t *testing.T) {
	c := compileSource(t, `
function decode(input) { return {messages: [{n: input.bytes.length, last: input.bytes[input.bytes.length - 1]}]}; }
function encode(msg) { var b = []; for (var i = 0; i < msg.n; i++) b.push(i & 0xff); return {bytes: b}; }`)
	ctx := context.Background()
	big := bytes.Repeat([]byte{7}, MaxPayloadBytes)
	res, err := c.Decode(ctx, DecodeInput{Bytes: big})
	if err != nil || res.Messages[0]["n"] != float64(MaxPayloadBytes) || res.Messages[0]["last"] != float64(7) {
		t.Fatalf("Decode of %d bytes = %v, %v", len(big), res, err)
	}
	if _, err := c.Decode(ctx, DecodeInput{Bytes: append(big, 1)}); !errors.Is(err, ErrInput) {
		t.Fatalf("Decode of too many bytes = %v", err)
	}
	if _, err := c.Encode(ctx, map[string]any{"bad": make(chan int)}); !errors.Is(err, ErrInput) {
		t.Fatalf("Encode of a channel = %v", err)
	}
	if enc, err := c.Encode(ctx, map[string]any{"n": 300}); err != nil || len(enc.Bytes) != 300 || enc.Bytes[299] != 299&0xff {
		t.Fatalf("Encode = %v, %v", enc, err)
	}
}

func TestSandboxHasNoHost(t *testing.T) {
	c := compileSource(t, `
console.log("loading");
function decode(input) {
  console.error("decoding", input);
  return {messages: [{
    require: typeof require, process: typeof process, setTimeout: typeof setTimeout,
    fetch: typeof fetch, fs: typeof fs, exports: typeof module.exports,
  }]};
}
function encode() { return {bytes: []}; }`)
	res, err := c.Decode(context.Background(), DecodeInput{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"require": "undefined", "process": "undefined", "setTimeout": "undefined",
		"fetch": "undefined", "fs": "undefined", "exports": "object"}
	if !reflect.DeepEqual(res.Messages[0], want) {
		t.Fatalf("globals = %v", res.Messages[0])
	}
}

func TestConcurrentCalls(t *testing.T) {
	c := compileSource(t, exportStyles["module.exports"])
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				temp := float64(g*100+i) / 10
				enc, err := c.Encode(context.Background(), map[string]any{"deviceId": "d", "properties": map[string]any{"temperature": temp}})
				if err != nil {
					errs <- err
					return
				}
				dec, err := c.Decode(context.Background(), DecodeInput{Bytes: enc.Bytes})
				if err != nil {
					errs <- err
					return
				}
				if got := dec.Messages[0]["properties"].(map[string]any)["temperature"]; got != temp {
					errs <- errors.New("round trip changed the temperature")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDir(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"manifest.json":  manifestWith(func(m map[string]any) { m["main"] = "src/main.js" }),
		"src/main.js":    exportStyles["exports.x"],
		"node_modules/x": "ignored",
	})
	p, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := c.Decode(context.Background(), DecodeInput{Bytes: []byte{1, 0, 215}}); err != nil || res.Messages[0]["properties"].(map[string]any)["temperature"] != 21.5 {
		t.Fatalf("Decode = %v, %v", res, err)
	}

	outside := writeDir(t, map[string]string{"secret.js": "function decode(){} function encode(){}"})
	escaping := writeDir(t, map[string]string{"manifest.json": manifestWith(func(m map[string]any) { m["main"] = "link.js" })})
	if err := os.Symlink(filepath.Join(outside, "secret.js"), filepath.Join(escaping, "link.js")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, field, contains string
	}{
		{"relative", "protocols/demo", "file", "not an absolute path"},
		{"missing", filepath.Join(dir, "nope"), "file", "cannot open the directory"},
		{"no manifest", writeDir(t, map[string]string{"codec.js": "x"}), "file", "manifest.json is missing"},
		{"bad manifest", writeDir(t, map[string]string{"manifest.json": "{"}), "manifest", "not valid JSON"},
		{"main escapes", writeDir(t, map[string]string{"manifest.json": manifestWith(func(m map[string]any) { m["main"] = "../codec.js" })}),
			"manifest", `main "../codec.js" leaves the package`},
		{"main missing", writeDir(t, map[string]string{"manifest.json": goodManifest}), "manifest", `main "codec.js" is not in`},
		{"main is a directory", writeDir(t, map[string]string{"manifest.json": goodManifest, "codec.js/x": ""}), "file", "not a regular file"},
		{"symlink out of the directory", escaping, "file", "escapes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadDir(tt.dir)
			var pe *Error
			if !errors.As(err, &pe) || pe.Field != tt.field || !strings.Contains(pe.Message, tt.contains) {
				t.Fatalf("LoadDir = %#v, want field %q containing %q", err, tt.field, tt.contains)
			}
		})
	}
}

func FuzzParsePackage(f *testing.F) {
	f.Add(goodZip(f))
	f.Add(zipOf(f, entry{"p/manifest.json", goodManifest}, entry{"p/codec.js", "x"}))
	f.Add(zipOf(f, entry{"manifest.json", `{"id":"x","name":"x","version":"1","transports":["udp"],"main":"a/b.js"}`}, entry{"a/b.js", ""}))
	f.Add([]byte("PK\x03\x04"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePackage(b)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Message == "" {
				t.Fatalf("ParsePackage error %v is not a *Error with a message", err)
			}
			return
		}
		if !idPattern.MatchString(p.Manifest.ID) || len(p.Manifest.Transports) == 0 || !strings.HasSuffix(p.Manifest.Main, ".js") {
			t.Fatalf("ParsePackage accepted %+v", p.Manifest)
		}
	})
}
