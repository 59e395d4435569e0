package official

import (
	"errors"
	"reflect"
	"testing"

	"github.com/linkops/linkops/protocol"
)

func TestParseTopic(t *testing.T) {
	p, d, s, ok := ParseTopic("/prod/dev-1/properties/read/reply")
	if !ok || p != "prod" || d != "dev-1" || s != "properties/read/reply" {
		t.Fatalf("ParseTopic = %q %q %q %v", p, d, s, ok)
	}
	for _, bad := range []string{
		"", "/", "prod/dev/online", "/prod/dev", "/prod/dev/", "//dev/online", "/prod//online",
		"/prod/dev/event//x", "/prod/+/online", "/prod/dev/#", "/prod/dev/on\x00line",
	} {
		if _, _, _, ok := ParseTopic(bad); ok {
			t.Errorf("ParseTopic(%q) ok", bad)
		}
	}
}

func TestAllowedSubscription(t *testing.T) {
	for _, f := range []string{"/p/d/#", "/p/d/properties/read", "/p/d/+/invoke", "/p/d/properties/+", "/p/d/+"} {
		if !AllowedSubscription("p", "d", f) {
			t.Errorf("%q refused", f)
		}
	}
	for _, f := range []string{
		"#", "+", "/#", "/+/+/#", "/p/+/#", "/+/d/#", "/p/d2/#", "/p/dd/#", "/q/d/#", "/p/d",
		"p/d/#", "$share/g/p/d/#", "/p/d/#/x", "/p/d/prop#", "/p/d/prop+", "/p/d/x\x00",
	} {
		if AllowedSubscription("p", "d", f) {
			t.Errorf("%q allowed", f)
		}
	}
	// A device whose id is a wildcard would widen its filters; it gets none.
	if AllowedSubscription("p", "+", "/p/+/#") || AllowedSubscription("p", "", "/p//#") {
		t.Error("wildcard or empty id allowed")
	}
	got := TopicsOf("p", "d")
	want := []string{"/p/d/properties/read", "/p/d/properties/write", "/p/d/function/invoke",
		"/p/d/time-sync/reply", "/p/d/firmware/upgrade", "/p/d/firmware/pull/reply"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("TopicsOf = %q", got)
	}
	for _, topic := range got {
		if !AllowedSubscription("p", "d", topic) {
			t.Errorf("own downlink topic %q refused", topic)
		}
	}
	if TopicsOf("p", "a/b") != nil {
		t.Error("TopicsOf with '/' in the id")
	}
}

