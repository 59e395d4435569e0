package official

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// Each fuzz target asserts that decoding never panics, fails only with this package's
// sentinel, and that whatever decodes survives a round trip: decode(encode(x)) == x.

var dialects = []Dialect{{}, {UntypedDeviceID: true}}

func FuzzDecodeFrame(f *testing.F) {
	for _, g := range goldenFrames {
		b := unhex(f, g.hex...)
		f.Add(b)
		f.Add(append([]byte{0, 0, 0, byte(len(b))}, b...))
	}
	f.Add(unhex(f, "000000270100000186c51a890f0001001331363531383533343133303332383934343634000561646d696e"))
	f.Add(unhex(f, "0300000186C567FA7900020013313635313835333431333033323839343436340001000474656d700B000433362e35000561646d696e"))
	f.Add(unhex(f, "03", tsHex, "0001 00 0002 0001 61 0d 0002 0e 0001 0001 62 0c 0002 ffff 09 4203851f 0001 63 05 8000000000000000"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := DecodeTCP(data); err != nil && !errors.Is(err, ErrFrame) {
			t.Fatalf("DecodeTCP error %v is not ErrFrame", err)
		}
		for _, dl := range dialects {
			fr, err := dl.DecodeFrame(data)
			if err != nil {
				if !errors.Is(err, ErrFrame) {
					t.Fatalf("DecodeFrame error %v is not ErrFrame", err)
				}
				continue
			}
			enc, err := dl.EncodeFrame(fr)
			if err != nil {
				t.Fatalf("decoded %+v does not encode: %v", fr, err)
			}
			again, err := dl.DecodeFrame(enc)
			if err != nil || !reflect.DeepEqual(again, fr) {
				t.Fatalf("round trip:\n first %#v\nsecond %#v, %v", fr, again, err)
			}
			tcp, err := dl.EncodeTCP(fr)
			if err != nil {
				t.Fatal(err)
			}
			if viaTCP, err := dl.DecodeTCP(tcp); err != nil || !reflect.DeepEqual(viaTCP, fr) {
				t.Fatalf("TCP round trip: %#v, %v", viaTCP, err)
			}
			// Decoded values go to JSON API responses as they are.
			if _, err := json.Marshal(fr.Message); err != nil {
				t.Fatalf("decoded message does not marshal: %v", err)
			}
		}
	})
}

func FuzzDecodeUDP(f *testing.F) {
	for _, g := range goldenFrames {
		f.Add(append(unhex(f, "00 0005 61646d696e"), unhex(f, g.hex...)...))
	}
	f.Add(unhex(f, "00 0000 02", tsHex, "0001", idTest, "00"))
	f.Add(unhex(f, "01 0001"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, dl := range dialects {
			d, err := dl.DecodeUDP(data)
			if err != nil {
				if !errors.Is(err, ErrFrame) {
					t.Fatalf("DecodeUDP error %v is not ErrFrame", err)
				}
				continue
			}
			enc, err := dl.EncodeUDP(d)
			if err != nil {
				t.Fatalf("decoded %+v does not encode: %v", d, err)
			}
			again, err := dl.DecodeUDP(enc)
			if err != nil || !reflect.DeepEqual(again, d) {
				t.Fatalf("round trip:\n first %#v\nsecond %#v, %v", d, again, err)
			}
		}
	})
}

