package resource_test

import (
	"bytes"
	"testing"

	"github.com/linkops/linkops/resource"
)

func TestParseDelimiter(t *testing.T) {
	for in, want := range map[string][]byte{
		`\r\n`:   {'\r', '\n'},
		"0x0d0a": {'\r', '\n'},
		"0X7E":   {0x7e},
		`##`:     []byte("##"),
		`\x7e\0`: {0x7e, 0},
		`a\\b`:   []byte(`a\b`),
	} {
		got, err := resource.ParseDelimiter(in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ParseDelimiter(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0x", "0xZZ", "0x123", `\`, `\q`, `\x7`, `\xZZ`} {
		if _, err := resource.ParseDelimiter(in); err == nil {
			t.Errorf("ParseDelimiter(%q) accepted", in)
		}
	}
}

func FuzzParseDelimiter(f *testing.F) {
	for _, s := range []string{`\r\n`, "0x0d0a", `\x7e`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := resource.ParseDelimiter(s)
		if err == nil && (len(b) == 0 || len(b) > 64) {
			t.Fatalf("ParseDelimiter(%q) = %d bytes without an error", s, len(b))
		}
	})
}

func TestBindingConflicts(t *testing.T) {
	tcp := func(node, host string, port int) resource.Binding {
		return resource.Binding{Node: node, Transport: "tcp", Host: host, Port: port}
	}
	for name, tc := range map[string]struct {
		a, b resource.Binding
		want bool
	}{
		"same shared socket":           {tcp("", "0.0.0.0", 80), tcp("", "0.0.0.0", 80), true},
		"wildcard and a specific host": {tcp("", "0.0.0.0", 80), tcp("", "10.0.0.1", 80), true},
		"IPv6 wildcard":                {tcp("", "::", 80), tcp("", "10.0.0.1", 80), true},
		"two specific hosts":           {tcp("", "10.0.0.1", 80), tcp("", "10.0.0.2", 80), false},
		"other port":                   {tcp("", "0.0.0.0", 80), tcp("", "0.0.0.0", 81), false},
		"udp and tcp":                  {tcp("", "0.0.0.0", 80), resource.Binding{Transport: "udp", Host: "0.0.0.0", Port: 80}, false},
		"shared and one node's":        {tcp("", "0.0.0.0", 80), tcp("node2", "0.0.0.0", 80), true},
		"two different nodes":          {tcp("node1", "0.0.0.0", 80), tcp("node2", "0.0.0.0", 80), false},
		"the same node":                {tcp("node1", "0.0.0.0", 80), tcp("node1", "127.0.0.1", 80), true},
	} {
		if got := tc.a.Conflicts(tc.b); got != tc.want || tc.b.Conflicts(tc.a) != tc.want {
			t.Errorf("%s: Conflicts = %v, want %v (both ways)", name, got, tc.want)
		}
	}
}

func TestRedactedDeepCopiesNestedSecrets(t *testing.T) {
	shared := false
	stored := &resource.NetworkComponent{Name: "c", Type: resource.TypeMQTTClient, ShareCluster: &shared,
		Cluster: []resource.NodeNetConfig{{ServerID: "node1", Configuration: resource.NetworkConfig{RemoteHost: "h", Password: "p1"}}}}
	out := resource.Redacted(stored)
	if out.Cluster[0].Configuration.Password != "" {
		t.Error("per-node password not cleared")
	}
	if stored.Cluster[0].Configuration.Password != "p1" {
		t.Error("Redacted changed the stored object")
	}
	// KeepSecrets matches per-node entries by serverId, not by position.
	next := &resource.NetworkComponent{Cluster: []resource.NodeNetConfig{{ServerID: "node2"}, {ServerID: "node1"}}}
	resource.KeepSecrets(next, stored)
	if next.Cluster[1].Configuration.Password != "p1" || next.Cluster[0].Configuration.Password != "" {
		t.Errorf("KeepSecrets by serverId: %+v", next.Cluster)
	}
}
