package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger gives raft an hclog.Logger whose records go to slog, so raft's log lines
// join the node's structured system log instead of a separate stream.
func newHCLogger(name string, log *slog.Logger) hclog.Logger {
	l := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: name, Output: io.Discard, Level: hclog.Debug})
	l.RegisterSink(&slogSink{log: log.With("component", name)})
	return l
}

type slogSink struct{ log *slog.Logger }

var hclogLevels = map[hclog.Level]slog.Level{
	hclog.Trace: slog.LevelDebug - 4,
	hclog.Debug: slog.LevelDebug,
	hclog.Info:  slog.LevelInfo,
	hclog.Warn:  slog.LevelWarn,
	hclog.Error: slog.LevelError,
}

func (s *slogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	lvl, ok := hclogLevels[level]
	if !ok {
		lvl = slog.LevelInfo
	}
	if !s.log.Enabled(context.Background(), lvl) {
		return
	}
	for i, a := range args {
		// hclog.Fmt values are deferred Sprintf calls; slog would print them raw.
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				args[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	s.log.Log(context.Background(), lvl, msg, args...)
}
