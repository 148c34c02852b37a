package resp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/peercache/peercache/node"
)

// newClient returns a go-redis client with its defaults (protocol 3 first:
// the server answers NOPROTO and the client falls back to RESP2).
func newClient(t *testing.T, addr string, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: addr, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestGoRedis(t *testing.T) {
	nodes := startCluster(t, 2)
	ctx := context.Background()
	a, b := newClient(t, nodes[0].addr), newClient(t, nodes[1].addr)

	t.Run("set get across nodes", func(t *testing.T) {
		for i := 0; i < 50; i++ {
			k := fmt.Sprintf("x%d", i)
			if err := a.Set(ctx, k, "v"+k, 0).Err(); err != nil {
				t.Fatal(err)
			}
			if v, err := b.Get(ctx, k).Result(); err != nil || v != "v"+k {
				t.Fatalf("GET %s via n1 = %q, %v", k, v, err)
			}
		}
		checkShares(t, nodes)
		if _, err := b.Get(ctx, "nope").Result(); !errors.Is(err, redis.Nil) {
			t.Fatalf("GET missing: %v", err)
		}
	})

	t.Run("pipeline", func(t *testing.T) {
		p := a.Pipeline()
		for i := 0; i < 100; i++ {
			p.Set(ctx, fmt.Sprintf("p%d", i), i, time.Minute)
		}
		gets := make([]*redis.StringCmd, 100)
		for i := range gets {
			gets[i] = p.Get(ctx, fmt.Sprintf("p%d", i))
		}
		missing := p.Get(ctx, "p-missing")
		del := p.Del(ctx, "p0", "p1", "p-missing")
		after := p.Get(ctx, "p0")
		if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		for i, g := range gets {
			if g.Val() != fmt.Sprint(i) {
				t.Fatalf("pipelined GET p%d = %q, %v", i, g.Val(), g.Err())
			}
		}
		if !errors.Is(missing.Err(), redis.Nil) || del.Val() != 2 || !errors.Is(after.Err(), redis.Nil) {
			t.Fatalf("missing=%v del=%d after=%v", missing.Err(), del.Val(), after.Err())
		}
		// A pipeline of GETs only, through the other node (forwarded half
		// the time: the server reads such runs in parallel).
		p = b.Pipeline()
		for i := range gets {
			gets[i] = p.Get(ctx, fmt.Sprintf("p%d", i))
		}
		p.Exec(ctx)
		for i, g := range gets {
			if i < 2 {
				if !errors.Is(g.Err(), redis.Nil) {
					t.Fatalf("p%d after DEL: %v", i, g.Err())
				}
				continue
			}
			if g.Val() != fmt.Sprint(i) {
				t.Fatalf("pipelined GET p%d via n1 = %q, %v", i, g.Val(), g.Err())
			}
		}
	})

	t.Run("nx xx", func(t *testing.T) {
		if ok, err := a.SetNX(ctx, "c1", "1", 0).Result(); !ok || err != nil {
			t.Fatalf("SETNX new: %v %v", ok, err)
		}
		if ok, err := b.SetNX(ctx, "c1", "2", 0).Result(); ok || err != nil {
			t.Fatalf("SETNX existing: %v %v", ok, err)
		}
		if ok, err := b.SetXX(ctx, "c1", "3", time.Minute).Result(); !ok || err != nil {
			t.Fatalf("SET XX existing: %v %v", ok, err)
		}
		if ok, err := a.SetXX(ctx, "c2", "3", 0).Result(); ok || err != nil {
			t.Fatalf("SET XX missing: %v %v", ok, err)
		}
		if v := a.Get(ctx, "c1").Val(); v != "3" {
			t.Fatalf("c1 = %q", v)
		}
		if ttl := a.TTL(ctx, "c1").Val(); ttl <= 0 || ttl > time.Minute {
			t.Fatalf("TTL c1 = %v", ttl)
		}
		old, err := a.SetArgs(ctx, "c1", "4", redis.SetArgs{Get: true, KeepTTL: true}).Result()
		if err != nil || old != "3" {
			t.Fatalf("SET GET KEEPTTL: %q %v", old, err)
		}
		if ttl := b.TTL(ctx, "c1").Val(); ttl <= 0 {
			t.Fatalf("KEEPTTL lost the TTL: %v", ttl)
		}
	})

	t.Run("mset mget across nodes", func(t *testing.T) {
		var kv []any
		var keys []string
		for i := 0; i < 40; i++ {
			k := fmt.Sprintf("m%d", i)
			keys = append(keys, k)
			kv = append(kv, k, "val"+k)
		}
		if err := a.MSet(ctx, kv...).Err(); err != nil {
			t.Fatal(err)
		}
		vals, err := b.MGet(ctx, append(keys, "m-missing")...).Result()
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range keys {
			if vals[i] != "val"+k {
				t.Fatalf("MGET %s = %v", k, vals[i])
			}
		}
		if vals[len(keys)] != nil {
			t.Fatalf("MGET missing = %v", vals[len(keys)])
		}
		if n := a.Exists(ctx, "m1", "m2", "m-missing", "m1").Val(); n != 3 {
			t.Fatalf("EXISTS = %d", n)
		}
		if n := b.Del(ctx, keys...).Val(); n != int64(len(keys)) {
			t.Fatalf("DEL = %d", n)
		}
	})

	t.Run("expire", func(t *testing.T) {
		a.Set(ctx, "e1", "v", 0)
		if ok := b.Expire(ctx, "e1", time.Hour).Val(); !ok {
			t.Fatal("EXPIRE existing = false")
		}
		if ttl := a.PTTL(ctx, "e1").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
			t.Fatalf("PTTL = %v", ttl)
		}
		if ok := a.Persist(ctx, "e1").Val(); !ok {
			t.Fatal("PERSIST = false")
		}
		if ttl := a.TTL(ctx, "e1").Val(); ttl != -1 {
			t.Fatalf("TTL after PERSIST = %v", ttl)
		}
		a.PExpire(ctx, "e1", 50*time.Millisecond)
		time.Sleep(120 * time.Millisecond)
		if err := b.Get(ctx, "e1").Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("GET after expiry: %v", err)
		}
		if ttl := b.TTL(ctx, "e1").Val(); ttl != -2 {
			t.Fatalf("TTL of an expired key = %v", ttl)
		}
	})

	t.Run("unknown command keeps the connection", func(t *testing.T) {
		c := newClient(t, nodes[0].addr, func(o *redis.Options) { o.PoolSize = 1 })
		id := c.ClientID(ctx).Val()
		err := c.Do(ctx, "FROBNICATE", "a", "b").Err()
		if err == nil || !strings.HasPrefix(err.Error(), "ERR unknown command 'FROBNICATE', with args beginning with: 'a' 'b'") {
			t.Fatalf("unknown command: %v", err)
		}
		if err := c.Do(ctx, "GET").Err(); err == nil || !strings.Contains(err.Error(), "wrong number of arguments for 'get'") {
			t.Fatalf("wrong arity: %v", err)
		}
		if c.Ping(ctx).Val() != "PONG" || c.ClientID(ctx).Val() != id {
			t.Fatal("the connection did not survive the errors")
		}
		if err := c.Do(ctx, "SELECT", "1").Err(); err == nil {
			t.Fatal("SELECT 1 accepted")
		}
		if err := c.Do(ctx, "HELLO", "3").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPROTO") {
			t.Fatalf("HELLO 3: %v", err)
		}
		if c.ClientID(ctx).Val() != id {
			t.Fatal("reconnected")
		}
	})

	t.Run("client and info", func(t *testing.T) {
		c := newClient(t, nodes[1].addr, func(o *redis.Options) { o.PoolSize = 1; o.ClientName = "bench-1" })
		if n := c.ClientGetName(ctx).Val(); n != "bench-1" {
			t.Fatalf("CLIENT GETNAME = %q", n)
		}
		if err := c.Do(ctx, "CLIENT", "SETNAME", "a b").Err(); err == nil {
			t.Fatal("a name with a space was accepted")
		}
		list := c.ClientList(ctx).Val()
		if !strings.Contains(list, "name=bench-1") || !strings.Contains(list, "lib-name=go-redis") {
			t.Fatalf("CLIENT LIST: %s", list)
		}
		info := c.Info(ctx).Val()
		for _, want := range []string{"# Server", "redis_version:", "# Clients", "connected_clients:", "# Stats",
			"total_commands_processed:", "keyspace_hits:", "keyspace_misses:", "# Keyspace", "db0:keys=", "peercache_node:n1"} {
			if !strings.Contains(info, want) {
				t.Fatalf("INFO lacks %q:\n%s", want, info)
			}
		}
		if got := c.Info(ctx, "keyspace").Val(); strings.Contains(got, "# Server") || !strings.Contains(got, "db0:keys=") {
			t.Fatalf("INFO keyspace: %s", got)
		}
		if n := c.Do(ctx, "COMMAND", "COUNT").Val(); n.(int64) < 20 {
			t.Fatalf("COMMAND COUNT = %v", n)
		}
		docs, err := c.Do(ctx, "COMMAND", "DOCS", "get").Slice()
		if err != nil || len(docs) != 2 || docs[0] != "get" {
			t.Fatalf("COMMAND DOCS get = %v, %v", docs, err)
		}
	})

	t.Run("read-only mode", func(t *testing.T) {
		if err := nodes[0].SetMode(node.ModeReadOnly, node.ScopeNode); err != nil {
			t.Fatal(err)
		}
		defer nodes[0].SetMode(node.ModeReadWrite, node.ScopeNode)
		err := a.Set(ctx, "ro", "v", 0).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "READONLY ") {
			t.Fatalf("SET on a read-only node: %v", err)
		}
		if err := a.Get(ctx, "x1").Err(); err != nil {
			t.Fatalf("GET on a read-only node: %v", err)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		err := a.Set(ctx, strings.Repeat("k", 2000), "v", 0).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "ERR key is 2000 bytes") {
			t.Fatalf("long key: %v", err)
		}
		// Beyond the node's value limit but within the bulk limit: the
		// node's own message.
		err = a.Set(ctx, "big", strings.Repeat("v", 1<<20+1<<10), 0).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "ERR value is") {
			t.Fatalf("big value: %v", err)
		}
		// Beyond the bulk limit: Redis' protocol error, and that
		// connection is closed (the client dials a new one).
		err = a.Set(ctx, "big", strings.Repeat("v", 2<<20), 0).Err()
		if err == nil || err.Error() != "ERR Protocol error: invalid bulk length" {
			t.Fatalf("value beyond the bulk limit: %v", err)
		}
		if err := a.Set(ctx, "big", "small", 0).Err(); err != nil {
			t.Fatalf("after the protocol error: %v", err)
		}
	})
}

