package official

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/protocol"
)

// unhex joins hex fragments, ignoring spaces, so vectors can be annotated field by field.
func unhex(t testing.TB, parts ...string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(strings.Join(parts, ""), " ", ""))
	if err != nil {
		t.Fatalf("bad hex in test vector: %v", err)
	}
	return b
}

const (
	goldenTS  = int64(1678344096015) // 00000186c51a890f, binary-protocol.md's online example
	tsHex     = "00000186c51a890f"
	idTest    = "0b 0004 74657374" // deviceId "test" as SPEC's typed STRING
	temp3288  = "0004 74656d70 0a 404070a3d70a3d71"
	tempFloat = 32.88
)

// goldenFrames are byte-exact vectors, each derived by hand from what the named reference
// class writes, with SPEC §5.2's typed deviceId in the header (the reference since 2022
// writes the deviceId without its 0x0b; see TestReferenceDialect for that layout).
// Java's Integer maps to Go's int32 (INT32), Double to float64 (DOUBLE).
var goldenFrames = []struct {
	name  string
	frame Frame
	hex   []string
}{
	{
		// BinaryMessageType.write + BinaryDeviceOnlineMessage.write (DataType.STRING.write
		// of the token); BinaryMessageTypeTest.testOnline with deviceId "1000".
		name:  "online",
		frame: Frame{Type: FrameOnline, Timestamp: goldenTS, Seq: 0xffff, DeviceID: "1000", Key: "admin"},
		// seq 0xffff: the reference's MsgIdHolder.next(null) is -1, written as a short.
		hex: []string{"01", tsHex, "ffff", "0b 0004 31303030", "0005 61646d696e"},
	},
	{
		// BinaryAcknowledgeDeviceMessage.write: one AckCode ordinal byte; TcpDeviceMessageCodec.ack
		// echoes the acknowledged frame's seq and deviceId.
		name:  "ack ok",
		frame: Frame{Type: FrameAck, Timestamp: goldenTS, Seq: 1, DeviceID: "test", AckCode: AckOK},
		hex:   []string{"02", tsHex, "0001", idTest, "00"},
	},
	{
		name:  "ack unauthorised",
		frame: Frame{Type: FrameAck, Timestamp: goldenTS, Seq: 7, DeviceID: "test", AckCode: AckUnauthorized},
		hex:   []string{"02", tsHex, "0007", idTest, "01"},
	},
	{
		// BinaryReportPropertyMessage.write: DataType.OBJECT.write (no type byte) of
		// {temp: 32.88}; BinaryMessageTypeTest.testReport (first seq of a device is 1).
		name: "reportProperty",
		frame: Frame{Type: FrameReportProperty, Timestamp: goldenTS, Seq: 1, DeviceID: "test",
			Message: protocol.Message{Properties: map[string]any{"temp": tempFloat}}},
		hex: []string{"03", tsHex, "0001", idTest, "0001", temp3288},
	},
	{
		// BinaryReadPropertyMessage.write: DataType.ARRAY.write (no type byte) of ["temp"].
		name: "readProperty",
		frame: Frame{Type: FrameReadProperty, Timestamp: goldenTS, Seq: 2, DeviceID: "test",
			Message: protocol.Message{PropertyNames: []string{"temp"}}},
		hex: []string{"04", tsHex, "0002", idTest, "0001", "0b 0004 74656d70"},
	},
	{
		// BinaryReplyMessage.write (writeBoolean(true)) + BinaryReadPropertyMessageReply.doWriteSuccess.
		name: "readPropertyReply",
		frame: Frame{Type: FrameReadPropertyReply, Timestamp: goldenTS, Seq: 2, DeviceID: "test",
			Message: protocol.Message{Success: protocol.Bool(true), Properties: map[string]any{"temp": tempFloat}}},
		hex: []string{"05", tsHex, "0002", idTest, "01", "0001", temp3288},
	},
	{
		// BinaryWritePropertyMessage.write.
		name: "writeProperty",
		frame: Frame{Type: FrameWriteProperty, Timestamp: goldenTS, Seq: 3, DeviceID: "test",
			Message: protocol.Message{Properties: map[string]any{"temp": tempFloat}}},
		hex: []string{"06", tsHex, "0003", idTest, "0001", temp3288},
	},
	{
		// BinaryWritePropertyMessageReply.doWriteSuccess.
		name: "writePropertyReply",
		frame: Frame{Type: FrameWritePropertyReply, Timestamp: goldenTS, Seq: 3, DeviceID: "test",
			Message: protocol.Message{Success: protocol.Bool(true), Properties: map[string]any{"temp": tempFloat}}},
		hex: []string{"07", tsHex, "0003", idTest, "01", "0001", temp3288},
	},
	{
		// BinaryReplyMessage.write on failure: writeBoolean(false), then DataType.writeTo
		// (typed) of the code and of the message.
		name: "writePropertyReply failure",
		frame: Frame{Type: FrameWritePropertyReply, Timestamp: goldenTS, Seq: 3, DeviceID: "test",
			Message: protocol.Message{Success: protocol.Bool(false), Code: "error", Message: "boom"}},
		hex: []string{"07", tsHex, "0003", idTest, "00", "0b 0005 6572726f72", "0b 0004 626f6f6d"},
	},
	{
		// BinaryFunctionInvokeMessage.write: DataType.STRING.write of the function id, then
		// DataType.OBJECT.write of inputsToMap(); BinaryMessageTypeTest.testFunction
		// (functionId "123", addInput("test", 1)).
		name: "function",
		frame: Frame{Type: FrameFunction, Timestamp: goldenTS, Seq: 4, DeviceID: "test",
			Message: protocol.Message{FunctionID: "123", Inputs: map[string]any{"test": int32(1)}}},
		hex: []string{"08", tsHex, "0004", idTest, "0003 313233", "0001", "0004 74657374 04 00000001"},
	},
	{
		// BinaryFunctionInvokeMessageReply.doWriteSuccess: DataType.writeTo (typed) of the
		// function id, null here as in BinaryMessageTypeTest.testFunction, then of the
		// output 123.
		name: "functionReply",
		frame: Frame{Type: FrameFunctionReply, Timestamp: goldenTS, Seq: 4, DeviceID: "test",
			Message: protocol.Message{Success: protocol.Bool(true), Output: int32(123)}},
		hex: []string{"09", tsHex, "0004", idTest, "01", "00", "04 0000007b"},
	},
	{
		name: "functionReply with function id and object output",
		frame: Frame{Type: FrameFunctionReply, Timestamp: goldenTS, Seq: 5, DeviceID: "test",
			Message: protocol.Message{Success: protocol.Bool(true), FunctionID: "f", Output: map[string]any{"ok": true}}},
		hex: []string{"09", tsHex, "0005", idTest, "01", "0b 0001 66", "0e 0001 0002 6f6b 01 01"},
	},
	{
		// BinaryEventMessage.write: DataType.STRING.write of the event id, then
		// DataType.OBJECT.write of the data.
		name: "event",
		frame: Frame{Type: FrameEvent, Timestamp: goldenTS, Seq: 6, DeviceID: "test",
			Message: protocol.Message{Event: "fire", Data: map[string]any{"level": int32(3)}}},
		hex: []string{"0a", tsHex, "0006", idTest, "0004 66697265", "0001", "0005 6c6576656c 04 00000003"},
	},
	{
		// A frame for the connection's device: deviceId NULL.
		name: "reportProperty for the connection's device",
		frame: Frame{Type: FrameReportProperty, Timestamp: goldenTS, Seq: 9,
			Message: protocol.Message{Properties: map[string]any{"temp": tempFloat}}},
		hex: []string{"03", tsHex, "0009", "00", "0001", temp3288},
	},
}

