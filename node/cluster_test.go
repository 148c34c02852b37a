package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/internal/testredis"
	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/nodeconfig"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/store"
)

// Acceptance (core cluster): three nodes in one process, each with its own
// real redis-server, joined through one seed. Writes through A read back
// identical through B and C; TTL'd keys expire; each key lives in exactly
// one Redis, its owner's.
func TestThreeNodesRedis(t *testing.T) {
	nodes := startCluster(t, 3, true)
	a, b, c := nodes[0], nodes[1], nodes[2]

	const N = 1000
	val := func(i int) string { return fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%97)) }
	for i := 0; i < N; i++ {
		if r := a.put(t, fmt.Sprintf("key-%d", i), val(i)); r.status != http.StatusNoContent {
			t.Fatalf("put key-%d via A: %s", i, r)
		}
	}
	for _, n := range []*testNode{b, c} {
		for i := 0; i < N; i++ {
			key := fmt.Sprintf("key-%d", i)
			r := n.get(t, key)
			if r.status != http.StatusOK || string(r.body) != val(i) {
				t.Fatalf("get %s via %s: %s", key, n.Name(), r)
			}
			if want := n.RingForTest().Owner(key); r.header.Get(httpapi.HeaderOwner) != want {
				t.Fatalf("owner header %q, want %q", r.header.Get(httpapi.HeaderOwner), want)
			}
		}
	}

	// Each key is in exactly one Redis: its owner's.
	ring := a.RingForTest()
	byName := map[string]*testNode{}
	for _, n := range nodes {
		byName[n.Name()] = n
	}
	ctx := context.Background()
	counts := map[string]int{}
	for i := 0; i < N; i++ {
		key := fmt.Sprintf("key-%d", i)
		owner := ring.Owner(key)
		for _, n := range nodes {
			exists, err := n.redis.Client().Exists(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if (n.Name() == owner) != (exists == 1) {
				t.Fatalf("key %s: in %s's redis = %v, owner is %s", key, n.Name(), exists == 1, owner)
			}
		}
		counts[owner]++
	}
	t.Logf("keys per owner: %v", counts)
	for _, n := range nodes {
		if counts[n.Name()] == 0 {
			t.Errorf("node %s owns no key of %d", n.Name(), N)
		}
	}

	// TTLs: visible with their remaining time, then gone everywhere.
	for i := 0; i < 20; i++ {
		if r := b.put(t, fmt.Sprintf("ttl-%d", i), "short", "ttl=400ms"); r.status != http.StatusNoContent {
			t.Fatalf("put ttl key: %s", r)
		}
	}
	r := c.get(t, "ttl-3")
	if r.status != http.StatusOK {
		t.Fatalf("ttl key not readable: %s", r)
	}
	if ms, err := strconv.Atoi(r.header.Get(httpapi.HeaderTTLMs)); err != nil || ms <= 0 || ms > 400 {
		t.Fatalf("ttl header %q, want 1..400 ms", r.header.Get(httpapi.HeaderTTLMs))
	}
	if r := c.get(t, "key-1"); r.header.Get(httpapi.HeaderTTLMs) != "" {
		t.Fatalf("key without ttl has a ttl header %q", r.header.Get(httpapi.HeaderTTLMs))
	}
	waitFor(t, 5*time.Second, "ttl keys expire on every node", func() bool {
		for i := 0; i < 20; i++ {
			for _, n := range nodes {
				if n.get(t, fmt.Sprintf("ttl-%d", i)).status != http.StatusNotFound {
					return false
				}
			}
		}
		return true
	})

	// Deletes through any node.
	if r := c.del(t, "key-7"); r.status != http.StatusNoContent {
		t.Fatalf("delete: %s", r)
	}
	for _, n := range nodes {
		if r := n.get(t, "key-7"); r.status != http.StatusNotFound {
			t.Fatalf("deleted key read through %s: %s", n.Name(), r)
		}
	}

	// /v1/cluster on every node lists three active members.
	for _, n := range nodes {
		ci := n.Cluster()
		if len(ci.Members) != 3 {
			t.Fatalf("%s sees %d members", n.Name(), len(ci.Members))
		}
		for _, m := range ci.Members {
			if m.State != "active" || !m.InRing {
				t.Fatalf("%s sees %+v", n.Name(), m)
			}
		}
	}
}

