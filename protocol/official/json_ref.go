package official

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/linkops/linkops/protocol"
)

// The reference decoder: encoding/json into map[string]any, then the fields read from the
// map. It defines what DecodeJSON means; the single-pass decoder of json_fast.go must agree
// with it on every input (FuzzFastDecodeJSON), and it writes the error of every payload the
// fast decoder refuses, so error messages stay those of encoding/json.

func refDecodeJSON(topic string, payload []byte, up bool) (protocol.Message, error) {
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