func TestGoldenFrames(t *testing.T) {
	for _, g := range goldenFrames {
		t.Run(g.name, func(t *testing.T) {
			want := unhex(t, g.hex...)
			got, err := EncodeFrame(g.frame)
			if err != nil {
				t.Fatalf("EncodeFrame: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("EncodeFrame\n got %x\nwant %x", got, want)
			}
			tcp, err := EncodeTCP(g.frame)
			if err != nil {
				t.Fatalf("EncodeTCP: %v", err)
			}
			if n := len(want); !bytes.Equal(tcp, append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, want...)) {
				t.Fatalf("EncodeTCP %x, want length %d then the frame", tcp, n)
			}

			f, err := DecodeTCP(tcp)
			if err != nil {
				t.Fatalf("DecodeTCP: %v", err)
			}
			if f.Type != g.frame.Type || f.Timestamp != g.frame.Timestamp || f.Seq != g.frame.Seq ||
				f.DeviceID != g.frame.DeviceID || f.Key != g.frame.Key || f.AckCode != g.frame.AckCode {
				t.Fatalf("decoded header %+v, want %+v", f, g.frame)
			}
			again, err := EncodeFrame(f)
			if err != nil || !bytes.Equal(again, want) {
				t.Fatalf("re-encoding the decoded frame: %x, %v; want %x", again, err, want)
			}
		})
	}
}

