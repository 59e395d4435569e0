package official

import (
	"errors"
	"reflect"
	"testing"

	"github.com/linkops/linkops/protocol"
)

func TestWebSocket(t *testing.T) {
	topic, m, err := DecodeWebSocket([]byte(`{"topic":"/prod/dev/properties/report","payload":{"messageId":"1","properties":{"t":2}}}`))
	if err != nil || topic != "/prod/dev/properties/report" || m.Type != protocol.TypeReportProperty ||
		m.DeviceID != "dev" || !reflect.DeepEqual(m.Properties, map[string]any{"t": int64(2)}) {
		t.Fatalf("DecodeWebSocket = %q %#v, %v", topic, m, err)
	}
	// A payload sent as a string of JSON, and none at all.
	if _, m, err := DecodeWebSocket([]byte(`{"topic":"/prod/dev/event/e","payload":"{\"data\":1}"}`)); err != nil || m.Data != int64(1) {
		t.Fatalf("string payload: %#v, %v", m, err)
	}
	if _, m, err := DecodeWebSocket([]byte(`{"topic":"/prod/dev/online"}`)); err != nil || m.Type != protocol.TypeOnline {
		t.Fatalf("no payload: %#v, %v", m, err)
	}
	if _, _, err := DecodeWebSocket([]byte(`[]`)); !errors.Is(err, ErrPayload) {
		t.Fatalf("not an envelope: %v", err)
	}
	if _, _, err := DecodeWebSocket([]byte(`{"topic":"/prod/dev/properties/read","payload":{}}`)); !errors.Is(err, ErrTopic) {
		t.Fatalf("down topic from a device: %v", err)
	}

	down := protocol.Message{Type: protocol.TypeReadProperty, DeviceID: "dev", MessageID: "m", PropertyNames: []string{"t"}}
	frame, err := EncodeWebSocket("prod", down)
	if want := `{"topic":"/prod/dev/properties/read","payload":{"deviceId":"dev","messageId":"m","properties":["t"]}}`; err != nil || string(frame) != want {
		t.Fatalf("EncodeWebSocket = %s, %v; want %s", frame, err, want)
	}
	topic, back, err := DecodeDownWebSocket(frame)
	if err != nil || topic != "/prod/dev/properties/read" || !reflect.DeepEqual(back, down) {
		t.Fatalf("DecodeDownWebSocket = %#v, %v", back, err)
	}
	up, err := EncodeUpWebSocket("prod", protocol.Message{Type: protocol.TypeOffline, DeviceID: "dev"})
	if err != nil || string(up) != `{"topic":"/prod/dev/offline","payload":{"deviceId":"dev"}}` {
		t.Fatalf("EncodeUpWebSocket = %s, %v", up, err)
	}
}
