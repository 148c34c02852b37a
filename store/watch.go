package store

import (
	"context"
	"time"
)

// Watch pings st every interval until ctx ends and calls changed whenever
// the shard's health changes: changed(nil) when it answers after not
// answering (its first answer included), changed(err) when it stops
// answering. Each ping is bounded by the interval.
func Watch(ctx context.Context, st Store, every time.Duration, changed func(err error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	healthy := false
	for {
		pctx, cancel := context.WithTimeout(ctx, every)
		err := st.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if (err == nil) != healthy {
			healthy = err == nil
			changed(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