func TestDecodedMessages(t *testing.T) {
	decode := func(name string) Frame {
		t.Helper()
		for _, g := range goldenFrames {
			if g.name == name {
				f, err := DecodeFrame(unhex(t, g.hex...))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				return f
			}
		}
		t.Fatalf("no golden frame %q", name)
		return Frame{}
	}
	cases := []struct {
		name string
		want protocol.Message
	}{
		{"online", protocol.Message{Type: protocol.TypeOnline, DeviceID: "1000", Timestamp: goldenTS, MessageID: "65535"}},
		{"reportProperty", protocol.Message{Type: protocol.TypeReportProperty, DeviceID: "test", Timestamp: goldenTS,
			MessageID: "1", Properties: map[string]any{"temp": 32.88}}},
		{"readProperty", protocol.Message{Type: protocol.TypeReadProperty, DeviceID: "test", Timestamp: goldenTS,
			MessageID: "2", PropertyNames: []string{"temp"}}},
		{"writePropertyReply failure", protocol.Message{Type: protocol.TypeWritePropertyReply, DeviceID: "test",
			Timestamp: goldenTS, MessageID: "3", Success: protocol.Bool(false), Code: "error", Message: "boom"}},
		{"function", protocol.Message{Type: protocol.TypeInvokeFunction, DeviceID: "test", Timestamp: goldenTS,
			MessageID: "4", FunctionID: "123", Inputs: map[string]any{"test": int64(1)}}},
		{"functionReply", protocol.Message{Type: protocol.TypeInvokeFunctionReply, DeviceID: "test", Timestamp: goldenTS,
			MessageID: "4", Success: protocol.Bool(true), Output: int64(123)}},
		{"event", protocol.Message{Type: protocol.TypeEvent, DeviceID: "test", Timestamp: goldenTS,
			MessageID: "6", Event: "fire", Data: map[string]any{"level": int64(3)}}},
		{"reportProperty for the connection's device", protocol.Message{Type: protocol.TypeReportProperty,
			Timestamp: goldenTS, MessageID: "9", Properties: map[string]any{"temp": 32.88}}},
		{"ack ok", protocol.Message{}},
	}
	for _, c := range cases {
		if got := decode(c.name).Message; !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: decoded\n %#v\nwant\n %#v", c.name, got, c.want)
		}
	}
}

