package replica

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/internal/clusterview"
	"github.com/peercache/peercache/store"
)

// WriteThrough copies a fresh write e to its key's previous owners in v
// while a ring change settles (self is this node). A previous owner that
// has not learned of the change yet still believes it owns the key and
// serves reads from its shard; the copy (an ordinary versioned import,
// applied only if newer and only if the receiver believes it owns the key)
// keeps those reads from returning the value this write replaced. Owners
// that already know the new ring refuse the import, which is fine: they
// forward reads instead. Failures are ignored: they only widen the
// stale-read window, never lose the write.
//
// Only members whose gossiped ring checksum differs from v's get the copy:
// one that announces the same ring already forwards reads of the key. In a
// settled cluster that is nobody, so writes pay nothing. results counts
// the copies by "applied", "refused" and "error"; failures are logged at
// DEBUG.
func WriteThrough(ctx context.Context, v *clusterview.View, self string, e store.Entry, send SendFunc,
	results *prometheus.CounterVec, log *slog.Logger) {
	var wg sync.WaitGroup
	for _, p := range v.PreviousOwners(e.Key, self) {
		m, ok := v.Members[p]
		if !ok || m.Meta.Extra[clusterview.MetaRing] == v.Checksum {
			continue
		}
		wg.Go(func() {
			res, err := send(ctx, p, []store.Entry{e})
			switch {
			case err != nil:
				results.WithLabelValues("error").Inc()
				log.Debug("write-through to previous owner failed", "peer", p, "key", e.Key, "err", err)
			case res[0].IsAcked():
				results.WithLabelValues("applied").Inc()
			default:
				results.WithLabelValues("refused").Inc()
			}
		})
	}
	wg.Wait()
}
