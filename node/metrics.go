package node

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/internal/nodemetrics"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/migrate"
)

// metrics are one node's Prometheus series, in a registry of its own so
// that several nodes can run in one process. The series are defined and
// registered by nodemetrics.New; the fields are its Counters under the
// names node's call sites use.
type metrics struct {
	reg             *prometheus.Registry
	counters        *nodemetrics.Counters
	fwdGet, fwdPut  prometheus.Counter // peercache_forwarded_total{op="get"}, {op="put"}
	fwdDelete       prometheus.Counter // {op="delete"}
	misdirected     prometheus.Counter
	peerErrors      prometheus.Counter
	handoff         *prometheus.CounterVec
	ringChanges     prometheus.Counter
	importsSent     prometheus.Counter
	importsReceived *prometheus.CounterVec
	writeThrough    *prometheus.CounterVec
	replication     *prometheus.CounterVec
	replicaReads    prometheus.Counter
	expiredWrites   prometheus.Counter
	repaired        prometheus.Counter
	futureVersions  prometheus.Counter
	warm            *prometheus.CounterVec
}

func newMetrics(n *Node) *metrics {
	reg := prometheus.NewRegistry()
	c := nodemetrics.New(reg, nodemetrics.Sources{
		Ops:             n.opsSnapshot,
		Tier:            n.tierSnapshot,
		RepairPending:   func() int { return n.repair.Pending() },
		UnderReplicated: n.underReplicated,
		RingMembers:     func() int { return n.views.cur.Load().ring.Len() },
		RingVersion:     func() uint64 { return n.views.cur.Load().version },
		Ready:           n.Ready,
	})
	m := &metrics{reg: reg, counters: c}
	m.fwdGet, m.fwdPut, m.fwdDelete, m.misdirected, m.peerErrors = c.FwdGet, c.FwdPut, c.FwdDelete, c.Misdirected, c.PeerErrors
	m.expiredWrites, m.futureVersions, m.importsSent, m.importsReceived = c.ExpiredWrites, c.FutureVersions, c.ImportsSent, c.ImportsReceived
	m.handoff, m.ringChanges, m.writeThrough, m.warm = c.Handoff, c.RingChanges, c.WriteThrough, c.Warm
	m.replication, m.replicaReads, m.repaired = c.Replication, c.ReplicaReads, c.Repaired
	return m
}

func (m *metrics) observeMigration(r migrate.Result) { m.counters.ObserveMigration(r) }

func sortedNames(ms map[string]membership.Member) []string {
	out := make([]string, 0, len(ms))
	for k := range ms {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
