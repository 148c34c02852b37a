package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peercache/peercache/internal/testredis"
	"github.com/peercache/peercache/store"
	"github.com/peercache/peercache/store/storetest"
)

// redisDatabases is how many logical databases the test servers have, so
// that subtests can each own one.
const redisDatabases = 64

func newRedis(t testing.TB, opts store.RedisOptions) *store.Redis {
	t.Helper()
	r, err := store.NewRedis(opts)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// TestRedisConformance runs the suite twice on one redis-server: each subtest
// of "Prefixed" gets its own key prefix in the shared database 0 (as several
// nodes sharing one Redis would), each subtest of "OwnDB" a database of its
// own and no prefix.
func TestRedisConformance(t *testing.T) {
	srv := testredis.Start(t, testredis.WithArgs("--databases", fmt.Sprint(redisDatabases)))
	t.Run("Prefixed", func(t *testing.T) {
		var n atomic.Int64
		storetest.Run(t, func(t *testing.T) store.Store {
			return newRedis(t, store.RedisOptions{Addr: srv.Addr(), Prefix: fmt.Sprintf("t%d:{x}*?[", n.Add(1))})
		})
	})
	t.Run("Coalesced", func(t *testing.T) {
		var n atomic.Int64
		storetest.Run(t, func(t *testing.T) store.Store {
			return newRedis(t, store.RedisOptions{Addr: srv.Addr(), Prefix: fmt.Sprintf("c%d:", n.Add(1)), Coalesce: true})
		})
	})
	t.Run("OwnDB", func(t *testing.T) {
		var n atomic.Int64
		storetest.Run(t, func(t *testing.T) store.Store {
			db := int(n.Add(1))
			if db >= redisDatabases {
				t.Fatalf("more subtests than the %d databases", redisDatabases)
			}
			return newRedis(t, store.RedisOptions{Addr: srv.Addr(), DB: db})
		})
	})
}

func TestRedisOptions(t *testing.T) {
	bad := []store.RedisOptions{
		{},
		{Addr: "127.0.0.1:1", DB: -1},
		{Addr: "127.0.0.1:1", PoolSize: -1},
		{Addr: "127.0.0.1:1", ReadTimeout: -time.Second},
	}
	for i, o := range bad {
		if _, err := store.NewRedis(o); err == nil {
			t.Errorf("options %d (%+v): no error", i, o)
		}
	}
	// An unreachable server: the constructor succeeds, Ping fails, in time.
	r := newRedis(t, store.RedisOptions{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := r.Ping(ctx); err == nil || !strings.HasPrefix(err.Error(), "store: redis ping: ") {
		t.Fatalf("Ping of an unreachable server: %v", err)
	}
}

// TestRedisSharedWithForeignKeys checks that a prefixed store neither returns
// nor touches keys outside its prefix, and reads foreign data inside it as
// absent.
func TestRedisSharedWithForeignKeys(t *testing.T) {
	srv := testredis.Start(t)
	ctx := context.Background()
	raw := srv.Client()
	foreign := map[string]string{
		"other:a":   "x",
		"pc":        "short",
		"pc-x:b":    "y",
		"PC:c":      "upper",
		"other:pc:": "z",
	}
	for k, v := range foreign {
		raw.Set(ctx, k, v, 0)
	}
	raw.HSet(ctx, "other:hash", "f", "v")
	// Foreign data under our prefix: a plain string, a string that starts
	// like a record but is too short, and a hash.
	raw.Set(ctx, "pc:junk", "not a record", 0)
	raw.Set(ctx, "pc:short", "\xc7\x00\x00", 0)
	raw.HSet(ctx, "pc:hash", "f", "v")

	r := newRedis(t, store.RedisOptions{Addr: srv.Addr(), Prefix: "pc:"})
	var es []store.Entry
	for i := 0; i < 500; i++ {
		es = append(es, store.Entry{Key: fmt.Sprintf("k%d", i), Value: []byte("v"), Version: 1})
	}
	if _, err := r.Put(ctx, es); err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	var cursor uint64
	for {
		keys, next, err := r.Scan(ctx, cursor, 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			seen[k] = true
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	for _, e := range es {
		if !seen[e.Key] {
			t.Fatalf("Scan missed %q", e.Key)
		}
	}
	for k := range seen {
		if !strings.HasPrefix(k, "k") && k != "junk" && k != "short" && k != "hash" {
			t.Fatalf("Scan returned %q, which is outside the prefix", k)
		}
	}

	for _, k := range []string{"junk", "short", "hash"} {
		if e, ok, err := r.Get(ctx, k); err != nil || ok {
			t.Fatalf("Get(%q) of foreign data = %+v, %v, %v; want not found", k, e, ok, err)
		}
	}
	_, found, err := r.GetMany(ctx, []string{"junk", "short", "hash", "k1"})
	if err != nil || found[0] || found[1] || found[2] || !found[3] {
		t.Fatalf("GetMany with foreign data: found %v, err %v", found, err)
	}
	if d, err := r.DeleteIfVersion(ctx, []string{"junk", "hash"}, []uint64{1, 1}); err != nil || d[0] || d[1] {
		t.Fatalf("DeleteIfVersion of foreign data = %v, %v", d, err)
	}
	// Writing over foreign data under the prefix replaces it (it reads as
	// absent, so any version is newer).
	if out, err := r.Put(ctx, []store.Entry{{Key: "hash", Value: []byte("mine"), Version: 1}}); err != nil || out[0] != store.Applied {
		t.Fatalf("Put over a foreign hash = %v, %v", out, err)
	}

	// Everything outside the prefix is untouched.
	for k, v := range foreign {
		if got, err := raw.Get(ctx, k).Result(); err != nil || got != v {
			t.Fatalf("foreign key %q = %q, %v; want %q", k, got, err, v)
		}
	}
	if got, err := raw.HGet(ctx, "other:hash", "f").Result(); err != nil || got != "v" {
		t.Fatalf("foreign hash = %q, %v", got, err)
	}
	if got, err := raw.Get(ctx, "pc:junk").Result(); err != nil || got != "not a record" {
		t.Fatalf("foreign value under the prefix = %q, %v", got, err)
	}
}

// TestRedisExpiryOnServer checks through the raw client that the Redis key
// expires exactly at ExpireAt (PEXPIRETIME, ms) and that a non-expiring
// record has no Redis expiry.
func TestRedisExpiryOnServer(t *testing.T) {
	srv := testredis.Start(t)
	ctx := context.Background()
	raw := srv.Client()
	r := newRedis(t, store.RedisOptions{Addr: srv.Addr(), Prefix: "p:"})
	exp := time.Now().Add(time.Hour).UnixMilli()/1000*1000 + 777
	tombExp := exp + 1
	_, err := r.Put(ctx, []store.Entry{
		{Key: "ttl", Value: []byte("v"), Version: 1, ExpireAt: exp},
		{Key: "tomb", Version: 1, ExpireAt: tombExp, Tombstone: true},
		{Key: "forever", Value: []byte("v"), Version: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	at, err := raw.Do(ctx, "PEXPIRETIME", "p:ttl").Int64()
	if err != nil || at != exp {
		t.Fatalf("PEXPIRETIME = %d, %v; want %d", at, err, exp)
	}
	if at, err := raw.Do(ctx, "PEXPIRETIME", "p:tomb").Int64(); err != nil || at != tombExp {
		t.Fatalf("tombstone PEXPIRETIME = %d, %v; want %d", at, err, tombExp)
	}
	before := time.Now().UnixMilli()
	pttl, err := raw.PTTL(ctx, "p:ttl").Result()
	after := time.Now().UnixMilli()
	if err != nil || pttl.Milliseconds() > exp-before || pttl.Milliseconds() < exp-after-1 {
		t.Fatalf("PTTL = %v, %v; want within [%d, %d] ms", pttl, err, exp-after-1, exp-before)
	}
	if pttl, err := raw.PTTL(ctx, "p:forever").Result(); err != nil || pttl != -time.Nanosecond {
		// go-redis reports "no expiry" (-1) as -1ns.
		t.Fatalf("PTTL of a record without expiry = %v, %v; want -1", pttl, err)
	}
	// A newer version without expiry removes the Redis expiry.
	r.Put(ctx, []store.Entry{{Key: "ttl", Value: []byte("v2"), Version: 2}})
	if pttl, err := raw.PTTL(ctx, "p:ttl").Result(); err != nil || pttl != -time.Nanosecond {
		t.Fatalf("PTTL after rewrite without expiry = %v, %v; want -1", pttl, err)
	}
}

// TestRedisServerDown checks that errors are reported, wrapped, and that the
// store recovers when the server comes back.
func TestRedisServerDown(t *testing.T) {
	srv := testredis.Start(t)
	r := newRedis(t, store.RedisOptions{Addr: srv.Addr(), DialTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	if _, err := r.Put(ctx, []store.Entry{{Key: "k", Value: []byte("v"), Version: 1}}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, _, err := r.Get(short, "k"); err == nil || !strings.HasPrefix(err.Error(), "store: redis get: ") {
		t.Fatalf("Get with the server down: %v", err)
	}
	srv.Restart()
	var err error
	for i := 0; i < 10; i++ {
		if _, err = r.Put(ctx, []store.Entry{{Key: "k", Value: []byte("v"), Version: 1}}); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Put after restart (the script cache is empty again): %v", err)
	}
	if e, ok, err := r.Get(ctx, "k"); err != nil || !ok || string(e.Value) != "v" {
		t.Fatalf("Get after restart = %+v, %v, %v", e, ok, err)
	}
}

func TestRedisSharedClient(t *testing.T) {
	srv := testredis.Start(t)
	cli := srv.Client()
	r, err := store.NewRedis(store.RedisOptions{Client: cli, Prefix: "s:"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := r.Put(ctx, []store.Entry{{Key: "k", Value: []byte("v"), Version: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Get(ctx, "k"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	// The caller's client stays open.
	if v, err := cli.Exists(ctx, "s:k").Result(); err != nil || v != 1 {
		t.Fatalf("client after store Close: %d, %v", v, err)
	}
}

func benchRedis(b *testing.B) *store.Redis {
	srv := testredis.Start(b)
	return newRedis(b, store.RedisOptions{Addr: srv.Addr(), Prefix: "b:"})
}

func BenchmarkRedisGet(b *testing.B) {
	r := benchRedis(b)
	ctx := context.Background()
	const n = 10_000
	es := make([]store.Entry, n)
	for i := range es {
		es[i] = store.Entry{Key: fmt.Sprintf("key-%d", i), Value: make([]byte, 100), Version: 1}
	}
	if _, err := r.Put(ctx, es); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok, err := r.Get(ctx, es[i%n].Key); !ok || err != nil {
			b.Fatalf("Get: %v, %v", ok, err)
		}
	}
}

func BenchmarkRedisPut(b *testing.B) {
	r := benchRedis(b)
	ctx := context.Background()
	value := make([]byte, 100)
	e := make([]store.Entry, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e[0] = store.Entry{Key: fmt.Sprintf("key-%d", rand.IntN(10_000)), Value: value, Version: uint64(i + 1)}
		if _, err := r.Put(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRedisPutBatch1000(b *testing.B) {
	r := benchRedis(b)
	ctx := context.Background()
	value := make([]byte, 100)
	es := make([]store.Entry, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range es {
			es[j] = store.Entry{Key: fmt.Sprintf("key-%d", j), Value: value, Version: uint64(i + 1)}
		}
		if _, err := r.Put(ctx, es); err != nil {
			b.Fatal(err)
		}
	}
}

// A large Put (which first tries SET NX for absent keys) decides exactly as
// the Memory store does: absent keys are written, older stored versions
// replaced, newer ones kept, tombstones respected, entries that expire
// within the second judged by the script.
func TestRedisLargePutMatchesMemory(t *testing.T) {
	ctx := context.Background()
	r := newRedis(t, store.RedisOptions{Addr: testredis.Start(t).Addr()})
	m := store.NewMemory(store.MemoryOptions{})
	defer m.Close()
	now := time.Now()
	var seed, batch []store.Entry
	for i := 0; i < 40; i++ {
		k := fmt.Sprintf("k%02d", i)
		switch i % 4 {
		case 1: // stored older
			seed = append(seed, store.Entry{Key: k, Value: []byte("old"), Version: 5})
		case 2: // stored newer
			seed = append(seed, store.Entry{Key: k, Value: []byte("new"), Version: 50})
		case 3: // a newer tombstone
			seed = append(seed, store.Entry{Key: k, Version: 50, Tombstone: true, ExpireAt: now.Add(time.Hour).UnixMilli()})
		}
		e := store.Entry{Key: k, Value: []byte("in"), Version: 10}
		if i%5 == 0 {
			e.ExpireAt = now.Add(time.Minute).UnixMilli()
		}
		if i == 7 {
			e.ExpireAt = now.Add(-time.Second).UnixMilli() // already expired
		}
		batch = append(batch, e)
	}
	for _, st := range []store.Store{r, m} {
		if _, err := st.Put(ctx, seed); err != nil {
			t.Fatal(err)
		}
	}
	ro, err := r.Put(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	mo, err := m.Put(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range batch {
		if ro[i] != mo[i] {
			t.Errorf("%s: redis %s, memory %s", batch[i].Key, ro[i], mo[i])
		}
		re, rf, _ := r.Get(ctx, batch[i].Key)
		me, mf, _ := m.Get(ctx, batch[i].Key)
		if rf != mf || re.Version != me.Version || string(re.Value) != string(me.Value) || re.Tombstone != me.Tombstone || re.ExpireAt != me.ExpireAt {
			t.Errorf("%s after: redis %+v %v, memory %+v %v", batch[i].Key, re, rf, me, mf)
		}
	}
}

// A large Put of keys the shard does not hold takes one MSETNX (or, when
// some entries expire, the script that adds their PEXPIREAT): every entry
// is written with its exact expiry, set on the Redis key too, and a chunk
// where one key exists falls back to per-key writes that leave the newer
// stored record alone and write the others; a key twice in one batch is
// decided by version, as by the other paths.
func TestRedisPutAbsentKeys(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)
	r := newRedis(t, store.RedisOptions{Addr: srv.Addr(), Prefix: "p:"})
	raw := srv.Client()
	expireAt := time.Now().Add(time.Hour).Truncate(time.Millisecond).UnixMilli()
	batch := func(name string, n int, ttl func(i int) int64) []store.Entry {
		es := make([]store.Entry, n)
		for i := range es {
			es[i] = store.Entry{Key: fmt.Sprintf("%s%04d", name, i), Value: []byte(name), Version: 7, ExpireAt: ttl(i)}
		}
		return es
	}
	plain := batch("plain", 1500, func(int) int64 { return 0 })
	mixed := batch("mixed", 1500, func(i int) int64 {
		if i%3 == 0 {
			return expireAt
		}
		return 0
	})
	for _, es := range [][]store.Entry{plain, mixed} {
		out, err := r.Put(ctx, es)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range es {
			if out[i] != store.Applied {
				t.Fatalf("%s: outcome %s, want applied", e.Key, out[i])
			}
			got, ok, err := r.Get(ctx, e.Key)
			if err != nil || !ok || got.Version != 7 || string(got.Value) != string(e.Value) || got.ExpireAt != e.ExpireAt {
				t.Fatalf("%s: got %+v %v %v, want %+v", e.Key, got, ok, err, e)
			}
			pt, err := raw.PExpireTime(ctx, "p:"+e.Key).Result()
			if err != nil {
				t.Fatal(err)
			}
			want := time.Duration(-1) // no expiry
			if e.ExpireAt != 0 {
				want = time.Duration(e.ExpireAt) * time.Millisecond
			}
			if pt != want {
				t.Fatalf("%s: PEXPIRETIME %v, want %v", e.Key, pt, want)
			}
		}
	}
	// A key twice in one batch, the older version last: the newer stays.
	dup := batch("dup", 20, func(int) int64 { return 0 })
	dup[3].Version = 9
	dup = append(dup, store.Entry{Key: dup[3].Key, Value: []byte("older"), Version: 8})
	out, err := r.Put(ctx, dup)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := r.Get(ctx, dup[3].Key); got.Version != 9 || string(got.Value) != "dup" || out[3] != store.Applied || out[len(dup)-1] != store.Stale {
		t.Errorf("%s twice: holds %+v, outcomes %s and %s; want version 9, applied then stale", dup[3].Key, got, out[3], out[len(dup)-1])
	}
	// One key of the next batch is held with a newer version.
	if _, err := r.Put(ctx, []store.Entry{{Key: "late0005", Value: []byte("newer"), Version: 9}}); err != nil {
		t.Fatal(err)
	}
	late := batch("late", 20, func(int) int64 { return 0 })
	out, err = r.Put(ctx, late)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range late {
		want, wantValue := store.Applied, "late"
		if i == 5 {
			want, wantValue = store.Stale, "newer"
		}
		got, _, _ := r.Get(ctx, e.Key)
		if out[i] != want || string(got.Value) != wantValue {
			t.Errorf("%s: outcome %s value %q, want %s %q", e.Key, out[i], got.Value, want, wantValue)
		}
	}
}
