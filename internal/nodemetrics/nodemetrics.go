// Package nodemetrics owns the definitions of one node's Prometheus series:
// the counters the node increments (Counters), the gauges and the
// collectors that read the node's state at scrape time (members, memberlist
// health, the running migration, the shard's size, the read/write modes,
// the local tier, the near cache, loads and evictions), and the Go and
// process collectors, all registered in the registry the caller passes in.
// Each series' name, type, labels and help text are defined here.
//
// The package must not know the node, its routing or its locks: what the
// scrape-time series report arrives through functions the caller passes
// in (Sources), as plain snapshot structs (Ops, Tier) or numbers. It has no
// package-level mutable state, so several nodes, each with a registry of
// its own, can run in one process.
package nodemetrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/peercache/peercache/migrate"
)

// Counters are the counters a node increments. New creates them and
// registers them; they are safe for concurrent use.
type Counters struct {
	// Forwarded counts requests forwarded to the key's owner, by operation
	// (label op: get, put, delete).
	Forwarded *prometheus.CounterVec
	// FwdGet, FwdPut and FwdDelete are Forwarded's get, put and delete
	// series, resolved once for the hot path.
	FwdGet, FwdPut, FwdDelete prometheus.Counter
	// Misdirected counts forwarded requests the target refused because the
	// views of the ring differed.
	Misdirected prometheus.Counter
	// PeerErrors counts peer requests that failed at the transport level.
	PeerErrors prometheus.Counter
	// Handoff counts reads of a key from its previous owner during a
	// migration, by result (hit, miss, error).
	Handoff *prometheus.CounterVec
	// RingChanges counts the ring snapshots swapped in.
	RingChanges prometheus.Counter
	// ImportsSent counts the keys sent to peers' import endpoints.
	ImportsSent prometheus.Counter
	// ImportsReceived counts the keys received by this node's import
	// endpoint, by result (acked, refused).
	ImportsReceived *prometheus.CounterVec
	// Migrated counts the keys handled by finished migration runs, by
	// result (moved, stale, dropped, failed).
	Migrated *prometheus.CounterVec
	// MigratedBytes counts the key and value bytes finished migration runs
	// moved.
	MigratedBytes prometheus.Counter
	// WriteThrough counts the writes copied to a key's previous owner while
	// a ring change settles, by result (applied, refused, error).
	WriteThrough *prometheus.CounterVec
	// Replication counts the copies of writes a primary sent to replicas,
	// by result.
	Replication *prometheus.CounterVec
	// ReplicaReads counts reads answered by a replica because the primary
	// was unreachable.
	ReplicaReads prometheus.Counter
	// ExpiredWrites counts forwarded writes refused because they arrived
	// after their sender's deadline.
	ExpiredWrites prometheus.Counter
	// FutureVersions counts entries from other members refused because
	// their versions lay too far ahead of this node's clock.
	FutureVersions prometheus.Counter
	// Warm counts the keys of warm-ups after ring changes, by result (sent:
	// to their new owners; filled: loaded into this node's local tier).
	Warm *prometheus.CounterVec
	// Repaired counts the keys whose failed replica copies the repair path
	// made again.
	Repaired prometheus.Counter
}

// Sources are the functions the scrape-time series read; New needs every
// one. They are called at each scrape, on the scraping goroutine, so they
// must be safe for concurrent use.
type Sources struct {
	// Ops returns the operator snapshot: members, memberlist health, the
	// running migration, the shard's size and the read/write modes.
	Ops func() Ops
	// Tier returns the local tier's, the near cache's and the loader's
	// counters and the eviction counts.
	Tier func() Tier
	// RepairPending returns how many keys wait for the repair path.
	RepairPending func() int
	// UnderReplicated returns the estimate of the keys held here whose
	// copies on other owners are not confirmed yet.
	UnderReplicated func() int64
	// RingMembers returns the number of members in the ring snapshot.
	RingMembers func() int
	// RingVersion returns the ring snapshot's version (a local counter).
	RingVersion func() uint64
	// Ready reports whether the node is ready to serve.
	Ready func() bool
}

