package official

import (
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// refParseTopic is ParseTopic as it was first written, splitting the topic.
func refParseTopic(topic string) (productID, deviceID, suffix string, ok bool) {
	rest, ok := strings.CutPrefix(topic, "/")
	if !ok {
		return "", "", "", false
	}
	levels := strings.SplitN(rest, "/", 3)
	if len(levels) != 3 || !validLevel(levels[0]) || !validLevel(levels[1]) {
		return "", "", "", false
	}
	for _, l := range strings.Split(levels[2], "/") {
		if !validLevel(l) {
			return "", "", "", false
		}
	}
	return levels[0], levels[1], levels[2], true
}

// agree fails t unless the fast decoder and the reference decoder say the same of a
// payload under a topic, both ways: both refuse it, or both decode the same message.
func agree(t *testing.T, topic string, payload []byte) {
	t.Helper()
	for _, l := range append(strings.Split(topic, "/"), topic) {
		if got, was := validLevel(l), l != "" && !strings.ContainsAny(l, "/+#\x00"); got != was {
			t.Fatalf("validLevel(%q) = %v, was %v", l, got, was)
		}
	}
	p, d, s, ok := ParseTopic(topic)
	rp, rd, rs, rok := refParseTopic(topic)
	if p != rp || d != rd || s != rs || ok != rok {
		t.Fatalf("ParseTopic(%q) = %q %q %q %v, was %q %q %q %v", topic, p, d, s, ok, rp, rd, rs, rok)
	}
	for _, up := range []bool{true, false} {
		ref, err := refDecodeJSON(topic, payload, up)
		// Into a new map, and into a lent one (DecodeJSONInto) that held another message's
		// properties and was cleared.
		lent := map[string]any{"earlier": 1.5}
		clear(lent)
		for _, props := range []map[string]any{nil, lent} {
			fast, ok := fastDecodeJSON(topic, payload, up, props)
			if ok != (err == nil) {
				t.Fatalf("%s %q (up %v, lent map %v): fast decoder ok %v, reference error %v\nfast %#v", topic, payload, up, props != nil, ok, err, fast)
			}
			if ok && !reflect.DeepEqual(fast, ref) {
				t.Fatalf("%s %q (up %v, lent map %v):\n fast %#v\n  ref %#v", topic, payload, up, props != nil, fast, ref)
			}
		}
	}
}

// trickyJSON are payloads where a hand-written decoder could part from encoding/json.
var trickyJSON = []struct{ topic, payload string }{
	{"/p/d/properties/report", " \t\r\n{ \"messageId\" : \"a\" , \"properties\" : { \"x\" : [ 1 , 2 ] } } \n"},
	{"/p/d/properties/report", "{}\u00a0\u2028\v\f"}, // trailing Unicode white space is allowed
	{"/p/d/properties/report", "\u00a0{}"},           // leading is not
	{"/p/d/properties/report", "\v"},                 // but a payload of it is empty
	{"/p/d/properties/report", "\ufeff{}"},
	{"/p/d/properties/report", `{"messageId":"a","messageId":"b","properties":{"k":1,"k":"two"}}`},
	{"/p/d/properties/report", `{"properties":{"a":1},"properties":null}`},
	{"/p/d/properties/report", `{"properties":[],"properties":{}}`},
	{"/p/d/properties/report", `{"properties":{},"properties":[]}`},
	{"/p/d/properties/report", `{"messag\u0065Id":"esc","pro\u0070erties":{"\ud83d\ude00":"\u00e9\n\t\"\\\/\b\f\r"}}`},
	{"/p/d/properties/report", `{"properties":{"lone":"\ud800","pair?":"\ud800\u0041","low":"\udc00\ud800\udc00","bad2":"\ud800\ud800"}}`},
	{"/p/d/properties/report", "{\"properties\":{\"bad\":\"\xff\xfe a \xed\xa0\x80 \xc3\"}}"},
	{"/p/d/properties/report", "{\"properties\":{\"k\xff\":\"\xef\xbf\xbd\"}}"},
	{"/p/d/properties/report", "{\"properties\":{\"ctl\":\"a\x01\"}}"},
	{"/p/d/properties/report", "{\"properties\":{\"del\":\"\x7f\"}}"},
	{"/p/d/properties/report", `{"properties":{"q":"\'"}}`},
	{"/p/d/properties/report", `{"properties":{"q":"\u12"}}`},
	{"/p/d/properties/report", `{"properties":{"q":"\uZZZZ"}}`},
	{"/p/d/properties/report", `{"properties":{"q":"\x"}}`},
	{"/p/d/properties/report", `{"properties":{"n":[0,-0,-0.0,1.0,1e2,1E+2,1e-2,-1.5e-3,123456789012345678,1234567890123456789,9223372036854775807,9223372036854775808,-9223372036854775808,-9223372036854775809,1e19,9.3e18,-9.2233720368547758e18,1e308,1e309,-1e400,1e-400,0.1e1]}}`},
	{"/p/d/properties/report", `{"properties":{"n":01}}`},
	{"/p/d/properties/report", `{"properties":{"n":1.}}`},
	{"/p/d/properties/report", `{"properties":{"n":.5}}`},
	{"/p/d/properties/report", `{"properties":{"n":-}}`},
	{"/p/d/properties/report", `{"properties":{"n":+1}}`},
	{"/p/d/properties/report", `{"properties":{"n":1e}}`},
	{"/p/d/properties/report", `{"properties":{"n":1e+}}`},
	{"/p/d/properties/report", `{"properties":{"n":0x10}}`},
	{"/p/d/properties/report", `{"properties":{"n":NaN}}`},
	{"/p/d/properties/report", `{"properties":{"t":true,"f":false,"z":null,"e":[],"o":{}}}`},
	{"/p/d/properties/report", `{"properties":{"t":tru}}`},
	{"/p/d/properties/report", `{"properties":{"t":truex}}`},
	{"/p/d/properties/report", `{"properties":{"t":nul}}`},
	{"/p/d/properties/report", `{"properties":{"a":1,}}`},
	{"/p/d/properties/report", `{"properties":{"a":1},}`},
	{"/p/d/properties/report", `{"properties":[1,]}`},
	{"/p/d/properties/report", `{"properties":{"a" 1}}`},
	{"/p/d/properties/report", `{"properties":{a:1}}`},
	{"/p/d/properties/report", `{"ignored":{"a":[1,{"b":"\u0041"}],"c":"x\ud800"},"deviceId":7,"messageId":"m"}`},
	{"/p/d/properties/report", `{"ignored":{"a":[1,]}}`},
	{"/p/d/properties/report", `{"ignored":"\q"}`},
	{"/p/d/properties/report", `{"ignored":{"a" 1}}`},
	{"/p/d/properties/report", `{"ignored":[}`},
	{"/p/d/properties/report", `{"code":{"not":"read here"},"success":"maybe"}`},
	{"/p/d/properties/report", `{"messageId":12.50,"timestamp":"  17 "}`},
	{"/p/d/properties/report", `{"messageId":true,"timestamp":1.7e3}`},
	{"/p/d/properties/report", `{"messageId":false,"timestamp":-5}`},
	{"/p/d/properties/report", `{"messageId":null,"timestamp":null,"properties":null}`},
	{"/p/d/properties/report", `{"timestamp":1e400}`},
	{"/p/d/properties/report", `{"timestamp":"1e3"}`},
	{"/p/d/properties/report", `{"timestamp":true}`},
	{"/p/d/properties/report", `{"timestamp":9223372036854775807}`},
	{"/p/d/properties/report", `{"timestamp":9223372036854775808}`},
	{"/p/d/properties/report", `{"messageId":[]}`},
	{"/p/d/properties/report", `{"messageId":"a"} x`},
	{"/p/d/properties/report", `{"messageId":"a"`},
	{"/p/d/properties/report", `{"messageId"`},
	{"/p/d/properties/report", `{"messageId`},
	{"/p/d/properties/report", `{`},
	{"/p/d/properties/report", `"text"`},
	{"/p/d/properties/report", `5`},
	{"/p/d/properties/report", `null`},
	{"/p/d/properties/report", `[{}]`},
	{"/p/d/properties/read/reply", `{"success":"TRUE"}`},
	{"/p/d/properties/read/reply", `{"success":"t","code":5,"message":false}`},
	{"/p/d/properties/read/reply", `{"success":0}`},
	{"/p/d/properties/read/reply", `{"success":1.0}`},
	{"/p/d/properties/read/reply", `{"success":2}`},
	{"/p/d/properties/read/reply", `{"success":-0}`},
	{"/p/d/properties/read/reply", `{"success":null}`},
	{"/p/d/properties/read/reply", `{"success":{}}`},
	{"/p/d/properties/read/reply", `{"success":"yes"}`},
	{"/p/d/function/invoke/reply", `{"functionId":"","function":"f"}`},
	{"/p/d/function/invoke/reply", `{"functionId":"g","function":{}}`},
	{"/p/d/function/invoke/reply", `{"functionId":{},"function":"f"}`},
	{"/p/d/function/invoke/reply", `{"functionId":null,"function":3}`},
	{"/p/d/function/invoke/reply", `{"output":3.25}`},
	{"/p/d/function/invoke/reply", `{"output":"s"}`},
	{"/p/d/function/invoke/reply", `{"output":true}`},
	{"/p/d/function/invoke/reply", `{"output":null}`},
	{"/p/d/function/invoke/reply", `{"output":1e999}`},
	{"/p/d/event/e", `{"data":[[],{},[{"a":[null]}]]}`},
	{"/p/d/event/e", `{"data":7}`},
	{"/p/d/function/invoke", `{"inputs":[]}`},
	{"/p/d/function/invoke", `{"inputs":{}}`},
	{"/p/d/function/invoke", `{"inputs":[{"name":"a","value":1},{"name":"a","value":2},{"name":"b"}]}`},
	{"/p/d/function/invoke", `{"inputs":[{"value":1}]}`},
	{"/p/d/function/invoke", `{"inputs":[{"name":1}]}`},
	{"/p/d/function/invoke", `{"inputs":[1]}`},
	{"/p/d/function/invoke", `{"inputs":"x"}`},
	{"/p/d/properties/read", `{"properties":[]}`},
	{"/p/d/properties/read", `{"properties":["a",1]}`},
	{"/p/d/properties/read", `{"properties":{"a":1}}`},
	{"/p/d/properties/read", `{"properties":"a"}`},
	{"/p/d/firmware/upgrade", `{"size":"12","parameters":[],"url":1}`},
	{"/p/d/firmware/upgrade", `{"size":1.5}`},
	{"/p/d/firmware/upgrade/progress", `{"progress":2147483647,"complete":"1"}`},
	{"/p/d/firmware/upgrade/progress", `{"progress":2147483648}`},
	{"/p/d/firmware/upgrade/progress", `{"progress":-2147483648,"complete":1}`},
	{"/p/d/firmware/upgrade/progress", `{"complete":"no"}`},
	{"/p/d/firmware/upgrade/progress", `{"errorReason":["x"]}`},
	{"/p/d/firmware/pull", `{"currentVersion":1.0,"requestVersion":{}}`},
	{"/p/d/online", `{"properties":"ignored","success":[]}`},
	{"/p/d/online", `{"messageId":{}}`},
	{"/p/d/unknown", `{}`},
	{"p/d/online", `{}`},
	{"/p/d/event/a/b", `{}`},
	// Beyond float64, a number normalizes to its text, yet is no string to names and inputs.
	{"/p/d/properties/read", `{"properties":["a",1e400]}`},
	{"/p/d/function/invoke", `{"inputs":[{"name":1e400,"value":1}]}`},
	{"/p/d/function/invoke", `{"inputs":[{"name":"n","value":[1e400,{"a":-1e999}]}]}`},
	{"/p/d/function/invoke", `{"inputs":{"n":1e400}}`},
	{"/p/d/firmware/upgrade", `{"parameters":{"n":1e400}}`},
	{"/p/d/event/e", `{"data":{"n":[1e400]}}`},
	{"/p/d/function/invoke/reply", `{"output":[1e400]}`},
	{"/p/d/event/", `{}`},
	{"/p/d//online", `{}`},
	{"/p/d/online/", `{}`},
	{"/p//online", `{}`},
	{"//d/online", `{}`},
	{"/p/d", `{}`},
	{"/p/d/", `{}`},
	{"/p/d/properties//report", `{}`},
	{"/p/d/on#line", `{}`},
	{"/p+/d/online", `{}`},
	{"/p/d\x00/online", `{}`},
	{"/p/d/event/a\x00", `{}`},
}

func TestFastDecodeJSONAgrees(t *testing.T) {
	for _, s := range append(jsonSeeds, trickyJSON...) {
		agree(t, s.topic, []byte(s.payload))
	}
	// encoding/json's nesting limit: 10000 arrays and objects, the top-level one counted,
	// whether the field is read or skipped.
	for _, depth := range []int{maxNesting - 1, maxNesting, maxNesting + 1} {
		for _, field := range []string{"properties", "ignored"} {
			for _, open := range []string{`[`, `{"k":`} {
				close := `]`
				if open != `[` {
					close = `}`
				}
				inner := strings.Repeat(open, depth-2) + `1` + strings.Repeat(close, depth-2)
				payload := `{"` + field + `":{"x":` + inner + `}}`
				agree(t, "/p/d/properties/report", []byte(payload))
			}
		}
	}
}

// TestFastDecodeJSONRandom compares the decoders on generated payloads: valid JSON built
// from the keys, strings and numbers where they could part, a fifth of it then broken by
// one byte. LINKOPS_JSON_RANDOM sets how many (default 20000).
func TestFastDecodeJSONRandom(t *testing.T) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("LINKOPS_JSON_RANDOM")); err == nil {
		n = v
	}
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	strParts := []string{`a`, `\n`, `\"`, `\\`, `\/`, `\b`, `\f`, `\r`, `\t`, `\u0041`, `\u00e9`, `\ud83d\ude00`,
		`\ud800`, `\udc00`, `\ud800\u0041`, `\ud83d\ud83d\ude00`, `\uDBFF\uDFFF`, `\u0000`, "\xff", "\xc3\xa9", "\xc3",
		"\xed\xa0\x80", "\xef\xbf\xbd", "\xf4\x90\x80\x80", "é", " ", "\x7f", "1", "true"}
	keys := []string{"properties", "messageId", "timestamp", "success", "code", "message", "inputs", "name", "value",
		"output", "data", "function", "functionId", "progress", "complete", "size", "url", "parameters", "x"}
	nums := []string{"0", "-0", "1", "-1", "255", "256", "1.5", "-0.0", "1e2", "1E-2", "1e400", "-1e400", "1e-400",
		"12345678901234567890", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"123456789012345678", "1234567890123456789", "0.1e1", "2147483648", "-2147483649"}
	str := func() string {
		s := `"`
		for range r.IntN(4) {
			s += pick(strParts)
		}
		return s + `"`
	}
	ws := func() string { return pick([]string{"", "", " ", "\n\t", "\r"}) }
	var val func(depth int) string
	val = func(depth int) string {
		switch k := r.IntN(9); {
		case k == 0 && depth < 5:
			s := "{" + ws()
			for i := range r.IntN(4) {
				if i > 0 {
					s += "," + ws()
				}
				key := `"` + pick(keys) + `"`
				if r.IntN(4) == 0 {
					key = str()
				}
				s += key + ws() + ":" + ws() + val(depth+1) + ws()
			}
			return s + "}"
		case k == 1 && depth < 5:
			s := "["
			for i := range r.IntN(4) {
				if i > 0 {
					s += ","
				}
				s += ws() + val(depth+1) + ws()
			}
			return s + "]"
		case k == 2:
			return str()
		case k == 3:
			return pick([]string{"true", "false", "null"})
		}
		return pick(nums)
	}
	topics := []string{"/p/d/properties/report", "/p/d/properties/read/reply", "/p/d/function/invoke",
		"/p/d/function/invoke/reply", "/p/d/properties/read", "/p/d/event/x", "/p/d/firmware/upgrade/progress",
		"/p/d/firmware/upgrade", "/p/d/online"}
	const breakers = "{}[]\",:\\ 0e.-\xff"
	for range n {
		s := "{" + ws()
		for i := range r.IntN(5) {
			if i > 0 {
				s += ","
			}
			s += `"` + pick(keys) + `":` + val(1)
		}
		b := []byte(s + "}" + pick([]string{"", " ", "\u00a0", "\v", " x"}))
		switch r.IntN(10) {
		case 0:
			b[r.IntN(len(b))] = breakers[r.IntN(len(breakers))]
		case 1:
			i := r.IntN(len(b))
			b = append(b[:i], b[i+1:]...)
		}
		agree(t, pick(topics), b)
	}
}

