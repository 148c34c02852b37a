package node_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
)

// bulkLoad writes entries straight into their owners' shards (as the owner
// would, with the owner's clock) so tests can start from a large data set
// without 100k HTTP round trips.
func bulkLoad(t testing.TB, nodes []*testNode, entries []store.Entry) {
	t.Helper()
	ring := nodes[0].RingForTest()
	byName := map[string]*testNode{}
	for _, n := range nodes {
		byName[n.Name()] = n
	}
	groups := map[string][]store.Entry{}
	for _, e := range entries {
		o := ring.Owner(e.Key)
		e.Version = byName[o].ClockForTest().Now()
		groups[o] = append(groups[o], e)
	}
	ctx := context.Background()
	for name, es := range groups {
		for len(es) > 0 {
			k := min(len(es), 1000)
			out, err := byName[name].Store().Put(ctx, es[:k])
			if err != nil {
				t.Fatalf("bulk load: %v", err)
			}
			for i, o := range out {
				if o != store.Applied {
					t.Fatalf("bulk load %s: %v", es[i].Key, o)
				}
			}
			es = es[k:]
		}
	}
}

// waitMigrations waits until no node runs a migration and every node's
// shard holds only keys it owns.
func waitMigrations(t testing.TB, nodes []*testNode, timeout time.Duration) time.Duration {
	t.Helper()
	return waitFor(t, timeout, "migrations finish", func() bool {
		for _, n := range nodes {
			if n.MigratorForTest().Status().Active || n.MigratingForTest() {
				return false
			}
		}
		return true
	})
}