// New creates the counters, the gauges and the scrape-time collectors over
// src, registers them in reg together with the Go and process collectors,
// and returns the counters. It panics if reg already holds one of them (as
// prometheus.Registerer.MustRegister does).
func New(reg prometheus.Registerer, src Sources) *Counters {
	c := &Counters{}
	// One row per counter: a row without a label is a plain counter (dst a
	// *prometheus.Counter), one with a label a vector over it (dst a
	// **prometheus.CounterVec).
	for _, r := range []struct {
		name, help, label string
		dst               any
	}{
		{"peercache_forwarded_total", "Requests forwarded to the key's owner, by operation.", "op", &c.Forwarded},
		{"peercache_misdirected_total", "Forwarded requests the target refused because views of the ring differed.", "", &c.Misdirected},
		{"peercache_peer_errors_total", "Peer requests that failed at the transport level.", "", &c.PeerErrors},
		{"peercache_handoff_reads_total", "Reads of a key from its previous owner during migration, by result.", "result", &c.Handoff},
		{"peercache_ring_changes_total", "Ring snapshots swapped in.", "", &c.RingChanges},
		{"peercache_migration_sent_keys_total", "Keys sent to peers' import endpoints.", "", &c.ImportsSent},
		{"peercache_migration_received_keys_total", "Keys received by this node's import endpoint, by result.", "result", &c.ImportsReceived},
		{"peercache_migration_keys_total", "Keys handled by finished migration runs, by result.", "result", &c.Migrated},
		{"peercache_write_through_total", "Writes copied to a key's previous owner while a ring change settles, by result.", "result", &c.WriteThrough},
		{"peercache_migration_bytes_total", "Key and value bytes moved by finished migration runs.", "", &c.MigratedBytes},
		{"peercache_replica_writes_total", "Copies of writes sent by a primary to replicas, by result.", "result", &c.Replication},
		{"peercache_replica_reads_total", "Reads answered by a replica because the primary was unreachable.", "", &c.ReplicaReads},
		{"peercache_expired_forwarded_writes_total", "Forwarded writes refused because they arrived after their sender's deadline.", "", &c.ExpiredWrites},
		{"peercache_future_versions_refused_total", "Entries from other members refused because their versions lay more than --max-clock-skew ahead of this node's clock.", "", &c.FutureVersions},
		{"peercache_warm_keys_total", "Warm-up after ring changes: keys sent to their new owners (sent) and keys this node loaded into its local tier for them (filled).", "result", &c.Warm},
		{"peercache_repaired_keys_total", "Keys whose failed replica copies the repair path made again.", "", &c.Repaired},
	} {
		opts := prometheus.CounterOpts{Name: r.name, Help: r.help}
		if r.label == "" {
			p := r.dst.(*prometheus.Counter)
			*p = prometheus.NewCounter(opts)
			reg.MustRegister(*p)
		} else {
			p := r.dst.(**prometheus.CounterVec)
			*p = prometheus.NewCounterVec(opts, []string{r.label})
			reg.MustRegister(*p)
		}
	}
	c.FwdGet, c.FwdPut, c.FwdDelete = c.Forwarded.WithLabelValues("get"), c.Forwarded.WithLabelValues("put"), c.Forwarded.WithLabelValues("delete")

	for _, g := range []struct {
		name, help string
		v          func() float64
	}{
		{"peercache_repair_pending_keys", "Keys whose replica copies failed and wait for the repair path to copy them again.", func() float64 { return float64(src.RepairPending()) }},
		{"peercache_under_replicated_keys", "Keys held here whose copies on other owners are not confirmed yet (estimate).", func() float64 { return float64(src.UnderReplicated()) }},
		{"peercache_ring_members", "Members in this node's ring snapshot.", func() float64 { return float64(src.RingMembers()) }},
		{"peercache_ring_version", "This node's ring snapshot version (local counter).", func() float64 { return float64(src.RingVersion()) }},
		{"peercache_ready", "1 when the node is ready to serve.", func() float64 { return boolFloat(src.Ready()) }},
	} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help}, g.v))
	}

	reg.MustRegister(newOpsCollector(src.Ops), newTierCollector(src.Tier),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return c
}

// ObserveMigration adds a finished migration run's result to Migrated and
// MigratedBytes.
func (c *Counters) ObserveMigration(r migrate.Result) {
	c.Migrated.WithLabelValues("moved").Add(float64(r.Moved))
	c.Migrated.WithLabelValues("stale").Add(float64(r.Stale))
	c.Migrated.WithLabelValues("dropped").Add(float64(r.Dropped))
	c.Migrated.WithLabelValues("failed").Add(float64(r.Failed))
	c.MigratedBytes.Add(float64(r.Bytes))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