// TestReferenceDialect checks Dialect{UntypedDeviceID: true} against the two hex examples
// of the reference's binary-protocol.md, which its current encoder agrees with.
func TestReferenceDialect(t *testing.T) {
	ref := Dialect{UntypedDeviceID: true}
	// "设备上线" example, byte for byte.
	online := unhex(t, "000000270100000186c51a890f0001001331363531383533343133303332383934343634000561646d696e")
	f, err := ref.DecodeTCP(online)
	if err != nil {
		t.Fatal(err)
	}
	want := Frame{Type: FrameOnline, Timestamp: goldenTS, Seq: 1, DeviceID: "1651853413032894464", Key: "admin",
		Message: protocol.Message{Type: protocol.TypeOnline, DeviceID: "1651853413032894464", Timestamp: goldenTS, MessageID: "1"}}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("decoded %+v, want %+v", f, want)
	}
	if b, err := ref.EncodeTCP(want); err != nil || !bytes.Equal(b, online) {
		t.Fatalf("EncodeTCP = %x, %v; want %x", b, err, online)
	}
	// The SPEC dialect writes the same frame one byte longer, with the 0x0b.
	typed, err := EncodeTCP(want)
	if err != nil {
		t.Fatal(err)
	}
	if wantTyped := unhex(t, "00000028 01", tsHex, "0001", "0b 0013", hex.EncodeToString([]byte(want.DeviceID)), "0005 61646d696e"); !bytes.Equal(typed, wantTyped) {
		t.Fatalf("typed EncodeTCP = %x, want %x", typed, wantTyped)
	}
	// In the SPEC dialect, the reference's untyped bytes are garbage or another frame,
	// never this one.
	if g, err := DecodeTCP(online); err == nil && g.DeviceID == want.DeviceID {
		t.Fatalf("SPEC dialect decoded the untyped frame as %+v", g)
	}

	// "设备数据上报" example: its length prefix (0x6c) is wrong, and the secureKey the
	// example appends after the OBJECT is ignored as the reference ignores it.
	report := unhex(t, "0000006C0300000186C567FA7900020013313635313835333431333033323839343436340001000474656d700B000433362e35000561646d696e")
	if _, err := ref.DecodeTCP(report); !errors.Is(err, ErrFrame) {
		t.Fatalf("DecodeTCP with a wrong length prefix: %v, want ErrFrame", err)
	}
	f, err = ref.DecodeFrame(report[4:])
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != FrameReportProperty || f.DeviceID != "1651853413032894464" || f.Seq != 2 ||
		!reflect.DeepEqual(f.Message.Properties, map[string]any{"temp": "36.5"}) {
		t.Fatalf("decoded %+v", f)
	}
}

func TestKeepalive(t *testing.T) {
	// BinaryMessageType.write(keepalive, buf) writes only the type and a timestamp.
	f, err := DecodeFrame(unhex(t, "00", tsHex))
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != FrameKeepalive || f.Timestamp != goldenTS || f.Seq != 0 || f.DeviceID != "" {
		t.Fatalf("decoded %+v", f)
	}
	// A lone type byte is a keepalive too (the reference reads nothing more).
	if f, err := DecodeFrame([]byte{0}); err != nil || f.Type != FrameKeepalive {
		t.Fatalf("lone 0x00: %+v, %v", f, err)
	}
	// Encoded, a keepalive has SPEC's full header.
	b, err := EncodeFrame(Frame{Type: FrameKeepalive, Timestamp: goldenTS, Seq: 3, DeviceID: "test"})
	if want := unhex(t, "00", tsHex, "0003", idTest); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("EncodeFrame = %x, %v; want %x", b, err, want)
	}
	if f, err := DecodeFrame(b); err != nil || f.Seq != 3 || f.DeviceID != "test" {
		t.Fatalf("decoded %+v, %v", f, err)
	}
}

