package cloud

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// CTWing message types (the 消息推送 documentation's messageType values).
const (
	CTWingDataReport      = "dataReport"
	CTWingOnlineOffline   = "deviceOnlineOfflineReport"
	CTWingEventReport     = "eventReport"
	CTWingCommandResponse = "commandResponse"
)

// CTWingPush is what one CTWing push says.
type CTWingPush struct {
	MessageType string
	// DeviceID is the push's top-level deviceId: the linkops device id.
	DeviceID string
	// Online is set by a deviceOnlineOfflineReport (eventType 1 online, 0 offline);
	// such a push has no Bytes, the platform handles it.
	Online *bool
	// Bytes go to the codec's decode: a dataReport's payload JSON, or the base64-decoded
	// payload.APPdata of a transparent product; the whole push for the other types.
	Bytes []byte
}

type ctwingWire struct {
	MessageType string          `json:"messageType"`
	DeviceID    string          `json:"deviceId"`
	EventType   *int            `json:"eventType"`
	Payload     json.RawMessage `json:"payload"`
}

// ParseCTWing reads one CTWing push. Any failure wraps ErrBadBody.
func ParseCTWing(body []byte) (CTWingPush, error) {
	var w ctwingWire
	if err := json.Unmarshal(body, &w); err != nil {
		return CTWingPush{}, fmt.Errorf("%w: not a CTWing push: %v", ErrBadBody, err)
	}
	if w.MessageType == "" {
		return CTWingPush{}, fmt.Errorf("%w: the push has no messageType", ErrBadBody)
	}
	if w.DeviceID == "" {
		return CTWingPush{}, fmt.Errorf("%w: the push has no deviceId", ErrBadBody)
	}
	p := CTWingPush{MessageType: w.MessageType, DeviceID: w.DeviceID}
	switch w.MessageType {
	case CTWingOnlineOffline:
		if w.EventType == nil || (*w.EventType != 0 && *w.EventType != 1) {
			return CTWingPush{}, fmt.Errorf("%w: a deviceOnlineOfflineReport needs eventType 1 (online) or 0 (offline)", ErrBadBody)
		}
		online := *w.EventType == 1
		p.Online = &online
	case CTWingDataReport:
		payload := bytes.TrimSpace(w.Payload)
		if len(payload) == 0 || bytes.Equal(payload, []byte("null")) {
			return CTWingPush{}, fmt.Errorf("%w: a dataReport needs a payload", ErrBadBody)
		}
		var transparent struct {
			APPdata *string `json:"APPdata"`
		}
		if payload[0] == '{' && json.Unmarshal(payload, &transparent) == nil && transparent.APPdata != nil {
			b, err := base64.StdEncoding.DecodeString(*transparent.APPdata)
			if err != nil {
				return CTWingPush{}, fmt.Errorf("%w: payload.APPdata is not base64: %v", ErrBadBody, err)
			}
			p.Bytes = b
		} else {
			p.Bytes = payload
		}
	default:
		// eventReport, commandResponse and the types CTWing may add: the codec reads the
		// whole push.
		p.Bytes = body
	}
	return p, nil
}
