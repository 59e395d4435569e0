package official

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/linkops/linkops/protocol"
)

// Routes between topic suffixes and message types (the reference's TopicMessageCodec). The
// event suffix carries the event id and is handled apart.
var (
	upRoutes = map[string]string{
		SuffixReportProperty:     protocol.TypeReportProperty,
		SuffixReadPropertyReply:  protocol.TypeReadPropertyReply,
		SuffixWritePropertyReply: protocol.TypeWritePropertyReply,
		SuffixInvokeReply:        protocol.TypeInvokeFunctionReply,
		SuffixOnline:             protocol.TypeOnline,
		SuffixOffline:            protocol.TypeOffline,
		SuffixTimeSync:           protocol.TypeTimeSync,
		SuffixFirmwareUpgradeAck: protocol.TypeFirmwareUpgradeAck,
		SuffixFirmwareProgress:   protocol.TypeFirmwareProgress,
		SuffixFirmwarePull:       protocol.TypeFirmwarePull,
		SuffixFirmwareReport:     protocol.TypeFirmwareReport,
	}
	downRoutes = map[string]string{
		SuffixReadProperty:      protocol.TypeReadProperty,
		SuffixWriteProperty:     protocol.TypeWriteProperty,
		SuffixInvokeFunction:    protocol.TypeInvokeFunction,
		SuffixTimeSyncReply:     protocol.TypeTimeSyncReply,
		SuffixFirmwareUpgrade:   protocol.TypeFirmwareUpgrade,
		SuffixFirmwarePullReply: protocol.TypeFirmwarePullReply,
	}
	suffixes = func() map[string]string {
		m := make(map[string]string)
		for s, t := range upRoutes {
			m[t] = s
		}
		for s, t := range downRoutes {
			m[t] = s
		}
		return m
	}()
)

// What a type's payload carries besides messageId, deviceId and timestamp.
const (
	fProps      = 1 << iota // properties: an object of values
	fNames                  // properties: an array of names
	fResult                 // success, code, message
	fFunction               // functionId
	fInputs                 // inputs: [{name, value}]
	fOutput                 // output
	fData                   // data
	fUpgrade                // url, parameters, sign, signMethod, size
	fVersion                // version
	fFirmwareID             // firmwareId
	fProgress               // progress, complete, errorReason
	fPull                   // currentVersion, requestVersion
	fTimestamp              // timestamp, always written
)

var payloadFields = map[string]int{
	protocol.TypeReportProperty:      fProps,
	protocol.TypeReadProperty:        fNames,
	protocol.TypeReadPropertyReply:   fResult | fProps,
	protocol.TypeWriteProperty:       fProps,
	protocol.TypeWritePropertyReply:  fResult | fProps,
	protocol.TypeInvokeFunction:      fFunction | fInputs,
	protocol.TypeInvokeFunctionReply: fResult | fFunction | fOutput,
	protocol.TypeEvent:               fData,
	protocol.TypeOnline:              0,
	protocol.TypeOffline:             0,
	protocol.TypeTimeSync:            0,
	protocol.TypeTimeSyncReply:       fTimestamp,
	protocol.TypeFirmwareUpgrade:     fUpgrade | fVersion | fFirmwareID,
	protocol.TypeFirmwareUpgradeAck:  fResult,
	protocol.TypeFirmwareProgress:    fProgress | fResult | fVersion | fFirmwareID,
	protocol.TypeFirmwarePull:        fPull,
	protocol.TypeFirmwarePullReply:   fUpgrade | fVersion | fFirmwareID | fResult,
	protocol.TypeFirmwareReport:      fVersion,
}

// DecodeJSON decodes what a device sent: a JSON payload under an up topic of SPEC §5.2
// (MQTT, HTTP, CoAP after Decrypt, WebSocket after its envelope). The deviceId comes from
// the topic, whatever the payload says. Numbers decode as int64 when their value is an
// integer that fits (5, 5.0 and 5e0 alike), else float64; fields of the wrong JSON type
// are ErrPayload, unknown fields are ignored, and an empty payload is {} (online, offline
// and time-sync are often sent empty).
func DecodeJSON(topic string, payload []byte) (protocol.Message, error) {
	return decodeJSON(topic, payload, true)
}

// DecodeDownJSON decodes what the platform sent a device: the device side of EncodeJSON,
// for simulated devices in tests. Inputs may be [{name, value}] or an object, and the
// function id "functionId" or "function".
func DecodeDownJSON(topic string, payload []byte) (protocol.Message, error) {
	return decodeJSON(topic, payload, false)
}

