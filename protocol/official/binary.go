package official

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/linkops/linkops/protocol"
)

// FrameType is the first byte of a binary message; the numbers are the ordinals of the
// reference's binary/BinaryMessageType enum, so they must never be renumbered.
type FrameType uint8

// The binary message types of SPEC §5.2, plus event (0x0A), which the reference added in
// its 3.0 package (BinaryEventMessage).
const (
	FrameKeepalive          FrameType = iota // no body
	FrameOnline                              // body: the secureKey, uint16 length + UTF-8
	FrameAck                                 // body: one AckCode byte
	FrameReportProperty                      // body: OBJECT of properties
	FrameReadProperty                        // body: ARRAY of property names
	FrameReadPropertyReply                   // body: reply, success payload OBJECT of properties
	FrameWriteProperty                       // body: OBJECT of properties
	FrameWritePropertyReply                  // body: reply, success payload OBJECT of properties
	FrameFunction                            // body: function id (uint16 length + UTF-8), OBJECT of inputs
	FrameFunctionReply                       // body: reply, success payload function id and output as typed values
	FrameEvent                               // body: event id (uint16 length + UTF-8), OBJECT of data
)

var frameNames = [...]string{
	"keepalive", "online", "ack", "reportProperty", "readProperty", "readPropertyReply",
	"writeProperty", "writePropertyReply", "function", "functionReply", "event",
}

// String returns the reference's name for t.
func (t FrameType) String() string {
	if int(t) < len(frameNames) {
		return frameNames[t]
	}
	return "0x" + strconv.FormatUint(uint64(t), 16)
}

// AckCode is the body of an ack frame: the ordinal of the reference's binary/AckCode.
type AckCode uint8

// Ack codes.
const (
	AckOK           AckCode = iota // accepted
	AckUnauthorized                // no (valid) online frame first: the connection is closed
	AckUnsupported                 // a message the platform does not handle
)

// String returns the reference's name for c.
func (c AckCode) String() string {
	switch c {
	case AckOK:
		return "ok"
	case AckUnauthorized:
		return "noAuth"
	case AckUnsupported:
		return "unsupportedMessage"
	}
	return "0x" + strconv.FormatUint(uint64(c), 16)
}

// Frame is one binary message, the TCP frame without its length prefix (and the message
// inside a UDP datagram).
//
// Decoding fills Message for online and 0x03-0x0A (not for keepalive and ack): its Type is
// the protocol.Message type, DeviceID is the frame's, Timestamp the frame's when positive
// (the reference ignores others), and MessageID the decimal Seq when Seq is positive, as
// the reference does when it has no downlink of its own waiting on that seq; a gateway that
// maps seqs to the messageIds of its downlinks replaces it in replies.
//
// Encoding writes Type, Timestamp, Seq and DeviceID from the Frame, and the body from Key
// (online), AckCode (ack) or Message (the rest); Message.DeviceID, Timestamp and
// MessageID are not written. A reply's Message.Success of nil is written as success, the
// reference's default.
type Frame struct {
	Type      FrameType
	Timestamp int64 // milliseconds since the epoch
	Seq       uint16
	// DeviceID "" is written as NULL: the connection's device.
	DeviceID string
	Key      string  // online
	AckCode  AckCode // ack
	Message  protocol.Message
}

// Dialect is how a binary message carries its header's deviceId. The zero Dialect is SPEC
// §5.2's: a typed value, 0x0B + uint16 length + UTF-8, or 0x00 NULL. UntypedDeviceID is
// what the reference's BinaryMessageType writes since its commit 9a81923 (2022, every
// jetlinks-official-protocol release since 3.0) and what its binary-protocol.md documents:
// a bare uint16 length + UTF-8, where the empty string stands for the connection's device.
// The two cannot be told apart from the bytes (0x00 is both NULL and the first byte of a
// short length), so a gateway speaks one of them.
type Dialect struct {
	UntypedDeviceID bool
}

// DecodeFrame reads one binary message (no length prefix) in SPEC §5.2's dialect.
func DecodeFrame(b []byte) (Frame, error) { return Dialect{}.DecodeFrame(b) }

// EncodeFrame writes one binary message (no length prefix) in SPEC §5.2's dialect.
func EncodeFrame(f Frame) ([]byte, error) { return Dialect{}.AppendFrame(nil, f) }

// DecodeTCP reads one length-prefixed TCP frame in SPEC §5.2's dialect.
func DecodeTCP(b []byte) (Frame, error) { return Dialect{}.DecodeTCP(b) }