// jsonSeeds are payloads under topics of every kind.
var jsonSeeds = []struct{ topic, payload string }{
	{"/p/d/properties/report", `{"messageId":"1","timestamp":1700000000000,"properties":{"t":36.5,"n":-0,"x":1e400,"a":[1,{"b":null}]}}`},
	{"/p/d/properties/read/reply", `{"messageId":2,"success":"false","code":7,"message":true}`},
	{"/p/d/properties/write/reply", `{"success":1,"properties":{}}`},
	{"/p/d/function/invoke/reply", `{"function":"f","output":[1.5,"s"]}`},
	{"/p/d/event/alarm", `{"data":"text"}`},
	{"/p/d/online", ``},
	{"/p/d/time-sync", `{"messageId":"t"}`},
	{"/p/d/firmware/upgrade/progress", `{"progress":"50","complete":true}`},
	{"/p/d/firmware/pull", `{"currentVersion":"1"}`},
	{"/p/d/firmware/report", `{"version":"2"}`},
	{"/p/d/properties/read", `{"properties":["a","b"]}`},
	{"/p/d/properties/write", `{"properties":{"a":1}}`},
	{"/p/d/function/invoke", `{"functionId":"f","inputs":[{"name":"b","value":1},{"name":"a"}]}`},
	{"/p/d/function/invoke", `{"function":"f","inputs":{"a":{}}}`},
	{"/p/d/time-sync/reply", `{"messageId":"t","timestamp":"5"}`},
	{"/p/d/firmware/upgrade", `{"url":"u","size":3,"parameters":{"k":[]}}`},
	{"/p/d/firmware/pull/reply", `{"url":"u","success":true}`},
	{"p/d/online", `[]`},
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add(s.topic, []byte(s.payload))
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		for _, up := range []bool{true, false} {
			m, err := decodeJSON(topic, payload, up, nil)
			if err != nil {
				if !errors.Is(err, ErrTopic) && !errors.Is(err, ErrPayload) {
					t.Fatalf("decode error %v is neither ErrTopic nor ErrPayload", err)
				}
				continue
			}
			product, _, _, _ := ParseTopic(topic)
			topic2, payload2, err := encodeJSON(product, m, up)
			if err != nil {
				if m.Type == "timeSyncReply" && m.Timestamp == 0 {
					continue // a reply without its timestamp is refused on the way out
				}
				t.Fatalf("decoded %#v does not encode: %v", m, err)
			}
			if topic2 != topic {
				t.Fatalf("topic %q re-encodes as %q", topic, topic2)
			}
			again, err := decodeJSON(topic2, payload2, up, nil)
			if err != nil || !reflect.DeepEqual(again, m) {
				t.Fatalf("round trip through %s:\n first %#v\nsecond %#v, %v", payload2, m, again, err)
			}
		}
		env, _ := json.Marshal(map[string]any{"topic": topic, "payload": json.RawMessage(payload)})
		if _, _, err := DecodeWebSocket(env); err != nil && !errors.Is(err, ErrTopic) && !errors.Is(err, ErrPayload) {
			t.Fatalf("DecodeWebSocket error %v", err)
		}
	})
}

func FuzzCoAP(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add(s.topic, []byte(s.payload), false)
	}
	enc, _ := Encrypt(coapKey, []byte(`{"properties":{"a":1}}`))
	f.Add("/p/d/properties/report", enc, true)
	f.Add("/p/d/properties/report", enc[:16], true)
	f.Fuzz(func(t *testing.T, path string, data []byte, encrypted bool) {
		// Bytes as they come off the wire: whatever decrypts re-encrypts to the same bytes
		// (PKCS#7 padding is canonical).
		if plain, err := Decrypt(coapKey, data); err == nil {
			if back, err := Encrypt(coapKey, plain); err != nil || !bytes.Equal(back, data) {
				t.Fatalf("decrypted %x re-encrypts as %x, %v", data, back, err)
			}
		} else if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Decrypt error %v is not ErrDecrypt", err)
		}
		payload := data
		if !encrypted {
			c, err := Encrypt(coapKey, data)
			if err != nil {
				t.Fatal(err)
			}
			if plain, err := Decrypt(coapKey, c); err != nil || !bytes.Equal(plain, data) {
				t.Fatalf("Decrypt(Encrypt(%x)) = %x, %v", data, plain, err)
			}
			payload = c
		}
		m, err := DecodeCoAP(path, "", coapKey, payload)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrTopic) && !errors.Is(err, ErrPayload) {
				t.Fatalf("DecodeCoAP error %v", err)
			}
			return
		}
		product, _, _, _ := ParseTopic(coapTopic(path))
		path2, payload2, err := EncodeCoAP(product, coapKey, m)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", m, err)
		}
		again, err := DecodeCoAP(path2, "", coapKey, payload2)
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip:\n first %#v\nsecond %#v, %v", m, again, err)
		}
	})
}