// Acceptance (migration 1): 3 nodes hold 100k keys (mixed sizes, half with
// TTLs of 60 s to 1 h); two nodes join. Afterwards every key is in exactly
// one shard, its owner's, values intact, TTLs within 1 s, keys without TTL
// still without.
func TestJoinMovesKeys(t *testing.T) {
	total := 100_000
	if testing.Short() {
		total = 20_000
	}
	nodes := startCluster(t, 3, true)
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	entries := make([]store.Entry, total)
	want := make(map[string]store.Entry, total)
	for i := range entries {
		size := []int{8, 100, 1000, 4000}[rng.IntN(4)]
		v := make([]byte, size)
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		e := store.Entry{Key: fmt.Sprintf("key:%07d", i), Value: v}
		if i%2 == 0 {
			e.ExpireAt = now.Add(time.Minute + time.Duration(rng.Int64N(int64(59*time.Minute)))).UnixMilli()
		}
		entries[i] = e
		want[e.Key] = e
	}
	bulkLoad(t, nodes, entries)

	start := time.Now()
	seed := nodes[0].GossipAddr()
	nodes = append(nodes, startNode(t, "n3", []string{seed}, true), startNode(t, "n4", []string{seed}, true))
	waitRing(t, nodes, 5)
	took := waitMigrations(t, nodes, 2*time.Minute)
	t.Logf("2 joins: ring of 5 and migrations done %s after the joins started", time.Since(start).Round(time.Millisecond))
	_ = took
	var moved int64
	for _, n := range nodes {
		if l := n.MigratorForTest().Status().Last; l != nil {
			moved += l.Moved
		}
	}
	t.Logf("keys moved: %d of %d", moved, total)

	ring := nodes[0].RingForTest()
	seen := map[string]string{}
	ctx := context.Background()
	for _, n := range nodes {
		snap := shardSnapshot(t, n.Store())
		for k, e := range snap {
			if prev, dup := seen[k]; dup {
				t.Fatalf("key %s in two shards: %s and %s", k, prev, n.Name())
			}
			seen[k] = n.Name()
			if o := ring.Owner(k); o != n.Name() {
				t.Fatalf("key %s on %s, owner is %s", k, n.Name(), o)
			}
			w := want[k]
			if !bytes.Equal(e.Value, w.Value) {
				t.Fatalf("key %s: value changed", k)
			}
			if (w.ExpireAt == 0) != (e.ExpireAt == 0) {
				t.Fatalf("key %s: expiry %d, want %d", k, e.ExpireAt, w.ExpireAt)
			}
		}
		// TTLs of every key as Redis itself reports them, in ms.
		sample := make([]string, 0, len(snap))
		for k := range snap {
			sample = append(sample, k)
		}
		pipe := n.redis.Client().Pipeline()
		cmds := make(map[string]interface{ Val() time.Duration }, len(sample))
		for _, k := range sample {
			cmds[k] = pipe.PTTL(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		for k, c := range cmds {
			w := want[k]
			got := c.Val()
			if w.ExpireAt == 0 {
				if got != -1 {
					t.Fatalf("key %s had no ttl, now has %v", k, got)
				}
				continue
			}
			expect := time.Until(time.UnixMilli(w.ExpireAt))
			if d := got - expect; d < -time.Second || d > time.Second {
				t.Fatalf("key %s: pttl %v, want %v ± 1s", k, got, expect)
			}
		}
	}
	if len(seen) != total {
		t.Fatalf("%d keys across the shards, want %d", len(seen), total)
	}
	for _, n := range nodes {
		if n.Name() == "n3" || n.Name() == "n4" {
			if c := len(shardSnapshot(t, n.Store())); c < total/10 {
				t.Fatalf("joiner %s holds only %d keys", n.Name(), c)
			}
		}
	}
}

// workload drives writers, deleters and readers through random live nodes
// and records every acknowledged operation. Each key belongs to one worker,
// so operations on a key are sequential and its final state is known.
type workload struct {
	t       testing.TB
	keys    int
	workers int

	mu      sync.Mutex
	targets []*testNode

	// gate is held shared by every operation in flight; pause takes it
	// exclusively, so that a check sees a quiesced cluster.
	gate   sync.RWMutex
	paused atomic.Bool

	// per key: the values it may hold ("" = absent). An acknowledged op
	// resets it to one value; an op that failed adds its value.
	state []map[string]bool

	ops, acked, failed, reads, misses, stale atomic.Int64
	errs                                     sync.Map // error text -> count
}

func newWorkload(t testing.TB, keys, workers int, targets []*testNode) *workload {
	w := &workload{t: t, keys: keys, workers: workers, targets: targets, state: make([]map[string]bool, keys)}
	for i := range w.state {
		w.state[i] = map[string]bool{"": true}
	}
	return w
}

func (w *workload) setTargets(ts []*testNode) {
	w.mu.Lock()
	w.targets = append([]*testNode(nil), ts...)
	w.mu.Unlock()
}

// pause stops the workers before their next operation and returns once
// every operation in flight has been answered; resume lets them go on.
// Checks of where copies live run in between, so that a write still being
// copied is not mistaken for a missing copy.
func (w *workload) pause() { w.gate.Lock(); w.paused.Store(true) }

func (w *workload) resume() {
	if w.paused.CompareAndSwap(true, false) {
		w.gate.Unlock()
	}
}

func (w *workload) pick(r *rand.Rand) *testNode {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.targets[r.IntN(len(w.targets))]
}

func (w *workload) noteErr(s string) {
	v, _ := w.errs.LoadOrStore(s, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (w *workload) run(ctx context.Context) {
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	for g := 0; g < w.workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 99))
			seq := 0
			for ctx.Err() == nil {
				w.gate.RLock()
				w.op(ctx, client, r, g, &seq)
				w.gate.RUnlock()
			}
		}(g)
	}
	wg.Wait()
}

