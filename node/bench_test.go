package node_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/internal/testredis"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/store"
	goredis "github.com/redis/go-redis/v9"
)

// BenchmarkJoinMigration measures key migration end to end (SCAN, MGET,
// peer-protocol import, conditional write on the receiver, version-checked
// delete on the sender), each node with its own real redis-server: one node
// holds PEERCACHE_BENCH_KEYS keys of 100 bytes (default 1,000,000), a second
// node joins, and the benchmark reports the keys moved per second, the CPU
// per key moved of each side (this process: both nodes; each
// redis-server), and the time
// from the join until the joiner holds its whole share. With
// PEERCACHE_BENCH_STATS=1 it also logs each redis-server's INFO
// commandstats of the migration alone.
//
//	go test -run '^$' -bench BenchmarkJoinMigration -benchtime 1x ./node/
func BenchmarkJoinMigration(b *testing.B) {
	total := 1_000_000
	if s := os.Getenv("PEERCACHE_BENCH_KEYS"); s != "" {
		total, _ = strconv.Atoi(s)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		a := startNode(b, fmt.Sprintf("a%d", i), nil, true, benchMigrateOpts)
		value := make([]byte, 100)
		entries := make([]store.Entry, 0, 10_000)
		loadStart := time.Now()
		for k := 0; k < total; k++ {
			entries = append(entries, store.Entry{Key: fmt.Sprintf("bench:%08d", k), Value: value})
			if len(entries) == cap(entries) || k == total-1 {
				bulkLoad(b, []*testNode{a}, entries)
				entries = entries[:0]
			}
		}
		b.Logf("loaded %d keys in %s", total, time.Since(loadStart).Round(time.Millisecond))
		if os.Getenv("PEERCACHE_BENCH_STATS") != "" {
			a.redis.Client().ConfigResetStat(context.Background())
		}
		b.StartTimer()
		start := time.Now()
		goCPU, srcCPU := processCPU(b), redisCPU(b, a.redis.Client())
		stopProfile := profileWindow(b)
		j := startNode(b, fmt.Sprintf("j%d", i), []string{a.GossipAddr()}, true, benchMigrateOpts)
		var res *struct{ moved, stale int64 }
		waitFor(b, 10*time.Minute, "the migration to the joiner finishes", func() bool {
			st := a.MigratorForTest().Status()
			if st.Active || st.Last == nil || st.Last.Moved == 0 {
				return false
			}
			res = &struct{ moved, stale int64 }{st.Last.Moved, st.Last.Stale}
			return true
		})
		took := time.Since(start)
		stopProfile()
		b.StopTimer()
		// The joiner's redis-server is new: all its CPU is the join's.
		reportCPUPerKey(b, res.moved, processCPU(b)-goCPU, redisCPU(b, a.redis.Client())-srcCPU, redisCPU(b, j.redis.Client()))
		last := a.MigratorForTest().Status().Last
		if os.Getenv("PEERCACHE_BENCH_STATS") != "" {
			cs, _ := a.redis.Client().Info(context.Background(), "commandstats").Result()
			b.Logf("source commandstats:\n%s", cs)
			cs, _ = j.redis.Client().Info(context.Background(), "commandstats").Result()
			b.Logf("joiner commandstats:\n%s", cs)
		}
		got, _ := j.Store().Stats(context.Background())
		b.ReportMetric(float64(res.moved)/last.Duration.Seconds(), "keys/s")
		b.ReportMetric(took.Seconds(), "s-to-share")
		b.ReportMetric(float64(res.moved), "keys-moved")
		b.ReportMetric(float64(last.Passes), "passes")
		b.Logf("moved %d keys (%d already there) in %s of migration (%.0f keys/s); joiner holds %d keys %s after its start",
			res.moved, res.stale, last.Duration.Round(time.Millisecond), float64(res.moved)/last.Duration.Seconds(), got.Keys, took.Round(time.Millisecond))
		j.Abort()
		a.Abort()
	}
}

