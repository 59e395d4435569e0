package session_test

import (
	"fmt"
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

// TestPropertiesManyDevices: the records of devices spread over every shard are all
// written and read back, a deleted one is gone from the file too, and lastMessageAt goes
// to disk with the next report.
func TestPropertiesManyDevices(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devices.db")
	p, err := session.OpenProperties(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := make([]string, 500)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%d", i)
		p.Update(ids[i], map[string]any{"n": int64(i)}, t0)
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	p.Delete(ids[7])
	p.Seen(ids[8], t0.Add(time.Minute))
	p.Update(ids[9], map[string]any{"m": "x"}, t0.Add(time.Second))
	p.Seen(ids[9], t0.Add(time.Minute))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = session.OpenProperties(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got := p.Get(append(ids, "unknown"))
	if len(got) != len(ids)-1 {
		t.Fatalf("%d records after reopening, want %d", len(got), len(ids)-1)
	}
	for i, id := range ids {
		r, ok := got[id]
		switch {
		case i == 7:
			if ok {
				t.Errorf("deleted %s came back: %+v", id, r)
			}
		case r.Properties["n"].Value != float64(i): // JSON numbers read back as float64
			t.Errorf("%s: %+v", id, r)
		}
	}
	if !got[ids[8]].LastMessageAt.IsZero() {
		t.Errorf("a keepalive alone was written: %+v", got[ids[8]])
	}
	if r := got[ids[9]]; r.Properties["m"].Value != "x" || !r.LastMessageAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("report and seen: %+v", r)
	}
}