// op runs one random operation of worker g and records its outcome.
func (w *workload) op(ctx context.Context, client *http.Client, r *rand.Rand, g int, seq *int) {
	if ctx.Err() != nil {
		return
	}
	k := g + w.workers*r.IntN(w.keys/w.workers)
	key := fmt.Sprintf("w:%d", k)
	n := w.pick(r)
	w.ops.Add(1)
	switch p := r.IntN(10); {
	case p < 4: // write
		*seq++
		val := fmt.Sprintf("%d-%d", g, *seq)
		req, _ := http.NewRequest("PUT", n.keyURL(key), bytes.NewReader([]byte(val)))
		code, body, err := send(client, req)
		if err == nil && code == http.StatusNoContent {
			w.acked.Add(1)
			w.state[k] = map[string]bool{val: true}
		} else {
			w.failed.Add(1)
			w.noteErr(fmt.Sprintf("put: %d %v %s", code, err, errText(body)))
			w.state[k][val] = true
		}
	case p < 5: // delete
		req, _ := http.NewRequest("DELETE", n.keyURL(key), nil)
		code, body, err := send(client, req)
		if err == nil && code == http.StatusNoContent {
			w.acked.Add(1)
			w.state[k] = map[string]bool{"": true}
		} else {
			w.failed.Add(1)
			w.noteErr(fmt.Sprintf("delete: %d %v %s", code, err, errText(body)))
			w.state[k][""] = true
		}
	default: // read
		req, _ := http.NewRequest("GET", n.keyURL(key), nil)
		code, body, err := send(client, req)
		w.reads.Add(1)
		switch {
		case err != nil || (code != 200 && code != 404):
			w.failed.Add(1)
			w.noteErr(fmt.Sprintf("get: %d %v %s", code, err, errText(body)))
		case code == 404 && !w.state[k][""]:
			w.misses.Add(1) // the key should exist
			if w.misses.Load() <= 5 {
				w.noteErr(fmt.Sprintf("miss of %s via %s at %s: %s", key, n.Name(), time.Now().Format("15:04:05.000"), errText(body)))
			}
		case code == 200 && !w.state[k][string(body)]:
			w.stale.Add(1)
			w.noteErr(fmt.Sprintf("stale read of %s via %s: %q, want one of %v", key, n.Name(), body, w.state[k]))
		}
	}
}

// errText shortens an error body for the report, dropping addresses and
// numbers that would make every error distinct.
func errText(b []byte) string {
	s := string(b)
	if i := strings.Index(s, "(is"); i > 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160]
	}
	return strings.Join(strings.Fields(s), " ")
}

func send(c *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes(), nil
}

// check reads every key back through reader and counts lost writes
// (an acknowledged value missing or replaced) and resurrected deletes.
func (w *workload) check(reader *testNode) (lost, resurrected int) {
	for k := 0; k < w.keys; k++ {
		key := fmt.Sprintf("w:%d", k)
		r := reader.get(w.t, key)
		switch {
		case r.status == 200 && w.state[k][string(r.body)]:
		case r.status == 404 && w.state[k][""]:
		case r.status == 200 && w.state[k][""] && len(w.state[k]) == 1:
			resurrected++
			w.t.Errorf("resurrected: %s = %q after an acknowledged delete", key, r.body)
		default:
			lost++
			w.t.Errorf("lost: %s read %s, want one of %v", key, r, w.state[k])
		}
	}
	return
}

func (w *workload) report(t testing.TB, phase string) {
	t.Logf("%s: ops=%d acked=%d failed=%d reads=%d misses=%d stale=%d", phase,
		w.ops.Load(), w.acked.Load(), w.failed.Load(), w.reads.Load(), w.misses.Load(), w.stale.Load())
	w.errs.Range(func(k, v any) bool {
		t.Logf("  %6d × %s", v.(*atomic.Int64).Load(), k)
		return true
	})
}