// EncodeJSON encodes a downlink for productID: readProperty, writeProperty,
// invokeFunction (inputs as [{name, value}] sorted by name), timeSyncReply (which must
// carry its Timestamp), firmwareUpgrade and firmwarePullReply. The payload holds the
// messageId and deviceId as the reference's does.
func EncodeJSON(productID string, m protocol.Message) (topic string, payload []byte, err error) {
	return encodeJSON(productID, m, false)
}

// EncodeUpJSON encodes what a device sends, for simulated devices: the device side of
// DecodeJSON.
func EncodeUpJSON(productID string, m protocol.Message) (topic string, payload []byte, err error) {
	return encodeJSON(productID, m, true)
}

// route finds the message type of a topic in one direction.
func route(topic string, up bool) (deviceID, typ, event string, err error) {
	_, deviceID, suffix, ok := ParseTopic(topic)
	if !ok {
		return "", "", "", fmt.Errorf("%w: %q is not /{productId}/{deviceId}/<suffix>", ErrTopic, topic)
	}
	routes := downRoutes
	if up {
		routes = upRoutes
	}
	if t, ok := routes[suffix]; ok {
		return deviceID, t, "", nil
	}
	if ev, ok := strings.CutPrefix(suffix, SuffixEventPrefix); ok && up && !strings.Contains(ev, "/") {
		return deviceID, protocol.TypeEvent, ev, nil
	}
	dir := "down"
	if up {
		dir = "up"
	}
	return "", "", "", fmt.Errorf("%w: %q is no %s topic of the official protocol", ErrTopic, suffix, dir)
}

func decodeJSON(topic string, payload []byte, up bool) (protocol.Message, error) {
	deviceID, typ, event, err := route(topic, up)
	if err != nil {
		return protocol.Message{}, err
	}
	fields, err := parseObject(payload)
	if err != nil {
		return protocol.Message{}, err
	}
	m := protocol.Message{Type: typ, DeviceID: deviceID, Event: event}
	if err := readFields(&m, fields, payloadFields[typ]); err != nil {
		return protocol.Message{}, fmt.Errorf("%w: %s: %v", ErrPayload, typ, err)
	}
	return m, nil
}

// parseObject reads a payload that must be a JSON object, keeping numbers as json.Number.
func parseObject(payload []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(payload)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	if len(bytes.TrimSpace(payload[dec.InputOffset():])) != 0 {
		return nil, fmt.Errorf("%w: data after the JSON value", ErrPayload)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: payload is %s, want a JSON object", ErrPayload, jsonKind(v))
	}
	return obj, nil
}

// readFields fills m from a payload's fields. Scalars are read as leniently as the
// reference's Jackson mapper coerces them (a messageId may be a number, a timestamp or a
// success flag a string), so devices that work with JetLinks keep working.
func readFields(m *protocol.Message, f map[string]any, set int) error {
	var err error
	if m.MessageID, err = textField(f, "messageId"); err != nil {
		return err
	}
	if m.Timestamp, err = intField(f, "timestamp"); err != nil {
		return err
	}
	if set&fProps != 0 {
		if m.Properties, err = objectField(f, "properties"); err != nil {
			return err
		}
	}
	if set&fNames != 0 {
		if m.PropertyNames, err = namesField(f, "properties"); err != nil {
			return err
		}
	}
	if set&fResult != 0 {
		if m.Success, err = boolField(f, "success"); err != nil {
			return err
		}
		if m.Code, err = textField(f, "code"); err != nil {
			return err
		}
		if m.Message, err = textField(f, "message"); err != nil {
			return err
		}
	}
	if set&fFunction != 0 {
		if m.FunctionID, err = textField(f, "functionId"); err != nil {
			return err
		}
		if m.FunctionID == "" {
			if m.FunctionID, err = textField(f, "function"); err != nil {
				return err
			}
		}
	}
	if set&fInputs != 0 {
		if m.Inputs, err = inputsField(f, "inputs"); err != nil {
			return err
		}
	}
	if set&fOutput != 0 {
		m.Output = normalize(f["output"])
	}
	if set&fData != 0 {
		m.Data = normalize(f["data"])
	}
	if set&fUpgrade != 0 {
		if m.URL, err = textField(f, "url"); err != nil {
			return err
		}
		if m.Parameters, err = objectField(f, "parameters"); err != nil {
			return err
		}
		if m.Sign, err = textField(f, "sign"); err != nil {
			return err
		}
		if m.SignMethod, err = textField(f, "signMethod"); err != nil {
			return err
		}
		if m.Size, err = intField(f, "size"); err != nil {
			return err
		}
	}
	if set&fVersion != 0 {
		if m.Version, err = textField(f, "version"); err != nil {
			return err
		}
	}
	if set&fFirmwareID != 0 {
		if m.FirmwareID, err = textField(f, "firmwareId"); err != nil {
			return err
		}
	}
	if set&fProgress != 0 {
		p, err := intField(f, "progress")
		if err != nil {
			return err
		}
		if p < math.MinInt32 || p > math.MaxInt32 {
			return fmt.Errorf("progress %d out of range", p)
		}
		m.Progress = int(p)
		c, err := boolField(f, "complete")
		if err != nil {
			return err
		}
		m.Complete = c != nil && *c
		if m.ErrorReason, err = textField(f, "errorReason"); err != nil {
			return err
		}
	}
	if set&fPull != 0 {
		if m.CurrentVersion, err = textField(f, "currentVersion"); err != nil {
			return err
		}
		if m.RequestVersion, err = textField(f, "requestVersion"); err != nil {
			return err
		}
	}
	return nil
}

