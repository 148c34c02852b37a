package warm

import (
	"context"

	"github.com/peercache/peercache/store"
	"github.com/prometheus/client_golang/prometheus"
)

// fillBatch is how many keys one shard read of a warm-up loads.
const fillBatch = 256

// FillConfig is what the receiving side of a warm-up needs: which keys are
// its own, its shard and its tier.
type FillConfig struct {
	// Mine returns the keys of batch that are this node's to warm (keys it
	// accepts, owned by it), in order, judged by one view of the ring.
	Mine func(batch []string) []string
	// Epoch returns the tier's current epoch, loaded before Mine's view.
	Epoch func() uint64
	// Guard returns key's guard, loaded before the shard is read.
	Guard func(key string) uint64
	// Read reads keys from the shard (store.Store's GetMany).
	Read func(ctx context.Context, keys []string) ([]store.Entry, []bool, error)
	// Fill puts the live record e of key into the tier unless its guard
	// moved from g or the epoch from ep; it reports whether it did.
	Fill func(key string, e store.Entry, g, ep uint64) bool
	// Filled counts the keys filled (nil: not counted).
	Filled prometheus.Counter
}

// Fill loads keys into the tier from the shard, at most 256 per shard
// read: only the keys Mine keeps, only live records (neither missing nor
// tombstones), each filled as a read would fill it (its guard loaded
// before the shard is read, so that a write in between wins). It stops at
// the first failed read or when ctx ends, and returns how many keys it
// filled.
func Fill(ctx context.Context, keys []string, cfg FillConfig) int {
	filled := 0
	for len(keys) > 0 && ctx.Err() == nil {
		batch := keys[:min(len(keys), fillBatch)]
		keys = keys[len(batch):]
		ep := cfg.Epoch()
		mine := cfg.Mine(batch)
		if len(mine) == 0 {
			continue
		}
		guards := make([]uint64, len(mine))
		for i, k := range mine {
			guards[i] = cfg.Guard(k)
		}
		es, found, err := cfg.Read(ctx, mine)
		if err != nil {
			break
		}
		for i, e := range es {
			if !found[i] || e.Tombstone {
				continue
			}
			if cfg.Fill(mine[i], e, guards[i], ep) {
				filled++
			}
		}
	}
	if cfg.Filled != nil {
		cfg.Filled.Add(float64(filled))
	}
	return filled
}
