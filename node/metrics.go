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
	m := &metrics{reg: reg}
	m.forwarded = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "peercache_forwarded_total",
		Help: "Requests forwarded to the key's owner, by operation."}, []string{"op"})
	m.fwdGet, m.fwdPut, m.fwdDelete = m.forwarded.WithLabelValues("get"), m.forwarded.WithLabelValues("put"), m.forwarded.WithLabelValues("delete")
	m.misdirected = prometheus.NewCounter(prometheus.CounterOpts{Name: "peercache_misdirected_total",
		Help: "Forwarded requests the target refused because views of the ring differed."})
	m.peerErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "peercache_peer_errors_total",
		Help: "Peer requests that failed at the transport level."})
	m.handoff = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "peercache_handoff_reads_total",
		Help: "Reads of a key from its previous owner during migration, by result."}, []string{"result"})
	m.ringChanges = prometheus.NewCounter(prometheus.CounterOpts{Name: "peercache_ring_changes_total",
		Help: "Ring snapshots swapped in."})
	m.importsSent = prometheus.NewCounter(prometheus.CounterOpts{Name: "peercache_migration_sent_keys_total",
		Help: "Keys sent to peers' import endpoints."})
	m.importsReceived = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "peercache_migration_received_keys_total",
		Help: "Keys received by this node's import endpoint, by result."}, []string{"result"})
	m.migrated = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "peercache_migration_keys_total",
		Help: "Keys handled by finished migration runs, by result."}, []string{"result"})
	m.writeThrough = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "peercache_write_through_total",
		Help: "Writes copied to a key's previous owner while a ring change settles, by result."}, []string{"result"})
	m.migratedBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "peercache_migration_bytes_total",
		Help: "Key and value bytes moved by finished migration runs."})
	f(m.migratedBytes)
	f(newOpsCollector(n)) // members by state, memberlist health, running migration, shard size, modes (opsmetrics.go)
	// local tier, near cache, invalidations, loads (tiermetrics.go)
	f(newTierCollector(n))
	m.replication = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "peercache_replica_writes_total",
		Help: "Copies of writes sent by a primary to replicas, by result."}, []string{"result"})
	m.replicaReads = prometheus.NewCounter(prometheus.CounterOpts{Name: "peercache_replica_reads_total",
		Help: "Reads answered by a replica because the primary was unreachable."})
	m.expiredWrites = prometheus.NewCounter(prometheus.CounterOpts{Name: "peercache_expired_forwarded_writes_total",
		Help: "Forwarded writes refused because they arrived after their sender's deadline."})
	for _, c := range []prometheus.Collector{m.expiredWrites, m.replication, m.replicaReads, m.writeThrough, m.forwarded, m.misdirected, m.peerErrors,
		m.handoff, m.ringChanges, m.importsSent, m.importsReceived, m.migrated,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	m.futureVersions = prometheus.NewCounter(prometheus.CounterOpts{Name: "peercache_future_versions_refused_total",
		Help: "Entries from other members refused because their versions lay more than --max-clock-skew ahead of this node's clock."})
	f(m.futureVersions)
	m.warm = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "peercache_warm_keys_total",
		Help: "Warm-up after ring changes: keys sent to their new owners (sent) and keys this node loaded into its local tier for them (filled)."}, []string{"result"})
	f(m.warm)
	m.repaired = prometheus.NewCounter(prometheus.CounterOpts{Name: "peercache_repaired_keys_total",
		Help: "Keys whose failed replica copies the repair path made again."})
	f(m.repaired)
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "peercache_repair_pending_keys",
		Help: "Keys whose replica copies failed and wait for the repair path to copy them again."}, func() float64 { return float64(n.repair.pending()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "peercache_under_replicated_keys",
		Help: "Keys held here whose copies on other owners are not confirmed yet (estimate)."}, func() float64 { return float64(n.underReplicated()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "peercache_ring_members",
		Help: "Members in this node's ring snapshot."}, func() float64 { return float64(n.views.cur.Load().ring.Len()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "peercache_ring_version",
		Help: "This node's ring snapshot version (local counter)."}, func() float64 { return float64(n.views.cur.Load().version) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "peercache_ready",
		Help: "1 when the node is ready to serve."}, func() float64 {
		if n.Ready() {
			return 1
		}
		return 0
	}))
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
