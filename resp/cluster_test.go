package resp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/ring"
)

func newClusterClient(t *testing.T, nodes []*testNode, opts ...func(*redis.ClusterOptions)) *redis.ClusterClient {
	t.Helper()
	o := &redis.ClusterOptions{Addrs: []string{nodes[0].addr}, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClusterClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// ownerNode returns the node that owns key in nodes[0]'s view.
func ownerNode(t *testing.T, nodes []*testNode, key string) *testNode {
	t.Helper()
	owner := nodes[0].Topology().Ring.Owner(key)
	for _, n := range nodes {
		if n.Name() == owner {
			return n
		}
	}
	t.Fatalf("key %q: owner %q is no test node", key, owner)
	return nil
}

// keyOwnedBy returns a key with the given prefix that node owns.
func keyOwnedBy(t *testing.T, nodes []*testNode, owner *testNode, prefix string) string {
	t.Helper()
	for i := range 10000 {
		k := fmt.Sprintf("%s%d", prefix, i)
		if ownerNode(t, nodes, k) == owner {
			return k
		}
	}
	t.Fatalf("no key of %s found", owner.Name())
	return ""
}

func TestClusterModeTopology(t *testing.T) {
	nodes := startClusterResp(t, 3, Options{Cluster: true})
	ctx := context.Background()
	c := newClient(t, nodes[0].addr)
	if info := c.ClusterInfo(ctx).Val(); !strings.Contains(info, "cluster_state:ok\r\n") || !strings.Contains(info, "cluster_size:3\r\n") {
		t.Fatalf("CLUSTER INFO:\n%s", info)
	}
	if id := c.Do(ctx, "CLUSTER", "MYID").Val(); id != node.NodeID("n0") || len(node.NodeID("n0")) != 40 {
		t.Fatalf("CLUSTER MYID = %v", id)
	}
	for _, k := range []string{"somekey", "foo{hash_tag}", "{user1000}.following", ""} {
		if s := c.ClusterKeySlot(ctx, k).Val(); s != int64(ring.Slot(k)) {
			t.Fatalf("CLUSTER KEYSLOT %q = %d, want %d", k, s, ring.Slot(k))
		}
	}
	if s := c.ClusterKeySlot(ctx, "somekey").Val(); s != 11058 {
		t.Fatalf("CLUSTER KEYSLOT somekey = %d, want 11058 (as Redis)", s)
	}

	// CLUSTER SLOTS covers every slot once, naming each owner's RESP door.
	addrOf := map[string]string{}
	for _, n := range nodes {
		addrOf[n.Name()] = n.addr
	}
	slots, err := c.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	r := nodes[0].Topology().Ring
	next := 0
	for _, s := range slots {
		if s.Start != next || s.End < s.Start || len(s.Nodes) != 1 {
			t.Fatalf("CLUSTER SLOTS range %d-%d (%d nodes) after slot %d", s.Start, s.End, len(s.Nodes), next-1)
		}
		for _, sl := range []int{s.Start, s.End} {
			if want := addrOf[r.SlotOwner(sl)]; s.Nodes[0].Addr != want {
				t.Fatalf("slot %d: CLUSTER SLOTS says %s, the ring %s (%s)", sl, s.Nodes[0].Addr, r.SlotOwner(sl), want)
			}
		}
		next = s.End + 1
	}
	if next != ring.Slots {
		t.Fatalf("CLUSTER SLOTS ends at slot %d", next-1)
	}
	t.Logf("CLUSTER SLOTS: %d ranges for 3 members", len(slots))

	// CLUSTER NODES: one line a member, this node marked myself, and the
	// slots of each line are the ones CLUSTER SLOTS gives it.
	lines := strings.Split(strings.TrimSpace(c.ClusterNodes(ctx).Val()), "\n")
	if len(lines) != 3 {
		t.Fatalf("CLUSTER NODES has %d lines:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 9 || len(f[0]) != 40 || !strings.HasPrefix(f[1], "127.0.0.1:") || f[7] != "connected" {
			t.Fatalf("CLUSTER NODES line %q", l)
		}
		if self := strings.HasPrefix(f[1], nodes[0].addr+"@"); self != strings.Contains(f[2], "myself") {
			t.Fatalf("CLUSTER NODES line %q: myself flag wrong", l)
		}
	}
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil || len(shards) != 3 {
		t.Fatalf("CLUSTER SHARDS: %d shards, %v", len(shards), err)
	}

	// A plain client is redirected; keys of two slots are refused.
	k1 := keyOwnedBy(t, nodes, nodes[1], "moved")
	err = c.Set(ctx, k1, "v", 0).Err()
	if want := fmt.Sprintf("MOVED %d %s", ring.Slot(k1), nodes[1].addr); err == nil || err.Error() != want {
		t.Fatalf("SET of n1's key through n0: %v, want %s", err, want)
	}
	if err := c.Get(ctx, k1).Err(); err == nil || !strings.HasPrefix(err.Error(), "MOVED ") {
		t.Fatalf("GET of n1's key through n0: %v", err)
	}
	if err := c.MGet(ctx, "a", "b").Err(); err == nil || err.Error() != errCrossSlot {
		t.Fatalf("MGET a b: %v, want CROSSSLOT", err)
	}
	k0 := keyOwnedBy(t, nodes, nodes[0], "t")
	tag := k0
	if err := c.MSet(ctx, "{"+tag+"}a", "1", "{"+tag+"}b", "2").Err(); err != nil {
		t.Fatalf("MSET of one slot on its owner: %v", err)
	}
	if v := c.MGet(ctx, "{"+tag+"}a", "{"+tag+"}b").Val(); !slices.Equal(v, []any{"1", "2"}) {
		t.Fatalf("MGET of one slot = %v", v)
	}
	// A pipeline through n0 mixing its keys and others': each command is
	// answered, in order.
	p := c.Pipeline()
	own := p.Set(ctx, k0, "mine", 0)
	other := p.Get(ctx, k1)
	again := p.Get(ctx, k0)
	p.Exec(ctx)
	if own.Err() != nil || !strings.HasPrefix(fmt.Sprint(other.Err()), "MOVED ") || again.Val() != "mine" {
		t.Fatalf("pipeline: %v / %v / %q", own.Err(), other.Err(), again.Val())
	}
	if v := c.Do(ctx, "READONLY").Val(); v != "OK" {
		t.Fatalf("READONLY = %v", v)
	}
	if v := c.Do(ctx, "ASKING").Val(); v != "OK" {
		t.Fatalf("ASKING = %v", v)
	}
	// COUNTKEYSINSLOT and GETKEYSINSLOT: this node's live keys of a slot.
	if err := c.Set(ctx, "{"+tag+"}c", "3", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c.Del(ctx, "{"+tag+"}b")
	sl := ring.Slot(k0)
	if n := c.ClusterCountKeysInSlot(ctx, sl).Val(); n != 3 { // k0, {k0}a, {k0}c
		t.Fatalf("COUNTKEYSINSLOT %d = %d, want 3", sl, n)
	}
	got := c.ClusterGetKeysInSlot(ctx, sl, 10).Val()
	slices.Sort(got)
	if want := []string{k0, "{" + tag + "}a", "{" + tag + "}c"}; !slices.Equal(got, want) {
		t.Fatalf("GETKEYSINSLOT %d = %v, want %v", sl, got, want)
	}
	if got := c.ClusterGetKeysInSlot(ctx, sl, 1).Val(); len(got) != 1 {
		t.Fatalf("GETKEYSINSLOT %d 1 = %v", sl, got)
	}
	if n := c.ClusterCountKeysInSlot(ctx, ring.Slot(k1)).Val(); n != 0 {
		t.Fatalf("COUNTKEYSINSLOT of another node's slot = %d", n)
	}
	for _, cmd := range [][]any{{"CLUSTER", "COUNTKEYSINSLOT", "16384"}, {"CLUSTER", "GETKEYSINSLOT", "1", "-1"}, {"CLUSTER", "GETKEYSINSLOT", "x", "1"}} {
		if err := c.Do(ctx, cmd...).Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR ") {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	// SCAN, KEYS and DBSIZE: the keys this node owns, as each node of a
	// Redis Cluster answers.
	var mine []string
	for i := range 50 {
		k := fmt.Sprintf("scan:%d", i)
		o := ownerNode(t, nodes, k)
		if err := newClient(t, o.addr).Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if o == nodes[0] {
			mine = append(mine, k)
		}
	}
	slices.Sort(mine)
	keys := c.Keys(ctx, "scan:*").Val()
	slices.Sort(keys)
	if !slices.Equal(keys, mine) {
		t.Fatalf("KEYS scan:* = %v, want %v", keys, mine)
	}
	var scanned []string
	var cursor uint64
	for {
		ks, next, err := c.Scan(ctx, cursor, "scan:*", 7).Result()
		if err != nil {
			t.Fatal(err)
		}
		scanned, cursor = append(scanned, ks...), next
		if cursor == 0 {
			break
		}
	}
	slices.Sort(scanned)
	if scanned = slices.Compact(scanned); !slices.Equal(scanned, mine) {
		t.Fatalf("SCAN MATCH scan:* = %v, want %v", scanned, mine)
	}
	if ks, _, _ := c.ScanType(ctx, 0, "scan:*", 1000, "hash").Result(); len(ks) != 0 {
		t.Fatalf("SCAN TYPE hash = %v", ks)
	}
	all := c.Keys(ctx, "*").Val()
	if n := c.DBSize(ctx).Val(); n != int64(len(all)) || n < int64(len(mine)) {
		t.Fatalf("DBSIZE = %d, KEYS * has %d", n, len(all))
	}
	// FLUSHDB empties this node only, through versioned deletes.
	n1 := newClient(t, nodes[1].addr)
	before := n1.DBSize(ctx).Val()
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("FLUSHDB: %v", err)
	}
	if n := c.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("DBSIZE after FLUSHDB = %d", n)
	}
	if n := n1.DBSize(ctx).Val(); n != before || n == 0 {
		t.Fatalf("n1's DBSIZE went from %d to %d after n0's FLUSHDB", before, n)
	}
	if err := c.Do(ctx, "FLUSHDB", "NOW").Err(); err == nil || err.Error() != errSyntax {
		t.Fatalf("FLUSHDB NOW: %v", err)
	}
	if v := c.ConfigGet(ctx, "cluster-*").Val(); v["cluster-enabled"] != "yes" || v["cluster-require-full-coverage"] != "yes" {
		t.Fatalf("CONFIG GET cluster-* = %v", v)
	}
	if info := c.Info(ctx, "cluster").Val(); !strings.Contains(info, "cluster_enabled:1") {
		t.Fatalf("INFO cluster:\n%s", info)
	}
}

func TestProxyModeRefusesClusterCommands(t *testing.T) {
	nodes := startCluster(t, 1)
	c := newClient(t, nodes[0].addr)
	ctx := context.Background()
	for _, cmd := range [][]any{{"CLUSTER", "SLOTS"}, {"CLUSTER", "INFO"}, {"READONLY"}} {
		if err := c.Do(ctx, cmd...).Err(); err == nil || err.Error() != errNoCluster {
			t.Fatalf("%v in proxy mode: %v, want %q", cmd, err, errNoCluster)
		}
	}
	if v := c.ConfigGet(ctx, "cluster-enabled").Val(); v["cluster-enabled"] != "no" {
		t.Fatalf("CONFIG GET cluster-enabled = %v", v)
	}
	if info := c.Info(ctx, "cluster").Val(); !strings.Contains(info, "cluster_enabled:0") {
		t.Fatalf("INFO cluster:\n%s", info)
	}
}

// TestProxyModeKeyspace: in proxy mode SCAN, KEYS, DBSIZE and the flushes
// cover the whole cluster (every member in turn), whichever node they are
// sent to.
func TestProxyModeKeyspace(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := context.Background()
	c0, c2 := newClient(t, nodes[0].addr), newClient(t, nodes[2].addr)
	const total = 2500
	var kvs []any
	for i := range total {
		kvs = append(kvs, fmt.Sprintf("k%d", i), "v")
	}
	if err := c0.MSet(ctx, kvs...).Err(); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if d := newClient(t, n.addr).DBSize(ctx).Val(); d != total {
			t.Fatalf("DBSIZE through n%d = %d, want %d", i, d, total)
		}
	}
	if keys := c2.Keys(ctx, "k1?").Val(); len(keys) != 10 {
		t.Fatalf("KEYS k1? = %v, want k10..k19", keys)
	}
	seen := map[string]bool{}
	var cursor uint64
	for steps := 0; ; steps++ {
		keys, next, err := c2.Scan(ctx, cursor, "", 100).Result()
		if err != nil || steps > 1000 {
			t.Fatalf("SCAN %d: %v (step %d)", cursor, err, steps)
		}
		for _, k := range keys {
			seen[k] = true
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if len(seen) != total {
		t.Fatalf("SCAN returned %d distinct keys, want %d", len(seen), total)
	}
	if keys, _, err := c0.Scan(ctx, 0, "k7*", 100000).Result(); err != nil || len(keys) == 0 {
		t.Fatalf("SCAN MATCH k7* COUNT 100000: %v %v", keys, err)
	}
	if err := c2.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if d := newClient(t, n.addr).DBSize(ctx).Val(); d != 0 {
			t.Fatalf("DBSIZE through n%d after FLUSHALL = %d", i, d)
		}
	}
	if n, err := c0.Exists(ctx, "k1", "k2499").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS after FLUSHALL: %d %v", n, err)
	}
}

func TestClusterClient(t *testing.T) {
	nodes := startClusterResp(t, 3, Options{Cluster: true})
	ctx := context.Background()
	cc := newClusterClient(t, nodes)
	for i := range 1000 {
		k := fmt.Sprintf("cc%d", i)
		if err := cc.Set(ctx, k, "v"+k, time.Hour).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	for i := range 1000 {
		k := fmt.Sprintf("cc%d", i)
		if v, err := cc.Get(ctx, k).Result(); err != nil || v != "v"+k {
			t.Fatalf("GET %s = %q, %v", k, v, err)
		}
	}
	if _, err := cc.Get(ctx, "cc-missing").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET missing: %v", err)
	}
	// The client routed every key to its owner: no node forwarded any.
	for _, n := range nodes {
		if st := n.Status(ctx); st.Keys == 0 {
			t.Fatalf("%s holds no keys", n.Name())
		}
		if f := forwarded(t, n); f != 0 {
			t.Fatalf("%s forwarded %v requests", n.Name(), f)
		}
	}
	p := cc.Pipeline()
	gets := make([]*redis.StringCmd, 200)
	for i := range gets {
		gets[i] = p.Get(ctx, fmt.Sprintf("cc%d", i))
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	for i, g := range gets {
		if g.Val() != fmt.Sprintf("vcc%d", i) {
			t.Fatalf("pipelined GET cc%d = %q, %v", i, g.Val(), g.Err())
		}
	}
	if n, err := cc.Del(ctx, "cc1").Result(); err != nil || n != 1 {
		t.Fatalf("DEL: %d, %v", n, err)
	}
	if d, err := cc.TTL(ctx, "cc2").Result(); err != nil || d <= 0 {
		t.Fatalf("TTL: %v, %v", d, err)
	}
	at, err := cc.PExpireTime(ctx, "cc2").Result()
	if want := time.Duration(time.Now().Add(time.Hour).UnixMilli()) * time.Millisecond; err != nil || at > want || at < want-time.Minute {
		t.Fatalf("PEXPIRETIME = %v, %v; want about %v", at, err, want)
	}
}

// forwarded is the node's peercache_forwarded_total.
func forwarded(t *testing.T, n *testNode) float64 {
	t.Helper()
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "peercache_forwarded_total" {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatal("no peercache_forwarded_total metric")
	return 0
}

// TestClusterClientThroughJoinAndLeave is issue 14's first acceptance
// check: go-redis's ClusterClient against three nodes in cluster mode,
// 10,000 keys with SET, GET, INCR and EXPIRE while a fourth node joins
// and later one node leaves gracefully. The application sees no error
// (after go-redis's own redirects and retries), and every acknowledged
// write and increment reads back.
func TestClusterClientThroughJoinAndLeave(t *testing.T) {
	const keys, workers, passes = 10000, 8, 4
	nodes := startClusterResp(t, 3, Options{Cluster: true})
	ctx := context.Background()
	cc := newClusterClient(t, nodes)

	// Each worker owns keys w, w+workers, ...: the operations of one key
	// are sequential, as one application thread's would be.
	type state struct {
		value string
		count int64
	}
	want := make([]state, keys)
	var errs []string
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	var done atomic.Int64 // keys done in the current pass
	pass := func(p int) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < keys; i += workers {
					k, c := fmt.Sprintf("k:%d", i), fmt.Sprintf("c:{k:%d}", i)
					v := fmt.Sprintf("v%d:%d", p, i)
					switch p % 2 {
					case 0:
						if err := cc.Set(ctx, k, v, 0).Err(); err != nil {
							fail("pass %d SET %s: %v", p, k, err)
							continue
						}
					case 1:
						if err := cc.Set(ctx, k, v, 0).Err(); err != nil {
							fail("pass %d SET %s: %v", p, k, err)
							continue
						}
						if ok, err := cc.Expire(ctx, k, time.Hour).Result(); err != nil || !ok {
							fail("pass %d EXPIRE %s: %v %v", p, k, ok, err)
							continue
						}
					}
					want[i].value = v
					n, err := cc.Incr(ctx, c).Result()
					if err != nil {
						fail("pass %d INCR %s: %v", p, c, err)
						continue
					}
					if want[i].count++; n != want[i].count {
						fail("pass %d INCR %s = %d, want %d", p, c, n, want[i].count)
					}
					if got, err := cc.Get(ctx, k).Result(); err != nil || got != v {
						fail("pass %d GET %s = %q, %v; want %q", p, k, got, err, v)
					}
					done.Add(1)
				}
			})
		}
		wg.Wait()
	}
	// waitDone waits until the running pass has done n keys.
	waitDone := func(n int64) {
		for done.Load() < n {
			time.Sleep(time.Millisecond)
		}
	}
	for p := range passes {
		done.Store(0)
		changed := make(chan struct{})
		go func() {
			defer close(changed)
			switch p {
			case 1: // a fourth node joins mid-pass
				waitDone(keys / 4)
				n3 := startNodeResp(t, "n3", []string{nodes[0].GossipAddr()}, Options{Cluster: true})
				nodes = append(nodes, n3)
				t.Logf("n3 joined after %d keys of pass %d", done.Load(), p)
			case 2: // n1 leaves gracefully mid-pass
				waitDone(keys / 4)
				sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				if err := nodes[1].Stop(sctx); err != nil {
					fail("n1 leaving: %v", err)
				}
				t.Logf("n1 left after %d keys of pass %d", done.Load(), p)
			}
		}()
		pass(p)
		<-changed
	}
	if len(errs) > 0 {
		for _, n := range nodes {
			t.Logf("%s: RESP %s", n.Name(), n.addr)
		}
		t.Fatalf("%d+ errors seen by the application:\n%s", len(errs), strings.Join(errs, "\n"))
	}

	// Every acknowledged write and increment reads back, and the expiry
	// set in the last odd pass holds.
	lost := 0
	for i := range keys {
		k, c := fmt.Sprintf("k:%d", i), fmt.Sprintf("c:{k:%d}", i)
		if got, err := cc.Get(ctx, k).Result(); err != nil || got != want[i].value {
			lost++
			fail("final GET %s = %q, %v; want %q", k, got, err, want[i].value)
		}
		if n, err := cc.Get(ctx, c).Int64(); err != nil || n != want[i].count {
			lost++
			fail("final GET %s = %d, %v; want %d", c, n, err, want[i].count)
		}
	}
	t.Logf("%d keys and %d counters after a join and a leave: lost=%d", keys, keys, lost)
	if lost > 0 {
		t.Fatalf("lost %d:\n%s", lost, strings.Join(errs, "\n"))
	}
}

