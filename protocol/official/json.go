package official

import (
	"encoding/json"
	"fmt"
	"sort"
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
	return decodeJSON(topic, payload, true, nil)
}

// DecodeJSONInto is DecodeJSON reading the payload's properties object into props, an
// empty map, rather than into a new one, so that a caller done with the message can clear
// props and lend it again: a device's property report then allocates no map. The
// message's Properties may be props or another map; props may hold entries either way
// (of a payload decoded at the second attempt), so it is cleared before it is lent again.
func DecodeJSONInto(topic string, payload []byte, props map[string]any) (protocol.Message, error) {
	return decodeJSON(topic, payload, true, props)
}

// DecodeDownJSON decodes what the platform sent a device: the device side of EncodeJSON,
// for simulated devices in tests. Inputs may be [{name, value}] or an object, and the
// function id "functionId" or "function".
func DecodeDownJSON(topic string, payload []byte) (protocol.Message, error) {
	return decodeJSON(topic, payload, false, nil)
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

// decodeJSON decodes in one pass over the payload (json_fast.go). A payload that pass
// refuses is decoded again by the reference decoder, which says what is wrong with it in
// encoding/json's words; it refuses the same payloads, so no message is lost to the fast
// path (FuzzFastDecodeJSON holds the two to the same results).
func decodeJSON(topic string, payload []byte, up bool, props map[string]any) (protocol.Message, error) {
	if m, ok := fastDecodeJSON(topic, payload, up, props); ok {
		return m, nil
	}
	return refDecodeJSON(topic, payload, up)
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
