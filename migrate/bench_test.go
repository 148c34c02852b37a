package migrate

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/peercache/peercache/store"
)

// localTransport imports into an in-process store, as a peer's import
// endpoint would, without a network.
type localTransport struct{ dst store.Store }

func (l localTransport) Import(ctx context.Context, _ string, entries []store.Entry) ([]ImportResult, error) {
	outs, err := l.dst.Put(ctx, entries)
	if err != nil {
		return nil, err
	}
	res := make([]ImportResult, len(outs))
	for i, o := range outs {
		res[i] = FromOutcome(o)
	}
	return res, nil
}

// BenchmarkMigrate moves 100k keys of 100 bytes from one shard to another
// through an in-process transport.
func BenchmarkMigrate(b *testing.B) {
	const keys = 100_000
	cases := []struct {
		name string
		opts Options
	}{
		{"default", Options{}},
		{"batch=128/workers=4", Options{BatchSize: 128, Workers: 4}},
		{"batch=2048/workers=4", Options{BatchSize: 2048, Workers: 4}},
		{"batch=512/workers=1", Options{BatchSize: 512, Workers: 1}},
		{"batch=512/workers=2", Options{BatchSize: 512, Workers: 2}},
		{"batch=512/workers=8", Options{BatchSize: 512, Workers: 8}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var moved int64
			var elapsed time.Duration
			for range b.N {
				b.StopTimer()
				src, dst := newTestStore(b), newTestStore(b)
				fill(b, src, "k", keys, 100)
				m := New("a", src, localTransport{dst}, c.opts)
				b.StartTimer()
				start := time.Now()
				res, err := m.Run(context.Background(), PlacementFunc(func(string) string { return "b" }), "bench")
				elapsed += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if res.Moved != keys {
					b.Fatal(fmt.Sprintf("moved %d of %d", res.Moved, keys))
				}
				moved += res.Moved
			}
			b.ReportMetric(float64(moved)/elapsed.Seconds(), "keys/s")
		})
	}
}

// slowStore adds a modeled round trip (rtt plus perKey per key) to the
// batch calls a migration makes, like a shard in a local Redis.
type slowStore struct {
	store.Store
	rtt, perKey time.Duration
}

func (s slowStore) delay(n int) { time.Sleep(s.rtt + time.Duration(n)*s.perKey) }

func (s slowStore) GetMany(ctx context.Context, keys []string) ([]store.Entry, []bool, error) {
	s.delay(len(keys))
	return s.Store.GetMany(ctx, keys)
}

func (s slowStore) DeleteIfVersion(ctx context.Context, keys []string, versions []uint64) ([]bool, error) {
	s.delay(len(keys))
	return s.Store.DeleteIfVersion(ctx, keys, versions)
}

func (s slowStore) Scan(ctx context.Context, cursor uint64, count int) ([]string, uint64, error) {
	s.delay(count)
	return s.Store.Scan(ctx, cursor, count)
}

// BenchmarkMigrateModeledLatency is BenchmarkMigrate with modeled costs: a
// local Redis round trip of 200µs (+0.5µs/key) per store batch call and a
// peer import of 1ms network+Redis (+2µs/key). It shows how batch size and
// workers trade against round trips; the real numbers come from the
// network+Redis path.
func BenchmarkMigrateModeledLatency(b *testing.B) {
	const keys = 100_000
	for _, batch := range []int{128, 512, 2048} {
		for _, workers := range []int{1, 4, 8} {
			b.Run(fmt.Sprintf("batch=%d/workers=%d", batch, workers), func(b *testing.B) {
				var moved int64
				var elapsed time.Duration
				for range b.N {
					b.StopTimer()
					src, dst := newTestStore(b), newTestStore(b)
					fill(b, src, "k", keys, 100)
					local := slowStore{Store: src, rtt: 200 * time.Microsecond, perKey: 500 * time.Nanosecond}
					peer := slowStore{Store: dst, rtt: time.Millisecond, perKey: 2 * time.Microsecond}
					m := New("a", local, slowTransport{peer}, Options{BatchSize: batch, Workers: workers})
					b.StartTimer()
					start := time.Now()
					res, err := m.Run(context.Background(), PlacementFunc(func(string) string { return "b" }), "bench")
					elapsed += time.Since(start)
					if err != nil || res.Moved != keys {
						b.Fatalf("moved %d of %d: %v", res.Moved, keys, err)
					}
					moved += res.Moved
				}
				b.ReportMetric(float64(moved)/elapsed.Seconds(), "keys/s")
			})
		}
	}
}

type slowTransport struct{ peer slowStore }

func (s slowTransport) Import(ctx context.Context, peer string, entries []store.Entry) ([]ImportResult, error) {
	s.peer.delay(len(entries))
	return localTransport{s.peer.Store}.Import(ctx, peer, entries)
}
