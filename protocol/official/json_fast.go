package official

import (
	"bytes"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/linkops/linkops/protocol"
)

// The single-pass decoder of DecodeJSON. Every message a device sends goes through here, so
// it reads the payload once, builds no map for the top-level object, skips fields the
// message type does not read without copying them, and turns numbers straight into int64 or
// float64. It must mean exactly what the reference decoder (json_ref.go: encoding/json, then
// readFields) means, for every input: the same JSON grammar and nesting limit as
// encoding/json's scanner, the same string unquoting (invalid UTF-8 and lone surrogates
// become U+FFFD), the last of repeated keys wins, and the fields are read as leniently and
// in the same order as readFields reads them. It never says why a payload is wrong: it
// refuses, and decodeJSON asks the reference decoder.

// maxNesting is encoding/json's limit on nested arrays and objects (its scanner's
// maxNestingDepth): deeper payloads are refused by both decoders.
const maxNesting = 10000

// Slots of the top-level fields any message type reads.
const (
	kMessageID = iota
	kTimestamp
	kProperties
	kSuccess
	kCode
	kMessage
	kFunctionID
	kFunction
	kInputs
	kOutput
	kData
	kURL
	kParameters
	kSign
	kSignMethod
	kSize
	kVersion
	kFirmwareID
	kProgress
	kComplete
	kErrorReason
	kCurrentVersion
	kRequestVersion
	kFields
)

// fAlways marks the fields every type reads (messageId, timestamp), beside payloadFields'
// bits.
const fAlways = 1 << 30

// slotOf is the slot of a top-level key and the payload bits (payloadFields) of the types
// that read it; no bits for a key no type reads.
func slotOf(key []byte) (slot, bits int) {
	switch string(key) {
	case "messageId":
		return kMessageID, fAlways
	case "timestamp":
		return kTimestamp, fAlways
	case "properties":
		return kProperties, fProps | fNames
	case "success":
		return kSuccess, fResult
	case "code":
		return kCode, fResult
	case "message":
		return kMessage, fResult
	case "functionId":
		return kFunctionID, fFunction
	case "function":
		return kFunction, fFunction
	case "inputs":
		return kInputs, fInputs
	case "output":
		return kOutput, fOutput
	case "data":
		return kData, fData
	case "url":
		return kURL, fUpgrade
	case "parameters":
		return kParameters, fUpgrade
	case "sign":
		return kSign, fUpgrade
	case "signMethod":
		return kSignMethod, fUpgrade
	case "size":
		return kSize, fUpgrade
	case "version":
		return kVersion, fVersion
	case "firmwareId":
		return kFirmwareID, fFirmwareID
	case "progress":
		return kProgress, fProgress
	case "complete":
		return kComplete, fProgress
	case "errorReason":
		return kErrorReason, fProgress
	case "currentVersion":
		return kCurrentVersion, fPull
	case "requestVersion":
		return kRequestVersion, fPull
	}
	return 0, 0
}

// Kinds of a top-level field's value. A field that is absent and one that is null are the
// same, as they are to readFields (a missing key reads as nil).
const (
	kindNull = iota
	kindString
	kindNumber
	kindBool
	kindContainer // an object or an array
)

// jsonField is one top-level field's value, kept as it came until readFields' rules are
// applied to it: a number stays its literal, since a messageId reads it as text.
type jsonField struct {
	kind int
	b    bool
	raw  []byte // a number's literal, aliasing the payload
	s    string
	v    any // an object (map[string]any) or array ([]any), numbers normalized (bigNumber aside)
}

// fastDecodeJSON: props, if not nil, is an empty map to read the top-level properties
// object into (DecodeJSONInto).
func fastDecodeJSON(topic string, payload []byte, up bool, props map[string]any) (protocol.Message, bool) {
	deviceID, typ, event, err := route(topic, up)
	if err != nil {
		return protocol.Message{}, false
	}
	set := payloadFields[typ]
	var f [kFields]jsonField
	p := jsonParser{b: payload, props: props}
	if len(bytes.TrimSpace(payload)) != 0 {
		if !p.fields(&f, set) {
			return protocol.Message{}, false
		}
		// As parseObject: what follows the object may be any white space, not only JSON's.
		if len(bytes.TrimSpace(payload[p.i:])) != 0 {
			return protocol.Message{}, false
		}
	}
	m := protocol.Message{Type: typ, DeviceID: deviceID, Event: event}
	if !fillFields(&m, &f, set) {
		return protocol.Message{}, false
	}
	if p.big {
		m.Properties, _ = plainNumbers(m.Properties).(map[string]any)
		m.Inputs, _ = plainNumbers(m.Inputs).(map[string]any)
		m.Output = plainNumbers(m.Output)
		m.Data = plainNumbers(m.Data)
		m.Parameters, _ = plainNumbers(m.Parameters).(map[string]any)
	}
	return m, true
}

