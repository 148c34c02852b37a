package node

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/store"
)

// evictionCounter is implemented by shards that evict records to stay
// within a byte budget and count them (store.Memory).
type evictionCounter interface {
	// Evictions returns how many records were evicted since the store was
	// created.
	Evictions() uint64
}

// Evictions are the keys dropped to stay within the memory budget since the
// node started.
type Evictions struct {
	// Store counts the records the shard evicted: those keys are gone (a
	// read answers not found). Only the in-memory store counts them; a Redis
	// shard reports its own in its INFO (evicted_keys) and is 0 here.
	Store uint64 `json:"store"`
	// LocalTier counts the copies the local tier evicted (the keys stay in
	// their shards).
	LocalTier uint64 `json:"local_tier"`
}

// evictions returns the node's eviction counts.
func (n *Node) evictions() Evictions {
	var e Evictions
	if n.shard.evictions != nil {
		e.Store = n.shard.evictions.Evictions()
	}
	if n.reads.tier != nil {
		e.LocalTier = n.reads.tier.c.Stats().Evictions
	}
	return e
}

// instrumentedStore measures every call to a node's shard: latency by
// operation, and errors (a call cancelled by its caller is not a store error).
// Methods it does not override pass straight through.
type instrumentedStore struct {
	store.Store
	latency *prometheus.HistogramVec
	errors  *prometheus.CounterVec
}

// instrumentStore wraps st and registers its series in reg.
func instrumentStore(st store.Store, reg prometheus.Registerer) store.Store {
	s := &instrumentedStore{
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

func (s *instrumentedStore) observe(op string, start time.Time, err error) {
	s.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, context.Canceled) {
		s.errors.WithLabelValues(op).Inc()
	}
}

func (s *instrumentedStore) Get(ctx context.Context, key string) (store.Entry, bool, error) {
	start := time.Now()
	e, found, err := s.Store.Get(ctx, key)
	s.observe("get", start, err)
	return e, found, err
}

func (s *instrumentedStore) GetMany(ctx context.Context, keys []string) ([]store.Entry, []bool, error) {
	start := time.Now()
	es, found, err := s.Store.GetMany(ctx, keys)
	s.observe("get_many", start, err)
	return es, found, err
}

func (s *instrumentedStore) Put(ctx context.Context, entries []store.Entry) ([]store.Outcome, error) {
	start := time.Now()
	out, err := s.Store.Put(ctx, entries)
	s.observe("put", start, err)
	return out, err
}

func (s *instrumentedStore) DeleteIfVersion(ctx context.Context, keys []string, versions []uint64) ([]bool, error) {
	start := time.Now()
	out, err := s.Store.DeleteIfVersion(ctx, keys, versions)
	s.observe("delete_if_version", start, err)
	return out, err
}

func (s *instrumentedStore) Delete(ctx context.Context, keys []string) error {
	start := time.Now()
	err := s.Store.Delete(ctx, keys)
	s.observe("delete", start, err)
	return err
}

func (s *instrumentedStore) Scan(ctx context.Context, cursor uint64, count int) ([]string, uint64, error) {
	start := time.Now()
	keys, next, err := s.Store.Scan(ctx, cursor, count)
	s.observe("scan", start, err)
	return keys, next, err
}

func (s *instrumentedStore) Stats(ctx context.Context) (store.Stats, error) {
	start := time.Now()
	st, err := s.Store.Stats(ctx)
	s.observe("stats", start, err)
	return st, err
}

func (s *instrumentedStore) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.Store.Ping(ctx)
	s.observe("ping", start, err)
	return err
}