// Acceptance (migration 2): a workload of writers, deleters and readers runs
// through random nodes while the cluster goes 3 -> 5 -> 2 (joins, then
// graceful leaves). Every key ends as its last acknowledged write, or absent
// after its last acknowledged delete: 0 lost, 0 resurrected.
//
// The local tier is on (its copies must never be stale); the near cache is
// off: a read through a third node right after a write may return the
// previous value within the near-cache staleness bound, which this
// workload would count as stale. TestNearCacheStaleness measures that bound.
func TestScaleUnderLoad(t *testing.T) {
	nodes := startCluster(t, 3, true, withoutNearCache)
	w := newWorkload(t, 4000, 16, nodes)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.run(ctx); close(done) }()

	time.Sleep(2 * time.Second) // load before the change
	seed := nodes[0].GossipAddr()
	nodes = append(nodes, startNode(t, "n3", []string{seed}, true, withoutNearCache))
	nodes = append(nodes, startNode(t, "n4", []string{seed}, true, withoutNearCache))
	w.setTargets(nodes)
	waitRing(t, nodes, 5)
	waitMigrations(t, nodes, time.Minute)
	w.report(t, "after 3->5")
	time.Sleep(time.Second)

	// Graceful leaves, one after another: 5 -> 2.
	for len(nodes) > 2 {
		leaving := nodes[0]
		nodes = nodes[1:]
		w.setTargets(nodes)
		sctx, scancel := context.WithTimeout(context.Background(), 60*time.Second)
		start := time.Now()
		if err := leaving.Stop(sctx); err != nil {
			t.Fatalf("stop %s: %v", leaving.Name(), err)
		}
		scancel()
		t.Logf("%s left gracefully in %s", leaving.Name(), time.Since(start).Round(time.Millisecond))
		waitRing(t, nodes, len(nodes))
	}
	waitMigrations(t, nodes, time.Minute)
	time.Sleep(time.Second)
	cancel()
	<-done
	w.report(t, "after 5->2")
	lost, resurrected := w.check(nodes[0])
	t.Logf("final check through %s: lost=%d resurrected=%d misses=%d stale_reads=%d", nodes[0].Name(), lost, resurrected, w.misses.Load(), w.stale.Load())
	if w.stale.Load() > 0 {
		t.Errorf("%d reads returned a value other than the last acknowledged write", w.stale.Load())
	}
	if w.acked.Load() == 0 {
		t.Fatal("the workload acknowledged nothing")
	}
}

// Acceptance (migration 3): a graceful leave of a node holding 30k keys:
// all readable afterwards; Stop returns within the drain timeout.
func TestGracefulLeaveHandsOffEverything(t *testing.T) {
	nodes := startCluster(t, 2, true, func(c *node.Config) { c.Migration.DrainTimeout = 30 * time.Second })
	entries := make([]store.Entry, 60_000)
	for i := range entries {
		entries[i] = store.Entry{Key: fmt.Sprintf("g:%d", i), Value: []byte(fmt.Sprintf("value-%d", i))}
		if i%3 == 0 {
			entries[i].ExpireAt = time.Now().Add(time.Hour).UnixMilli()
		}
	}
	bulkLoad(t, nodes, entries)
	leaving, stays := nodes[1], nodes[0]
	held := len(shardSnapshot(t, leaving.Store()))
	start := time.Now()
	if err := leaving.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	took := time.Since(start)
	t.Logf("%s handed off %d keys and left in %s (%.0f keys/s)", leaving.Name(), held, took.Round(time.Millisecond), float64(held)/took.Seconds())
	if held < 25_000 {
		t.Fatalf("leaving node held only %d keys", held)
	}
	if n := len(shardSnapshot(t, leaving.Store())); n != 0 {
		t.Fatalf("%d keys left behind on the leaving node", n)
	}
	waitRing(t, []*testNode{stays}, 1)
	snap := shardSnapshot(t, stays.Store())
	for _, e := range entries {
		got, ok := snap[e.Key]
		if !ok || !bytes.Equal(got.Value, e.Value) || (got.ExpireAt == 0) != (e.ExpireAt == 0) {
			t.Fatalf("%s after the leave: %+v (found %v)", e.Key, got, ok)
		}
	}
	for i := 0; i < 200; i++ {
		if r := stays.get(t, fmt.Sprintf("g:%d", i)); r.status != 200 {
			t.Fatalf("read after leave: %s", r)
		}
	}
}

// An import of keys the receiver does not own is refused per key and
// changes nothing; the sender keeps them.
func TestImportRefusesKeysNotOwned(t *testing.T) {
	nodes := startCluster(t, 2, false)
	a, b := nodes[0], nodes[1]
	var notA []store.Entry
	for i := 0; len(notA) < 10; i++ {
		k := fmt.Sprintf("k%d", i)
		if a.RingForTest().Owner(k) != a.Name() {
			notA = append(notA, store.Entry{Key: k, Value: []byte("x"), Version: 1})
		}
	}
	res, err := b.PeerTransportForTest().Import(context.Background(), a.Name(), notA)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.IsAcked() {
			t.Fatalf("entry %d acked by a non-owner", i)
		}
	}
	if n := len(shardSnapshot(t, a.Store())); n != 0 {
		t.Fatalf("refused import wrote %d keys", n)
	}
}

