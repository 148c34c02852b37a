package node

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/migrate"
)

// metrics are one node's Prometheus series, in a registry of its own so
// that several nodes can run in one process.
type metrics struct {
	reg             *prometheus.Registry
	forwarded       *prometheus.CounterVec
	fwdGet, fwdPut  prometheus.Counter // forwarded's get and put (resolved once: hot path)
	fwdDelete       prometheus.Counter
	misdirected     prometheus.Counter
	peerErrors      prometheus.Counter
	handoff         *prometheus.CounterVec
	ringChanges     prometheus.Counter
	importsSent     prometheus.Counter
	importsReceived *prometheus.CounterVec
	migrated        *prometheus.CounterVec
	writeThrough    *prometheus.CounterVec
	replication     *prometheus.CounterVec
	replicaReads    prometheus.Counter
	expiredWrites   prometheus.Counter
	migratedBytes   prometheus.Counter
	repaired        prometheus.Counter
	futureVersions  prometheus.Counter
	warm            *prometheus.CounterVec
}

func newMetrics(n *Node) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		f(c)
		return c
	}
	counterVec := func(name, help, label string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
		f(c)
		return c
	}
	gauge := func(name, help string, v func() float64) {
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, v))
	}
	m := &metrics{reg: reg}
	m.forwarded = counterVec("peercache_forwarded_total",
		"Requests forwarded to the key's owner, by operation.", "op")
	m.fwdGet, m.fwdPut, m.fwdDelete = m.forwarded.WithLabelValues("get"), m.forwarded.WithLabelValues("put"), m.forwarded.WithLabelValues("delete")
	m.misdirected = counter("peercache_misdirected_total",
		"Forwarded requests the target refused because views of the ring differed.")
	m.peerErrors = counter("peercache_peer_errors_total",
		"Peer requests that failed at the transport level.")
	m.handoff = counterVec("peercache_handoff_reads_total",
		"Reads of a key from its previous owner during migration, by result.", "result")
	m.ringChanges = counter("peercache_ring_changes_total",
		"Ring snapshots swapped in.")
	m.importsSent = counter("peercache_migration_sent_keys_total",
		"Keys sent to peers' import endpoints.")
	m.importsReceived = counterVec("peercache_migration_received_keys_total",
		"Keys received by this node's import endpoint, by result.", "result")
	m.migrated = counterVec("peercache_migration_keys_total",
		"Keys handled by finished migration runs, by result.", "result")
	m.writeThrough = counterVec("peercache_write_through_total",
		"Writes copied to a key's previous owner while a ring change settles, by result.", "result")
	m.migratedBytes = counter("peercache_migration_bytes_total",
		"Key and value bytes moved by finished migration runs.")
	f(newOpsCollector(n)) // members by state, memberlist health, running migration, shard size, modes
	// local tier, near cache, invalidations, loads
	f(newTierCollector(n))
	m.replication = counterVec("peercache_replica_writes_total",
		"Copies of writes sent by a primary to replicas, by result.", "result")
	m.replicaReads = counter("peercache_replica_reads_total",
		"Reads answered by a replica because the primary was unreachable.")
	m.expiredWrites = counter("peercache_expired_forwarded_writes_total",
		"Forwarded writes refused because they arrived after their sender's deadline.")
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.futureVersions = counter("peercache_future_versions_refused_total",
		"Entries from other members refused because their versions lay more than --max-clock-skew ahead of this node's clock.")
	m.warm = counterVec("peercache_warm_keys_total",
		"Warm-up after ring changes: keys sent to their new owners (sent) and keys this node loaded into its local tier for them (filled).", "result")
	m.repaired = counter("peercache_repaired_keys_total",
		"Keys whose failed replica copies the repair path made again.")
	gauge("peercache_repair_pending_keys",
		"Keys whose replica copies failed and wait for the repair path to copy them again.", func() float64 { return float64(n.repair.Pending()) })
	gauge("peercache_under_replicated_keys",
		"Keys held here whose copies on other owners are not confirmed yet (estimate).", func() float64 { return float64(n.underReplicated()) })
	gauge("peercache_ring_members",
		"Members in this node's ring snapshot.", func() float64 { return float64(n.views.cur.Load().ring.Len()) })
	gauge("peercache_ring_version",
		"This node's ring snapshot version (local counter).", func() float64 { return float64(n.views.cur.Load().version) })
	gauge("peercache_ready",
		"1 when the node is ready to serve.", func() float64 {
			if n.Ready() {
				return 1
			}
			return 0
		})
	return m
}

func (m *metrics) observeMigration(r migrate.Result) {
	m.migrated.WithLabelValues("moved").Add(float64(r.Moved))
	m.migrated.WithLabelValues("stale").Add(float64(r.Stale))
	m.migrated.WithLabelValues("dropped").Add(float64(r.Dropped))
	m.migrated.WithLabelValues("failed").Add(float64(r.Failed))
	m.migratedBytes.Add(float64(r.Bytes))
}

func sortedNames(ms map[string]membership.Member) []string {
	out := make([]string, 0, len(ms))
	for k := range ms {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
