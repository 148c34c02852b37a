package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/peercache/peercache/store"
	"github.com/peercache/peercache/store/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return store.NewMemory(store.MemoryOptions{SweepInterval: 50 * time.Millisecond})
	})
}

// fakeClock is a settable clock for MemoryOptions.Now.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newMemory(t *testing.T, opts store.MemoryOptions) *store.Memory {
	t.Helper()
	m := store.NewMemory(opts)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func stats(t *testing.T, m *store.Memory) store.Stats {
	t.Helper()
	st, err := m.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

func TestMemoryAccounting(t *testing.T) {
	m := newMemory(t, store.MemoryOptions{})
	ctx := context.Background()
	if _, err := m.Put(ctx, []store.Entry{{Key: "abc", Value: make([]byte, 100), Version: 1}}); err != nil {
		t.Fatal(err)
	}
	want := int64(3 + 100 + store.MemoryEntryOverhead)
	if st := stats(t, m); st.Keys != 1 || st.Bytes != want {
		t.Fatalf("Stats = %+v, want {1 %d}", st, want)
	}
	// Overwrite with a smaller value, then a tombstone.
	m.Put(ctx, []store.Entry{{Key: "abc", Value: make([]byte, 10), Version: 2}})
	if st := stats(t, m); st.Keys != 1 || st.Bytes != 3+10+store.MemoryEntryOverhead {
		t.Fatalf("Stats after overwrite = %+v", st)
	}
	m.Put(ctx, []store.Entry{{Key: "abc", Version: 3, Tombstone: true, ExpireAt: time.Now().Add(time.Hour).UnixMilli()}})
	if st := stats(t, m); st.Keys != 1 || st.Bytes != 3+store.MemoryEntryOverhead {
		t.Fatalf("Stats after tombstone = %+v", st)
	}
	m.DeleteIfVersion(ctx, []string{"abc"}, []uint64{3})
	if st := stats(t, m); st.Keys != 0 || st.Bytes != 0 {
		t.Fatalf("Stats after delete = %+v", st)
	}
}

func TestMemoryBudget(t *testing.T) {
	const budget = 64 << 10
	m := newMemory(t, store.MemoryOptions{MaxBytes: budget})
	ctx := context.Background()
	const n = 20000
	maxEntry := int64(0)
	for i := 0; i < n; i++ {
		e := store.Entry{Key: fmt.Sprintf("key-%d", i), Value: make([]byte, rand.IntN(400)), Version: 1}
		maxEntry = max(maxEntry, int64(len(e.Key)+len(e.Value)+store.MemoryEntryOverhead))
		if i%7 == 0 {
			e = store.Entry{Key: e.Key, Version: 1, Tombstone: true, ExpireAt: time.Now().Add(time.Hour).UnixMilli()}
		}
		if _, err := m.Put(ctx, []store.Entry{e}); err != nil {
			t.Fatal(err)
		}
		if st := stats(t, m); st.Bytes > budget {
			t.Fatalf("after put %d: %d bytes > budget %d", i, st.Bytes, budget)
		}
	}
	st := stats(t, m)
	if st.Keys >= n/10 {
		t.Fatalf("%d keys left of %d: eviction did not happen", st.Keys, n)
	}
	if st.Bytes < budget-4*maxEntry {
		t.Fatalf("%d bytes used: eviction removed far too much (budget %d)", st.Bytes, budget)
	}

	// Concurrent writers: transiently over by at most one entry each, within
	// budget once they are done.
	var wg sync.WaitGroup
	var over atomic.Int64
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if b := stats(t, m).Bytes; b > budget+4*maxEntry {
				over.Store(b)
			}
		}
	}()
	var writers sync.WaitGroup
	for w := 0; w < 4; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; i < 5000; i++ {
				m.Put(ctx, []store.Entry{{Key: fmt.Sprintf("w%d-%d", w, i), Value: make([]byte, 200), Version: 1}})
			}
		}()
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	if b := over.Load(); b != 0 {
		t.Fatalf("saw %d bytes with 4 writers, budget %d, largest entry %d", b, budget, maxEntry)
	}
	if b := stats(t, m).Bytes; b > budget {
		t.Fatalf("%d bytes after concurrent writers, budget %d", b, budget)
	}
}

