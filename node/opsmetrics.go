package node

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/membership"
)

// opsCollector reports, at scrape time, series read from the node's state:
// members by state, memberlist health, the running migration, the shard's
// size and the read/write modes.
type opsCollector struct {
	n *Node

	members, health                             *prometheus.Desc
	migActive, migInFlight, migRunKeys, migRunB *prometheus.Desc
	migRate                                     *prometheus.Desc
	shardKeys, shardBytes, readOnly             *prometheus.Desc
}

func newOpsCollector(n *Node) *opsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &opsCollector{
		n:           n,
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
	n := c.n
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counts := map[string]int{string(membership.StateJoining): 0, string(membership.StateActive): 0,
		string(membership.StateLeaving): 0, "unknown": 0}
	for _, m := range n.views.cur.Load().members {
		s := string(m.Meta.State)
		if _, ok := counts[s]; !ok {
			s = "unknown"
		}
		counts[s]++
	}
	for s, k := range counts {
		g(c.members, float64(k), s)
	}
	g(c.health, float64(n.ml.Health()))

	ms := n.mig.Status()
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

	ctx, cancel := context.WithTimeout(n.life.ctx, time.Second)
	st, err := n.st.Stats(ctx)
	cancel()
	if err == nil { // a failure shows in peercache_store_errors_total{op="stats"}
		g(c.shardKeys, float64(st.Keys))
		g(c.shardBytes, float64(st.Bytes))
	}

	mi := n.Mode()
	g(c.readOnly, boolFloat(mi.NodeMode == ModeReadOnly), string(ScopeNode))
	g(c.readOnly, boolFloat(mi.ClusterMode == ModeReadOnly), string(ScopeCluster))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