// FuzzFastDecodeJSON holds the single-pass decoder to the reference decoder: they must
// refuse the same inputs and decode the rest to the same messages.
func FuzzFastDecodeJSON(f *testing.F) {
	for _, s := range append(jsonSeeds, trickyJSON...) {
		f.Add(s.topic, []byte(s.payload))
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		agree(t, topic, payload)
	})
}

// b4Payload is a property report as the B4 benchmark's devices send it.
const b4Payload = `{"deviceId":"b4-00042","messageId":"42-7","properties":{"humidity":47,"state":"ok","temperature":22.2},"timestamp":1764638400123}`

func BenchmarkDecodeJSON(b *testing.B) {
	payload := []byte(b4Payload)
	lent := make(map[string]any)
	for _, c := range []struct {
		name   string
		decode func(string, []byte, bool) (any, bool)
	}{
		{"fast", func(t string, p []byte, up bool) (any, bool) {
			m, ok := fastDecodeJSON(t, p, up, nil)
			return m.Properties, ok
		}},
		{"fast into a lent map", func(t string, p []byte, up bool) (any, bool) {
			m, ok := fastDecodeJSON(t, p, up, lent)
			clear(lent)
			return m.Properties, ok
		}},
		{"reference", func(t string, p []byte, up bool) (any, bool) {
			m, err := refDecodeJSON(t, p, up)
			return m.Properties, err == nil
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := c.decode("/b4/b4-00042/properties/report", payload, true); !ok {
					b.Fatal("not decoded")
				}
			}
		})
	}
}