// TestDataTypes covers each of the 15 data types, as DataType.write of the reference
// writes the Java type named.
func TestDataTypes(t *testing.T) {
	cases := []struct {
		in      any // Go value to encode; nil skips encoding
		hex     string
		decoded any
	}{
		{nil, "00", nil},                                        // NULL
		{true, "01 01", true},                                   // BOOLEAN (Boolean)
		{false, "01 00", false},                                 //
		{int8(-2), "02 fe", int64(-2)},                          // INT8 (Byte)
		{int16(-300), "03 fed4", int64(-300)},                   // INT16 (Short)
		{int32(-70000), "04 fffeee90", int64(-70000)},           // INT32 (Integer)
		{int64(1) << 40, "05 0000010000000000", int64(1) << 40}, // INT64 (Long)
		{uint8(200), "06 c8", int64(200)},                       // UINT8
		{uint16(60000), "07 ea60", int64(60000)},                // UINT16
		{uint32(4000000000), "08 ee6b2800", int64(4000000000)},  // UINT32
		{float32(32.88), "09 4203851f", 32.88},                  // FLOAT (Float), read back as its decimal
		{32.88, "0a 404070a3d70a3d71", 32.88},                   // DOUBLE (Double)
		{"温度", "0b 0006 e6b8a9e5baa6", "温度"},                    // STRING, UTF-8
		{[]byte{1, 2, 3}, "0c 0003 010203", []byte{1, 2, 3}},    // BINARY (byte[])
		{[]any{"a", int32(1), nil}, "0d 0003 0b 0001 61 04 00000001 00", []any{"a", int64(1), nil}}, // ARRAY
		{map[string]any{"b": false, "a": "x"}, "0e 0002 0001 61 0b 0001 78 0001 62 01 00",
			map[string]any{"a": "x", "b": false}}, // OBJECT, keys sorted
	}
	for _, c := range cases {
		want := unhex(t, c.hex)
		got, err := AppendValue(nil, c.in)
		if err != nil {
			t.Fatalf("AppendValue(%#v): %v", c.in, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("AppendValue(%#v) = %x, want %x", c.in, got, want)
		}
		v, n, err := DecodeValue(want)
		if err != nil || n != len(want) || !reflect.DeepEqual(v, c.decoded) {
			t.Errorf("DecodeValue(%x) = %#v, %d, %v; want %#v, %d", want, v, n, err, c.decoded, len(want))
		}
	}
}

func TestValueMapping(t *testing.T) {
	cases := []struct {
		in  any
		hex string
	}{
		{1, "04 00000001"}, // int that fits: INT32
		{int64(math.MaxInt32) + 1, "05 0000000080000000"}, // else INT64
		{uint64(5), "04 00000005"},
		{[]string{"x"}, "0d 0001 0b 0001 78"},                   // any slice: ARRAY
		{map[string]int{"k": 2}, "0e 0001 0001 6b 04 00000002"}, // any string-keyed map
		{float64(2), "0a 4000000000000000"},                     // integral float64 stays DOUBLE
	}
	for _, c := range cases {
		got, err := AppendValue(nil, c.in)
		if want := unhex(t, c.hex); err != nil || !bytes.Equal(got, want) {
			t.Errorf("AppendValue(%#v) = %x, %v; want %x", c.in, got, err, want)
		}
	}
	for _, bad := range []any{uint64(math.MaxUint64), struct{}{}, map[int]any{1: 2}, strings.Repeat("x", MaxLength+1)} {
		if _, err := AppendValue(nil, bad); !errors.Is(err, ErrUnsupported) {
			t.Errorf("AppendValue(%T): %v, want ErrUnsupported", bad, err)
		}
	}
	// NaN and infinities have no JSON form, so they decode as nil.
	for _, h := range []string{"0a 7ff8000000000001", "0a 7ff0000000000000", "09 7fc00000", "09 ff800000"} {
		if v, _, err := DecodeValue(unhex(t, h)); err != nil || v != nil {
			t.Errorf("DecodeValue(%s) = %v, %v; want nil", h, v, err)
		}
	}
	// A cyclic value stops at MaxDepth instead of looping.
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	if _, err := AppendValue(nil, cyclic); !errors.Is(err, ErrUnsupported) {
		t.Errorf("cyclic value: %v, want ErrUnsupported", err)
	}
}

func TestGarbage(t *testing.T) {
	cases := map[string]string{
		"empty":                  "",
		"unknown type":           "0b" + tsHex + "0001 00",
		"short timestamp":        "03 0000",
		"missing seq":            "03" + tsHex,
		"deviceId of type INT32": "03" + tsHex + "0001 04 00000001 0000",
		"deviceId too long":      "03" + tsHex + "0001 0b 00ff 74657374",
		"object count too big":   "03" + tsHex + "0001 00 ffff 0001 61 00",
		"array count too big":    "04" + tsHex + "0001 00 ffff 00",
		"name not a string":      "04" + tsHex + "0001 00 0001 04 00000001",
		"unknown data type":      "03" + tsHex + "0001 00 0001 0001 61 0f",
		"unknown ack code":       "02" + tsHex + "0001 00 03",
		"truncated reply":        "05" + tsHex + "0001 00",
		"reply code an object":   "05" + tsHex + "0001 00 00 0e 0000 00",
		"function id an int":     "09" + tsHex + "0001 00 01 04 00000001 00",
	}
	for name, h := range cases {
		if _, err := DecodeFrame(unhex(t, h)); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v, want ErrFrame", name, err)
		}
	}
	// Nesting: MaxDepth arrays decode, one more does not.
	nest := func(depth int) []byte {
		b := []byte{}
		for range depth {
			b = append(b, byte(DataArray), 0, 1)
		}
		return append(b, byte(DataNull))
	}
	if _, _, err := DecodeValue(nest(MaxDepth)); err != nil {
		t.Errorf("depth %d: %v", MaxDepth, err)
	}
	if _, _, err := DecodeValue(nest(MaxDepth + 1)); !errors.Is(err, ErrFrame) {
		t.Errorf("depth %d: %v, want ErrFrame", MaxDepth+1, err)
	}
	if _, err := DecodeTCP([]byte{0, 0, 0, 9, 0}); !errors.Is(err, ErrFrame) {
		t.Errorf("DecodeTCP with a short body: %v", err)
	}
}

