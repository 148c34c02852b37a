package store

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// instrumented measures every call to a shard: latency by operation, and
// errors (a call cancelled by its caller is not a store error). Methods it
// does not override pass straight through.
type instrumented struct {
	Store
	latency *prometheus.HistogramVec
	errors  *prometheus.CounterVec
}

// Instrument wraps st so that every call is measured, and registers the
// series (peercache_store_operation_duration_seconds and
// peercache_store_errors_total, by operation) in reg. The wrapper hides
// the optional interfaces of st (InProcess, Evictions): ask st first.
func Instrument(st Store, reg prometheus.Registerer) Store {
	s := &instrumented{
		Store: st,
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "peercache_store_operation_duration_seconds",
			Help:    "Latency of calls to this node's shard (Redis or in-memory), by operation.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "peercache_store_errors_total",
			Help: "Calls to this node's shard that failed, by operation."}, []string{"op"}),
	}
	reg.MustRegister(s.latency, s.errors)
	for _, op := range []string{"get", "get_many", "put", "delete_if_version", "delete", "scan", "stats", "ping"} {
		s.latency.WithLabelValues(op)
		s.errors.WithLabelValues(op)
	}
	return s
}

func (s *instrumented) observe(op string, start time.Time, err error) {
	s.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, context.Canceled) {
		s.errors.WithLabelValues(op).Inc()
	}
}

func (s *instrumented) Get(ctx context.Context, key string) (Entry, bool, error) {
	start := time.Now()
	e, found, err := s.Store.Get(ctx, key)
	s.observe("get", start, err)
	return e, found, err
}

func (s *instrumented) GetMany(ctx context.Context, keys []string) ([]Entry, []bool, error) {
	start := time.Now()
	es, found, err := s.Store.GetMany(ctx, keys)
	s.observe("get_many", start, err)
	return es, found, err
}

func (s *instrumented) Put(ctx context.Context, entries []Entry) ([]Outcome, error) {
	start := time.Now()
	out, err := s.Store.Put(ctx, entries)
	s.observe("put", start, err)
	return out, err
}

func (s *instrumented) DeleteIfVersion(ctx context.Context, keys []string, versions []uint64) ([]bool, error) {
	start := time.Now()
	out, err := s.Store.DeleteIfVersion(ctx, keys, versions)
	s.observe("delete_if_version", start, err)
	return out, err
}

func (s *instrumented) Delete(ctx context.Context, keys []string) error {
	start := time.Now()
	err := s.Store.Delete(ctx, keys)
	s.observe("delete", start, err)
	return err
}

func (s *instrumented) Scan(ctx context.Context, cursor uint64, count int) ([]string, uint64, error) {
	start := time.Now()
	keys, next, err := s.Store.Scan(ctx, cursor, count)
	s.observe("scan", start, err)
	return keys, next, err
}

func (s *instrumented) Stats(ctx context.Context) (Stats, error) {
	start := time.Now()
	st, err := s.Store.Stats(ctx)
	s.observe("stats", start, err)
	return st, err
}

func (s *instrumented) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.Store.Ping(ctx)
	s.observe("ping", start, err)
	return err
}
