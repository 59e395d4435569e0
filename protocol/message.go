package protocol

import (
	"encoding/json"
	"fmt"
)

// Message types (SPEC §4.2, JetLinks' DeviceMessage model). Up: what devices send; down:
// what the platform sends.
const (
	// Up.
	TypeReportProperty      = "reportProperty"
	TypeReadPropertyReply   = "readPropertyReply"
	TypeWritePropertyReply  = "writePropertyReply"
	TypeInvokeFunctionReply = "invokeFunctionReply"
	TypeEvent               = "event"
	TypeOnline              = "online"
	TypeOffline             = "offline"
	TypeTimeSync            = "timeSync"
	TypeFirmwareUpgradeAck  = "firmwareUpgradeReply"
	TypeFirmwareProgress    = "firmwareProgress"
	TypeFirmwarePull        = "firmwarePull"
	TypeFirmwareReport      = "firmwareReport"
	// Down.
	TypeReadProperty      = "readProperty"
	TypeWriteProperty     = "writeProperty"
	TypeInvokeFunction    = "invokeFunction"
	TypeTimeSyncReply     = "timeSyncReply"
	TypeFirmwareUpgrade   = "firmwareUpgrade"
	TypeFirmwarePullReply = "firmwarePullReply"
)

// upTypes are the types a device (or a codec decoding what it sent) may produce.
var upTypes = map[string]bool{
	TypeReportProperty: true, TypeReadPropertyReply: true, TypeWritePropertyReply: true,
	TypeInvokeFunctionReply: true, TypeEvent: true, TypeOnline: true, TypeOffline: true,
	TypeTimeSync: true, TypeFirmwareUpgradeAck: true, TypeFirmwareProgress: true,
	TypeFirmwarePull: true, TypeFirmwareReport: true,
}

// IsUp reports whether t is a message type a device sends.
func IsUp(t string) bool { return upTypes[t] }

// IsReply reports whether t answers a downlink (its MessageID names the request).
func IsReply(t string) bool {
	switch t {
	case TypeReadPropertyReply, TypeWritePropertyReply, TypeInvokeFunctionReply:
		return true
	}
	return false
}

// Message is one device message, up or down, as the gateway pipeline, the codecs (as JSON)
// and the API's message stream see it. Properties is polymorphic on the wire, as in
// JetLinks: an array of names in readProperty, an object of values everywhere else; in Go
// the names are PropertyNames.
type Message struct {
	Type      string `json:"type"`
	DeviceID  string `json:"deviceId,omitempty"`
	MessageID string `json:"messageId,omitempty"`
	// Timestamp is milliseconds since the epoch (0: unset, the receiver's clock applies).
	Timestamp int64 `json:"timestamp,omitempty"`

	Properties    map[string]any `json:"-"`
	PropertyNames []string       `json:"-"`

	FunctionID string         `json:"functionId,omitempty"`
	Inputs     map[string]any `json:"inputs,omitempty"`
	Output     any            `json:"output,omitempty"`

	Event string `json:"event,omitempty"`
	Data  any    `json:"data,omitempty"`

	// Replies: Success is nil when a message does not say.
	Success *bool  `json:"success,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`

	// Firmware (SPEC §5.2): upgrade and pull replies down, progress, pull and report up.
	FirmwareID     string         `json:"firmwareId,omitempty"`
	URL            string         `json:"url,omitempty"`
	Version        string         `json:"version,omitempty"`
	Sign           string         `json:"sign,omitempty"`
	SignMethod     string         `json:"signMethod,omitempty"`
	Size           int64          `json:"size,omitempty"`
	Parameters     map[string]any `json:"parameters,omitempty"`
	Progress       int            `json:"progress,omitempty"`
	Complete       bool           `json:"complete,omitempty"`
	ErrorReason    string         `json:"errorReason,omitempty"`
	CurrentVersion string         `json:"currentVersion,omitempty"`
	RequestVersion string         `json:"requestVersion,omitempty"`
}

// messageJSON is Message without its methods, for the default encoding of the rest.
type messageJSON Message

// MarshalJSON writes properties as names for readProperty and as values otherwise.
func (m Message) MarshalJSON() ([]byte, error) {
	type withProps struct {
		messageJSON
		Properties any `json:"properties,omitempty"`
	}
	out := withProps{messageJSON: messageJSON(m)}
	if m.Type == TypeReadProperty {
		if m.PropertyNames != nil {
			out.Properties = m.PropertyNames
		}
	} else if m.Properties != nil {
		out.Properties = m.Properties
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads properties as names (an array) or values (an object).
func (m *Message) UnmarshalJSON(b []byte) error {
	var in struct {
		messageJSON
		Properties json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*m = Message(in.messageJSON)
	raw := in.Properties
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	switch firstByte(raw) {
	case '[':
		if err := json.Unmarshal(raw, &m.PropertyNames); err != nil {
			return fmt.Errorf("properties: %w", err)
		}
	case '{':
		if err := json.Unmarshal(raw, &m.Properties); err != nil {
			return fmt.Errorf("properties: %w", err)
		}
	default:
		return fmt.Errorf("properties must be an object of values or an array of names, not %s", kindOf(raw))
	}
	return nil
}

func firstByte(raw json.RawMessage) byte {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// Bool returns a pointer to b, for Message.Success.
func Bool(b bool) *bool { return &b }