// EncodeTCP writes one length-prefixed TCP frame in SPEC §5.2's dialect.
func EncodeTCP(f Frame) ([]byte, error) { return Dialect{}.EncodeTCP(f) }

// ReadTCP reads one length-prefixed TCP frame from r in SPEC §5.2's dialect.
func ReadTCP(r io.Reader, maxLen int) (Frame, error) { return Dialect{}.ReadTCP(r, maxLen) }

// DecodeFrame reads one binary message (no length prefix). Bytes after the message are
// ignored, as the reference ignores them: devices written after binary-protocol.md's report
// example send their secureKey after every message.
func (dl Dialect) DecodeFrame(b []byte) (Frame, error) {
	d := valueDecoder{b: b}
	t, err := d.u8("message type")
	if err != nil {
		return Frame{}, err
	}
	f := Frame{Type: FrameType(t)}
	if f.Type > FrameEvent {
		return Frame{}, fmt.Errorf("%w: unknown message type 0x%02x", ErrFrame, t)
	}
	if f.Type == FrameKeepalive {
		dl.keepaliveHeader(&d, &f)
		return f, nil
	}
	ts, err := d.u64("timestamp")
	if err != nil {
		return Frame{}, err
	}
	f.Timestamp = int64(ts)
	if f.Seq, err = d.u16("seq"); err != nil {
		return Frame{}, err
	}
	if f.DeviceID, err = dl.readDeviceID(&d); err != nil {
		return Frame{}, err
	}
	if err := f.readBody(&d); err != nil {
		return Frame{}, fmt.Errorf("%s: %w", f.Type, err)
	}
	return f, nil
}

// keepaliveHeader reads what it can of a keepalive's header. The reference reads nothing
// after a keepalive's type byte and writes only the type and a timestamp, while SPEC gives
// every frame the full header, so each field is taken only if it is all there.
func (dl Dialect) keepaliveHeader(d *valueDecoder, f *Frame) {
	ts, err := d.u64("timestamp")
	if err != nil {
		return
	}
	f.Timestamp = int64(ts)
	if f.Seq, err = d.u16("seq"); err != nil {
		return
	}
	if id, err := dl.readDeviceID(d); err == nil {
		f.DeviceID = id
	}
}

func (dl Dialect) readDeviceID(d *valueDecoder) (string, error) {
	if dl.UntypedDeviceID {
		return d.str("deviceId")
	}
	t, err := d.u8("deviceId type")
	if err != nil {
		return "", err
	}
	switch DataType(t) {
	case DataNull:
		return "", nil
	case DataString:
		return d.str("deviceId")
	}
	return "", fmt.Errorf("%w: deviceId of data type 0x%02x, want STRING or NULL", ErrFrame, t)
}

func (f *Frame) readBody(d *valueDecoder) error {
	if f.Type == FrameAck {
		c, err := d.u8("ack code")
		if err != nil {
			return err
		}
		if f.AckCode = AckCode(c); f.AckCode > AckUnsupported {
			return fmt.Errorf("%w: unknown ack code 0x%02x", ErrFrame, c)
		}
		return nil
	}
	m := protocol.Message{DeviceID: f.DeviceID}
	if f.Timestamp > 0 {
		m.Timestamp = f.Timestamp
	}
	if f.Seq > 0 {
		m.MessageID = strconv.Itoa(int(f.Seq))
	}
	var err error
	switch f.Type {
	case FrameOnline:
		m.Type = protocol.TypeOnline
		f.Key, err = d.str("secureKey")
	case FrameReportProperty, FrameWriteProperty:
		m.Type = protocol.TypeReportProperty
		if f.Type == FrameWriteProperty {
			m.Type = protocol.TypeWriteProperty
		}
		m.Properties, err = d.object(1)
	case FrameReadProperty:
		m.Type = protocol.TypeReadProperty
		m.PropertyNames, err = readNames(d)
	case FrameReadPropertyReply, FrameWritePropertyReply:
		m.Type = protocol.TypeReadPropertyReply
		if f.Type == FrameWritePropertyReply {
			m.Type = protocol.TypeWritePropertyReply
		}
		err = readReply(d, &m, func() (err error) {
			m.Properties, err = d.object(1)
			return err
		})
	case FrameFunction:
		m.Type = protocol.TypeInvokeFunction
		if m.FunctionID, err = d.str("function id"); err == nil {
			m.Inputs, err = d.object(1)
		}
	case FrameFunctionReply:
		m.Type = protocol.TypeInvokeFunctionReply
		err = readReply(d, &m, func() error {
			id, err := d.value(0)
			if err != nil {
				return err
			}
			if s, ok := id.(string); ok {
				m.FunctionID = s
			} else if id != nil {
				return fmt.Errorf("%w: function id of Go type %T, want STRING or NULL", ErrFrame, id)
			}
			m.Output, err = d.value(0)
			return err
		})
	case FrameEvent:
		m.Type = protocol.TypeEvent
		if m.Event, err = d.str("event id"); err == nil {
			var data map[string]any
			data, err = d.object(1)
			m.Data = data
		}
	}
	if err != nil {
		return err
	}
	f.Message = m
	return nil
}

