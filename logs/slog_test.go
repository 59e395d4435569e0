package logs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// TestHandlerTeesIntoTheStore: a record logged through the handler is printed and stored,
// with its component as logger, its error as exception, its other attributes (With, groups)
// as fields and its caller.
func TestHandlerTeesIntoTheStore(t *testing.T) {
	st := openTest(t, Options{Path: filepath.Join(t.TempDir(), "logs.db"), ServerID: "n1"})
	var printed bytes.Buffer
	log := slog.New(NewHandler(slog.NewTextHandler(&printed, &slog.HandlerOptions{Level: slog.LevelInfo}), st)).With("node", "n1")
	log.With("component", "api").WithGroup("req").Error("request failed", "path", "/x", "error", errors.New("boom"))
	log.Debug("not enabled, neither printed nor stored")
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs, err := st.QuerySystem(context.Background(), Filter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d stored records, want 1: %+v", len(recs), recs)
	}
	r := recs[0]
	if r.Level != "ERROR" || r.Name != "api" || r.Message != "request failed" || r.ExceptionStack != "boom" ||
		r.Fields["req.path"] != "/x" || r.ServerID != "n1" || !strings.HasPrefix(r.Caller, "logs/slog_test.go:") {
		t.Errorf("stored %+v", r)
	}
	if _, leaked := r.Fields["node"]; leaked {
		t.Error("node attribute kept as a field; it is the record's serverId")
	}
	if !strings.Contains(printed.String(), "request failed") || strings.Contains(printed.String(), "not enabled") {
		t.Errorf("printed %q", printed.String())
	}
}
