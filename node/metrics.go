package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/internal/nodemetrics"
)

// metrics are one node's Prometheus series, in a registry of its own so
// that several nodes can run in one process; nodemetrics.New defines and
// registers them.
type metrics struct {
	reg *prometheus.Registry
	*nodemetrics.Counters
}

func newMetrics(n *Node) *metrics {
	reg := prometheus.NewRegistry()
	c := nodemetrics.New(reg, nodemetrics.Sources{
		Ops:             n.opsSnapshot,
		Tier:            n.tierStats,
		RepairPending:   func() int { return n.repair.Pending() },
		UnderReplicated: n.underReplicated,
		RingMembers:     func() int { return n.views.cur.Load().Ring.Len() },
		RingVersion:     func() uint64 { return n.views.cur.Load().Version },
		Ready:           n.Ready,
	})
	return &metrics{reg: reg, Counters: c}
}