func TestDecodeJSON(t *testing.T) {
	const p = "/prod/dev"
	cases := []struct {
		topic, payload string
		want           protocol.Message
	}{
		{p + "/properties/report", `{"messageId":"m1","timestamp":1700000000000,"properties":{"temp":36.5,"n":3,"f":3.0,"big":1e30,"s":"x","o":{"a":[1,2.5]}},"deviceId":"spoofed"}`,
			protocol.Message{Type: protocol.TypeReportProperty, DeviceID: "dev", MessageID: "m1", Timestamp: 1700000000000,
				Properties: map[string]any{"temp": 36.5, "n": int64(3), "f": int64(3), "big": 1e30, "s": "x",
					"o": map[string]any{"a": []any{int64(1), 2.5}}}}},
		{p + "/properties/read/reply", `{"messageId":"m2","success":true,"properties":{"temp":1}}`,
			protocol.Message{Type: protocol.TypeReadPropertyReply, DeviceID: "dev", MessageID: "m2", Success: protocol.Bool(true),
				Properties: map[string]any{"temp": int64(1)}}},
		{p + "/properties/write/reply", `{"messageId":"m3","success":false,"code":"busy","message":"later"}`,
			protocol.Message{Type: protocol.TypeWritePropertyReply, DeviceID: "dev", MessageID: "m3", Success: protocol.Bool(false),
				Code: "busy", Message: "later"}},
		{p + "/function/invoke/reply", `{"messageId":12,"success":"true","output":{"r":[true,null]}}`,
			protocol.Message{Type: protocol.TypeInvokeFunctionReply, DeviceID: "dev", MessageID: "12", Success: protocol.Bool(true),
				Output: map[string]any{"r": []any{true, nil}}}},
		{p + "/event/fire", `{"messageId":"m5","timestamp":"17","data":{"level":2}}`,
			protocol.Message{Type: protocol.TypeEvent, DeviceID: "dev", MessageID: "m5", Timestamp: 17, Event: "fire",
				Data: map[string]any{"level": int64(2)}}},
		{p + "/online", ``, protocol.Message{Type: protocol.TypeOnline, DeviceID: "dev"}},
		{p + "/offline", `{"messageId":"bye"}`, protocol.Message{Type: protocol.TypeOffline, DeviceID: "dev", MessageID: "bye"}},
		{p + "/time-sync", `{"messageId":"t1"}`, protocol.Message{Type: protocol.TypeTimeSync, DeviceID: "dev", MessageID: "t1"}},
		{p + "/firmware/upgrade/reply", `{"messageId":"u1","success":true}`,
			protocol.Message{Type: protocol.TypeFirmwareUpgradeAck, DeviceID: "dev", MessageID: "u1", Success: protocol.Bool(true)}},
		{p + "/firmware/upgrade/progress", `{"progress":40,"complete":false,"version":"1.2","success":true,"errorReason":"","firmwareId":"fw1"}`,
			protocol.Message{Type: protocol.TypeFirmwareProgress, DeviceID: "dev", Progress: 40, Version: "1.2",
				Success: protocol.Bool(true), FirmwareID: "fw1"}},
		{p + "/firmware/pull", `{"messageId":"r1","currentVersion":"1.0","requestVersion":"1.1"}`,
			protocol.Message{Type: protocol.TypeFirmwarePull, DeviceID: "dev", MessageID: "r1", CurrentVersion: "1.0", RequestVersion: "1.1"}},
		{p + "/firmware/report", `{"version":"1.1"}`,
			protocol.Message{Type: protocol.TypeFirmwareReport, DeviceID: "dev", Version: "1.1"}},
	}
	for _, c := range cases {
		got, err := DecodeJSON(c.topic, []byte(c.payload))
		if err != nil {
			t.Errorf("%s: %v", c.topic, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", c.topic, got, c.want)
		}
	}

	topics := map[string]string{
		"not a topic":            "prod/dev/online",
		"down suffix":            p + "/properties/read",
		"unknown suffix":         p + "/properties/nonsense",
		"event without id":       p + "/event",
		"event id of two levels": p + "/event/a/b",
	}
	for name, topic := range topics {
		if _, err := DecodeJSON(topic, []byte(`{}`)); !errors.Is(err, ErrTopic) {
			t.Errorf("%s: %v, want ErrTopic", name, err)
		}
	}
	payloads := map[string]string{
		"not JSON":              `{`,
		"array":                 `[1]`,
		"null":                  `null`,
		"trailing data":         `{} {}`,
		"properties an array":   `{"properties":["a"]}`,
		"timestamp a fraction":  `{"timestamp":1.5}`,
		"messageId an object":   `{"messageId":{}}`,
		"success a word":        `{"success":"yes"}`,
		"progress out of range": `{"progress":99999999999}`,
	}
	for name, pl := range payloads {
		topic := p + "/properties/report"
		switch name {
		case "success a word":
			topic = p + "/properties/read/reply"
		case "progress out of range":
			topic = p + "/firmware/upgrade/progress"
		}
		if _, err := DecodeJSON(topic, []byte(pl)); !errors.Is(err, ErrPayload) {
			t.Errorf("%s: %v, want ErrPayload", name, err)
		}
	}
}

func TestEncodeJSON(t *testing.T) {
	cases := []struct {
		m              protocol.Message
		topic, payload string
	}{
		{protocol.Message{Type: protocol.TypeReadProperty, DeviceID: "dev", MessageID: "m1", PropertyNames: []string{"temp", "hum"}},
			"/prod/dev/properties/read", `{"deviceId":"dev","messageId":"m1","properties":["temp","hum"]}`},
		{protocol.Message{Type: protocol.TypeWriteProperty, DeviceID: "dev", MessageID: "m2", Properties: map[string]any{"on": true}},
			"/prod/dev/properties/write", `{"deviceId":"dev","messageId":"m2","properties":{"on":true}}`},
		{protocol.Message{Type: protocol.TypeInvokeFunction, DeviceID: "dev", MessageID: "m3", FunctionID: "reboot",
			Inputs: map[string]any{"zeta": 1, "alpha": "a", "mid": nil}},
			"/prod/dev/function/invoke",
			`{"deviceId":"dev","function":"reboot","functionId":"reboot","inputs":[{"name":"alpha","value":"a"},{"name":"mid","value":null},{"name":"zeta","value":1}],"messageId":"m3"}`},
		{protocol.Message{Type: protocol.TypeInvokeFunction, DeviceID: "dev", MessageID: "m4", FunctionID: "ping"},
			"/prod/dev/function/invoke", `{"deviceId":"dev","function":"ping","functionId":"ping","inputs":[],"messageId":"m4"}`},
		{protocol.Message{Type: protocol.TypeTimeSyncReply, DeviceID: "dev", MessageID: "t1", Timestamp: 1700000000123},
			"/prod/dev/time-sync/reply", `{"deviceId":"dev","messageId":"t1","timestamp":1700000000123}`},
		{protocol.Message{Type: protocol.TypeFirmwareUpgrade, DeviceID: "dev", MessageID: "u1", URL: "http://x/fw.bin",
			Version: "1.1", Parameters: map[string]any{"k": "v"}, Sign: "abc", SignMethod: "md5", FirmwareID: "fw1", Size: 1024},
			"/prod/dev/firmware/upgrade",
			`{"deviceId":"dev","firmwareId":"fw1","messageId":"u1","parameters":{"k":"v"},"sign":"abc","signMethod":"md5","size":1024,"url":"http://x/fw.bin","version":"1.1"}`},
		{protocol.Message{Type: protocol.TypeFirmwarePullReply, DeviceID: "dev", MessageID: "r1", URL: "http://x/fw.bin",
			Version: "1.1", Sign: "abc", SignMethod: "md5", FirmwareID: "fw1", Size: 1, Success: protocol.Bool(true)},
			"/prod/dev/firmware/pull/reply",
			`{"deviceId":"dev","firmwareId":"fw1","messageId":"r1","sign":"abc","signMethod":"md5","size":1,"success":true,"url":"http://x/fw.bin","version":"1.1"}`},
	}
	for _, c := range cases {
		topic, payload, err := EncodeJSON("prod", c.m)
		if err != nil {
			t.Errorf("%s: %v", c.m.Type, err)
			continue
		}
		if topic != c.topic || string(payload) != c.payload {
			t.Errorf("%s:\n got %s %s\nwant %s %s", c.m.Type, topic, payload, c.topic, c.payload)
		}
		// The device side reads back what was sent.
		back, err := DecodeDownJSON(topic, payload)
		if err != nil {
			t.Errorf("%s: DecodeDownJSON: %v", c.m.Type, err)
			continue
		}
		if back.Type != c.m.Type || back.MessageID != c.m.MessageID || back.FunctionID != c.m.FunctionID ||
			back.URL != c.m.URL || back.Size != c.m.Size {
			t.Errorf("%s: DecodeDownJSON = %#v", c.m.Type, back)
		}
	}

	bad := []protocol.Message{
		{Type: protocol.TypeReportProperty, DeviceID: "dev"},                // an uplink
		{Type: "nonsense", DeviceID: "dev"},                                 // no such type
		{Type: protocol.TypeReadProperty, DeviceID: "a/b"},                  // id is no level
		{Type: protocol.TypeTimeSyncReply, DeviceID: "dev", MessageID: "t"}, // no timestamp
	}
	for _, m := range bad {
		if _, _, err := EncodeJSON("prod", m); err == nil {
			t.Errorf("EncodeJSON(%+v) succeeded", m)
		}
	}
	if _, _, err := EncodeUpJSON("prod", protocol.Message{Type: protocol.TypeEvent, DeviceID: "dev", Event: "a/b"}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("event id with '/': %v", err)
	}
}

// TestDeviceSide checks that what a simulated device sends decodes to what it meant, for
// every up type, and that inputs in either shape and either function field are read.
func TestDeviceSide(t *testing.T) {
	ups := []protocol.Message{
		{Type: protocol.TypeReportProperty, DeviceID: "d", MessageID: "1", Timestamp: 9, Properties: map[string]any{"a": int64(1), "b": 1.5}},
		{Type: protocol.TypeReadPropertyReply, DeviceID: "d", MessageID: "2", Success: protocol.Bool(true), Properties: map[string]any{"a": "x"}},
		{Type: protocol.TypeWritePropertyReply, DeviceID: "d", MessageID: "3", Success: protocol.Bool(false), Code: "c", Message: "m"},
		{Type: protocol.TypeInvokeFunctionReply, DeviceID: "d", MessageID: "4", Success: protocol.Bool(true), FunctionID: "f", Output: []any{"o"}},
		{Type: protocol.TypeEvent, DeviceID: "d", MessageID: "5", Event: "alarm", Data: "text"},
		{Type: protocol.TypeOnline, DeviceID: "d"},
		{Type: protocol.TypeOffline, DeviceID: "d"},
		{Type: protocol.TypeTimeSync, DeviceID: "d", MessageID: "6"},
		{Type: protocol.TypeFirmwareUpgradeAck, DeviceID: "d", MessageID: "7", Success: protocol.Bool(true)},
		{Type: protocol.TypeFirmwareProgress, DeviceID: "d", Progress: 100, Complete: true, Version: "2", Success: protocol.Bool(true), FirmwareID: "fw"},
		{Type: protocol.TypeFirmwarePull, DeviceID: "d", MessageID: "8", CurrentVersion: "1"},
		{Type: protocol.TypeFirmwareReport, DeviceID: "d", Version: "2"},
	}
	for _, m := range ups {
		topic, payload, err := EncodeUpJSON("p", m)
		if err != nil {
			t.Errorf("%s: %v", m.Type, err)
			continue
		}
		got, err := DecodeJSON(topic, payload)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("%s: %s %s decodes as\n %#v, %v\nwant %#v", m.Type, topic, payload, got, err, m)
		}
	}
	for _, pl := range []string{
		`{"messageId":"x","function":"f","inputs":{"b":2,"a":1}}`,
		`{"messageId":"x","functionId":"f","inputs":[{"name":"b","value":2},{"name":"a","value":1}]}`,
	} {
		m, err := DecodeDownJSON("/p/d/function/invoke", []byte(pl))
		if err != nil || m.FunctionID != "f" || !reflect.DeepEqual(m.Inputs, map[string]any{"a": int64(1), "b": int64(2)}) {
			t.Errorf("%s: %#v, %v", pl, m, err)
		}
	}
}