func TestMemoryEvictsLeastRecentlyUsed(t *testing.T) {
	const budget = 64 << 10
	m := newMemory(t, store.MemoryOptions{MaxBytes: budget})
	ctx := context.Background()
	hot := make([]string, 50)
	for i := range hot {
		hot[i] = fmt.Sprintf("hot-%d", i)
		m.Put(ctx, []store.Entry{{Key: hot[i], Value: make([]byte, 100), Version: 1}})
	}
	for i := 0; i < 5000; i++ {
		m.Put(ctx, []store.Entry{{Key: fmt.Sprintf("cold-%d", i), Value: make([]byte, 100), Version: 1}})
		if i%10 == 0 {
			if _, _, err := m.GetMany(ctx, hot); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, found, _ := m.GetMany(ctx, hot)
	kept := 0
	for _, f := range found {
		if f {
			kept++
		}
	}
	if kept < len(hot)*9/10 {
		t.Fatalf("only %d of %d hot keys survived eviction", kept, len(hot))
	}
}

func TestMemoryOversizedEntry(t *testing.T) {
	m := newMemory(t, store.MemoryOptions{MaxBytes: 1000})
	_, err := m.Put(context.Background(), []store.Entry{
		{Key: "small", Value: []byte("x"), Version: 1},
		{Key: "big", Value: make([]byte, 1000), Version: 1},
	})
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Put of an entry above the budget: error = %v, want ErrInvalid", err)
	}
	if st := stats(t, m); st.Keys != 0 {
		t.Fatalf("rejected batch wrote %d keys", st.Keys)
	}
	// Exactly at the budget is fine.
	exact := store.Entry{Key: "k", Value: make([]byte, 1000-1-store.MemoryEntryOverhead), Version: 1}
	if out, err := m.Put(context.Background(), []store.Entry{exact}); err != nil || out[0] != store.Applied {
		t.Fatalf("Put of an entry of exactly the budget = %v, %v", out, err)
	}
}

func TestMemoryFakeClockExpiry(t *testing.T) {
	clk := newFakeClock()
	m := newMemory(t, store.MemoryOptions{Now: clk.Now, SweepInterval: time.Hour})
	ctx := context.Background()
	exp := clk.Now().Add(time.Second).UnixMilli()
	m.Put(ctx, []store.Entry{{Key: "k", Value: []byte("v"), Version: 1, ExpireAt: exp}})
	clk.Advance(999 * time.Millisecond)
	if _, ok, _ := m.Get(ctx, "k"); !ok {
		t.Fatal("gone 1 ms before ExpireAt")
	}
	clk.Advance(time.Millisecond)
	if _, ok, _ := m.Get(ctx, "k"); ok {
		t.Fatal("still visible at ExpireAt")
	}
	if keys, _, _ := m.Scan(ctx, 0, 10); len(keys) != 0 {
		t.Fatalf("Scan returned expired keys %q", keys)
	}
}

func TestMemorySweeper(t *testing.T) {
	clk := newFakeClock()
	m := newMemory(t, store.MemoryOptions{Now: clk.Now, SweepInterval: 5 * time.Millisecond})
	ctx := context.Background()
	var es []store.Entry
	for i := 0; i < 1000; i++ {
		e := store.Entry{Key: fmt.Sprintf("k%d", i), Value: []byte("v"), Version: 1}
		if i%2 == 0 {
			e.ExpireAt = clk.Now().Add(time.Duration(i+1) * time.Millisecond).UnixMilli()
		}
		es = append(es, e)
	}
	m.Put(ctx, es)
	if st := stats(t, m); st.Keys != 1000 {
		t.Fatalf("Keys = %d, want 1000", st.Keys)
	}
	waitKeys := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for stats(t, m).Keys != want {
			if time.Now().After(deadline) {
				t.Fatalf("sweeper: Keys = %d, want %d", stats(t, m).Keys, want)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	clk.Advance(500 * time.Millisecond) // half of the expiring ones
	waitKeys(750)
	clk.Advance(time.Second)
	waitKeys(500)
	var want int64
	for i := 1; i < 1000; i += 2 {
		want += int64(len(fmt.Sprintf("k%d", i)) + 1 + store.MemoryEntryOverhead)
	}
	if st := stats(t, m); st.Bytes != want {
		t.Fatalf("Bytes after sweeping = %d, want %d", st.Bytes, want)
	}
}

func TestMemoryCloseStopsSweeper(t *testing.T) {
	m := store.NewMemory(store.MemoryOptions{SweepInterval: time.Millisecond})
	done := store.SweeperDone(m)
	select {
	case <-done:
		t.Fatal("sweeper stopped before Close")
	case <-time.After(20 * time.Millisecond):
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	default:
		t.Fatal("Close returned before the sweeper stopped")
	}
}

func TestMemoryScanLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 1M keys")
	}
	m := newMemory(t, store.MemoryOptions{MaxBytes: 1 << 30})
	ctx := context.Background()
	n := 1_000_000
	if raceEnabled {
		n = 100_000
	}
	batch := make([]store.Entry, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, store.Entry{Key: fmt.Sprintf("key-%07d", i), Version: 1})
		if len(batch) == cap(batch) {
			if _, err := m.Put(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for _, count := range []int{1000, 100} {
		start := time.Now()
		var cursor uint64
		total := 0
		for {
			keys, next, err := m.Scan(ctx, cursor, count)
			if err != nil {
				t.Fatal(err)
			}
			total += len(keys)
			if next == 0 {
				break
			}
			cursor = next
		}
		// Only reported: how fast a scan is is BenchmarkMemoryScan's
		// business, not a pass/fail of a test on a shared machine.
		t.Logf("scan of %d keys with count %d: %v", total, count, time.Since(start))
		if total != n {
			t.Fatalf("scan returned %d keys, want %d", total, n)
		}
	}
}

// BenchmarkMemoryScan is one full scan of 1M keys per op (COUNT 1000): a
// scan must stay linear in the keys held.
func BenchmarkMemoryScan(b *testing.B) {
	m := store.NewMemory(store.MemoryOptions{MaxBytes: 1 << 30})
	defer m.Close()
	ctx := context.Background()
	batch := make([]store.Entry, 0, 1000)
	for i := 0; i < 1_000_000; i++ {
		batch = append(batch, store.Entry{Key: fmt.Sprintf("key-%07d", i), Version: 1})
		if len(batch) == cap(batch) {
			if _, err := m.Put(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ResetTimer()
	for range b.N {
		var cursor uint64
		for {
			_, next, err := m.Scan(ctx, cursor, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if next == 0 {
				break
			}
			cursor = next
		}
	}
}

func BenchmarkMemoryGet(b *testing.B) {
	m := store.NewMemory(store.MemoryOptions{})
	defer m.Close()
	ctx := context.Background()
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
		m.Put(ctx, []store.Entry{{Key: keys[i], Value: make([]byte, 100), Version: 1}})
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(n)
		for pb.Next() {
			if _, ok, err := m.Get(ctx, keys[i%n]); !ok || err != nil {
				b.Fatal("miss")
			}
			i++
		}
	})
}

func BenchmarkMemoryPut(b *testing.B) {
	m := store.NewMemory(store.MemoryOptions{})
	defer m.Close()
	ctx := context.Background()
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	value := make([]byte, 100)
	e := make([]store.Entry, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e[0] = store.Entry{Key: keys[i%n], Value: value, Version: uint64(i + 1)}
		if _, err := m.Put(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryPutEvicting(b *testing.B) {
	m := store.NewMemory(store.MemoryOptions{MaxBytes: 1 << 20})
	defer m.Close()
	ctx := context.Background()
	value := make([]byte, 100)
	e := make([]store.Entry, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e[0] = store.Entry{Key: fmt.Sprintf("key-%d", i), Value: value, Version: 1}
		if _, err := m.Put(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMemoryHashCollisions forces every key into a few hashes: lookups,
// overwrites, deletes, scans and eviction must compare the stored keys.
func TestMemoryHashCollisions(t *testing.T) {
	for name, hash := range map[string]func(string) uint64{
		// 4 hashes in 2 shards (and one of them is 0, the scan cursor's start).
		"few": func(k string) uint64 { return uint64(len(k)%2)<<63 | uint64(len(k)%4/2) },
		// Homes at the end of the index table, so probe runs wrap around,
		// mixed with distinct hashes.
		"wrap": func(k string) uint64 {
			if len(k)%2 == 0 {
				return math.MaxUint64 - uint64(len(k)%3)
			}
			return xxhash.Sum64String(k)
		},
	} {
		t.Run(name, func(t *testing.T) { testHashCollisions(t, hash) })
	}
}

func testHashCollisions(t *testing.T, hash func(string) uint64) {
	m := store.NewMemoryHashed(store.MemoryOptions{}, hash)
	t.Cleanup(func() { _ = m.Close() })
	ctx := context.Background()
	const n = 300
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
		if out, err := m.Put(ctx, []store.Entry{{Key: keys[i], Value: []byte(keys[i]), Version: 1}}); err != nil || out[0] != store.Applied {
			t.Fatalf("Put %q = %v, %v", keys[i], out, err)
		}
	}
	check := func(deleted map[string]bool) {
		t.Helper()
		for _, k := range keys {
			e, ok, err := m.Get(ctx, k)
			switch {
			case err != nil:
				t.Fatal(err)
			case deleted[k] && ok:
				t.Fatalf("%q found after its delete: %+v", k, e)
			case !deleted[k] && (!ok || e.Key != k || string(e.Value) != k+"'"[:min(1, int(e.Version-1))]):
				t.Fatalf("Get(%q) = %+v, %v", k, e, ok)
			}
		}
		seen := map[string]int{}
		var cursor uint64
		for {
			ks, next, err := m.Scan(ctx, cursor, 7)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range ks {
				seen[k]++
			}
			if next == 0 {
				break
			}
			cursor = next
		}
		for _, k := range keys {
			if want := map[bool]int{false: 1, true: 0}[deleted[k]]; seen[k] != want {
				t.Fatalf("scan returned %q %d times, want %d", k, seen[k], want)
			}
		}
	}
	check(nil)
	// Overwrite every third key with a longer value, delete every fifth.
	deleted := map[string]bool{}
	for i, k := range keys {
		if i%3 == 0 {
			if out, _ := m.Put(ctx, []store.Entry{{Key: k, Value: []byte(k + "'"), Version: 2}}); out[0] != store.Applied {
				t.Fatalf("overwrite %q: %v", k, out)
			}
		}
		if i%5 == 0 {
			v := uint64(1)
			if i%3 == 0 {
				v = 2
			}
			if d, _ := m.DeleteIfVersion(ctx, []string{k}, []uint64{v}); !d[0] {
				t.Fatalf("delete %q v%d failed", k, v)
			}
			deleted[k] = true
		}
	}
	check(deleted)
	if st := stats(t, m); st.Keys != int64(n-len(deleted)) {
		t.Fatalf("Keys = %d, want %d", st.Keys, n-len(deleted))
	}
}

// TestMemorySlabReclaim overwrites and deletes keys many times: the slabs
// and slot arrays must stay within a small multiple of what is live.
func TestMemorySlabReclaim(t *testing.T) {
	m := newMemory(t, store.MemoryOptions{MaxBytes: 1 << 30})
	ctx := context.Background()
	const n = 2000
	live := 0
	for round := 0; round < 30; round++ {
		live = 0
		for i := 0; i < n; i++ {
			k := fmt.Sprintf("key-%d", i)
			size := (i*7 + round*13) % 300
			if _, err := m.Put(ctx, []store.Entry{{Key: k, Value: make([]byte, size), Version: uint64(round + 1)}}); err != nil {
				t.Fatal(err)
			}
			live += len(k) + size
		}
		if round%3 == 2 {
			keys := make([]string, n)
			versions := make([]uint64, n)
			for i := range keys {
				keys[i], versions[i] = fmt.Sprintf("key-%d", i), uint64(round+1)
			}
			if _, err := m.DeleteIfVersion(ctx, keys, versions); err != nil {
				t.Fatal(err)
			}
			if slab, slots := store.SlabBytes(m); slab != 0 || slots != 0 {
				t.Fatalf("round %d: %d slab bytes and %d slots left after deleting everything", round, slab, slots)
			}
		}
	}
	slab, slots := store.SlabBytes(m)
	// Each shard keeps at most half its slab dead once past 16 KiB, plus
	// the growth slack of its last compaction or append.
	if limit := 3*live + 256*(16<<10); slab > limit {
		t.Fatalf("%d slab bytes for %d live bytes (limit %d): overwrites leak", slab, live, limit)
	}
	if slots > 2*n {
		t.Fatalf("%d slots for %d keys: freed slots are not reused", slots, n)
	}
}

func TestMemoryEvictionsCounted(t *testing.T) {
	m := newMemory(t, store.MemoryOptions{MaxBytes: 64 << 10})
	ctx := context.Background()
	if m.Evictions() != 0 {
		t.Fatalf("Evictions of a new store = %d", m.Evictions())
	}
	const n = 5000
	for i := 0; i < n; i++ {
		if _, err := m.Put(ctx, []store.Entry{{Key: fmt.Sprintf("key-%d", i), Value: make([]byte, 100), Version: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	st := stats(t, m)
	if ev := m.Evictions(); ev == 0 || int64(ev)+st.Keys != n {
		t.Fatalf("Evictions = %d with %d keys left of %d written: want them to add up", ev, st.Keys, n)
	}
}

// TestMemoryHeapPerRecord measures the live heap per record of 12-byte keys
// and 32-byte values (what MemoryEntryOverhead stands for) and checks that
// the accounting does not undercount it by much.
func TestMemoryHeapPerRecord(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("heap measurement (the race detector changes allocations)")
	}
	const n = 200_000
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	m := newMemory(t, store.MemoryOptions{MaxBytes: 1 << 30})
	ctx := context.Background()
	batch := make([]store.Entry, 0, 1000)
	value := make([]byte, 32)
	for i := 0; i < n; i++ {
		batch = append(batch, store.Entry{Key: fmt.Sprintf("bench:%06d", i), Value: value, Version: 1})
		if len(batch) == cap(batch) {
			if _, err := m.Put(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if _, _, err := m.Scan(ctx, 0, n); err != nil { // builds the scan order too
		t.Fatal(err)
	}
	batch = nil
	per := float64(heap()-before) / n
	accounted := float64(stats(t, m).Bytes) / n
	t.Logf("live heap %.1f bytes per record, accounted %.1f (overhead %d)", per, accounted, store.MemoryEntryOverhead)
	if per > 1.25*accounted {
		t.Fatalf("live heap %.1f bytes per record, accounted only %.1f", per, accounted)
	}
	runtime.KeepAlive(m)
}

// TestMemoryGetManyValuesApart: the values of one GetMany share
// allocations; each must hold its own bytes, stay put when the records are
// overwritten, and grow without touching its neighbours.
func TestMemoryGetManyValuesApart(t *testing.T) {
	m := newMemory(t, store.MemoryOptions{})
	ctx := context.Background()
	var keys []string
	var want [][]byte
	for i, n := range []int{32, 0, 1, 1024, 1025, 32, 5000, 7, 700, 700, 700, 700, 700, 700, 700, 700, 700, 700, 700, 700, 700, 700, 700, 700, 700, 700, 3} {
		k := fmt.Sprintf("k%02d", i)
		v := make([]byte, n)
		for j := range v {
			v[j] = byte(i + j)
		}
		if _, err := m.Put(ctx, []store.Entry{{Key: k, Value: v, Version: 1}}); err != nil {
			t.Fatal(err)
		}
		keys, want = append(keys, k), append(want, v)
	}
	es, found, err := m.GetMany(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys { // overwrite every record, and grow every value read
		if _, err := m.Put(ctx, []store.Entry{{Key: keys[i], Value: []byte("overwritten"), Version: 2}}); err != nil {
			t.Fatal(err)
		}
		es[i].Value = append(es[i].Value, 0xff, 0xfe)
	}
	for i := range keys {
		if !found[i] || string(es[i].Value) != string(append(want[i], 0xff, 0xfe)) {
			t.Fatalf("value %d (%d bytes): found %v, got %d bytes, not what was written", i, len(want[i]), found[i], len(es[i].Value))
		}
	}
}
