package session_test

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/linkops/linkops/session"
)

// TestPropertiesPersistAndMerge: values written to the file come back after a reopen, and
// merging two nodes' records keeps each property's latest value.
func TestPropertiesPersistAndMerge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devices.db")
	p, err := session.OpenProperties(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.Update("d1", map[string]any{"a": 1.0, "b": "x"}, t0)
	p.Update("d1", map[string]any{"a": 0.0}, t0.Add(-time.Minute)) // older: ignored
	p.SetFirmware("d1", "1.2.0", t0)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = session.OpenProperties(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got := p.Get([]string{"d1", "unknown"})["d1"]
	if got.Properties["a"].Value != 1.0 || got.Properties["b"].Value != "x" || got.FirmwareVersion != "1.2.0" {
		t.Fatalf("after reopening: %+v", got)
	}
	other := session.Record{Properties: map[string]session.Value{"a": {Value: 2.0, At: t0.Add(time.Second)}, "b": {Value: "old", At: t0.Add(-time.Hour)}}}
	got.Merge(other)
	if got.Properties["a"].Value != 2.0 || got.Properties["b"].Value != "x" || !got.Latest().Equal(t0.Add(time.Second)) {
		t.Fatalf("merged: %+v", got)
	}
}