// fillFields is readFields over slots.
func fillFields(m *protocol.Message, f *[kFields]jsonField, set int) bool {
	var ok bool
	if m.MessageID, ok = f[kMessageID].text(); !ok {
		return false
	}
	if m.Timestamp, ok = f[kTimestamp].integer(); !ok {
		return false
	}
	if set&fProps != 0 {
		if m.Properties, ok = f[kProperties].object(); !ok {
			return false
		}
	}
	if set&fNames != 0 {
		if m.PropertyNames, ok = f[kProperties].names(); !ok {
			return false
		}
	}
	if set&fResult != 0 {
		if m.Success, ok = f[kSuccess].boolean(); !ok {
			return false
		}
		if m.Code, ok = f[kCode].text(); !ok {
			return false
		}
		if m.Message, ok = f[kMessage].text(); !ok {
			return false
		}
	}
	if set&fFunction != 0 {
		if m.FunctionID, ok = f[kFunctionID].text(); !ok {
			return false
		}
		if m.FunctionID == "" {
			if m.FunctionID, ok = f[kFunction].text(); !ok {
				return false
			}
		}
	}
	if set&fInputs != 0 {
		if m.Inputs, ok = f[kInputs].inputs(); !ok {
			return false
		}
	}
	if set&fOutput != 0 {
		m.Output = f[kOutput].value()
	}
	if set&fData != 0 {
		m.Data = f[kData].value()
	}
	if set&fUpgrade != 0 {
		if m.URL, ok = f[kURL].text(); !ok {
			return false
		}
		if m.Parameters, ok = f[kParameters].object(); !ok {
			return false
		}
		if m.Sign, ok = f[kSign].text(); !ok {
			return false
		}
		if m.SignMethod, ok = f[kSignMethod].text(); !ok {
			return false
		}
		if m.Size, ok = f[kSize].integer(); !ok {
			return false
		}
	}
	if set&fVersion != 0 {
		if m.Version, ok = f[kVersion].text(); !ok {
			return false
		}
	}
	if set&fFirmwareID != 0 {
		if m.FirmwareID, ok = f[kFirmwareID].text(); !ok {
			return false
		}
	}
	if set&fProgress != 0 {
		p, ok := f[kProgress].integer()
		if !ok || p < math.MinInt32 || p > math.MaxInt32 {
			return false
		}
		m.Progress = int(p)
		c, ok := f[kComplete].boolean()
		if !ok {
			return false
		}
		m.Complete = c != nil && *c
		if m.ErrorReason, ok = f[kErrorReason].text(); !ok {
			return false
		}
	}
	if set&fPull != 0 {
		if m.CurrentVersion, ok = f[kCurrentVersion].text(); !ok {
			return false
		}
		if m.RequestVersion, ok = f[kRequestVersion].text(); !ok {
			return false
		}
	}
	return true
}

// text is textField.
func (f *jsonField) text() (string, bool) {
	switch f.kind {
	case kindNull:
		return "", true
	case kindString:
		return f.s, true
	case kindNumber:
		return string(f.raw), true
	case kindBool:
		return strconv.FormatBool(f.b), true
	}
	return "", false
}

// integer is intField.
func (f *jsonField) integer() (int64, bool) {
	switch f.kind {
	case kindNull:
		return 0, true
	case kindNumber:
		if n, ok := smallInt(f.raw); ok {
			return n, true // unboxed: timestamps are past what Go boxes for free
		}
		i, ok := numberValue(f.raw).(int64)
		return i, ok
	case kindString:
		i, err := strconv.ParseInt(strings.TrimSpace(f.s), 10, 64)
		return i, err == nil
	}
	return 0, false
}

// boolean is boolField.
func (f *jsonField) boolean() (*bool, bool) {
	switch f.kind {
	case kindNull:
		return nil, true
	case kindBool:
		return protocol.Bool(f.b), true
	case kindString:
		if b, err := strconv.ParseBool(f.s); err == nil {
			return protocol.Bool(b), true
		}
	case kindNumber:
		switch string(f.raw) {
		case "0":
			return protocol.Bool(false), true
		case "1":
			return protocol.Bool(true), true
		}
	}
	return nil, false
}