// Acceptance (core cluster): a node stopped without Leave is dropped from
// the ring within 10 s and the others keep answering for the keys they own.
func TestCrashedNodeDropped(t *testing.T) {
	nodes := startCluster(t, 3, true)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ring := a.RingForTest()
	var survivorsKeys []string
	for i := 0; len(survivorsKeys) < 200; i++ {
		key := fmt.Sprintf("k%d", i)
		if o := ring.Owner(key); o != c.Name() {
			survivorsKeys = append(survivorsKeys, key)
			if r := a.put(t, key, "v-"+key); r.status != http.StatusNoContent {
				t.Fatalf("put: %s", r)
			}
		}
	}
	start := time.Now()
	c.Abort()
	took := waitFor(t, 10*time.Second, "the crashed node leaves the ring of A and B", func() bool {
		return !a.RingForTest().Has(c.Name()) && !b.RingForTest().Has(c.Name())
	})
	t.Logf("crashed node dropped from the ring after %s", took.Round(time.Millisecond))
	_ = start
	for _, n := range []*testNode{a, b} {
		for _, key := range survivorsKeys {
			r := n.get(t, key)
			if r.status != http.StatusOK || string(r.body) != "v-"+key {
				t.Fatalf("after crash, %s via %s: %s", key, n.Name(), r)
			}
		}
	}
}

// Acceptance (core cluster): bad requests get a clear 4xx with a JSON message
// and change nothing.
func TestBadRequests(t *testing.T) {
	nodes := startCluster(t, 2, false, func(c *node.Config) { c.Limits.MaxKeyBytes = 64; c.Limits.MaxValueBytes = 1024 })
	a, b := nodes[0], nodes[1]
	for i := 0; i < 50; i++ {
		if r := a.put(t, fmt.Sprintf("seed-%d", i), fmt.Sprintf("v%d", i)); r.status != http.StatusNoContent {
			t.Fatalf("seed put: %s", r)
		}
	}
	// A key owned by b, to check forwarded paths refuse bad input too.
	snapshot := func() map[string]string {
		out := map[string]string{}
		for _, n := range nodes {
			for k, e := range shardSnapshot(t, n.Store()) {
				out[n.Name()+"/"+k] = fmt.Sprintf("%x/%d/%v/%d", e.Value, e.Version, e.Tombstone, e.ExpireAt)
			}
		}
		return out
	}
	before := snapshot()

	longKey := strings.Repeat("k", 65)
	bigValue := bytes.Repeat([]byte("v"), 1025)
	cases := []struct {
		name   string
		method string
		url    string
		body   []byte
		hdr    []string
		status int
		msg    string
	}{
		{"empty key put", "PUT", a.base + "/v1/keys/", []byte("x"), nil, 400, "key must not be empty"},
		{"empty key get", "GET", a.base + "/v1/keys/", nil, nil, 400, "key must not be empty"},
		{"key too long", "PUT", a.keyURL(longKey), []byte("x"), nil, 400, "the limit is 64"},
		{"key too long get", "GET", b.keyURL(longKey), nil, nil, 400, "the limit is 64"},
		{"value too large", "PUT", a.keyURL("seed-1"), bigValue, nil, 413, "the limit is 1024"},
		{"value too large via other node", "PUT", b.keyURL("seed-2"), bigValue, nil, 413, "the limit is 1024"},
		{"ttl not a duration", "PUT", a.keyURL("seed-1") + "?ttl=abc", []byte("x"), nil, 400, "not a duration"},
		{"ttl negative", "PUT", a.keyURL("seed-1") + "?ttl=-5s", []byte("x"), nil, 400, "out of range"},
		{"ttl zero", "PUT", a.keyURL("seed-1") + "?ttl=0", []byte("x"), nil, 400, "out of range"},
		{"ttl below resolution", "PUT", a.keyURL("seed-1") + "?ttl=10us", []byte("x"), nil, 400, "1ms resolution"},
		{"ttl absurd", "PUT", a.keyURL("seed-1") + "?ttl=900000h", []byte("x"), nil, 400, "out of range"},
		{"ttl twice", "PUT", a.keyURL("seed-1") + "?ttl=1s&ttl=2s", []byte("x"), nil, 400, "ttl given 2 times"},
		{"unknown parameter", "PUT", a.keyURL("seed-1") + "?tll=1s", []byte("x"), nil, 400, "unknown query parameter"},
		{"unknown route", "GET", a.base + "/v2/keys/x", nil, nil, 404, "no route"},
		{"wrong method on key", "PATCH", a.keyURL("seed-1"), []byte("x"), nil, 405, "method not allowed"},
		{"post without an operation", "POST", a.keyURL("seed-1"), []byte("x"), nil, 400, "POST needs an operation"},
		{"post of an unknown operation", "POST", a.keyURL("seed-1") + "/decr", nil, nil, 400, "unknown operation"},
		{"wrong method on cluster", "DELETE", a.base + "/v1/cluster", nil, nil, 405, "method not allowed"},
		{"missing key", "GET", a.keyURL("nope"), nil, nil, 404, "key not found"},
		{"peer route on the public port", "POST", a.base + "/internal/v1/import", []byte("PCB1"), []string{"X-Peercache-From", b.Name()}, 404, "no route"},
		{"peer key route on the public port", "PUT", a.base + "/internal/v1/keys/seed-1", []byte("x"), nil, 404, "no route"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, tc.url, tc.body, tc.hdr...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tc.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q, want application/json", ct)
			}
			if !strings.Contains(string(r.body), `"error"`) || !strings.Contains(string(r.body), tc.msg) {
				t.Fatalf("body %s, want an error mentioning %q", r.body, tc.msg)
			}
		})
	}
	// The peer protocol (its own port) refuses bad batches per entry: a
	// version from the future, a key the receiver does not own, and a
	// caller that is no member at all.
	ctx := context.Background()
	asB := peerAs(t, b.Name(), peer.Auth{})
	var notA string
	for i := 0; ; i++ {
		if notA = fmt.Sprintf("seed-%d", i); a.RingForTest().Owner(notA) != a.Name() {
			break
		}
	}
	mineA := keyOwnedBy(a, a.Name(), "seed-")
	res, err := asB.Import(ctx, a.PeerAdvertisedForTest(), []store.Entry{
		{Key: mineA, Value: []byte("evil"), Version: ^uint64(0)},
		{Key: notA, Value: []byte("evil"), Version: 1},
	})
	if err != nil || res[0] != kv.Refused || res[1] != kv.Refused {
		t.Fatalf("import of a future version and of a key not owned: %v %v", res, err)
	}
	if _, err := peerAs(t, "mallory", peer.Auth{}).Import(ctx, a.PeerAdvertisedForTest(), []store.Entry{{Key: mineA, Value: []byte("evil"), Version: 1}}); !errors.Is(err, peer.ErrRefused) {
		t.Fatalf("import from a non-member: %v", err)
	}
	after := snapshot()
	if len(before) != len(after) {
		t.Fatalf("bad requests changed the shards: %d records before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("bad requests changed %s: %s -> %s", k, v, after[k])
		}
	}
}

