package peer

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the peer protocol's Prometheus series, shared by a node's
// client and server. Create them with NewMetrics on the node's registry.
type Metrics struct {
	// requests[side][op][result]
	requests [2][numOps][3]prometheus.Counter
	latency  [numOps]prometheus.Observer
	conns    [2]atomic.Int64
	authFail *prometheus.CounterVec
	// AuthFailures counts refused connections (all reasons), for tests
	// and status pages.
	AuthFailures atomic.Uint64
}

// numOps bounds the op codes counted (opScan is the largest).
const numOps = opScan + 1

const (
	sideClient = 0
	sideServer = 1

	resultOK          = 0
	resultError       = 1 // the peer answered with an error
	resultUnavailable = 2 // no answer: not connected, connection lost, timed out (client); refused (server)
)

// NewMetrics registers the peer series on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{}
	req := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "peercache_peer_requests_total",
		Help: "Peer protocol requests by side (client: sent by this node; server: received), op and result (ok, error: answered with an error, unavailable: no answer or refused)."},
		[]string{"side", "op", "result"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "peercache_peer_request_duration_seconds",
		Help:    "Round-trip time of peer requests this node sent, by op.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"op"})
	m.authFail = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "peercache_peer_auth_failures_total",
		Help: "Peer connections refused before any request was read, by reason (tls: no valid cluster credentials; hello: not the peer protocol; label: another cluster; not_member: a name that is no current member)."},
		[]string{"reason"})
	for side, sn := range []string{"client", "server"} {
		for op := byte(1); op < numOps; op++ {
			for res, rn := range []string{"ok", "error", "unavailable"} {
				m.requests[side][op][res] = req.WithLabelValues(sn, opName(op), rn)
			}
		}
	}
	for op := byte(1); op < numOps; op++ {
		m.latency[op] = lat.WithLabelValues(opName(op))
	}
	for _, r := range []string{"tls", "hello", "label", "not_member"} {
		m.authFail.WithLabelValues(r)
	}
	conns := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "peercache_peer_connections",
		Help: "Open peer connections (client and server side together)."},
		func() float64 { return float64(m.conns[0].Load() + m.conns[1].Load()) })
	if reg != nil {
		reg.MustRegister(req, lat, m.authFail, conns)
	}
	return m
}

func (m *Metrics) request(side int, op byte, result int) {
	if m != nil && op < numOps {
		m.requests[side][op][result].Inc()
	}
}

func (m *Metrics) observe(op byte, seconds float64) {
	if m != nil && op < numOps {
		m.latency[op].Observe(seconds)
	}
}

func (m *Metrics) refused(reason string) {
	if m != nil {
		m.AuthFailures.Add(1)
		m.authFail.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) conn(side int, d int64) {
	if m != nil {
		m.conns[side].Add(d)
	}
}
