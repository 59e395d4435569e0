package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dop251/goja"
)

func newPool(t testing.TB, src string, size int) *Pool {
	t.Helper()
	p, err := NewPool(&Package{Manifest: Manifest{Main: "codec.js"}, Source: src}, size)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	return p
}

// countingCodec reports, for each device, how many of its messages this runtime decoded:
// per-device state kept in a global, as codec authors write it. Device "bad" loops, a first
// byte of 0xfd throws.
const countingCodec = `
var counts = {};
function decode(input) {
  if (input.deviceId === "bad") { for (;;) {} }
  if (input.bytes[0] === 0xfd) { throw new RangeError("no frame " + input.bytes[1]); }
  var n = (counts[input.deviceId] || 0) + 1;
  counts[input.deviceId] = n;
  return {messages: [{type: "reportProperty", deviceId: input.deviceId, properties: {n: n, seq: input.bytes[0]}}]};
}
function encode(msg) { return {bytes: []}; }
`

// settled waits until no call holds or waits for a runtime, and checks the pool's books.
func settled(t *testing.T, p *Pool) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for {
		p.mu.Lock()
		free, waiters, devices := p.free, len(p.waiters), len(p.devices)
		busy := 0
		for i := range p.slots {
			if p.slots[i].busy {
				busy++
			}
		}
		p.mu.Unlock()
		if free == p.Size() && busy == 0 && waiters == 0 && devices == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool never settled: %d free of %d, %d busy, %d waiting, %d devices", free, p.Size(), busy, waiters, devices)
		}
		time.Sleep(time.Millisecond)
	}
}