func encodeJSON(productID string, m protocol.Message, up bool) (string, []byte, error) {
	suffix, err := suffixOf(&m, up)
	if err != nil {
		return "", nil, err
	}
	topic, err := Topic(productID, m.DeviceID, suffix)
	if err != nil {
		return "", nil, err
	}
	payload, err := payloadOf(&m)
	if err != nil {
		return "", nil, err
	}
	return topic, payload, nil
}

// suffixOf is the topic suffix of m, which must go in the direction asked for.
func suffixOf(m *protocol.Message, up bool) (string, error) {
	suffix, ok := suffixes[m.Type]
	if m.Type == protocol.TypeEvent {
		if !validLevel(m.Event) {
			return "", fmt.Errorf("%w: event id %q must be one non-empty topic level", ErrUnsupported, m.Event)
		}
		suffix, ok = SuffixEventPrefix+m.Event, true
	}
	if !ok || protocol.IsUp(m.Type) != up {
		dir := "a downlink"
		if up {
			dir = "an uplink"
		}
		return "", fmt.Errorf("%w: %q is not %s of the official protocol", ErrUnsupported, m.Type, dir)
	}
	return suffix, nil
}

// payloadOf is the JSON payload of m.
func payloadOf(m *protocol.Message) ([]byte, error) {
	if m.Type == protocol.TypeTimeSyncReply && m.Timestamp == 0 {
		return nil, fmt.Errorf("%w: a timeSyncReply needs its timestamp", ErrUnsupported)
	}
	payload, err := json.Marshal(writeFields(m, payloadFields[m.Type]))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnsupported, m.Type, err)
	}
	return payload, nil
}

// writeFields is the payload of m, as the reference's Jackson mapper writes its message
// classes: nulls left out, property names and inputs always there.
func writeFields(m *protocol.Message, set int) map[string]any {
	out := map[string]any{}
	put := func(k, v string) {
		if v != "" {
			out[k] = v
		}
	}
	put("messageId", m.MessageID)
	put("deviceId", m.DeviceID)
	if m.Timestamp != 0 || set&fTimestamp != 0 {
		out["timestamp"] = m.Timestamp
	}
	if set&fProps != 0 && m.Properties != nil {
		out["properties"] = m.Properties
	}
	if set&fNames != 0 {
		names := m.PropertyNames
		if names == nil {
			names = []string{}
		}
		out["properties"] = names
	}
	if set&fResult != 0 {
		if m.Success != nil {
			out["success"] = *m.Success
		}
		put("code", m.Code)
		put("message", m.Message)
	}
	if set&fFunction != 0 {
		// The reference's field is functionId; SPEC §5.2's table calls it function. Both
		// are written, so devices built on either read their own.
		put("functionId", m.FunctionID)
		if m.Type == protocol.TypeInvokeFunction {
			put("function", m.FunctionID)
		}
	}
	if set&fInputs != 0 {
		out["inputs"] = inputList(m.Inputs)
	}
	if set&fOutput != 0 && m.Output != nil {
		out["output"] = m.Output
	}
	if set&fData != 0 && m.Data != nil {
		out["data"] = m.Data
	}
	if set&fUpgrade != 0 {
		put("url", m.URL)
		if m.Parameters != nil {
			out["parameters"] = m.Parameters
		}
		put("sign", m.Sign)
		put("signMethod", m.SignMethod)
		if m.Size != 0 {
			out["size"] = m.Size
		}
	}
	if set&fVersion != 0 {
		put("version", m.Version)
	}
	if set&fFirmwareID != 0 {
		put("firmwareId", m.FirmwareID)
	}
	if set&fProgress != 0 {
		out["progress"] = m.Progress
		out["complete"] = m.Complete
		put("errorReason", m.ErrorReason)
	}
	if set&fPull != 0 {
		put("currentVersion", m.CurrentVersion)
		put("requestVersion", m.RequestVersion)
	}
	return out
}

