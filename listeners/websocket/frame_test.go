package websocket

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzIsText: a text message is always valid UTF-8 without stray control characters,
// and JSON (whatever string it encodes) always goes as text.
func FuzzIsText(f *testing.F) {
	for _, s := range []string{"", `{"a":1}`, "line\r\n\ttab", "\x00", "\x00\x00\x00\x05hello", "caf\xe9", "设备", "\xef\xbf\xbd", "\x7f", "\x1b[0m", "\x1f"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if isText(p) {
			if !utf8.Valid(p) {
				t.Fatalf("%q is text but not UTF-8", p)
			}
			for _, r := range string(p) {
				if r < 0x20 && !strings.ContainsRune("\t\r\n", r) {
					t.Fatalf("%q is text but holds control character %U", p, r)
				}
			}
		}
		j, _ := json.Marshal(string(p))
		if !isText(j) {
			t.Fatalf("JSON %q would go as binary", j)
		}
	})
}

// FuzzCloseText: any reason fits a close frame as valid UTF-8 and keeps its beginning.
func FuzzCloseText(f *testing.F) {
	for _, s := range []string{"", "bye", strings.Repeat("设备", 40), strings.Repeat("a", 122) + "é", "\xff\xfe", strings.Repeat("x", 500)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reason string) {
		got := closeText(reason)
		valid := strings.ToValidUTF8(reason, "?")
		if len(got) > maxCloseText || !utf8.ValidString(got) || !strings.HasPrefix(valid, got) {
			t.Fatalf("closeText(%q) = %q", reason, got)
		}
		if len(valid) <= maxCloseText && got != valid {
			t.Fatalf("closeText(%q) = %q, want it whole", reason, got)
		}
		if len(valid) > maxCloseText && len(got) < maxCloseText-utf8.UTFMax {
			t.Fatalf("closeText(%q) cut to %d bytes", reason, len(got))
		}
	})
}
