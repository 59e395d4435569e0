package protocol

import (
	"context"
	"errors"
	"testing"
)

// echoCodec returns whatever JSON its input bytes spell, so the fuzzer chooses what a codec
// returns: decode's result is the whole payload, encode's the text of message.json.
const echoCodec = `
function decode(input) { return JSON.parse(String.fromCharCode.apply(null, input.bytes)); }
function encode(message) { return JSON.parse(message.json); }`

// FuzzCodecResults has a codec return arbitrary JSON from decode and encode. The Go side
// never panics: each call gives an error that says the codec threw or returned garbage,
// or a result within the documented limits. (The sandbox's limits on time and on the
// codec's own failures are tested in protocol_test.go.)
func FuzzCodecResults(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"type":"reportProperty","deviceId":"d1","properties":{"t":21.5}}]}`,
		`{"messages":[],"errors":["bad frame"]}`,
		`{"messages":[null]}`, `{"messages":{}}`, `{"errors":[1]}`, `[]`, `null`, `"x"`, `{`,
		`{"bytes":[1,2,255],"topic":"/p/d/properties/read"}`, `{"bytes":[256]}`, `{"bytes":[1.5]}`, `{"bytes":"AQI="}`,
		`{"messages":[{}],"errors":null,"bytes":[-1],"topic":7}`,
	} {
		f.Add([]byte(s))
	}
	c, err := Compile(&Package{Manifest: Manifest{Main: "codec.js"}, Source: echoCodec})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, js []byte) {
		if len(js) > MaxPayloadBytes {
			return
		}
		ctx := context.Background()
		dec, err := c.Decode(ctx, DecodeInput{Transport: "MQTT", Bytes: js})
		switch {
		case err != nil:
			if !errors.Is(err, ErrGarbage) && !errors.Is(err, ErrException) {
				t.Fatalf("Decode of %q: %v, want garbage or an exception", js, err)
			}
		case len(dec.Messages) > MaxMessages || len(dec.Errors) > MaxMessages:
			t.Fatalf("Decode of %q: %d messages, %d errors", js, len(dec.Messages), len(dec.Errors))
		default:
			for i, m := range dec.Messages {
				if m == nil {
					t.Fatalf("Decode of %q: messages[%d] is nil", js, i)
				}
			}
		}
		enc, err := c.Encode(ctx, map[string]any{"json": string(js)})
		switch {
		case err != nil:
			if !errors.Is(err, ErrGarbage) && !errors.Is(err, ErrException) {
				t.Fatalf("Encode of %q: %v, want garbage or an exception", js, err)
			}
		case len(enc.Bytes) > MaxPayloadBytes:
			t.Fatalf("Encode of %q: %d bytes", js, len(enc.Bytes))
		}
	})
}
