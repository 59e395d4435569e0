package official

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
)

// DataType is the type byte of a typed value; the numbers are the ordinals of the
// reference's binary/DataType enum, so they must never be renumbered.
type DataType uint8

// The data types of SPEC §5.2. All numbers are big-endian.
const (
	DataNull    DataType = iota // no value bytes
	DataBoolean                 // one byte, non-zero is true
	DataInt8
	DataInt16
	DataInt32
	DataInt64
	DataUint8
	DataUint16
	DataUint32
	DataFloat  // IEEE 754 binary32
	DataDouble // IEEE 754 binary64
	DataString // uint16 length, UTF-8
	DataBinary // uint16 length, bytes
	DataArray  // uint16 count, typed values
	DataObject // uint16 field count, per field: key (uint16 length + UTF-8, no type byte), typed value
)

// Limits on typed values. Lengths and counts are uint16 on the wire; MaxDepth bounds the
// nesting of arrays and objects, so a hostile frame cannot recurse deeply and a cyclic Go
// value cannot loop the encoder.
const (
	MaxLength = math.MaxUint16
	MaxDepth  = 32
)

// preallocLimit bounds the room made for an array or object before its elements are read.
const preallocLimit = 16

// Decoded values are JSON-friendly, since properties end up in API responses: every integer
// type becomes int64, FLOAT and DOUBLE become float64 (a FLOAT as the float64 nearest its
// shortest decimal form, so 32.88f reads as 32.88, not 32.880001068115234), NaN and
// infinities become nil (JSON has no such numbers), STRING a string, BINARY a non-nil
// []byte, ARRAY a non-nil []any and OBJECT a non-nil map[string]any (a repeated key keeps
// its last value, as the reference's LinkedHashMap does).

// valueDecoder reads typed values from b, never past its end.
type valueDecoder struct {
	b []byte
	i int
}

func (d *valueDecoder) remaining() int { return len(d.b) - d.i }

func (d *valueDecoder) need(n int, what string) error {
	if d.remaining() < n {
		return fmt.Errorf("%w: %s needs %d bytes at offset %d, %d left", ErrFrame, what, n, d.i, d.remaining())
	}
	return nil
}

func (d *valueDecoder) u8(what string) (uint8, error) {
	if err := d.need(1, what); err != nil {
		return 0, err
	}
	v := d.b[d.i]
	d.i++
	return v, nil
}

func (d *valueDecoder) u16(what string) (uint16, error) {
	if err := d.need(2, what); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint16(d.b[d.i:])
	d.i += 2
	return v, nil
}

func (d *valueDecoder) u32(what string) (uint32, error) {
	if err := d.need(4, what); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint32(d.b[d.i:])
	d.i += 4
	return v, nil
}

func (d *valueDecoder) u64(what string) (uint64, error) {
	if err := d.need(8, what); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint64(d.b[d.i:])
	d.i += 8
	return v, nil
}

// bytes returns a uint16-length-prefixed run, aliasing b.
func (d *valueDecoder) bytes(what string) ([]byte, error) {
	n, err := d.u16(what + " length")
	if err != nil {
		return nil, err
	}
	if err := d.need(int(n), what); err != nil {
		return nil, err
	}
	v := d.b[d.i : d.i+int(n) : d.i+int(n)]
	d.i += int(n)
	return v, nil
}

// str reads an untyped STRING body: the reference's DataType.STRING.read.
func (d *valueDecoder) str(what string) (string, error) {
	b, err := d.bytes(what)
	return string(b), err
}