// Stopping every node at once (docker compose down) does not wait for the
// drain timeout: a node with no other active member to hand keys to stops
// at once, and one whose targets start leaving re-plans.
func TestWholeClusterStops(t *testing.T) {
	nodes := startCluster(t, 3, false, func(c *node.Config) { c.Migration.DrainTimeout = 30 * time.Second })
	for i := 0; i < 300; i++ {
		if r := nodes[i%3].put(t, fmt.Sprintf("k%d", i), "v"); r.status != http.StatusNoContent {
			t.Fatalf("put: %s", r)
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.Stop(context.Background()); err != nil {
				t.Errorf("stop %s: %v", n.Name(), err)
			}
		}()
	}
	wg.Wait()
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("stopping the whole cluster took %s", took)
	} else {
		t.Logf("whole cluster stopped in %s", took.Round(time.Millisecond))
	}
}

// gatedPutStore is a Memory store whose Put, once armed, tells entered and
// then waits for release: an import that is still writing.
type gatedPutStore struct {
	*store.Memory
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *gatedPutStore) Put(ctx context.Context, entries []store.Entry) ([]store.Outcome, error) {
	if s.armed.CompareAndSwap(true, false) {
		close(s.entered)
		<-s.release
	}
	return s.Memory.Put(ctx, entries)
}

// An import that a node accepted under one view and whose write lands
// after the ring has changed is still moved to the key's new owner: the
// migration run of the new view waits for it before its first pass.
func TestImportAcceptedBeforeARingChangeIsMoved(t *testing.T) {
	gs := &gatedPutStore{Memory: store.NewMemory(store.MemoryOptions{}), entered: make(chan struct{}), release: make(chan struct{})}
	n0 := startNode(t, "n0", nil, false)
	n1 := startNode(t, "n1", []string{n0.GossipAddr()}, false, func(c *node.Config) { c.Store = gs })
	waitRing(t, []*testNode{n0, n1}, 2)
	// A key n1 owns now and n2 will own once it joins.
	opts := n1.RingOptionsForTest()
	now, later := ring.New([]string{"n0", "n1"}, opts), ring.New([]string{"n0", "n1", "n2"}, opts)
	var key string
	for i := 0; ; i++ {
		if key = fmt.Sprintf("late-%d", i); now.Owner(key) == "n1" && later.Owner(key) == "n2" {
			break
		}
	}
	gs.armed.Store(true)
	imported := make(chan error, 1)
	go func() {
		e := store.Entry{Key: key, Value: []byte("v"), Version: n0.ClockForTest().Now()}
		_, err := peerAs(t, "n0", peer.Auth{}).Import(context.Background(), n1.PeerAdvertisedForTest(), []store.Entry{e})
		imported <- err
	}()
	select {
	case <-gs.entered: // accepted under the ring of two, now writing
	case err := <-imported:
		t.Fatalf("import returned before its write: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the import did not reach n1's shard")
	}
	n2 := startNode(t, "n2", []string{n0.GossipAddr()}, false)
	nodes := []*testNode{n0, n1, n2}
	waitRing(t, nodes, 3)
	// Give n1's run of the new ring time to pass over its shard (without
	// the gate it finds nothing and ends), then let the write land.
	time.Sleep(500 * time.Millisecond)
	close(gs.release)
	if err := <-imported; err != nil {
		t.Fatalf("import: %v", err)
	}
	// No sweep runs in tests: only the run of the new ring can move it.
	waitFor(t, 10*time.Second, key+" moved from n1 to its owner n2", func() bool {
		_, on1 := shardSnapshot(t, n1.Store())[key]
		_, on2 := shardSnapshot(t, n2.Store())[key]
		return on2 && !on1
	})
	waitMigrations(t, nodes, 30*time.Second)
}
