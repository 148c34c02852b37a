package membership

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
)

// memberlistLogWriter receives memberlist's log lines ("[LEVEL] memberlist:
// message") and forwards them to slog at debug level, keeping memberlist's own
// level as an attribute. After close it discards everything, so that timers
// memberlist leaves behind cannot write to a logger whose owner is gone.
type memberlistLogWriter struct {
	log    *slog.Logger
	closed atomic.Bool
}

// Write implements io.Writer; the standard log.Logger serializes calls.
func (w *memberlistLogWriter) Write(p []byte) (int, error) {
	if w.closed.Load() || !w.log.Enabled(context.Background(), slog.LevelDebug) {
		return len(p), nil
	}
	msg := strings.TrimRight(string(p), "\r\n")
	level := ""
	if strings.HasPrefix(msg, "[") {
		if i := strings.IndexByte(msg, ']'); i > 0 {
			level = msg[1:i]
			msg = strings.TrimSpace(msg[i+1:])
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	w.log.Debug(msg, "source", "memberlist", "memberlist_level", level)
	return len(p), nil
}