func readNames(d *valueDecoder) ([]string, error) {
	vs, err := d.array(1)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(vs))
	for i, v := range vs {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%w: property name of Go type %T, want STRING", ErrFrame, v)
		}
		names[i] = s
	}
	return names, nil
}

// readReply reads the reference's BinaryReplyMessage: a success byte, then the type's
// payload on success, or an error code and message as typed values.
func readReply(d *valueDecoder, m *protocol.Message, success func() error) error {
	ok, err := d.u8("success")
	if err != nil {
		return err
	}
	m.Success = protocol.Bool(ok != 0)
	if ok != 0 {
		return success()
	}
	if m.Code, err = readText(d, "error code"); err != nil {
		return err
	}
	m.Message, err = readText(d, "error message")
	return err
}

// readText reads a typed value that the reference turns into a string with
// String.valueOf: codes may be numbers (binary-protocol.md's example is an INT8).
func readText(d *valueDecoder, what string) (string, error) {
	v, err := d.value(0)
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	}
	return "", fmt.Errorf("%w: %s of Go type %T, want a string or a number", ErrFrame, what, v)
}

// EncodeFrame writes one binary message (no length prefix).
func (dl Dialect) EncodeFrame(f Frame) ([]byte, error) { return dl.AppendFrame(nil, f) }

// AppendFrame appends one binary message (no length prefix) to dst.
func (dl Dialect) AppendFrame(dst []byte, f Frame) ([]byte, error) {
	if f.Type > FrameEvent {
		return nil, fmt.Errorf("%w: binary message type 0x%02x", ErrUnsupported, uint8(f.Type))
	}
	dst = append(dst, byte(f.Type))
	dst = binary.BigEndian.AppendUint64(dst, uint64(f.Timestamp))
	dst = binary.BigEndian.AppendUint16(dst, f.Seq)
	var err error
	if dl.UntypedDeviceID {
		dst, err = appendString(dst, f.DeviceID)
	} else if f.DeviceID == "" {
		dst = append(dst, byte(DataNull))
	} else {
		dst, err = appendString(append(dst, byte(DataString)), f.DeviceID)
	}
	if err != nil {
		return nil, fmt.Errorf("deviceId: %w", err)
	}
	if dst, err = f.appendBody(dst); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Type, err)
	}
	return dst, nil
}

func (f *Frame) appendBody(dst []byte) ([]byte, error) {
	m := &f.Message
	switch f.Type {
	case FrameKeepalive:
		return dst, nil
	case FrameOnline:
		return appendString(dst, f.Key)
	case FrameAck:
		return append(dst, byte(f.AckCode)), nil
	case FrameReportProperty, FrameWriteProperty:
		return appendObject(dst, m.Properties, 1)
	case FrameReadProperty:
		return appendArray(dst, len(m.PropertyNames), func(i int) any { return m.PropertyNames[i] }, 1)
	case FrameReadPropertyReply, FrameWritePropertyReply:
		return appendReply(dst, m, func(dst []byte) ([]byte, error) {
			return appendObject(dst, m.Properties, 1)
		})
	case FrameFunction:
		dst, err := appendString(dst, m.FunctionID)
		if err != nil {
			return nil, err
		}
		return appendObject(dst, m.Inputs, 1)
	case FrameFunctionReply:
		return appendReply(dst, m, func(dst []byte) ([]byte, error) {
			dst, err := appendText(dst, m.FunctionID)
			if err != nil {
				return nil, err
			}
			return appendValue(dst, m.Output, 0)
		})
	case FrameEvent:
		data, ok := asObject(m.Data)
		if !ok {
			return nil, fmt.Errorf("%w: event data of Go type %T, the binary protocol carries an object", ErrUnsupported, m.Data)
		}
		dst, err := appendString(dst, m.Event)
		if err != nil {
			return nil, err
		}
		return appendObject(dst, data, 1)
	}
	return nil, fmt.Errorf("%w: binary message type 0x%02x", ErrUnsupported, uint8(f.Type))
}