// A device whose decode loops costs its own messages only: every other device's messages
// decode, and each of its own calls gets the full budget and times out.
func TestPoolLoopingDeviceDoesNotHoldUpTheOthers(t *testing.T) {
	p := newPool(t, countingCodec, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*hang)
	defer cancel()
	const devices, perDevice, badCalls = 20, 10, 8
	var wg sync.WaitGroup
	errs := make(chan error, devices*perDevice+badCalls)
	for range badCalls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := p.Decode(ctx, DecodeInput{Transport: "MQTT", DeviceID: "bad", Bytes: []byte{1}})
			if !errors.Is(err, ErrTimeout) {
				errs <- fmt.Errorf("bad device: %v, want a timeout", err)
			}
		}()
	}
	var decoded atomic.Int64
	for d := range devices {
		for seq := range perDevice {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("dev-%d", d)
				in := DecodeInput{Transport: "MQTT", DeviceID: id, Bytes: []byte{byte(seq)}}
				msgs, errList, err := p.Decode(ctx, in)
				// A call's clock starts once it has a runtime, so waiting behind "bad"
				// cannot time it out; a decode of microseconds that does was starved of
				// CPU by the machine, and is tried again rather than failing the test.
				for try := 0; errors.Is(err, ErrTimeout) && try < 3; try++ {
					t.Logf("%s message %d, try %d: %v", id, seq, try, err)
					msgs, errList, err = p.Decode(ctx, in)
				}
				if err != nil {
					errs <- fmt.Errorf("%s message %d: %v", id, seq, err)
					return
				}
				if len(msgs) != 1 || len(errList) != 0 || msgs[0].DeviceID != id || msgs[0].Properties["seq"] != float64(seq) {
					errs <- fmt.Errorf("%s message %d decoded as %+v, %q", id, seq, msgs, errList)
					return
				}
				decoded.Add(1)
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := decoded.Load(); n != devices*perDevice {
		t.Fatalf("%d of %d messages decoded", n, devices*perDevice)
	}
	settled(t, p)
}

// With nothing busy, each device's calls land in its own runtime: its counter, kept in a
// global, counts up by one per call however the devices interleave.
func TestPoolAffinityKeepsGlobalsPerDevice(t *testing.T) {
	p := newPool(t, countingCodec, 4)
	ctx := context.Background()
	for round := 1; round <= 5; round++ {
		for d := range 12 {
			id := fmt.Sprintf("sensor-%d", d)
			msgs, _, err := p.Decode(ctx, DecodeInput{DeviceID: id, Bytes: []byte{0}})
			if err != nil {
				t.Fatal(err)
			}
			if got := msgs[0].Properties["n"]; got != float64(round) {
				t.Fatalf("%s round %d: the codec counted %v", id, round, got)
			}
		}
	}
}

// A codec that throws costs that call: the next call of the device works, in the same
// runtime, whose globals survived.
func TestPoolThrowCostsOneCall(t *testing.T) {
	p := newPool(t, countingCodec, 2)
	ctx := context.Background()
	in := DecodeInput{DeviceID: "d1", Bytes: []byte{0}}
	if _, _, err := p.Decode(ctx, in); err != nil {
		t.Fatal(err)
	}
	_, _, err := p.Decode(ctx, DecodeInput{DeviceID: "d1", Bytes: []byte{0xfd, 7}})
	if !errors.Is(err, ErrException) || !strings.Contains(err.Error(), "decode threw RangeError: no frame 7 (at codec.js:5:") {
		t.Fatalf("Decode of a throwing frame = %v", err)
	}
	msgs, _, err := p.Decode(ctx, in)
	if err != nil || msgs[0].Properties["n"] != float64(2) {
		t.Fatalf("Decode after the throw = %+v, %v", msgs, err)
	}
	settled(t, p)
}

// blockDecode replaces the decode of runtime i with a Go function that blocks until
// unblock is closed: like a built-in that goja's interrupt cannot reach. entered receives
// once per call.
func blockDecode(p *Pool, i int, entered chan<- struct{}, unblock <-chan struct{}) (restore func()) {
	e := p.slots[i].engine
	orig := e.decode
	e.decode = func(goja.Value, ...goja.Value) (goja.Value, error) {
		entered <- struct{}{}
		<-unblock
		return e.rt.ToValue(`J{"messages":[]}`), nil
	}
	return func() { e.decode = orig }
}

// deviceFor finds a device id whose calls prefer runtime i (same) or another one.
func deviceFor(t *testing.T, p *Pool, i int, same bool) string {
	t.Helper()
	for n := range 10000 {
		id := fmt.Sprintf("d%d", n)
		if (p.affine(id) == i) == same {
			return id
		}
	}
	t.Fatal("no device id found")
	return ""
}

// A device whose call is stuck past its timeout holds its runtime, and only it: a device
// that prefers the same runtime is served by another one, calls without a device go on,
// and the stuck device's next call waits for its last one.
func TestPoolStuckDeviceHoldsOneRuntime(t *testing.T) {
	p := newPool(t, countingCodec, 2)
	stuckAt := p.affine("stuck")
	entered, unblock := make(chan struct{}, 1), make(chan struct{})
	restore := blockDecode(p, stuckAt, entered, unblock)

	first := make(chan error, 1)
	go func() {
		_, _, err := p.Decode(context.Background(), DecodeInput{DeviceID: "stuck"})
		first <- err
	}()
	select {
	case <-entered:
	case <-time.After(hang):
		t.Fatal("the stuck device's call never reached its runtime")
	}
	// The caller gets its answer while the runtime is still stuck.
	select {
	case err := <-first:
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "stuck in a built-in") {
			t.Fatalf("stuck Decode = %v, want a timeout", err)
		}
	case <-time.After(hang):
		t.Fatal("the stuck call never returned")
	}

	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	neighbour := deviceFor(t, p, stuckAt, true)
	msgs, _, err := p.Decode(ctx, DecodeInput{DeviceID: neighbour, Bytes: []byte{3}})
	if err != nil || len(msgs) != 1 || msgs[0].Properties["seq"] != float64(3) {
		t.Fatalf("Decode for %s, which shares the stuck device's runtime = %+v, %v", neighbour, msgs, err)
	}
	other := deviceFor(t, p, stuckAt, false)
	if _, _, err := p.Decode(ctx, DecodeInput{DeviceID: other}); err != nil {
		t.Fatalf("Decode for %s: %v", other, err)
	}
	if _, _, err := p.Decode(ctx, DecodeInput{}); err != nil {
		t.Fatalf("Decode without a device: %v", err)
	}

	// The stuck device does not take the free runtime: its next call waits for the last.
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if _, _, err := p.Decode(short, DecodeInput{DeviceID: "stuck"}); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for the codec") {
		t.Fatalf("second Decode of the stuck device = %v, want its context's deadline while waiting", err)
	}
	p.mu.Lock()
	stillBusy := p.slots[stuckAt].busy
	p.mu.Unlock()
	if !stillBusy {
		t.Fatal("the stuck runtime was released while its call runs")
	}

	close(unblock)
	settled(t, p)
	restore()
	if _, _, err := p.Decode(ctx, DecodeInput{DeviceID: "stuck", Bytes: []byte{0}}); err != nil {
		t.Fatalf("Decode once the stuck call returned: %v", err)
	}
}