// value reads one typed value: the reference's DataType.readFrom.
func (d *valueDecoder) value(depth int) (any, error) {
	at := d.i
	t, err := d.u8("data type")
	if err != nil {
		return nil, err
	}
	switch DataType(t) {
	case DataNull:
		return nil, nil
	case DataBoolean:
		v, err := d.u8("BOOLEAN")
		return v != 0, err
	case DataInt8:
		v, err := d.u8("INT8")
		return int64(int8(v)), err
	case DataInt16:
		v, err := d.u16("INT16")
		return int64(int16(v)), err
	case DataInt32:
		v, err := d.u32("INT32")
		return int64(int32(v)), err
	case DataInt64:
		v, err := d.u64("INT64")
		return int64(v), err
	case DataUint8:
		v, err := d.u8("UINT8")
		return int64(v), err
	case DataUint16:
		v, err := d.u16("UINT16")
		return int64(v), err
	case DataUint32:
		v, err := d.u32("UINT32")
		return int64(v), err
	case DataFloat:
		v, err := d.u32("FLOAT")
		if err != nil {
			return nil, err
		}
		return float32Value(math.Float32frombits(v)), nil
	case DataDouble:
		v, err := d.u64("DOUBLE")
		if err != nil {
			return nil, err
		}
		f := math.Float64frombits(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, nil
		}
		return f, nil
	case DataString:
		return d.str("STRING")
	case DataBinary:
		b, err := d.bytes("BINARY")
		if err != nil {
			return nil, err
		}
		return append(make([]byte, 0, len(b)), b...), nil
	case DataArray:
		return d.array(depth + 1)
	case DataObject:
		return d.object(depth + 1)
	}
	return nil, fmt.Errorf("%w: unknown data type 0x%02x at offset %d", ErrFrame, t, at)
}

// array reads an untyped ARRAY body: a count, then typed values.
func (d *valueDecoder) array(depth int) ([]any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w: values nested deeper than %d", ErrFrame, MaxDepth)
	}
	n, err := d.u16("ARRAY count")
	if err != nil {
		return nil, err
	}
	// Each element takes at least its type byte, so a count the bytes cannot hold is
	// refused at once. Nested counts all claim the same remaining bytes, so the slice
	// grows with the elements actually read rather than trusting the count.
	if err := d.need(int(n), "ARRAY elements"); err != nil {
		return nil, err
	}
	out := make([]any, 0, min(int(n), preallocLimit))
	for range n {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// object reads an untyped OBJECT body: a count, then per field a key and a typed value.
func (d *valueDecoder) object(depth int) (map[string]any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w: values nested deeper than %d", ErrFrame, MaxDepth)
	}
	n, err := d.u16("OBJECT field count")
	if err != nil {
		return nil, err
	}
	// A field takes at least a key length and a type byte.
	if err := d.need(3*int(n), "OBJECT fields"); err != nil {
		return nil, err
	}
	out := make(map[string]any, min(int(n), preallocLimit))
	for range n {
		k, err := d.str("OBJECT key")
		if err != nil {
			return nil, err
		}
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// float32Value is f as the float64 with the same shortest decimal form.
func float32Value(f float32) any {
	f64 := float64(f)
	if math.IsNaN(f64) || math.IsInf(f64, 0) {
		return nil
	}
	v, err := strconv.ParseFloat(strconv.FormatFloat(f64, 'g', -1, 32), 64)
	if err != nil {
		return f64
	}
	return v
}

// DecodeValue reads one typed value from the start of b and returns it with the number of
// bytes it took.
func DecodeValue(b []byte) (v any, n int, err error) {
	d := valueDecoder{b: b}
	v, err = d.value(0)
	return v, d.i, err
}

// AppendValue appends v as a typed value, choosing its data type from its Go type: nil
// NULL; bool BOOLEAN; int8, int16, int32 INT8, INT16, INT32; uint8, uint16, uint32 UINT8,
// UINT16, UINT32; int, int64, uint, uint64 and integral json.Numbers INT32 when the value
// fits, else INT64 (uint64 above MaxInt64 is refused); float32 FLOAT; float64 and other
// json.Numbers DOUBLE; string STRING; []byte BINARY; other slices and arrays ARRAY; maps
// with string keys OBJECT, in key order so the bytes are deterministic (the reference
// writes a map in its iteration order, which the receiver never relies on).
//
// A float64 with an integral value is still a DOUBLE: a caller that wants integers on the
// wire keeps them integers (decode JSON with UseNumber, or use int64).
func AppendValue(dst []byte, v any) ([]byte, error) {
	return appendValue(dst, v, 0)
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, byte(DataNull)), nil
	case bool:
		b := byte(0)
		if x {
			b = 1
		}
		return append(dst, byte(DataBoolean), b), nil
	case int8:
		return append(dst, byte(DataInt8), byte(x)), nil
	case int16:
		return binary.BigEndian.AppendUint16(append(dst, byte(DataInt16)), uint16(x)), nil
	case int32:
		return appendInt32(dst, x), nil
	case int:
		return appendInt(dst, int64(x)), nil
	case int64:
		return appendInt(dst, x), nil
	case uint8:
		return append(dst, byte(DataUint8), x), nil
	case uint16:
		return binary.BigEndian.AppendUint16(append(dst, byte(DataUint16)), x), nil
	case uint32:
		return binary.BigEndian.AppendUint32(append(dst, byte(DataUint32)), x), nil
	case uint:
		return appendUint(dst, uint64(x))
	case uint64:
		return appendUint(dst, x)
	case float32:
		return binary.BigEndian.AppendUint32(append(dst, byte(DataFloat)), math.Float32bits(x)), nil
	case float64:
		return appendDouble(dst, x), nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return appendInt(dst, i), nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("%w: number %q", ErrUnsupported, string(x))
		}
		return appendDouble(dst, f), nil
	case string:
		return appendString(append(dst, byte(DataString)), x)
	case []byte:
		if len(x) > MaxLength {
			return nil, fmt.Errorf("%w: BINARY of %d bytes, at most %d", ErrUnsupported, len(x), MaxLength)
		}
		dst = binary.BigEndian.AppendUint16(append(dst, byte(DataBinary)), uint16(len(x)))
		return append(dst, x...), nil
	case []any:
		return appendArray(append(dst, byte(DataArray)), len(x), func(i int) any { return x[i] }, depth+1)
	case map[string]any:
		return appendObject(append(dst, byte(DataObject)), x, depth+1)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		return appendArray(append(dst, byte(DataArray)), rv.Len(), func(i int) any { return rv.Index(i).Interface() }, depth+1)
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		m := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			m[it.Key().String()] = it.Value().Interface()
		}
		return appendObject(append(dst, byte(DataObject)), m, depth+1)
	case reflect.Pointer:
		if rv.IsNil() {
			return append(dst, byte(DataNull)), nil
		}
		if depth >= MaxDepth {
			return nil, fmt.Errorf("%w: pointers nested deeper than %d", ErrUnsupported, MaxDepth)
		}
		return appendValue(dst, rv.Elem().Interface(), depth+1)
	}
	return nil, fmt.Errorf("%w: no data type for Go %T", ErrUnsupported, v)
}