// object is objectField.
func (f *jsonField) object() (map[string]any, bool) {
	switch f.kind {
	case kindNull:
		return nil, true
	case kindContainer:
		o, ok := f.v.(map[string]any)
		return o, ok
	}
	return nil, false
}

// names is namesField.
func (f *jsonField) names() ([]string, bool) {
	switch f.kind {
	case kindNull:
		return nil, true
	case kindContainer:
		a, ok := f.v.([]any)
		if !ok {
			return nil, false
		}
		if len(a) == 0 {
			return nil, true
		}
		names := make([]string, len(a))
		for i, e := range a {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			names[i] = s
		}
		return names, true
	}
	return nil, false
}

// inputs is inputsField.
func (f *jsonField) inputs() (map[string]any, bool) {
	switch f.kind {
	case kindNull:
		return nil, true
	case kindContainer:
		switch v := f.v.(type) {
		case map[string]any:
			if len(v) == 0 {
				return nil, true
			}
			return v, true
		case []any:
			if len(v) == 0 {
				return nil, true
			}
			out := make(map[string]any, len(v))
			for _, e := range v {
				in, ok := e.(map[string]any)
				if !ok {
					return nil, false
				}
				name, ok := in["name"].(string)
				if !ok {
					return nil, false
				}
				out[name] = in["value"]
			}
			return out, true
		}
	}
	return nil, false
}

// value is normalize of a top-level field.
func (f *jsonField) value() any {
	switch f.kind {
	case kindString:
		return f.s
	case kindNumber:
		return numberValue(f.raw)
	case kindBool:
		return f.b
	case kindContainer:
		return f.v
	}
	return nil
}

// numberValue is normalize of a number literal the parser checked: int64 when its value is
// an integer that fits, else float64, else (beyond float64) its text.
func numberValue(lit []byte) any {
	if n, ok := smallInt(lit); ok {
		return n
	}
	if bytes.IndexAny(lit, ".eE") < 0 {
		if i, err := strconv.ParseInt(string(lit), 10, 64); err == nil {
			return i
		}
	}
	// A fraction or an exponent is never strconv.ParseInt's syntax, so normalize would
	// have come here too.
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return string(lit)
	}
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return int64(f)
	}
	return f
}

// Interned strings. The devices of a product send the same property names, and often the
// same short values ("on", "ok"), in every message: a decoded string found in these tables
// is shared rather than allocated again (strings are immutable, so sharing is safe). Each
// table is direct-mapped by hash, so a slot keeps the last string that landed on it, and
// memory stays bounded whatever devices send.
const (
	internSlots = 4096
	internMax   = 32 // longer strings are seldom repeated
)

var (
	internSeed     = maphash.MakeSeed()
	internedKeys   [internSlots]atomic.Pointer[string]
	internedValues [internSlots]atomic.Pointer[any]
)

// internKey is b as a string, shared with earlier keys of the same text.
func internKey(b []byte) string {
	if len(b) > internMax {
		return string(b)
	}
	slot := &internedKeys[maphash.Bytes(internSeed, b)%internSlots]
	if s := slot.Load(); s != nil && *s == string(b) {
		return *s
	}
	s := string(b)
	slot.Store(&s)
	return s
}

// internValue is b as a string in an interface, shared with earlier values of the same
// text (the interface too, which would cost an allocation of its own).
func internValue(b []byte) any {
	if len(b) > internMax {
		return string(b)
	}
	slot := &internedValues[maphash.Bytes(internSeed, b)%internSlots]
	if v := slot.Load(); v != nil && (*v).(string) == string(b) {
		return *v
	}
	var v any = string(b)
	slot.Store(&v)
	return v
}

// smallInt is the value of a number literal of at most 18 digits, no fraction and no
// exponent: always an int64, with no need of strconv.
func smallInt(lit []byte) (int64, bool) {
	digits := lit
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if len(digits) != len(lit) {
		n = -n
	}
	return n, true
}

// jsonParser reads JSON from b at i. Every method reports false for input encoding/json
// refuses, leaving i anywhere.
type jsonParser struct {
	b []byte
	i int
	// scratch holds the last string that had to be unquoted.
	scratch []byte
	// big: a value holds a bigNumber.
	big bool
	// props, if not nil, is the map the first top-level properties object is read into.
	props map[string]any
}