func appendReply(dst []byte, m *protocol.Message, success func([]byte) ([]byte, error)) ([]byte, error) {
	if m.Success == nil || *m.Success {
		return success(append(dst, 1))
	}
	dst, err := appendText(append(dst, 0), m.Code)
	if err != nil {
		return nil, err
	}
	return appendText(dst, m.Message)
}

// appendText writes "" as NULL, as the reference writes a Java null.
func appendText(dst []byte, s string) ([]byte, error) {
	if s == "" {
		return append(dst, byte(DataNull)), nil
	}
	return appendValue(dst, s, 0)
}

// asObject returns v as an object's fields: nil is the empty object.
func asObject(v any) (map[string]any, bool) {
	switch x := v.(type) {
	case nil:
		return nil, true
	case map[string]any:
		return x, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	m := make(map[string]any, rv.Len())
	for it := rv.MapRange(); it.Next(); {
		m[it.Key().String()] = it.Value().Interface()
	}
	return m, true
}

// DecodeTCP reads one TCP frame: a uint32 big-endian length N, then exactly N bytes of
// binary message.
func (dl Dialect) DecodeTCP(b []byte) (Frame, error) {
	if len(b) < 4 {
		return Frame{}, fmt.Errorf("%w: %d bytes, a TCP frame starts with a 4-byte length", ErrFrame, len(b))
	}
	if n := binary.BigEndian.Uint32(b); uint64(n) != uint64(len(b)-4) {
		return Frame{}, fmt.Errorf("%w: length prefix %d, %d bytes follow it", ErrFrame, n, len(b)-4)
	}
	return dl.DecodeFrame(b[4:])
}

// EncodeTCP writes one TCP frame: the binary message behind its uint32 length.
func (dl Dialect) EncodeTCP(f Frame) ([]byte, error) {
	b, err := dl.AppendFrame(make([]byte, 4, 64), f)
	if err != nil {
		return nil, err
	}
	if uint64(len(b)-4) > math.MaxUint32 {
		return nil, fmt.Errorf("%w: frame of %d bytes", ErrUnsupported, len(b)-4)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b, nil
}

// ReadTCP reads one TCP frame from r, refusing a length over maxLen before reading it. An
// io.EOF before the first byte is returned as is, so a reader can stop at a clean end.
func (dl Dialect) ReadTCP(r io.Reader, maxLen int) (Frame, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(maxLen) {
		return Frame{}, fmt.Errorf("%w: frame of %d bytes, at most %d", ErrFrame, n, maxLen)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return dl.DecodeFrame(b)
}

// frameTypes maps message types to the binary message that carries them.
var frameTypes = map[string]FrameType{
	protocol.TypeOnline:              FrameOnline,
	protocol.TypeReportProperty:      FrameReportProperty,
	protocol.TypeReadProperty:        FrameReadProperty,
	protocol.TypeReadPropertyReply:   FrameReadPropertyReply,
	protocol.TypeWriteProperty:       FrameWriteProperty,
	protocol.TypeWritePropertyReply:  FrameWritePropertyReply,
	protocol.TypeInvokeFunction:      FrameFunction,
	protocol.TypeInvokeFunctionReply: FrameFunctionReply,
	protocol.TypeEvent:               FrameEvent,
}

// FrameOf builds the binary message carrying m, with m's DeviceID and Timestamp and the
// given seq (a gateway keeps its own seq counter per device and remembers which messageId
// each downlink seq stands for, as the reference's MsgIdHolder does). An online frame's
// Key is left for the caller. Types the binary protocol lacks (offline, time sync,
// firmware) are ErrUnsupported.
func FrameOf(m protocol.Message, seq uint16) (Frame, error) {
	t, ok := frameTypes[m.Type]
	if !ok {
		return Frame{}, fmt.Errorf("%w: no binary message carries %q", ErrUnsupported, m.Type)
	}
	return Frame{Type: t, Timestamp: m.Timestamp, Seq: seq, DeviceID: m.DeviceID, Message: m}, nil
}

// AckFor answers req with code. Like the reference's TcpDeviceMessageCodec.ack, it echoes
// the acknowledged frame's seq and deviceId and is stamped with the sender's clock.
func AckFor(req Frame, code AckCode, now time.Time) Frame {
	return Frame{Type: FrameAck, Timestamp: now.UnixMilli(), Seq: req.Seq, DeviceID: req.DeviceID, AckCode: code}
}
