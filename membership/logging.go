package membership

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/peercache/peercache/internal/rate"
)

// memberlistLogWriter receives memberlist's log lines ("[LEVEL] memberlist:
// message") and forwards them to slog at debug level, keeping memberlist's own
// level as an attribute. After close it discards everything, so that timers
// memberlist leaves behind cannot write to a logger whose owner is gone.
type memberlistLogWriter struct {
	log    *slog.Logger
	closed atomic.Bool
	// refused rate-limits the WARN lines about refused gossip: a
	// stranger could otherwise flood the log.
	refused rate.Gate
}

// refusedGossip recognises memberlist's lines about traffic it dropped
// because it was not encrypted with this cluster's key (or carried another
// cluster's label): a node without the cluster secret trying to join.
func refusedGossip(msg string) bool {
	if !strings.HasPrefix(msg, "[ERR]") {
		return false
	}
	for _, s := range []string{"Decrypt packet failed", "unacceptable label", "could decrypt", "not encrypted", "Received invalid msgType", "remove the stream label"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// Write implements io.Writer; the standard log.Logger serializes calls.
func (w *memberlistLogWriter) Write(p []byte) (int, error) {
	if w.closed.Load() {
		return len(p), nil
	}
	if refusedGossip(string(p)) {
		if w.refused.Allow(time.Now()) {
			w.log.Warn("gossip refused: a node without this cluster's secret (or of another cluster) tried to talk to this one",
				"detail", strings.TrimSpace(strings.TrimPrefix(strings.TrimRight(string(p), "\r\n"), "[ERR] memberlist: ")))
		}
		return len(p), nil
	}
	if !w.log.Enabled(context.Background(), slog.LevelDebug) {
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