// TestClusterSlotsReplySize records the size of the CLUSTER SLOTS reply of
// a 10-member cluster (IPv4 addresses, as in containers), which the issue
// bounds at 512 KiB: docs/ARCHITECTURE.md quotes these figures.
func TestClusterSlotsReplySize(t *testing.T) {
	var members []node.TopologyMember
	var names []string
	for i := range 10 {
		name := fmt.Sprintf("peercache-cachenode-%d", i+1)
		names = append(names, name)
		members = append(members, node.TopologyMember{Name: name, RESPAddr: fmt.Sprintf("172.18.0.%d:6380", 10+i), PeerAddr: fmt.Sprintf("172.18.0.%d:7947", 10+i)})
	}
	r := ring.New(names, ring.Options{})
	for _, c := range []struct {
		replicas int
		bound    int
	}{{1, 512 << 10}, {2, 640 << 10}} {
		rp := buildReplies(node.NewTopology(names[0], r, c.replicas, members))
		t.Logf("10 members, replicas %d: CLUSTER SLOTS %d KiB (%d runs), NODES %d KiB, SHARDS %d KiB",
			c.replicas, len(rp.slots)>>10, len(r.SlotRuns(c.replicas)), len(rp.nodes)>>10, len(rp.shards)>>10)
		if len(rp.slots) > c.bound {
			t.Errorf("replicas %d: CLUSTER SLOTS is %d KiB, over %d KiB", c.replicas, len(rp.slots)>>10, c.bound>>10)
		}
	}
}
