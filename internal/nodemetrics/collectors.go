package nodemetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/internal/localtier"
	"github.com/peercache/peercache/internal/rwmode"
	"github.com/peercache/peercache/migrate"
)

// Ops is what the operator series report at a scrape.
type Ops struct {
	// MembersByState counts the members of the node's view by state; every
	// key is reported as a label value of peercache_members, so the caller
	// includes the states it reports as 0.
	MembersByState map[string]int
	// Health is memberlist's health score (0: healthy).
	Health int
	// Migration is the running migration's status (Active false: none).
	Migration migrate.Status
	// ShardKeys and ShardBytes are the shard's size; they are reported only
	// with ShardOK (the shard answered).
	ShardKeys, ShardBytes int64
	ShardOK               bool
	// NodeReadOnly and ClusterReadOnly report whether writes are refused by
	// this node's mode and by the cluster's.
	NodeReadOnly, ClusterReadOnly bool
}

// Tier is what the tier series report at a scrape: the local tier's, the
// near cache's and the loader's counters and the eviction counts.
type Tier struct {
	// Stats is the local tier's counters, indexed by localtier.Local and
	// localtier.Near where they are by kind.
	localtier.Stats
	// InvalidationsOut, InvalidationBatches and InvalidationsIn count the
	// keys sent, the messages sent and the keys received in invalidations.
	InvalidationsOut, InvalidationBatches, InvalidationsIn uint64
	// InvalidationDrop and InvalidationFailed count the invalidations
	// dropped (a peer's queue was full) and not delivered (peer
	// unreachable); InvalidationWaitTimeouts the writes that stopped
	// waiting for their acknowledgements.
	InvalidationDrop, InvalidationFailed, InvalidationWaitTimeouts uint64
	// NearRefused counts forwarded reads answered without near-cache
	// permission.
	NearRefused uint64
	// Loads counts read-through loads by result: loaded, not found, error.
	Loads [3]uint64
	// StoreEvictions and LocalTierEvictions count the records the shard
	// evicted and the copies the local tier evicted.
	StoreEvictions, LocalTierEvictions uint64
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// opsCollector reports, at scrape time, the Ops snapshot: members by
// state, memberlist health, the running migration, the shard's size and
// the read/write modes.
type opsCollector struct {
	ops func() Ops

	members, health                             *prometheus.Desc
	migActive, migInFlight, migRunKeys, migRunB *prometheus.Desc
	migRate                                     *prometheus.Desc
	shardKeys, shardBytes, readOnly             *prometheus.Desc
}

func newOpsCollector(ops func() Ops) *opsCollector {
	d := desc
	return &opsCollector{
		ops:         ops,
		members:     d("peercache_members", "Members in this node's view, by state (joining, active, leaving, unknown).", "state"),
		health:      d("peercache_memberlist_health_score", "memberlist's health score: 0 is healthy, higher means this node lags the gossip protocol."),
		migActive:   d("peercache_migration_active", "1 while this node runs a key migration."),
		migInFlight: d("peercache_migration_in_flight_keys", "Keys the running migration planned to move and has not finished with yet."),
		migRunKeys:  d("peercache_migration_run_keys", "Keys handled so far by the running migration, by stage (scanned, planned, moved, stale, dropped, failed).", "stage"),
		migRunB:     d("peercache_migration_run_bytes", "Key and value bytes the running migration has moved so far."),
		migRate:     d("peercache_migration_keys_per_second", "Keys per second moved by the running migration."),
		shardKeys:   d("peercache_shard_keys", "Records in this node's shard, tombstones included."),
		shardBytes:  d("peercache_shard_bytes", "Memory used by this node's shard (Redis used_memory, or the in-memory store's accounted bytes)."),
		readOnly:    d("peercache_read_only", "1 when writes are refused, by scope of the mode (node, cluster).", "scope"),
	}
}

// Describe implements prometheus.Collector.
func (c *opsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.members, c.health, c.migActive, c.migInFlight, c.migRunKeys,
		c.migRunB, c.migRate, c.shardKeys, c.shardBytes, c.readOnly} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *opsCollector) Collect(ch chan<- prometheus.Metric) {
	o := c.ops()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for s, k := range o.MembersByState {
		g(c.members, float64(k), s)
	}
	g(c.health, float64(o.Health))

	ms := o.Migration
	active, inFlight := 0.0, 0.0
	if ms.Active {
		active = 1
		inFlight = float64(max(0, ms.Planned-ms.Moved-ms.Stale-ms.Dropped))
	}
	g(c.migActive, active)
	g(c.migInFlight, inFlight)
	for _, kv := range []struct {
		stage string
		v     int64
	}{{"scanned", ms.Scanned}, {"planned", ms.Planned}, {"moved", ms.Moved}, {"stale", ms.Stale},
		{"dropped", ms.Dropped}, {"failed", ms.Failed}} {
		g(c.migRunKeys, float64(kv.v), kv.stage)
	}
	g(c.migRunB, float64(ms.Bytes))
	g(c.migRate, ms.KeysPerSec)

	if o.ShardOK {
		g(c.shardKeys, float64(o.ShardKeys))
		g(c.shardBytes, float64(o.ShardBytes))
	}

	g(c.readOnly, boolFloat(o.NodeReadOnly), string(rwmode.Node))
	g(c.readOnly, boolFloat(o.ClusterReadOnly), string(rwmode.Cluster))
}

// tierCollector reports, at scrape time, the Tier snapshot.
type tierCollector struct {
	tier                                 func() Tier
	hits, misses, collapsed              *prometheus.Desc
	evictions, bytes, maxBytes, entries  *prometheus.Desc
	forwards, ownerReads                 *prometheus.Desc
	invSent, invRecv, invDrop, invFailed *prometheus.Desc
	invBatches, invTimeouts, nearRefused *prometheus.Desc
	loads, evictionsAll                  *prometheus.Desc
}

func newTierCollector(tier func() Tier) *tierCollector {
	d := desc
	return &tierCollector{tier: tier,
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

// Describe implements prometheus.Collector.
func (c *tierCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.collapsed, c.evictions, c.bytes, c.maxBytes, c.entries,
		c.forwards, c.ownerReads, c.invSent, c.invBatches, c.invRecv, c.invDrop, c.invFailed, c.invTimeouts, c.nearRefused, c.loads, c.evictionsAll} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *tierCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.tier()
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
	counter(c.evictionsAll, s.StoreEvictions, "store")
	counter(c.evictionsAll, s.LocalTierEvictions, "local_tier")
}