// A runtime in which goja panicked is not used again: the next call loads a fresh one,
// whose globals start over.
func TestPoolReplacesABrokenRuntime(t *testing.T) {
	p := newPool(t, countingCodec, 2)
	ctx := context.Background()
	in := DecodeInput{DeviceID: "d1", Bytes: []byte{0}}
	for range 3 {
		if _, _, err := p.Decode(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	i := p.affine("d1")
	p.slots[i].engine.decode = func(goja.Value, ...goja.Value) (goja.Value, error) { panic("a bug in goja") }
	_, _, err := p.Decode(ctx, in)
	if !errors.Is(err, ErrException) || !strings.Contains(err.Error(), "decode broke the JavaScript engine (a bug in goja); the runtime is replaced") {
		t.Fatalf("Decode in a broken engine = %v", err)
	}
	if p.slots[i].engine != nil {
		t.Fatal("the broken runtime is still in the pool")
	}
	// Loading it again can only fail for a codec whose loading depends on chance or the
	// clock: stand in for one. The call fails, and the next one tries again.
	good := p.prg
	if _, p.prg, err = compileCodec(&Package{Source: "throw new Error('unlucky');"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Decode(ctx, in); !errors.Is(err, ErrException) || !strings.Contains(err.Error(), "could not be loaded again after its engine broke: codec.js threw while loading: Error: unlucky") {
		t.Fatalf("Decode when loading fails = %v", err)
	}
	p.prg = good
	msgs, _, err := p.Decode(ctx, in)
	if err != nil || msgs[0].Properties["n"] != float64(1) {
		t.Fatalf("Decode after the engine broke = %+v, %v; want a fresh runtime counting from 1", msgs, err)
	}
	settled(t, p)
}

func TestPoolTypedMessages(t *testing.T) {
	p := newPool(t, `
function decode(input) {
  if (input.bytes[0] === 1) return {messages: 5};
  return {messages: [
    {type: "reportProperty", deviceId: input.deviceId, timestamp: 1700000000000, properties: {t: 21.5}, extra: "ignored"},
    {type: "nope"},
    5,
    {type: "event", timestamp: "soon"},
    {type: "readProperty", properties: ["t"]},
    {deviceId: "x"},
    {type: "readPropertyReply", messageId: "m1", success: true, properties: {t: 1}},
    {type: "event", properties: 5},
    {type: "firmwareProgress", progress: 12.5},
  ], errors: ["frame 2 is short"]};
}
function encode(msg) { return {bytes: []}; }`, 2)
	msgs, errs, err := p.Decode(context.Background(), DecodeInput{DeviceID: "d1", Bytes: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Message{
		{Type: TypeReportProperty, DeviceID: "d1", Timestamp: 1700000000000, Properties: map[string]any{"t": 21.5}},
		{Type: TypeReadPropertyReply, MessageID: "m1", Success: Bool(true), Properties: map[string]any{"t": float64(1)}},
	}
	if !reflect.DeepEqual(msgs, want) {
		t.Errorf("messages = %+v\nwant %+v", msgs, want)
	}
	wantErrs := []string{
		"frame 2 is short",
		`codec returned garbage: decode returned messages[1] of type "nope", which is not one a device sends (event, firmwareProgress,`,
		"codec returned garbage: decode returned messages[2] as a number, not an object",
		"codec returned garbage: decode returned messages[3] that is not a device message: timestamp must be an integer, not string",
		`codec returned garbage: decode returned messages[4] of type "readProperty", which is not one a device sends`,
		"codec returned garbage: decode returned messages[5] without a type",
		"codec returned garbage: decode returned messages[7] that is not a device message: properties must be an object of values or an array of names, not a number",
		"codec returned garbage: decode returned messages[8] that is not a device message: progress must be an integer, not number 12.5",
	}
	if len(errs) != len(wantErrs) {
		t.Fatalf("errors = %q", errs)
	}
	for i, w := range wantErrs {
		if !strings.HasPrefix(errs[i], w) {
			t.Errorf("errors[%d] = %q\nwant %q…", i, errs[i], w)
		}
	}
	// A result of the wrong shape costs the whole call.
	if _, _, err := p.Decode(context.Background(), DecodeInput{DeviceID: "d1", Bytes: []byte{1}}); !errors.Is(err, ErrGarbage) {
		t.Fatalf("Decode of {messages: 5} = %v", err)
	}
	if _, _, err := p.Decode(context.Background(), DecodeInput{Bytes: make([]byte, MaxPayloadBytes+1)}); !errors.Is(err, ErrInput) {
		t.Fatalf("Decode of too many bytes = %v", err)
	}
}

func TestPoolEncode(t *testing.T) {
	p := newPool(t, `
module.exports = {
  decode: function () { return {messages: []}; },
  encode: function (msg) {
    var s = JSON.stringify(msg), b = [];
    for (var i = 0; i < s.length; i++) b.push(s.charCodeAt(i));
    return {topic: "/" + msg.deviceId + "/" + msg.type, bytes: b};
  },
};`, 0)
	res, err := p.Encode(context.Background(), "", Message{Type: TypeReadProperty, DeviceID: "d1", MessageID: "m1", PropertyNames: []string{"t", "h"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"readProperty","deviceId":"d1","messageId":"m1","properties":["t","h"]}`; res.Topic != "/d1/readProperty" || string(res.Bytes) != want {
		t.Fatalf("Encode = %q %s, want %s", res.Topic, res.Bytes, want)
	}
	if _, err := p.Encode(context.Background(), "d1", Message{Type: TypeWriteProperty, Output: make(chan int)}); !errors.Is(err, ErrInput) {
		t.Fatalf("Encode of a channel = %v", err)
	}
}

func TestPoolAuthenticate(t *testing.T) {
	const codec = `
function decode() { return {messages: []}; }
function encode() { return {bytes: []}; }
`
	results := `
var results = {
  ok: function (a) { return {success: a.password === "secret", deviceId: a.username + "@" + a.transport, message: a.clientId + " from " + a.remote}; },
  denied: function () { return {success: false, message: "unknown device"}; },
  null: function () { return null; },
  nosuccess: function () { return {deviceId: "d"}; },
  stringsuccess: function () { return {success: "yes", deviceId: "d"}; },
  numberid: function () { return {success: true, deviceId: 5}; },
  noid: function () { return {success: true}; },
  numbermessage: function () { return {success: false, message: 7}; },
  throws: function () { throw new Error("no such user"); },
  loops: function () { for (;;) {} },
};
`
	ctx := context.Background()
	in := AuthInput{Transport: "MQTT", ClientID: "c1", Username: "ok", Password: "secret", Remote: "10.0.0.7:51000"}
	for style, src := range map[string]string{
		"global function": codec + results + `function authenticate(a) { return results[a.username](a); }`,
		"module.exports":  codec + results + `module.exports = {decode: decode, encode: encode, authenticate: function (a) { return results[a.username](a); }};`,
	} {
		t.Run(style, func(t *testing.T) {
			p := newPool(t, src, 2)
			if !p.HasAuthenticate() {
				t.Fatal("HasAuthenticate = false")
			}
			res, err := p.Authenticate(ctx, in)
			if err != nil || *res != (AuthResult{Success: true, DeviceID: "ok@MQTT", Message: "c1 from 10.0.0.7:51000"}) {
				t.Fatalf("Authenticate = %+v, %v", res, err)
			}
			wrong := in
			wrong.Password = "guess"
			if res, err := p.Authenticate(ctx, wrong); err != nil || res.Success {
				t.Fatalf("Authenticate with a wrong password = %+v, %v", res, err)
			}
			denied := in
			denied.Username = "denied"
			if res, err := p.Authenticate(ctx, denied); err != nil || *res != (AuthResult{Message: "unknown device"}) {
				t.Fatalf("Authenticate denied = %+v, %v", res, err)
			}
			for user, want := range map[string]struct {
				sentinel error
				contains string
			}{
				"null":          {ErrGarbage, "authenticate must return an object like {success: true, deviceId: \"...\"}, not null"},
				"nosuccess":     {ErrGarbage, "success is missing"},
				"stringsuccess": {ErrGarbage, "authenticate must return success as a boolean, not a string"},
				"numberid":      {ErrGarbage, "authenticate must return deviceId as a string, not a number"},
				"noid":          {ErrGarbage, "authenticate returned success without a deviceId"},
				"numbermessage": {ErrGarbage, "authenticate must return message as a string, not a number"},
				"throws":        {ErrException, "authenticate threw Error: no such user"},
				"loops":         {ErrTimeout, "authenticate did not finish within 100ms"},
			} {
				bad := in
				bad.Username = user
				_, err := p.Authenticate(ctx, bad)
				if !errors.Is(err, want.sentinel) || !strings.Contains(err.Error(), want.contains) {
					t.Errorf("Authenticate(%s) = %v, want %v containing %q", user, err, want.sentinel, want.contains)
				}
			}
			settled(t, p)
		})
	}

	t.Run("absent", func(t *testing.T) {
		p := newPool(t, codec, 2)
		if p.HasAuthenticate() {
			t.Fatal("HasAuthenticate = true")
		}
		if _, err := p.Authenticate(ctx, in); !errors.Is(err, ErrNoAuthenticate) {
			t.Fatalf("Authenticate = %v", err)
		}
	})
	t.Run("not a function", func(t *testing.T) {
		for src, want := range map[string]string{
			codec + "var authenticate = 5;": "codec.js: authenticate is a number, not a function",
			"module.exports = {decode: decode, encode: encode, authenticate: {}};" + codec: "codec.js: module.exports.authenticate is an object, not a function",
		} {
			for _, compile := range []func() error{
				func() error {
					_, err := NewPool(&Package{Manifest: Manifest{Main: "codec.js"}, Source: src}, 2)
					return err
				},
				func() error {
					_, err := Compile(&Package{Manifest: Manifest{Main: "codec.js"}, Source: src})
					return err
				},
			} {
				var pe *Error
				if err := compile(); !errors.As(err, &pe) || pe.Field != "codec" || pe.Message != want {
					t.Errorf("loading %q = %v, want %q", src, err, want)
				}
			}
		}
	})
}

func TestNewPool(t *testing.T) {
	src := exportStyles["module.exports"]
	if p := newPool(t, src, 0); p.Size() != defaultPoolSize() || p.Size() < 4 || p.Size() > 16 {
		t.Fatalf("default size = %d", p.Size())
	}
	if p := newPool(t, src, 3); p.Size() != 3 {
		t.Fatalf("size = %d, want 3", p.Size())
	}
	if p := newPool(t, src, 1000); p.Size() != maxPoolSize {
		t.Fatalf("size = %d, want %d", p.Size(), maxPoolSize)
	}
	for src, want := range map[string]string{
		"function decode(input) {\n  return {messages: [};\n}": "codec.js has a syntax error at line 2",
		"while (true) {}":      "codec did not finish loading within 100ms",
		"function encode() {}": "codec.js defines no decode function",
	} {
		_, err := NewPool(&Package{Manifest: Manifest{Main: "codec.js"}, Source: src}, 2)
		var pe *Error
		if !errors.As(err, &pe) || pe.Field != "codec" || !strings.Contains(pe.Message, want) {
			t.Errorf("NewPool(%q) = %v, want a codec error containing %q", src, err, want)
		}
	}
}

// poolEchoCodec returns whatever JSON its input spells: decode's result is the payload,
// authenticate's the client id.
const poolEchoCodec = echoCodec + `
function authenticate(a) { return JSON.parse(a.clientId); }`

// FuzzPoolResults has a codec return arbitrary JSON as decode's and authenticate's result:
// the pool never panics, and returns device messages and identities or says why not. A
// timeout is accepted too: the fuzzer's workers load the machine, and timings decide nothing.
func FuzzPoolResults(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"type":"reportProperty","deviceId":"d1","properties":{"t":21.5}}]}`,
		`{"messages":[{"type":"readProperty","properties":["a"]},{"type":"event","timestamp":1.5},7,null,{}]}`,
		`{"messages":[{"type":"event","properties":"x","success":1}],"errors":["e"]}`,
		`{"success":true,"deviceId":"d1","message":"hi"}`, `{"success":true}`, `{"success":1}`, `[]`, `{`,
	} {
		f.Add([]byte(s))
	}
	p := newPool(f, poolEchoCodec, 2)
	f.Fuzz(func(t *testing.T, js []byte) {
		if len(js) > MaxPayloadBytes {
			return
		}
		ctx := context.Background()
		msgs, errs, err := p.Decode(ctx, DecodeInput{DeviceID: "d1", Bytes: js})
		switch {
		case err != nil:
			if !errors.Is(err, ErrGarbage) && !errors.Is(err, ErrException) && !errors.Is(err, ErrTimeout) {
				t.Fatalf("Decode of %q: %v, want garbage or an exception", js, err)
			}
		case len(msgs) > MaxMessages || len(errs) > 2*MaxMessages:
			t.Fatalf("Decode of %q: %d messages, %d errors", js, len(msgs), len(errs))
		default:
			for _, m := range msgs {
				if !IsUp(m.Type) {
					t.Fatalf("Decode of %q returned a message of type %q", js, m.Type)
				}
				if _, err := json.Marshal(m); err != nil {
					t.Fatalf("Decode of %q returned a message that does not marshal: %v", js, err)
				}
			}
		}
		res, err := p.Authenticate(ctx, AuthInput{ClientID: string(js)})
		switch {
		case err != nil:
			if !errors.Is(err, ErrGarbage) && !errors.Is(err, ErrException) && !errors.Is(err, ErrTimeout) {
				t.Fatalf("Authenticate of %q: %v, want garbage or an exception", js, err)
			}
		case res.Success && res.DeviceID == "":
			t.Fatalf("Authenticate of %q succeeded without a device", js)
		}
	})
}

// benchCodec decodes a sensor frame into one typed property report.
const benchCodec = `
function decode(input) {
  var b = input.bytes;
  var raw = (b[1] << 8) | b[2];
  if (raw & 0x8000) raw -= 0x10000;
  return {messages: [{type: "reportProperty", deviceId: input.deviceId, properties: {temperature: raw / 10}}]};
}
function encode(msg) { return {bytes: []}; }
`

// BenchmarkPoolDecode decodes property reports of 256 devices in parallel. The benchmarks
// count timeouts rather than fail on them: a decode takes tens of microseconds, so one that
// outlasts CallTimeout was starved of CPU on a shared machine.
func BenchmarkPoolDecode(b *testing.B) {
	p := newPool(b, benchCodec, 0)
	b.Logf("pool of %d runtimes", p.Size())
	var ids []string
	for i := range 256 {
		ids = append(ids, fmt.Sprintf("device-%d", i))
	}
	var g, timeouts atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n := int(g.Add(1)) * 7919
		for pb.Next() {
			n++
			msgs, _, err := p.Decode(context.Background(), DecodeInput{Transport: "MQTT", DeviceID: ids[n%len(ids)], Bytes: []byte{1, 0, 215}})
			if errors.Is(err, ErrTimeout) {
				timeouts.Add(1)
				continue
			}
			if err != nil || len(msgs) != 1 {
				b.Fatalf("Decode = %v, %v", msgs, err)
			}
		}
	})
	b.ReportMetric(float64(timeouts.Load()), "timeouts")
}

// BenchmarkCodecDecode is the same load on a single-runtime Codec, for comparison.
func BenchmarkCodecDecode(b *testing.B) {
	c, err := Compile(&Package{Manifest: Manifest{Main: "codec.js"}, Source: benchCodec})
	if err != nil {
		b.Fatal(err)
	}
	var timeouts atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := c.Decode(context.Background(), DecodeInput{Transport: "MQTT", DeviceID: "device-1", Bytes: []byte{1, 0, 215}})
			if errors.Is(err, ErrTimeout) {
				timeouts.Add(1)
				continue
			}
			if err != nil || len(res.Messages) != 1 {
				b.Fatalf("Decode = %v, %v", res, err)
			}
		}
	})
	b.ReportMetric(float64(timeouts.Load()), "timeouts")
}