func TestCloseDisconnectsClients(t *testing.T) {
	n := startNode(t, "solo", nil)
	ctx := context.Background()
	c := newClient(t, n.addr, func(o *redis.Options) { o.MaxRetries = -1 })
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.resp.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if err := n.resp.Close(cctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := c.Get(ctx, "k").Err(); err == nil {
		t.Fatal("a command succeeded after Close")
	}
	if _, err := redis.NewClient(&redis.Options{Addr: n.addr, MaxRetries: -1}).Ping(ctx).Result(); err == nil {
		t.Fatal("a new connection was served after Close")
	}
}

// INFO stats evicted_keys counts the keys the in-memory shard evicted to
// stay within the node's memory budget.
func TestInfoEvictedKeys(t *testing.T) {
	n := startNode(t, "ev", nil, func(c *node.Config) { c.MemoryMaxBytes = 64 << 10 })
	c := newClient(t, n.addr)
	ctx := context.Background()
	evicted := func() int64 {
		t.Helper()
		info := c.Info(ctx, "stats").Val()
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "evicted_keys:"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("evicted_keys %q: %v", v, err)
				}
				return n
			}
		}
		t.Fatalf("INFO stats lacks evicted_keys:\n%s", info)
		return 0
	}
	if e := evicted(); e != 0 {
		t.Fatalf("evicted_keys = %d before any write", e)
	}
	const keys = 1000
	value := strings.Repeat("v", 100)
	for i := 0; i < keys; i++ {
		if err := c.Set(ctx, fmt.Sprintf("key-%d", i), value, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	st := n.Status(ctx)
	e := evicted()
	if e == 0 || e+st.Keys != keys || uint64(e) != st.Evictions.Store {
		t.Fatalf("evicted_keys = %d, status %+v, %d keys held: want evictions that add up to the %d written", e, st.Evictions, st.Keys, keys)
	}
}

// TestAbsoluteExpiryIsExact: SET PXAT/EXAT, PEXPIREAT, EXPIREAT and GETEX
// PXAT store the instant asked for, also when the write is forwarded (and,
// in a pipeline, batched) to the key's owner: the owner's PEXPIRETIME
// answers it to the millisecond, as Redis does. A non-owner answers from
// the owner's time left, counted from before it asked: never later, at
// most a round trip earlier.
func TestAbsoluteExpiryIsExact(t *testing.T) {
	nodes := startCluster(t, 2)
	ctx := context.Background()
	clients := []*redis.Client{newClient(t, nodes[0].addr), newClient(t, nodes[1].addr)}
	const at = int64(4102444800123) // 2100-01-01, and 123 ms
	for i := range 20 {
		key := fmt.Sprintf("abs%d", i)
		via := clients[i%2] // half the writes are forwarded
		owner := clients[0]
		if ownerNode(t, nodes, key) != nodes[0] {
			owner = clients[1]
		}
		check := func(step string, want int64) {
			t.Helper()
			if got, err := owner.Do(ctx, "PEXPIRETIME", key).Int64(); err != nil || got != want {
				t.Fatalf("%s %s: PEXPIRETIME on the owner = %d, %v; want %d", key, step, got, err, want)
			}
			other := clients[0]
			if owner == clients[0] {
				other = clients[1]
			}
			if got, err := other.Do(ctx, "PEXPIRETIME", key).Int64(); err != nil || got > want || got < want-2000 {
				t.Fatalf("%s %s: PEXPIRETIME on the other node = %d, %v; want at most %d", key, step, got, err, want)
			}
		}
		if err := via.Do(ctx, "SET", key, "v", "PXAT", at).Err(); err != nil {
			t.Fatal(err)
		}
		check("SET PXAT", at)
		if err := via.Do(ctx, "SET", key, "v", "EXAT", at/1000).Err(); err != nil {
			t.Fatal(err)
		}
		check("SET EXAT", at/1000*1000)
		if n, err := via.Do(ctx, "PEXPIREAT", key, at+1876).Int(); err != nil || n != 1 {
			t.Fatalf("PEXPIREAT: %d, %v", n, err)
		}
		check("PEXPIREAT", at+1876)
		if n, err := via.Do(ctx, "EXPIREAT", key, at/1000+5).Int(); err != nil || n != 1 {
			t.Fatalf("EXPIREAT: %d, %v", n, err)
		}
		check("EXPIREAT", (at/1000+5)*1000)
		if v, err := via.Do(ctx, "GETEX", key, "PXAT", at+9001).Text(); err != nil || v != "v" {
			t.Fatalf("GETEX PXAT: %q, %v", v, err)
		}
		check("GETEX PXAT", at+9001)
		p := via.Pipeline() // plain SETs of distinct keys: one batch per owner
		p.Do(ctx, "SET", key, "w", "PXAT", at+42)
		p.Do(ctx, "SET", key+"-other", "w", "PXAT", at+43)
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		check("pipelined SET PXAT", at+42)
		if s, err := owner.Do(ctx, "EXPIRETIME", key).Int64(); err != nil || s != (at+42+500)/1000 {
			t.Fatalf("EXPIRETIME = %d, %v; want %d (rounded, as Redis)", s, err, (at+42+500)/1000)
		}
	}
}

// TestConditionalWritesAreOneStep: SET ... GET, EXPIRE GT/LT and PERSIST
// are carried out by the key's owner in one step, as in Redis. Clients
// through both nodes (half of them forwarded) race on one key:
//   - every SET ... GET answers the value some other one wrote, each
//     value once, and exactly one answers nil (a read, then a write, lets
//     two of them answer the same old value);
//   - PEXPIREAT ... GT with distinct instants ends at the latest of them,
//     and LT at the soonest;
//   - PERSIST answers 1 once however many race.
func TestConditionalWritesAreOneStep(t *testing.T) {
	nodes := startCluster(t, 2)
	ctx := context.Background()
	clients := []*redis.Client{newClient(t, nodes[0].addr), newClient(t, nodes[1].addr)}
	const workers, each = 16, 50
	var mu sync.Mutex
	answered := map[string]int{}
	nils := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				v, err := clients[w%2].Do(ctx, "SET", "race", fmt.Sprintf("%d/%d", w, i), "GET").Text()
				mu.Lock()
				switch {
				case err == redis.Nil:
					nils++
				case err != nil:
					t.Errorf("SET GET: %v", err)
				default:
					answered[v]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	last, err := clients[0].Get(ctx, "race").Result()
	if err != nil {
		t.Fatal(err)
	}
	if nils != 1 || len(answered) != workers*each-1 || answered[last] != 0 {
		t.Errorf("SET GET: %d nil answers (want 1), %d distinct old values (want %d), last value %q answered %d times", nils, len(answered), workers*each-1, last, answered[last])
	}
	for v, n := range answered {
		if n != 1 {
			t.Errorf("SET GET answered %q %d times", v, n)
		}
	}

	const base = int64(4102444800000) // 2100-01-01
	perm := rand.New(rand.NewPCG(1, 2)).Perm(workers * each)
	for _, c := range []struct {
		opt  string
		want int64
	}{{"GT", base + workers*each}, {"LT", base + 1}} {
		key := "exp" + c.opt
		if err := clients[0].Do(ctx, "SET", key, "v", "PXAT", base+workers*each/2).Err(); err != nil {
			t.Fatal(err)
		}
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					at := base + 1 + int64(perm[w*each+i]) // each instant once, in no order
					if err := clients[w%2].Do(ctx, "PEXPIREAT", key, at, c.opt).Err(); err != nil {
						t.Errorf("PEXPIREAT %s: %v", c.opt, err)
					}
				}
			})
		}
		wg.Wait()
		owner := clients[0] // exact on the owner (a non-owner's answer may be a round trip early)
		if ownerNode(t, nodes, key) != nodes[0] {
			owner = clients[1]
		}
		if got, err := owner.Do(ctx, "PEXPIRETIME", key).Int64(); err != nil || got != c.want {
			t.Errorf("PEXPIREAT ... %s from %d clients: PEXPIRETIME %d, %v; want %d", c.opt, workers, got, err, c.want)
		}
	}

	for round := range 20 {
		if err := clients[0].Do(ctx, "SET", "p", "v", "EX", 100).Err(); err != nil {
			t.Fatal(err)
		}
		var ones atomic.Int64
		for w := range workers {
			wg.Go(func() {
				if n, err := clients[w%2].Do(ctx, "PERSIST", "p").Int(); err != nil {
					t.Errorf("PERSIST: %v", err)
				} else {
					ones.Add(int64(n))
				}
			})
		}
		wg.Wait()
		if ones.Load() != 1 {
			t.Fatalf("round %d: PERSIST answered 1 %d times from %d clients, want once", round, ones.Load(), workers)
		}
	}
}

