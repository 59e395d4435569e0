package official

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/linkops/linkops/protocol"
)

// envelope is a WebSocket text frame of the official protocol (SPEC §5.2), both ways.
type envelope struct {
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload"`
}

// DecodeWebSocket decodes a device's text frame {"topic": "/{productId}/{deviceId}/<up
// suffix>", "payload": {...}}. The topic is returned for the gateway to check that it names
// the connection's own product and device. A payload sent as a string holding JSON is
// taken too.
func DecodeWebSocket(frame []byte) (topic string, m protocol.Message, err error) {
	return decodeWebSocket(frame, true)
}

// DecodeDownWebSocket is the device side of EncodeWebSocket.
func DecodeDownWebSocket(frame []byte) (topic string, m protocol.Message, err error) {
	return decodeWebSocket(frame, false)
}

// EncodeWebSocket encodes a downlink as a text frame (see EncodeJSON).
func EncodeWebSocket(productID string, m protocol.Message) ([]byte, error) {
	return encodeWebSocket(productID, m, false)
}

// EncodeUpWebSocket is the device side of DecodeWebSocket.
func EncodeUpWebSocket(productID string, m protocol.Message) ([]byte, error) {
	return encodeWebSocket(productID, m, true)
}

func decodeWebSocket(frame []byte, up bool) (string, protocol.Message, error) {
	var env envelope
	if err := json.Unmarshal(frame, &env); err != nil {
		return "", protocol.Message{}, fmt.Errorf("%w: websocket frame: %v", ErrPayload, err)
	}
	payload := bytes.TrimSpace(env.Payload)
	if string(payload) == "null" {
		payload = nil
	}
	if len(payload) > 0 && payload[0] == '"' {
		var s string
		if err := json.Unmarshal(payload, &s); err != nil {
			return "", protocol.Message{}, fmt.Errorf("%w: websocket payload: %v", ErrPayload, err)
		}
		payload = []byte(s)
	}
	m, err := decodeJSON(env.Topic, payload, up, nil)
	return env.Topic, m, err
}

func encodeWebSocket(productID string, m protocol.Message, up bool) ([]byte, error) {
	topic, payload, err := encodeJSON(productID, m, up)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{Topic: topic, Payload: payload})
}
