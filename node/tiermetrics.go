package node

import "github.com/peercache/peercache/internal/nodemetrics"

// tierSnapshot reads, at scrape time, what the tier series report: the
// local tier's, the near cache's and the loader's counters and the
// eviction counts.
func (n *Node) tierSnapshot() nodemetrics.Tier {
	s, ev := n.tierStats(), n.evictions()
	return nodemetrics.Tier{Stats: s.Stats,
		InvalidationsOut: s.InvalidationsOut, InvalidationBatches: s.InvalidationBatches, InvalidationsIn: s.InvalidationsIn,
		InvalidationDrop: s.InvalidationDrop, InvalidationFailed: s.InvalidationFailed, InvalidationWaitTimeouts: s.InvalidationWaitTimeouts,
		NearRefused: s.NearRefused, Loads: s.Loads, StoreEvictions: ev.Store, LocalTierEvictions: ev.LocalTier}
}
