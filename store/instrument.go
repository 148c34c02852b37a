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
	// Each operation's series, resolved once: a label lookup per call
	// cost as much as an in-memory shard's read.
	get, getMany, put, deleteIfVersion, del, scan, stats, ping opMetrics
}

// opMetrics are one operation's latency histogram and error counter.
type opMetrics struct {
	latency prometheus.Observer
	errors  prometheus.Counter
}

// Instrument wraps st so that every call is measured, and registers the
// series (peercache_store_operation_duration_seconds and
// peercache_store_errors_total, by operation) in reg. The wrapper hides
// the optional interfaces of st (InProcess, Evictions): ask st first.
func Instrument(st Store, reg prometheus.Registerer) Store {
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "peercache_store_operation_duration_seconds",
		Help:    "Latency of calls to this node's shard (Redis or in-memory), by operation.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"op"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "peercache_store_errors_total",
		Help: "Calls to this node's shard that failed, by operation."}, []string{"op"})
	reg.MustRegister(latency, errs)
	op := func(name string) opMetrics {
		return opMetrics{latency: latency.WithLabelValues(name), errors: errs.WithLabelValues(name)}
	}
	return &instrumented{Store: st, get: op("get"), getMany: op("get_many"), put: op("put"),
		deleteIfVersion: op("delete_if_version"), del: op("delete"), scan: op("scan"), stats: op("stats"), ping: op("ping")}
}

func (m opMetrics) observe(start time.Time, err error) {
	m.latency.Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, context.Canceled) {
		m.errors.Inc()
	}
}

func (s *instrumented) Get(ctx context.Context, key string) (Entry, bool, error) {
	start := time.Now()
	e, found, err := s.Store.Get(ctx, key)
	s.get.observe(start, err)
	return e, found, err
}

func (s *instrumented) GetMany(ctx context.Context, keys []string) ([]Entry, []bool, error) {
	start := time.Now()
	es, found, err := s.Store.GetMany(ctx, keys)
	s.getMany.observe(start, err)
	return es, found, err
}

func (s *instrumented) Put(ctx context.Context, entries []Entry) ([]Outcome, error) {
	start := time.Now()
	out, err := s.Store.Put(ctx, entries)
	s.put.observe(start, err)
	return out, err
}

func (s *instrumented) DeleteIfVersion(ctx context.Context, keys []string, versions []uint64) ([]bool, error) {
	start := time.Now()
	out, err := s.Store.DeleteIfVersion(ctx, keys, versions)
	s.deleteIfVersion.observe(start, err)
	return out, err
}

func (s *instrumented) Delete(ctx context.Context, keys []string) error {
	start := time.Now()
	err := s.Store.Delete(ctx, keys)
	s.del.observe(start, err)
	return err
}

func (s *instrumented) Scan(ctx context.Context, cursor uint64, count int) ([]string, uint64, error) {
	start := time.Now()
	keys, next, err := s.Store.Scan(ctx, cursor, count)
	s.scan.observe(start, err)
	return keys, next, err
}

func (s *instrumented) Stats(ctx context.Context) (Stats, error) {
	start := time.Now()
	st, err := s.Store.Stats(ctx)
	s.stats.observe(start, err)
	return st, err
}

func (s *instrumented) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.Store.Ping(ctx)
	s.ping.observe(start, err)
	return err
}