// A forwarded request that reaches a node which does not own the key is
// refused with 421 and the owner's name, never forwarded again.
func TestForwardedRequestNotReforwarded(t *testing.T) {
	nodes := startCluster(t, 2, false)
	a, b := nodes[0], nodes[1]
	var key string
	for i := 0; ; i++ {
		key = fmt.Sprintf("k%d", i)
		if a.RingForTest().Owner(key) == b.Name() {
			break
		}
	}
	// Ask a, as b over the peer protocol, for a key it does not own.
	_, _, err := peerAs(t, b.Name(), peer.Auth{}).Get(context.Background(), a.PeerAdvertisedForTest(), key, false)
	var e *node.Error
	if !errors.As(err, &e) || e.Status != http.StatusMisdirectedRequest || e.Owner != b.Name() {
		t.Fatalf("got %v, want 421 naming %s", err, b.Name())
	}
}

// loopbackResolver resolves every name to 127.0.0.1, as on a machine whose
// host name maps to loopback only (/etc/hosts: "127.0.0.1 vm").
type loopbackResolver struct{}

func (loopbackResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// A node with gossip bound to every address, nothing to advertise given
// and no seeds, on a machine whose host name resolves only to loopback,
// becomes ready and serves: it advertises loopback. (Binding every address
// takes a cluster secret; without one the default binds loopback, and an
// address beyond it is refused.)
func TestDefaultsOnLoopbackOnlyHost(t *testing.T) {
	_, _, err := httpapi.NewNode("127.0.0.1:0", node.Config{Name: "vm", Gossip: nodeconfig.Gossip{Addr: ":0", Resolver: loopbackResolver{}}}, httpapi.Config{})
	var ie *node.InsecureError
	if !errors.As(err, &ie) || ie.Field != "GossipAddr" {
		t.Fatalf("gossip on every address without a secret: %v, want an InsecureError for GossipAddr", err)
	}
	n, web, err := httpapi.NewNode("127.0.0.1:0", node.Config{Name: "vm", Gossip: nodeconfig.Gossip{Addr: ":0", Resolver: loopbackResolver{}, Timing: membership.TimingFast},
		Auth: nodeconfig.Auth{Secret: []byte("0123456789abcdef0123456789abcdef")}, Logger: testLogger("vm")}, httpapi.Config{})
	if err != nil {
		t.Fatalf("New with default addresses: %v", err)
	}
	defer n.Abort()
	web.Serve()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	tn := &testNode{Node: n, t: t, web: web, base: "http://" + web.Addr()}
	waitFor(t, 10*time.Second, "the node is ready", n.Ready)
	if !strings.HasPrefix(n.GossipAddr(), "127.0.0.1:") {
		t.Errorf("advertised gossip address %s, want loopback", n.GossipAddr())
	}
	if r := tn.put(t, "greeting", "hello", "ttl=60s"); r.status != http.StatusNoContent {
		t.Fatalf("PUT greeting: %s", r)
	}
	if r := tn.get(t, "greeting"); r.status != http.StatusOK || string(r.body) != "hello" {
		t.Fatalf("GET greeting: %s", r)
	}
}

// Many (a pipeline of distinct keys) writes and reads every key through
// its owner, one peer request per owner, and reports per-key results as
// Get and Write do (misses, conditions).
func TestManyBatchesPerOwner(t *testing.T) {
	nodes := startCluster(t, 3, false, withReplicas(2, node.WriteAcksAll))
	a := nodes[0]
	ctx := context.Background()
	var ops []node.Op
	for i := 0; i < 300; i++ {
		ops = append(ops, node.Op{Key: fmt.Sprintf("m%d", i), Write: true, Mutation: node.Mutation{Value: []byte(fmt.Sprint("v", i)), TTL: time.Minute}})
	}
	before := a.PeerMetricsForTest().AuthFailures.Load()
	for i, r := range a.Many(ctx, ops) {
		if r.Err != nil || !r.Applied {
			t.Fatalf("write %d: %+v", i, r)
		}
	}
	// Reads, a miss, and a conditional write that does not hold.
	reads := []node.Op{{Key: "nope"}, {Key: "m7", Write: true, Mutation: node.Mutation{Value: []byte("x"), IfAbsent: true}}}
	for i := 0; i < 300; i += 3 {
		reads = append(reads, node.Op{Key: fmt.Sprintf("m%d", i)})
	}
	res := a.Many(ctx, reads)
	if !errors.Is(res[0].Err, node.ErrNotFound) || res[1].Err != nil || res[1].Applied || !res[1].Existed {
		t.Fatalf("miss / condition: %+v %+v", res[0], res[1])
	}
	for j, r := range res[2:] {
		if want := fmt.Sprint("v", 3*j); r.Err != nil || string(r.Item.Value) != want {
			t.Fatalf("read m%d: %+v, want %s", 3*j, r, want)
		}
	}
	// A repeated key: its ops run in order (each repeat starts a new round).
	seq := []node.Op{
		{Key: "r1", Write: true, Mutation: node.Mutation{Value: []byte("a")}},
		{Key: "m1"},
		{Key: "r1"},
		{Key: "r1", Write: true, Mutation: node.Mutation{Value: []byte("b")}},
		{Key: "r2", Write: true, Mutation: node.Mutation{Value: []byte("c")}},
		{Key: "r1"},
		{Key: "r2"},
	}
	sr := a.Many(ctx, seq)
	for i, want := range []string{"", "v1", "a", "", "", "b", "c"} {
		if sr[i].Err != nil || (want != "" && string(sr[i].Item.Value) != want) {
			t.Fatalf("repeated keys: op %d: %+v, want %q", i, sr[i], want)
		}
	}
	if got := node.DistinctRun(seq); got != 2 {
		t.Fatalf("distinctRun = %d, want 2", got)
	}
	// Every key is on both its owners (replicated in batches too).
	waitFor(t, 5*time.Second, "every key has 2 copies", func() bool { _, bad := copiesOK(t, nodes, 2); return bad == "" })
	if a.PeerMetricsForTest().AuthFailures.Load() != before {
		t.Fatal("refused connections")
	}
	for _, n := range nodes {
		if got := n.RepairPendingForTest(); got != 0 {
			t.Errorf("%s: %d keys wait for repair", n.Name(), got)
		}
	}
}

// Conditional and read-modify-write mutations behave alike whether the
// receiving node owns the key or forwards it.
func TestMutations(t *testing.T) {
	nodes := startCluster(t, 2, false)
	ctx := context.Background()
	for _, via := range nodes {
		for _, owner := range nodes {
			key := ""
			for i := 0; ; i++ {
				key = fmt.Sprintf("m-%s-%d", via.Name(), i)
				if via.RingForTest().Owner(key) == owner.Name() {
					break
				}
			}
			t.Run(fmt.Sprintf("via_%s_owner_%s", via.Name(), owner.Name()), func(t *testing.T) {
				res, err := via.Write(ctx, key, node.Mutation{Value: []byte("a"), IfPresent: true})
				if err != nil || res.Applied || res.Existed {
					t.Fatalf("XX on a missing key: %+v %v", res, err)
				}
				res, err = via.Write(ctx, key, node.Mutation{Value: []byte("a"), IfAbsent: true, TTL: time.Hour})
				if err != nil || !res.Applied || res.Existed {
					t.Fatalf("NX on a missing key: %+v %v", res, err)
				}
				res, err = via.Write(ctx, key, node.Mutation{Value: []byte("b"), IfAbsent: true})
				if err != nil || res.Applied || !res.Existed {
					t.Fatalf("NX on an existing key: %+v %v", res, err)
				}
				res, err = via.Write(ctx, key, node.Mutation{Value: []byte("c"), KeepTTL: true})
				if err != nil || !res.Applied {
					t.Fatalf("KEEPTTL set: %+v %v", res, err)
				}
				it, err := via.Get(ctx, key)
				if ttl, ok := it.TTL(); err != nil || string(it.Value) != "c" || !ok || ttl < 59*time.Minute {
					t.Fatalf("after KEEPTTL: %q ttl %v %v", it.Value, ttl, err)
				}
				if res, err = via.Write(ctx, key, node.Mutation{Expire: true}); err != nil || !res.Applied {
					t.Fatalf("persist: %+v %v", res, err)
				}
				if it, _ = via.Get(ctx, key); !it.ExpireAt.IsZero() || string(it.Value) != "c" {
					t.Fatalf("after persist: %q expires %v", it.Value, it.ExpireAt)
				}
				if res, err = via.Write(ctx, key, node.Mutation{Expire: true, TTL: 200 * time.Millisecond}); err != nil || !res.Applied {
					t.Fatalf("expire: %+v %v", res, err)
				}
				waitFor(t, 3*time.Second, "the key expires", func() bool { _, err := via.Get(ctx, key); return err == node.ErrNotFound })
				if res, err = via.Write(ctx, key, node.Mutation{Expire: true, TTL: time.Second}); err != nil || res.Applied {
					t.Fatalf("expire of a missing key: %+v %v", res, err)
				}
				via.Set(ctx, key, []byte("d"), 0)
				if res, err = via.Write(ctx, key, node.Mutation{Delete: true}); err != nil || !res.Existed {
					t.Fatalf("delete of an existing key: %+v %v", res, err)
				}
				if res, err = via.Write(ctx, key, node.Mutation{Delete: true}); err != nil || res.Existed {
					t.Fatalf("delete of a missing key: %+v %v", res, err)
				}
			})
		}
	}
	// Over HTTP: if=absent answers 412 when the key exists.
	a := nodes[0]
	if r := a.put(t, "h", "1", "if=absent"); r.status != http.StatusNoContent {
		t.Fatalf("first if=absent: %s", r)
	}
	if r := nodes[1].put(t, "h", "2", "if=absent"); r.status != http.StatusPreconditionFailed {
		t.Fatalf("second if=absent: %s", r)
	}
	if r := a.put(t, "nope", "2", "if=present"); r.status != http.StatusPreconditionFailed {
		t.Fatalf("if=present on a missing key: %s", r)
	}
	if r := a.put(t, "h", "3", "if=sometimes"); r.status != http.StatusBadRequest {
		t.Fatalf("bad if: %s", r)
	}
	if r := a.get(t, "h"); string(r.body) != "1" {
		t.Fatalf("value after refused writes: %s", r)
	}
}

// A pipeline round's plain writes of keys this node owns are applied
// together (one version range, one shard put), with what ownerApply gives
// each alone: distinct increasing versions, expiries, conditions beside
// them still decided one by one, and a key whose stored version is ahead
// of this node's clock written anyway (stamped again past it), on the
// Memory store and on Redis.
func TestManyPlainWritesTogether(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		t.Run(fmt.Sprintf("redis=%v", withRedis), func(t *testing.T) {
			var st store.Store = store.NewMemory(store.MemoryOptions{MaxBytes: 64 << 20})
			if withRedis {
				srv := testredis.Start(t)
				rs, err := store.NewRedis(store.RedisOptions{Addr: srv.Addr()})
				if err != nil {
					t.Fatalf("redis store: %v", err)
				}
				t.Cleanup(func() { rs.Close() })
				st = rs
			}
			a := startNode(t, "n0", nil, false, func(c *node.Config) { c.Store = st })
			ctx := context.Background()
			ahead := a.ClockForTest().Now() + uint64(2*time.Second)
			if _, err := st.Put(ctx, []store.Entry{{Key: "k-ahead", Value: []byte("old"), Version: ahead}}); err != nil {
				t.Fatal(err)
			}
			if err := a.Set(ctx, "k-cond", []byte("there"), 0); err != nil {
				t.Fatal(err)
			}
			ops := []node.Op{
				{Key: "k-ahead", Write: true, Mutation: node.Mutation{Value: []byte("new")}},
				{Key: "k-cond", Write: true, Mutation: node.Mutation{Value: []byte("no"), IfAbsent: true}},
				{Key: "k-ttl", Write: true, Mutation: node.Mutation{Value: []byte("t"), TTL: time.Minute}},
				{Key: "k-empty", Write: true, Mutation: node.Mutation{}},
			}
			for i := range 20 {
				ops = append(ops, node.Op{Key: fmt.Sprint("k", i), Write: true, Mutation: node.Mutation{Value: []byte(fmt.Sprint("v", i))}})
			}
			before := a.ClockForTest().Now()
			res := a.Many(ctx, ops)
			seen := map[uint64]bool{}
			for i, r := range res {
				if r.Err != nil {
					t.Fatalf("op %d (%s): %v", i, ops[i].Key, r.Err)
				}
				if ops[i].Key == "k-cond" {
					if r.Applied || !r.Existed {
						t.Fatalf("IfAbsent on a present key: %+v", r)
					}
					continue
				}
				if !r.Applied || r.Version <= before || seen[r.Version] {
					t.Fatalf("op %d (%s): applied %v, version %d (clock was at %d, repeated %v)", i, ops[i].Key, r.Applied, r.Version, before, seen[r.Version])
				}
				seen[r.Version] = true
			}
			if res[0].Version <= ahead {
				t.Fatalf("k-ahead written at version %d, not past the stored %d", res[0].Version, ahead)
			}
			if d := time.Until(res[2].ExpireAt); d < 58*time.Second || d > time.Minute {
				t.Fatalf("k-ttl expires in %v, want about 1m", d)
			}
			for i, want := range map[string]string{"k-ahead": "new", "k-cond": "there", "k-ttl": "t", "k-empty": "", "k0": "v0", "k19": "v19"} {
				it, err := a.Get(ctx, i)
				if err != nil || string(it.Value) != want {
					t.Fatalf("Get(%s) = %q, %v; want %q", i, it.Value, err, want)
				}
			}
		})
	}
}

// A write the shard refuses (here a value larger than the whole memory
// budget) fails alone: the other plain writes of its round are applied.
func TestManyPlainWriteRefusedAlone(t *testing.T) {
	st := store.NewMemory(store.MemoryOptions{MaxBytes: 16 << 10})
	a := startNode(t, "n0", nil, false, func(c *node.Config) { c.Store = st })
	ctx := context.Background()
	ops := []node.Op{{Key: "big", Write: true, Mutation: node.Mutation{Value: bytes.Repeat([]byte("x"), 32<<10)}}}
	for i := range 8 {
		ops = append(ops, node.Op{Key: fmt.Sprint("s", i), Write: true, Mutation: node.Mutation{Value: []byte("v")}})
	}
	res := a.Many(ctx, ops)
	if res[0].Err == nil {
		t.Fatalf("a value over the memory budget was accepted: %+v", res[0])
	}
	for i, r := range res[1:] {
		if r.Err != nil || !r.Applied {
			t.Fatalf("s%d failed beside the refused write: %+v", i, r)
		}
		if it, err := a.Get(ctx, fmt.Sprint("s", i)); err != nil || string(it.Value) != "v" {
			t.Fatalf("Get(s%d) = %q, %v", i, it.Value, err)
		}
	}
}