// profileWindow starts a CPU profile into the file named by
// PEERCACHE_BENCH_CPUPROFILE, if set, and returns the function that stops
// it: a profile of the migration alone, without the loading before it.
func profileWindow(b *testing.B) (stop func()) {
	name := os.Getenv("PEERCACHE_BENCH_CPUPROFILE")
	if name == "" {
		return func() {}
	}
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// benchMigrateOpts sets the migration's workers and batch size from
// PEERCACHE_BENCH_MIGRATE_WORKERS and PEERCACHE_BENCH_MIGRATE_BATCH when
// set (the defaults otherwise), to compare settings in one run.
func benchMigrateOpts(c *node.Config) {
	c.Migration.Options.Workers, _ = strconv.Atoi(os.Getenv("PEERCACHE_BENCH_MIGRATE_WORKERS"))
	c.Migration.Options.BatchSize, _ = strconv.Atoi(os.Getenv("PEERCACHE_BENCH_MIGRATE_BATCH"))
}

// BenchmarkRedisCopyBaseline is the plain-Redis reference for
// BenchmarkJoinMigration in the same run: about as many 100-byte keys as the
// join moves, moved between two redis-servers by a client doing SCAN, MGET,
// a pipelined SET on the target and a DEL on the source, a SCAN call (COUNT
// 1000) a batch, no versions and no safety checks. Two sources:
//
//   - moved-keys-only: the source holds only the keys that move (half of
//     PEERCACHE_BENCH_KEYS), the strictest reference: it scans nothing
//     else;
//
//   - whole-shard: the source holds all PEERCACHE_BENCH_KEYS keys, as the
//     joined node does, and the copy moves the half whose xxhash is even,
//     so it scans the keys that stay, as the join does.
//
//     go test -run '^$' -bench 'BenchmarkJoinMigration|BenchmarkRedisCopyBaseline' -benchtime 1x ./node/
func BenchmarkRedisCopyBaseline(b *testing.B) {
	total := 1_000_000
	if s := os.Getenv("PEERCACHE_BENCH_KEYS"); s != "" {
		total, _ = strconv.Atoi(s)
	}
	b.Run("moved-keys-only", func(b *testing.B) {
		benchRedisCopy(b, total/2, func(string) bool { return true })
	})
	b.Run("whole-shard", func(b *testing.B) {
		benchRedisCopy(b, total, func(k string) bool { return xxhash.Sum64String(k)&1 == 0 })
	})
}

// benchRedisCopy loads n keys into a new redis-server and copies those for
// which move is true to another one, deleting them from the first.
func benchRedisCopy(b *testing.B, n int, move func(key string) bool) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		src, dst := startNodeRedis(b), startNodeRedis(b)
		value := make([]byte, 100)
		pipe := src.Pipeline()
		for k := 0; k < n; k++ {
			pipe.Set(ctx, fmt.Sprintf("bench:%08d", k), value, 0)
			if pipe.Len() == 10_000 || k == n-1 {
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if os.Getenv("PEERCACHE_BENCH_STATS") != "" {
			src.ConfigResetStat(ctx)
		}
		b.StartTimer()
		start := time.Now()
		cpu0 := [3]time.Duration{processCPU(b), redisCPU(b, src), redisCPU(b, dst)}
		var cursor uint64
		moved := 0
		for {
			scanned, next, err := src.Scan(ctx, cursor, "", 1000).Result()
			if err != nil {
				b.Fatal(err)
			}
			keys := scanned[:0]
			for _, k := range scanned {
				if move(k) {
					keys = append(keys, k)
				}
			}
			if len(keys) > 0 {
				vals, err := src.MGet(ctx, keys...).Result()
				if err != nil {
					b.Fatal(err)
				}
				p := dst.Pipeline()
				for j, k := range keys {
					p.Set(ctx, k, vals[j], 0)
				}
				if _, err := p.Exec(ctx); err != nil {
					b.Fatal(err)
				}
				if err := src.Del(ctx, keys...).Err(); err != nil {
					b.Fatal(err)
				}
				moved += len(keys)
			}
			if next == 0 {
				break
			}
			cursor = next
		}
		took := time.Since(start)
		b.StopTimer()
		reportCPUPerKey(b, int64(moved), processCPU(b)-cpu0[0], redisCPU(b, src)-cpu0[1], redisCPU(b, dst)-cpu0[2])
		if os.Getenv("PEERCACHE_BENCH_STATS") != "" {
			cs, _ := src.Info(ctx, "commandstats").Result()
			b.Logf("source commandstats:\n%s", cs)
		}
		b.ReportMetric(float64(moved)/took.Seconds(), "keys/s")
		b.ReportMetric(float64(moved), "keys-moved")
		b.Logf("plain redis copy: %d keys in %s (%.0f keys/s)", moved, took.Round(time.Millisecond), float64(moved)/took.Seconds())
	}
}

// processCPU is the CPU time (user and system) this test process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the CPU time (user and system) a redis-server has used, from
// its INFO cpu section.
func redisCPU(tb testing.TB, c *goredis.Client) time.Duration {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatalf("redis INFO cpu: %v", err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		name, v, ok := strings.Cut(line, ":")
		if ok && (name == "used_cpu_sys" || name == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatalf("redis INFO cpu: %s: %v", line, err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// reportCPUPerKey reports the CPU each side spent per key moved: this
// process (the Go side, both nodes or the copying client), the source's
// and the target's redis-server.
func reportCPUPerKey(b *testing.B, keys int64, goSide, src, dst time.Duration) {
	if keys == 0 {
		return
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(keys) }
	b.ReportMetric(per(goSide), "go-µs/key")
	b.ReportMetric(per(src), "src-redis-µs/key")
	b.ReportMetric(per(dst), "dst-redis-µs/key")
}

// BenchmarkPutReplicas measures PUT throughput and latency over HTTP on a
// 3-node cluster (each node with its own redis-server) at replication
// factors 1, 2 and 3 (write-acks all), with plain Redis SETs at the same
// concurrency in the same run as the reference. Requests go to random nodes
// with 32 keep-alive clients; values are 100 bytes over 10,000 keys.
//
//	go test -run '^$' -bench BenchmarkPutReplicas -benchtime 20000x ./node/
func BenchmarkPutReplicas(b *testing.B) {
	const conc = 32
	value := make([]byte, 100)
	report := func(b *testing.B, lat []time.Duration, took time.Duration) {
		slices.Sort(lat)
		p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
		b.ReportMetric(float64(len(lat))/took.Seconds(), "ops/s")
		b.ReportMetric(float64(p(0.50).Microseconds()), "p50-µs")
		b.ReportMetric(float64(p(0.99).Microseconds()), "p99-µs")
	}
	run := func(b *testing.B, op func(i int) error) {
		lat := make([]time.Duration, b.N)
		var failed atomic.Int64
		b.ResetTimer()
		took := concurrently(conc, b.N, func(i int) bool {
			t0 := time.Now()
			if err := op(i); err != nil {
				failed.Add(1)
			}
			lat[i] = time.Since(t0)
			return true
		})
		b.StopTimer()
		if failed.Load() > 0 {
			b.Fatalf("%d of %d operations failed", failed.Load(), b.N)
		}
		report(b, lat, took)
	}
	b.Run("redis-SET", func(b *testing.B) {
		c := testredis.Start(b).Client()
		ctx := context.Background()
		run(b, func(i int) error { return c.Set(ctx, "key-"+strconv.Itoa(i%10_000), value, 0).Err() })
	})
	for _, rf := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("rf=%d", rf), func(b *testing.B) {
			nodes := startCluster(b, 3, true, withReplicas(rf, node.WriteAcksAll))
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
			run(b, func(i int) error {
				n := nodes[i%len(nodes)]
				req, _ := http.NewRequest(http.MethodPut, n.keyURL("key-"+strconv.Itoa(i%10_000)), bytes.NewReader(value))
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			})
		})
	}
}

// BenchmarkHTTPGetLocalTier compares GETs answered from a node's local
// tier with a bare net/http handler serving the same values from a map
// (the ceiling): both behind httptest servers, driven in the same run by
// a keep-alive client with 32 concurrent requests, b.N requests each,
// alternating in 4 rounds. It reports each side's ns per request and the
// ratio of their throughputs (target: at least 0.85).
//
//	go test -run '^$' -bench BenchmarkHTTPGetLocalTier -benchtime 100000x ./node/
func BenchmarkHTTPGetLocalTier(b *testing.B) {
	const conc, nkeys = 32, 1000
	value := []byte(strings.Repeat("v", 100))
	keys := make([]string, nkeys)
	m := make(map[string][]byte, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench-%04d", i)
		m[keys[i]] = value
	}
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := m[strings.TrimPrefix(r.URL.Path, "/v1/keys/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(v)
	}))
	defer bare.Close()

	n := startCluster(b, 1, false)[0]
	for _, k := range keys {
		if err := n.Set(context.Background(), k, value, 0); err != nil {
			b.Fatal(err)
		}
	}
	pc := httptest.NewServer(n.web.Handler())
	defer pc.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: conc, MaxIdleConnsPerHost: conc}}
	run := func(base string, count int) (time.Duration, error) {
		var firstErr atomic.Value
		took := concurrently(conc, count, func(i int) bool {
			resp, err := client.Get(base + "/v1/keys/" + keys[i%nkeys])
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return false
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				firstErr.CompareAndSwap(nil, fmt.Errorf("status %d", resp.StatusCode))
				return false
			}
			// Served in this process: the local tier, or the embedded
			// Memory shard, of which the tier keeps no copies.
			if src := resp.Header.Get(httpapi.HeaderSource); base == pc.URL && src != string(node.SourceLocal) && src != string(node.SourceShard) {
				firstErr.CompareAndSwap(nil, fmt.Errorf("source %q, want local or shard", src))
				return false
			}
			return true
		})
		if err, _ := firstErr.Load().(error); err != nil {
			return 0, err
		}
		return took, nil
	}
	// Warm both (connections, tier).
	for _, base := range []string{bare.URL, pc.URL} {
		if _, err := run(base, 2*nkeys); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var tBare, tPC time.Duration
	const rounds = 4
	per := max(b.N/rounds, 1)
	for r := 0; r < rounds; r++ {
		d, err := run(bare.URL, per)
		if err != nil {
			b.Fatal(err)
		}
		tBare += d
		if d, err = run(pc.URL, per); err != nil {
			b.Fatal(err)
		}
		tPC += d
	}
	b.StopTimer()
	reqs := float64(per * rounds)
	b.ReportMetric(float64(tBare.Nanoseconds())/reqs, "map-ns/req")
	b.ReportMetric(float64(tPC.Nanoseconds())/reqs, "peercache-ns/req")
	b.ReportMetric(float64(tBare)/float64(tPC), "ratio")
}