// input is one function input as the wire carries it (the reference's FunctionParameter).
type input struct {
	Name  string `json:"name"`
	Value any    `json:"value"`
}

// inputList is inputs as [{name, value}] sorted by name (SPEC §5.2), so the same call is
// always the same bytes.
func inputList(inputs map[string]any) []input {
	out := make([]input, 0, len(inputs))
	for k, v := range inputs {
		out = append(out, input{Name: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func textField(f map[string]any, k string) (string, error) {
	switch v := f[k].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case json.Number:
		return string(v), nil
	case bool:
		return strconv.FormatBool(v), nil
	default:
		return "", fmt.Errorf("%s is %s, want a string", k, jsonKind(v))
	}
}

func intField(f map[string]any, k string) (int64, error) {
	switch v := f[k].(type) {
	case nil:
		return 0, nil
	case json.Number:
		if i, ok := normalize(v).(int64); ok {
			return i, nil
		}
		return 0, fmt.Errorf("%s is %s, want an integer", k, string(v))
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			return i, nil
		}
		return 0, fmt.Errorf("%s is %q, want an integer", k, v)
	default:
		return 0, fmt.Errorf("%s is %s, want an integer", k, jsonKind(v))
	}
}

func boolField(f map[string]any, k string) (*bool, error) {
	switch v := f[k].(type) {
	case nil:
		return nil, nil
	case bool:
		return protocol.Bool(v), nil
	case string:
		if b, err := strconv.ParseBool(v); err == nil {
			return protocol.Bool(b), nil
		}
	case json.Number:
		switch v {
		case "0":
			return protocol.Bool(false), nil
		case "1":
			return protocol.Bool(true), nil
		}
	}
	return nil, fmt.Errorf("%s is %s, want a boolean", k, jsonKind(f[k]))
}

func objectField(f map[string]any, k string) (map[string]any, error) {
	switch v := f[k].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return normalize(v).(map[string]any), nil
	default:
		return nil, fmt.Errorf("%s is %s, want an object", k, jsonKind(v))
	}
}

func namesField(f map[string]any, k string) ([]string, error) {
	switch v := f[k].(type) {
	case nil:
		return nil, nil
	case []any:
		names := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s[%d] is %s, want a property name", k, i, jsonKind(e))
			}
			names[i] = s
		}
		if len(names) == 0 {
			// Written as [] when there are none, so none reads back as nil.
			return nil, nil
		}
		return names, nil
	default:
		return nil, fmt.Errorf("%s is %s, want an array of names", k, jsonKind(v))
	}
}

func inputsField(f map[string]any, k string) (map[string]any, error) {
	switch v := f[k].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		if len(v) == 0 {
			return nil, nil
		}
		return normalize(v).(map[string]any), nil
	case []any:
		if len(v) == 0 {
			// Written as [] when there are none, so none reads back as nil.
			return nil, nil
		}
		out := make(map[string]any, len(v))
		for i, e := range v {
			in, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s[%d] is %s, want {name, value}", k, i, jsonKind(e))
			}
			name, ok := in["name"].(string)
			if !ok {
				return nil, fmt.Errorf("%s[%d].name is %s, want a string", k, i, jsonKind(in["name"]))
			}
			out[name] = normalize(in["value"])
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%s is %s, want [{name, value}]", k, jsonKind(v))
	}
}

// normalize turns json.Numbers into int64 (an integral value that fits) or float64, all
// the way down, so decoded values are the same Go types whatever the transport.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			// Beyond float64 (1e400): the decoder checked the syntax, so keep the text.
			return string(x)
		}
		if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
			return int64(f)
		}
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	}
	return v
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64, int64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
