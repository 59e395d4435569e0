package mqttclient

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func TestAllowedAddrs(t *testing.T) {
	got, err := allowedAddrs(context.Background(), "::ffff:127.0.0.1", 1883, loopback)
	if err != nil || len(got) != 1 || got[0].String() != "127.0.0.1:1883" {
		t.Errorf("an IPv4-mapped loopback address: %v, %v; want 127.0.0.1:1883 allowed", got, err)
	}
	if _, err := allowedAddrs(context.Background(), "::1", 0, loopback); err == nil {
		t.Error("port 0 was accepted")
	}
	if _, err := allowedAddrs(context.Background(), "no-such-host.invalid", 1883, loopback); err == nil || !strings.Contains(err.Error(), "resolve MQTT broker no-such-host.invalid") {
		t.Errorf("an unknown name: %v", err)
	}
}