// TestOlderOwnerGetsReadFirst: during a rolling update, a key whose owner
// announces a protocol before conditions (member.ProtoConditions) gets
// SET ... GET, conditional EXPIRE and PERSIST the way that release did
// (read, then write), with Redis' answers; the one-step write is never
// sent to it.
func TestOlderOwnerGetsReadFirst(t *testing.T) {
	n0 := startNode(t, "n0", nil)
	old := startNode(t, "n1", []string{n0.GossipAddr()}, func(c *node.Config) { c.Gossip.Proto = 3 })
	deadline := time.Now().Add(30 * time.Second)
	for len(n0.Cluster().Ring.Members) != 2 || len(old.Cluster().Ring.Members) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the cluster did not form")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx := context.Background()
	c := newClient(t, n0.addr)
	key := keyOwnedBy(t, []*testNode{n0, old}, old, "older")
	if _, err := n0.Write(ctx, key, node.Mutation{Expire: true, ExpireIf: node.ExpireXX}); !errors.Is(err, node.ErrOwnerTooOld) {
		t.Fatalf("a conditional expiry for an older owner: %v, want ErrOwnerTooOld", err)
	}
	if _, err := n0.Write(ctx, key, node.Mutation{Op: node.OpGetSet, Value: []byte("v"), IfAbsent: true}); !errors.Is(err, node.ErrOwnerTooOld) {
		t.Fatalf("SET NX GET for an older owner: %v, want ErrOwnerTooOld", err)
	}
	steps := []struct {
		args []any
		want any // string, int64 or nil
	}{
		{[]any{"SET", key, "old", "EX", 100}, "OK"},
		{[]any{"SET", key, "new", "GET", "KEEPTTL"}, "old"},
		{[]any{"TTL", key}, int64(100)},
		{[]any{"SET", key, "x", "NX", "GET"}, "new"},
		{[]any{"GET", key}, "new"},
		{[]any{"EXPIRE", key, 500, "GT"}, int64(1)},
		{[]any{"EXPIRE", key, 50, "GT"}, int64(0)},
		{[]any{"EXPIRE", key, 60, "XX", "LT"}, int64(1)},
		{[]any{"TTL", key}, int64(60)},
		{[]any{"PERSIST", key}, int64(1)},
		{[]any{"PERSIST", key}, int64(0)},
		{[]any{"EXPIRE", key, 10, "GT"}, int64(0)},
		{[]any{"EXPIRE", key, -1, "LT"}, int64(1)},
		{[]any{"EXISTS", key}, int64(0)},
		{[]any{"SET", key, "y", "XX", "GET"}, nil},
		{[]any{"SET", key, "y", "NX", "GET"}, nil},
		{[]any{"SET", key, "z", "PXAT", 1, "GET"}, "y"},
		{[]any{"EXISTS", key}, int64(0)},
	}
	for _, s := range steps {
		got, err := c.Do(ctx, s.args...).Result()
		if err == redis.Nil {
			got, err = nil, nil
		}
		if err != nil || got != s.want {
			t.Fatalf("%v: %v (%T), %v; want %v", s.args, got, got, err, s.want)
		}
	}
}
