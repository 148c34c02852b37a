package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/internal/localtier"
)

// tierCollector exports the local tier's counters at scrape time.
type tierCollector struct {
	n                                    *Node
	hits, misses, collapsed              *prometheus.Desc
	evictions, bytes, maxBytes, entries  *prometheus.Desc
	forwards, ownerReads                 *prometheus.Desc
	invSent, invRecv, invDrop, invFailed *prometheus.Desc
	invBatches, invTimeouts, nearRefused *prometheus.Desc
	loads, evictionsAll                  *prometheus.Desc
}

func newTierCollector(n *Node) *tierCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &tierCollector{n: n,
		hits:         d("peercache_local_tier_hits_total", "Reads answered by the local tier, by tier (local: keys this node owns; near: copies of other owners' values).", "tier"),
		misses:       d("peercache_local_tier_misses_total", "Local tier lookups that missed, by tier.", "tier"),
		collapsed:    d("peercache_singleflight_collapsed_total", "Reads that joined an identical read in flight instead of making their own, by path (owner: shard read or load; forward: request to the owner).", "path"),
		evictions:    d("peercache_local_tier_evictions_total", "Entries the local tier evicted to stay within its byte budget."),
		bytes:        d("peercache_local_tier_bytes", "Bytes held by the local tier (keys, values and per-entry overhead)."),
		maxBytes:     d("peercache_local_tier_max_bytes", "The local tier's byte budget."),
		entries:      d("peercache_local_tier_entries", "Entries held by the local tier."),
		forwards:     d("peercache_local_tier_forwards_total", "Reads forwarded to the owner after a near-cache miss (one per collapsed group)."),
		ownerReads:   d("peercache_local_tier_shard_reads_total", "Shard reads after a local-tier miss (one per collapsed group)."),
		invSent:      d("peercache_invalidations_sent_total", "Keys sent in invalidation messages to nodes that fetched them."),
		invBatches:   d("peercache_invalidation_batches_total", "Invalidation messages sent."),
		invRecv:      d("peercache_invalidations_received_total", "Keys received in invalidation messages from owners."),
		invDrop:      d("peercache_invalidations_dropped_total", "Invalidations dropped because a peer's queue was full (the near-cache TTL still bounds those copies)."),
		invFailed:    d("peercache_invalidations_failed_total", "Invalidations not delivered (peer unreachable)."),
		invTimeouts:  d("peercache_invalidation_wait_timeouts_total", "Writes that stopped waiting for invalidation acknowledgements after InvalidationWait."),
		nearRefused:  d("peercache_near_cache_refused_total", "Forwarded reads answered without near-cache permission (the fetch tracker was full)."),
		loads:        d("peercache_origin_loads_total", "Read-through loads by the owner, by result (loaded, not_found, error).", "result"),
		evictionsAll: d("peercache_evictions_total", "Keys evicted to stay within the memory budget, by tier: store (records of the in-memory shard, gone from the cache; a Redis shard counts its own in its INFO) and local_tier (copies; the keys stay in their shards).", "tier"),
	}
}

func (c *tierCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.collapsed, c.evictions, c.bytes, c.maxBytes, c.entries,
		c.forwards, c.ownerReads, c.invSent, c.invBatches, c.invRecv, c.invDrop, c.invFailed, c.invTimeouts, c.nearRefused, c.loads, c.evictionsAll} {
		ch <- d
	}
}

func (c *tierCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.tierStats()
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	for i, name := range []string{"local", "near"} {
		counter(c.hits, s.Hits[i], name)
		counter(c.misses, s.Misses[i], name)
	}
	counter(c.collapsed, s.Collapsed[localtier.Local], "owner")
	counter(c.collapsed, s.Collapsed[localtier.Near], "forward")
	counter(c.evictions, s.Cache.Evictions)
	gauge(c.bytes, s.Cache.Bytes)
	gauge(c.maxBytes, s.Cache.MaxBytes)
	gauge(c.entries, s.Cache.Entries)
	counter(c.forwards, s.Forwards)
	counter(c.ownerReads, s.OwnerReads)
	counter(c.invSent, s.InvalidationsOut)
	counter(c.invBatches, s.InvalidationBatches)
	counter(c.invRecv, s.InvalidationsIn)
	counter(c.invDrop, s.InvalidationDrop)
	counter(c.invFailed, s.InvalidationFailed)
	counter(c.invTimeouts, s.InvalidationWaitTimeouts)
	counter(c.nearRefused, s.NearRefused)
	for i, r := range []string{"loaded", "not_found", "error"} {
		counter(c.loads, s.Loads[i], r)
	}
	ev := c.n.evictions()
	counter(c.evictionsAll, ev.Store, "store")
	counter(c.evictionsAll, ev.LocalTier, "local_tier")
}