func appendInt32(dst []byte, v int32) []byte {
	return binary.BigEndian.AppendUint32(append(dst, byte(DataInt32)), uint32(v))
}

func appendInt(dst []byte, v int64) []byte {
	if v >= math.MinInt32 && v <= math.MaxInt32 {
		return appendInt32(dst, int32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, byte(DataInt64)), uint64(v))
}

func appendUint(dst []byte, v uint64) ([]byte, error) {
	if v > math.MaxInt64 {
		return nil, fmt.Errorf("%w: %d does not fit INT64", ErrUnsupported, v)
	}
	return appendInt(dst, int64(v)), nil
}

func appendDouble(dst []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, byte(DataDouble)), math.Float64bits(v))
}

// appendString appends an untyped STRING body: the reference's DataType.STRING.write.
func appendString(dst []byte, s string) ([]byte, error) {
	if len(s) > MaxLength {
		return nil, fmt.Errorf("%w: string of %d bytes, at most %d", ErrUnsupported, len(s), MaxLength)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...), nil
}

// appendArray appends an untyped ARRAY body.
func appendArray(dst []byte, n int, at func(int) any, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w: values nested deeper than %d", ErrUnsupported, MaxDepth)
	}
	if n > MaxLength {
		return nil, fmt.Errorf("%w: ARRAY of %d elements, at most %d", ErrUnsupported, n, MaxLength)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	var err error
	for i := range n {
		if dst, err = appendValue(dst, at(i), depth); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// appendObject appends an untyped OBJECT body, fields in key order.
func appendObject(dst []byte, m map[string]any, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w: values nested deeper than %d", ErrUnsupported, MaxDepth)
	}
	if len(m) > MaxLength {
		return nil, fmt.Errorf("%w: OBJECT of %d fields, at most %d", ErrUnsupported, len(m), MaxLength)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(keys)))
	var err error
	for _, k := range keys {
		if dst, err = appendString(dst, k); err != nil {
			return nil, err
		}
		if dst, err = appendValue(dst, m[k], depth); err != nil {
			return nil, err
		}
	}
	return dst, nil
}