func TestReadTCP(t *testing.T) {
	var stream []byte
	for _, g := range goldenFrames[:3] {
		b, err := EncodeTCP(g.frame)
		if err != nil {
			t.Fatal(err)
		}
		stream = append(stream, b...)
	}
	r := bytes.NewReader(stream)
	for _, g := range goldenFrames[:3] {
		f, err := ReadTCP(r, 1024)
		if err != nil || f.Type != g.frame.Type || f.Seq != g.frame.Seq {
			t.Fatalf("ReadTCP = %+v, %v; want %s", f, err, g.name)
		}
	}
	if _, err := ReadTCP(r, 1024); err != io.EOF {
		t.Fatalf("ReadTCP at the end: %v, want io.EOF", err)
	}
	if _, err := ReadTCP(bytes.NewReader([]byte{0, 1, 0, 0}), 1024); !errors.Is(err, ErrFrame) {
		t.Fatalf("ReadTCP over maxLen: %v, want ErrFrame", err)
	}
	if _, err := ReadTCP(bytes.NewReader([]byte{0, 0, 0, 5, 1}), 1024); err != io.ErrUnexpectedEOF {
		t.Fatalf("ReadTCP of a cut frame: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestFrameOfAndAck(t *testing.T) {
	m := protocol.Message{Type: protocol.TypeWriteProperty, DeviceID: "d1", Timestamp: 5, MessageID: "m-1",
		Properties: map[string]any{"on": true}}
	f, err := FrameOf(m, 42)
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != FrameWriteProperty || f.Seq != 42 || f.DeviceID != "d1" || f.Timestamp != 5 {
		t.Fatalf("FrameOf = %+v", f)
	}
	b, err := EncodeFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	g, err := DecodeFrame(b)
	if err != nil || !reflect.DeepEqual(g.Message.Properties, m.Properties) || g.Message.MessageID != "42" {
		t.Fatalf("decoded %+v, %v", g, err)
	}
	for _, typ := range []string{protocol.TypeOffline, protocol.TypeTimeSync, protocol.TypeFirmwareUpgrade, "nonsense"} {
		if _, err := FrameOf(protocol.Message{Type: typ}, 1); !errors.Is(err, ErrUnsupported) {
			t.Errorf("FrameOf(%s): %v, want ErrUnsupported", typ, err)
		}
	}
	now := time.UnixMilli(goldenTS)
	ack := AckFor(Frame{Type: FrameOnline, Seq: 1, DeviceID: "test"}, AckOK, now)
	if b, err := EncodeFrame(ack); err != nil || !bytes.Equal(b, unhex(t, goldenFrames[1].hex...)) {
		t.Fatalf("AckFor encodes as %x, %v; want the golden ack", b, err)
	}
	if _, err := EncodeFrame(Frame{Type: FrameEvent, Message: protocol.Message{Event: "e", Data: "text"}}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("event with non-object data: %v, want ErrUnsupported", err)
	}
	if FrameFunctionReply.String() != "functionReply" || AckUnauthorized.String() != "noAuth" || FrameType(99).String() != "0x63" {
		t.Fatal("String names differ from the reference's")
	}
}

// TestAllocationBound feeds nested arrays that each claim the most elements the remaining
// bytes could hold: trusting the counts would allocate hundreds of times the input.
func TestAllocationBound(t *testing.T) {
	var in []byte
	for range MaxDepth {
		in = append(in, byte(DataArray), 0xff, 0xff)
	}
	in = append(in, make([]byte, MaxLength)...) // NULLs
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := DecodeValue(in)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFrame) {
		t.Fatalf("DecodeValue: %v, want ErrFrame (the outer arrays are short)", err)
	}
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(100*len(in)); got > limit {
		t.Fatalf("decoding %d bytes allocated %d bytes, more than %d", len(in), got, limit)
	}
}
