package node

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestPublicURLAndFirmwareLimit: --public-url must be an absolute http(s) base URL (its
// trailing slash dropped, since paths are appended to it) and --firmware-max-bytes a
// positive size; their defaults are SPEC §2.2's.
func TestPublicURLAndFirmwareLimit(t *testing.T) {
	var defaults Config
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	defaults.BindFlags(fs)
	if f := fs.Lookup("firmware-max-bytes"); f == nil || f.DefValue != "2147483648" {
		t.Errorf("--firmware-max-bytes: %v", f)
	}
	if f := fs.Lookup("public-url"); f == nil || f.DefValue != "" || !strings.Contains(f.Usage, "advertised") {
		t.Errorf("--public-url: %v", f)
	}
	if err := defaults.validate(); err != nil || defaults.PublicURL != "" || defaults.FirmwareMaxBytes != 2<<30 {
		t.Errorf("defaults: %v, %q, %d", err, defaults.PublicURL, defaults.FirmwareMaxBytes)
	}
	for in, want := range map[string]string{
		"http://10.0.0.5:8844":         "http://10.0.0.5:8844",
		"https://iot.example.com/":     "https://iot.example.com",
		"https://iot.example.com/ops/": "https://iot.example.com/ops",
		"ftp://iot.example.com":        "error",
		"iot.example.com:8844":         "error",
		"/relative":                    "error",
		"https://":                     "error",
		"https://iot.example.com/?a=b": "error",
		"https://iot.example.com/#top": "error",
		"https://user:pw@iot.example":  "error",
		"http://bad host":              "error",
	} {
		c := defaults
		c.PublicURL = in
		err := c.validate()
		switch {
		case want == "error" && (err == nil || !strings.Contains(err.Error(), "--public-url")):
			t.Errorf("--public-url %q: accepted (%v)", in, err)
		case want != "error" && (err != nil || c.PublicURL != want):
			t.Errorf("--public-url %q: %q, %v; want %q", in, c.PublicURL, err, want)
		}
	}
	c := defaults
	c.FirmwareMaxBytes = -1
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "--firmware-max-bytes") {
		t.Errorf("--firmware-max-bytes -1: %v", err)
	}
}
