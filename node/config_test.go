package node_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/linkops/linkops/node"
)

// TestConfigPrecedence: a flag beats LINKOPS_<NAME>, which beats the --config file, which
// beats the default.
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "linkops.json")
	if err := os.WriteFile(file, []byte(`{"rack": "file-rack", "data-dir": "/file", "join": ["a:1", "b:2"], "bootstrap-expect": 3, "log-level": "warn"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LINKOPS_DATA_DIR", "/env")
	t.Setenv("LINKOPS_LOG_LEVEL", "debug")
	var cfg node.Config
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	cfg.BindFlags(fs)
	if err := fs.Parse([]string{"--log-level", "error"}); err != nil {
		t.Fatal(err)
	}
	if err := node.LoadEnvAndFile(fs, file); err != nil {
		t.Fatal(err)
	}
	if cfg.LogLevel != "error" || cfg.DataDir != "/env" || cfg.Rack != "file-rack" || cfg.BootstrapExpect != 3 ||
		len(cfg.Join) != 2 || cfg.Join[1] != "b:2" || cfg.HTTPAddr != "127.0.0.1:8844" {
		t.Fatalf("config: %+v", cfg)
	}
	if err := os.WriteFile(file, []byte(`{"no-such-flag": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg2 node.Config
	fs2 := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	cfg2.BindFlags(fs2)
	if err := node.LoadEnvAndFile(fs2, file); err == nil {
		t.Fatal("unknown config key accepted")
	}
}

// TestDefaultsMatchTheSpec pins the defaults of SPEC §2.2.
func TestDefaultsMatchTheSpec(t *testing.T) {
	var cfg node.Config
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	cfg.BindFlags(fs)
	want := map[string]string{"data-dir": "./data", "http-addr": "127.0.0.1:8844", "raft-addr": "127.0.0.1:8845",
		"gossip-addr": "127.0.0.1:8846", "bootstrap-expect": "1", "log-level": "info", "node-id": "", "join": "[]"}
	for name, def := range want {
		if f := fs.Lookup(name); f == nil || f.DefValue != def {
			t.Errorf("--%s default: %v, want %q", name, f, def)
		}
	}
	for _, name := range []string{"advertise-host", "rack", "cluster-key", "admin-password", "blob-store"} {
		if fs.Lookup(name) == nil {
			t.Errorf("--%s missing", name)
		}
	}
}

// TestREADMEListsEveryFlag keeps the README's flag table in step with the agent's flags.
func TestREADMEListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg node.Config
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	cfg.BindFlags(fs)
	fs.VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(string(readme), "| `--"+f.Name+"` |") {
			t.Errorf("README's flag table lacks --%s", f.Name)
		}
	})
}