// bigNumber is a number beyond float64 inside an object or array, which normalize keeps as
// its text. It stays apart from strings until readFields' rules are applied, since those
// check the values before normalize and so take it for no string (a property name of 1e400
// is refused); then plainNumbers makes it the string normalize makes it.
type bigNumber string

// plainNumbers turns the bigNumbers in v into strings, in place.
func plainNumbers(v any) any {
	switch x := v.(type) {
	case bigNumber:
		return string(x)
	case map[string]any:
		for k, e := range x {
			x[k] = plainNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = plainNumbers(e)
		}
	}
	return v
}

func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek is the next byte, 0 at the end (never valid where a byte is looked for).
func (p *jsonParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// fields reads the top-level object into slots: the fields set reads, the others skipped.
func (p *jsonParser) fields(f *[kFields]jsonField, set int) bool {
	p.space()
	if p.peek() != '{' {
		return false
	}
	p.i++
	p.space()
	if p.peek() == '}' {
		p.i++
		return true
	}
	for {
		if p.peek() != '"' {
			return false
		}
		k, plain, ok := p.str()
		if !ok {
			return false
		}
		if !plain {
			p.scratch = unquote(p.scratch[:0], k)
			k = p.scratch
		}
		p.space()
		if p.peek() != ':' {
			return false
		}
		p.i++
		p.space()
		if slot, bits := slotOf(k); bits&(set|fAlways) != 0 {
			if slot == kProperties && p.props != nil && p.peek() == '{' {
				m, ok := p.objectInto(p.props, 2) // depth 2, as field's value(1) reads an object
				p.props = nil
				if !ok {
					return false
				}
				f[slot] = jsonField{kind: kindContainer, v: m}
			} else if !p.field(&f[slot]) {
				return false
			}
		} else if !p.skip(1) {
			return false
		}
		p.space()
		switch p.peek() {
		case ',':
			p.i++
			p.space()
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// field reads the value of a top-level field.
func (p *jsonParser) field(f *jsonField) bool {
	switch p.peek() {
	case '"':
		s, ok := p.text()
		*f = jsonField{kind: kindString, s: s}
		return ok
	case '{', '[':
		v, ok := p.value(1)
		*f = jsonField{kind: kindContainer, v: v}
		return ok
	case 't', 'f', 'n':
		v, ok := p.literal()
		switch v := v.(type) {
		case bool:
			*f = jsonField{kind: kindBool, b: v}
		default:
			*f = jsonField{}
		}
		return ok
	}
	lit, ok := p.number()
	*f = jsonField{kind: kindNumber, raw: lit}
	return ok
}

// value reads any value inside a container at depth (the top-level object is depth 1).
func (p *jsonParser) value(depth int) (any, bool) {
	switch p.peek() {
	case '"':
		s, plain, ok := p.str()
		if !ok {
			return nil, false
		}
		if !plain {
			p.scratch = unquote(p.scratch[:0], s)
			s = p.scratch
		}
		return internValue(s), true
	case '{':
		return p.object(depth + 1)
	case '[':
		return p.array(depth + 1)
	case 't', 'f', 'n':
		return p.literal()
	}
	lit, ok := p.number()
	if !ok {
		return nil, false
	}
	v := numberValue(lit)
	if s, ok := v.(string); ok {
		p.big = true
		return bigNumber(s), true
	}
	return v, true
}

// object reads an object at depth, its opening brace next.
func (p *jsonParser) object(depth int) (map[string]any, bool) {
	return p.objectInto(make(map[string]any), depth)
}

// objectInto is object reading into m, which must be empty.
func (p *jsonParser) objectInto(m map[string]any, depth int) (map[string]any, bool) {
	if depth > maxNesting {
		return nil, false
	}
	p.i++
	p.space()
	if p.peek() == '}' {
		p.i++
		return m, true
	}
	for {
		if p.peek() != '"' {
			return nil, false
		}
		k, plain, ok := p.str()
		if !ok {
			return nil, false
		}
		if !plain {
			p.scratch = unquote(p.scratch[:0], k)
			k = p.scratch
		}
		key := internKey(k)
		p.space()
		if p.peek() != ':' {
			return nil, false
		}
		p.i++
		p.space()
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		m[key] = v
		p.space()
		switch p.peek() {
		case ',':
			p.i++
			p.space()
		case '}':
			p.i++
			return m, true
		default:
			return nil, false
		}
	}
}

// array reads an array at depth, its opening bracket next. An empty array is an empty
// slice, not nil, as encoding/json makes it.
func (p *jsonParser) array(depth int) ([]any, bool) {
	if depth > maxNesting {
		return nil, false
	}
	p.i++
	a := make([]any, 0)
	p.space()
	if p.peek() == ']' {
		p.i++
		return a, true
	}
	for {
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		p.space()
		switch p.peek() {
		case ',':
			p.i++
			p.space()
		case ']':
			p.i++
			return a, true
		default:
			return nil, false
		}
	}
}

// skip checks a value inside a container at depth and moves past it, keeping nothing.
func (p *jsonParser) skip(depth int) bool {
	switch p.peek() {
	case '"':
		_, _, ok := p.str()
		return ok
	case 't', 'f', 'n':
		_, ok := p.literal()
		return ok
	case '{', '[':
	default:
		_, ok := p.number()
		return ok
	}
	depth++
	if depth > maxNesting {
		return false
	}
	end := byte('}')
	if p.b[p.i] == '[' {
		end = ']'
	}
	p.i++
	p.space()
	if p.peek() == end {
		p.i++
		return true
	}
	for {
		if end == '}' {
			if p.peek() != '"' {
				return false
			}
			if _, _, ok := p.str(); !ok {
				return false
			}
			p.space()
			if p.peek() != ':' {
				return false
			}
			p.i++
			p.space()
		}
		if !p.skip(depth) {
			return false
		}
		p.space()
		switch p.peek() {
		case ',':
			p.i++
			p.space()
		case end:
			p.i++
			return true
		default:
			return false
		}
	}
}

// literal reads true, false or null.
func (p *jsonParser) literal() (any, bool) {
	rest := p.b[p.i:]
	switch {
	case bytes.HasPrefix(rest, []byte("true")):
		p.i += 4
		return true, true
	case bytes.HasPrefix(rest, []byte("false")):
		p.i += 5
		return false, true
	case bytes.HasPrefix(rest, []byte("null")):
		p.i += 4
		return nil, true
	}
	return nil, false
}

// number reads a number's literal: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. What
// may follow it is for the caller to check.
func (p *jsonParser) number() ([]byte, bool) {
	b, i := p.b, p.i
	digits := func() bool {
		start := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		digits()
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return nil, false
		}
	}
	lit := b[p.i:i]
	p.i = i
	return lit, true
}

// text reads a string's value.
func (p *jsonParser) text() (string, bool) {
	s, plain, ok := p.str()
	if !ok {
		return "", false
	}
	if plain {
		return string(s), true
	}
	p.scratch = unquote(p.scratch[:0], s)
	return string(p.scratch), true
}

// str checks a string, its opening quote next, and returns what lies between the quotes;
// plain when that is its value (no escapes, valid UTF-8), else it needs unquote.
func (p *jsonParser) str() (s []byte, plain, ok bool) {
	b := p.b
	start := p.i + 1
	plain = true
	for i := start; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			p.i = i + 1
			return b[start:i], plain, true
		case c == '\\':
			plain = false
			if i+1 >= len(b) {
				return nil, false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || hex4(b[i+2:i+6]) < 0 {
					return nil, false, false
				}
				i += 6
			default:
				return nil, false, false
			}
		case c < ' ':
			return nil, false, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				plain = false
			}
			i += size
		}
	}
	return nil, false, false
}

// hex4 is the value of four hex digits, -1 if they are not.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// escapedRune is the rune of a \uXXXX escape at the start of s, -1 if none is there
// (encoding/json's getu4).
func escapedRune(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	return hex4(s[2:6])
}

// unquote appends the value of a string's contents that str checked, as encoding/json's
// unquoteBytes makes it: a surrogate pair is one rune, and a lone surrogate or a byte
// that is not UTF-8 becomes U+FFFD.
func unquote(dst, s []byte) []byte {
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			switch s[r+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := escapedRune(s[r:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, escapedRune(s[r:])); dec != unicode.ReplacementChar {
						r += 6
						dst = utf8.AppendRune(dst, dec)
						continue
					}
					rr = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, s[r+1])
			}
			r += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			dst = utf8.AppendRune(dst, rr)
			r += size
		}
	}
	return dst
}
