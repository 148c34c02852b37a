package node_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/nodeconfig"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/store"
)

// withoutNearCache turns the near cache off (the local tier stays on).
func withoutNearCache(c *node.Config) { c.Tier.NearTTL = -1 }

// keyOwnedBy returns a key that node owner owns in n's view.
func keyOwnedBy(n *testNode, owner, prefix string) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		if n.RingForTest().Owner(k) == owner {
			return k
		}
	}
}

// Acceptance (tiers 1): 1,000 concurrent GETs of one cold key through 3
// nodes cause one origin load and at most one forward per non-owner node.
//
// What is guaranteed, and so what is checked:
//   - A near copy lives NearCacheTTL from when its forward left (never longer
//     than the owner's record of the fetch), so a node forwards again once
//     per lifetime at most: forwards <= 1 + workload time / NearCacheTTL.
//     With the default 1 s lifetime a busy machine (the race detector, 1,000
//     HTTP GETs on 2 cores) stretches the forward's round trip and the GETs
//     past it, and a second forward is then correct behaviour; the test
//     keeps copies for a minute so that the bound is 1 however slow the run.
//   - A ring change (the failure detector declaring a starved member dead,
//     which it may under such load) moves the key's owner and drops every
//     copy (the tier epoch moves on), and GETs may fail or outlast the
//     client's timeout meanwhile: the claim is about a stable ring, so a run
//     during which any node's tier epoch moved is repeated on a fresh key
//     (failed GETs are judged only after that check).
func TestColdKeyLoadsOnce(t *testing.T) {
	const nearTTL = time.Minute
	var loads sync.Map // key -> *atomic.Int64
	getter := func(ctx context.Context, key string) ([]byte, time.Duration, error) {
		c, _ := loads.LoadOrStore(key, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
		time.Sleep(50 * time.Millisecond) // a slow origin: the GETs pile up meanwhile
		return []byte("origin:" + key), time.Minute, nil
	}
	nodes := startCluster(t, 3, false, func(c *node.Config) { c.Loader.Getter, c.Tier.NearTTL = getter, nearTTL })
	epochs := func() []uint64 {
		var ep []uint64
		for _, n := range nodes {
			ep = append(ep, n.TierEpochForTest())
		}
		return ep
	}
	const attempts = 5
	for attempt := 1; ; attempt++ {
		key := fmt.Sprintf("cold-key-%d", attempt)
		waitRing(t, nodes, 3) // after a change, from a ring all nodes agree on again
		ep0 := epochs()
		owner := nodes[0].RingForTest().Owner(key)
		before := make([]node.TierStats, len(nodes))
		for i, n := range nodes {
			before[i] = n.TierStatsForTest()
		}

		var wg sync.WaitGroup
		var bad atomic.Int64
		var badMsg atomic.Value
		sources := sync.Map{}
		start := make(chan struct{})
		for i := 0; i < 1000; i++ {
			wg.Add(1)
			go func(n *testNode) {
				defer wg.Done()
				<-start
				r, err := n.tryGet(key) // judged after the ring check below
				if err != nil || r.status != http.StatusOK || string(r.body) != "origin:"+key {
					bad.Add(1)
					if err != nil {
						badMsg.Store(err.Error())
					} else {
						badMsg.Store(r.String())
					}
					return
				}
				c, _ := sources.LoadOrStore(n.Name()+"/"+r.header.Get(httpapi.HeaderSource), new(atomic.Int64))
				c.(*atomic.Int64).Add(1)
			}(nodes[i%3])
		}
		began := time.Now()
		close(start)
		wg.Wait()
		took := time.Since(began)
		if ep1 := epochs(); !slices.Equal(ep0, ep1) || nodes[0].RingForTest().Owner(key) != owner {
			if attempt == attempts {
				t.Fatalf("the ring changed during each of %d runs (tier epochs now %v): membership is not stable", attempts, ep1)
			}
			t.Logf("run %d: the ring changed meanwhile (tier epochs %v -> %v), which moves the owner and drops copies; running again on a fresh key", attempt, ep0, ep1)
			continue
		}
		if bad.Load() > 0 {
			t.Fatalf("%d GETs failed, e.g. %v", bad.Load(), badMsg.Load())
		}
		counts := map[string]int64{}
		sources.Range(func(k, v any) bool { counts[k.(string)] = v.(*atomic.Int64).Load(); return true })
		t.Logf("run %d took %s; owner %s; answers by node/source: %v", attempt, took, owner, counts)
		var l int64
		if c, ok := loads.Load(key); ok {
			l = c.(*atomic.Int64).Load()
		}
		if l != 1 {
			t.Errorf("%d origin loads, want 1", l)
		}
		maxForwards := 1 + uint64(took/nearTTL) // one per near-copy lifetime
		for i, n := range nodes {
			st, b := n.TierStatsForTest(), before[i]
			fwd, reads := st.Forwards-b.Forwards, st.OwnerReads-b.OwnerReads
			t.Logf("%s: forwards %d, collapsed forwards %d, shard reads %d, collapsed owner reads %d, hits [%d %d], loads [%d %d %d]",
				n.Name(), fwd, st.Collapsed[node.TierNear]-b.Collapsed[node.TierNear], reads, st.Collapsed[node.TierLocal]-b.Collapsed[node.TierLocal],
				st.Hits[0]-b.Hits[0], st.Hits[1]-b.Hits[1], st.Loads[0]-b.Loads[0], st.Loads[1]-b.Loads[1], st.Loads[2]-b.Loads[2])
			if n.Name() != owner && fwd > maxForwards {
				t.Errorf("%s forwarded %d reads to the owner, want at most %d", n.Name(), fwd, maxForwards)
			}
			if n.Name() == owner {
				// One read for every GET that came while the key was cold
				// (it missed, and the load followed). A GET that comes
				// after the loaded value is stored is a local-tier hit when
				// the tier keeps copies of owned records (a Redis shard);
				// with the in-process shard it keeps none (the shard is as
				// near), and each such GET reads the shard, answering
				// "shard" (one read may answer several).
				want := int64(1)
				if !n.TierOwnedForTest() {
					want += counts[owner+"/"+string(node.SourceShard)]
				}
				if int64(reads) > want {
					t.Errorf("owner read its shard %d times, want at most %d (%d answers from its shard)", reads, want, counts[owner+"/"+string(node.SourceShard)])
				}
			}
		}
		// The loaded value went through the owner write path: it is in the
		// owner's shard with a version and the origin TTL.
		for _, n := range nodes {
			e, found, err := n.Store().Get(context.Background(), key)
			if (n.Name() == owner) != (found && err == nil) {
				t.Fatalf("%s's shard holds the key: %v (err %v), owner %s", n.Name(), found, err, owner)
			}
			if found && (e.Version == 0 || e.ExpireAt == 0) {
				t.Fatalf("loaded entry %+v lacks a version or expiry", e)
			}
		}
		return
	}
}

// The --origin loader: 200 is cached with the TTL, 404 is a negative entry
// for LoaderNegativeTTL (the origin is not asked again meanwhile), other
// answers are a 502 to the client; writes replace negative entries.
func TestOriginGetter(t *testing.T) {
	var hits sync.Map
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := hits.LoadOrStore(r.URL.EscapedPath(), new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
		switch r.URL.EscapedPath() {
		case "/items/present", "/items/a%2Fb":
			w.Write([]byte("from origin"))
		case "/items/broken":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	defer origin.Close()
	hitCount := func(p string) int64 {
		if c, ok := hits.Load(p); ok {
			return c.(*atomic.Int64).Load()
		}
		return 0
	}
	if _, err := node.OriginGetter("http://x/items", time.Minute, nil, 0); err == nil {
		t.Fatal("a template without {key} was accepted")
	}
	getter, err := node.OriginGetter(origin.URL+"/items/{key}", 30*time.Second, nil, 1024)
	if err != nil {
		t.Fatal(err)
	}
	nodes := startCluster(t, 2, false, func(c *node.Config) {
		c.Loader.Getter, c.Loader.NegativeTTL, c.Loader.TTLJitter = getter, 300*time.Millisecond, 0.1
	})
	a := nodes[0]
	r := a.get(t, "present")
	if r.status != http.StatusOK || string(r.body) != "from origin" {
		t.Fatalf("present: %s", r)
	}
	if ms, _ := strconv.Atoi(r.header.Get(httpapi.HeaderTTLMs)); ms <= 26_000 || ms > 30_000 {
		t.Fatalf("loaded TTL %d ms, want 27-30 s (30 s less at most 10%% jitter)", ms)
	}
	if src := r.header.Get(httpapi.HeaderSource); src != string(node.SourceOrigin) && src != string(node.SourcePeer) {
		t.Fatalf("first read source %q", src)
	}
	for i := 0; i < 5; i++ {
		for _, n := range nodes {
			if r := n.get(t, "present"); r.status != http.StatusOK {
				t.Fatalf("present again: %s", r)
			}
		}
	}
	if c := hitCount("/items/present"); c != 1 {
		t.Fatalf("origin asked %d times for a cached key", c)
	}
	if r := a.get(t, "a/b"); r.status != http.StatusOK {
		t.Fatalf("escaped key: %s", r)
	}
	// 404: negative entry.
	for i := 0; i < 10; i++ {
		if r := nodes[i%2].get(t, "absent"); r.status != http.StatusNotFound {
			t.Fatalf("absent: %s", r)
		}
	}
	if c := hitCount("/items/absent"); c != 1 {
		t.Fatalf("origin asked %d times for an absent key within the negative TTL", c)
	}
	// A write replaces the negative entry at once.
	if r := a.put(t, "absent", "written"); r.status != http.StatusNoContent {
		t.Fatalf("put: %s", r)
	}
	for _, n := range nodes {
		if r := n.get(t, "absent"); r.status != http.StatusOK || string(r.body) != "written" {
			t.Fatalf("after a write, via %s: %s", n.Name(), r)
		}
	}
	// After the negative TTL the origin is asked again.
	if r := a.get(t, "gone"); r.status != http.StatusNotFound {
		t.Fatalf("gone: %s", r)
	}
	time.Sleep(350 * time.Millisecond)
	if r := a.get(t, "gone"); r.status != http.StatusNotFound {
		t.Fatalf("gone: %s", r)
	}
	if c := hitCount("/items/gone"); c != 2 {
		t.Fatalf("origin asked %d times for gone, want 2 (before and after the negative TTL)", c)
	}
	// Errors: 502 with a message, nothing cached.
	for i := 0; i < 2; i++ {
		r := a.get(t, "broken")
		if r.status != http.StatusBadGateway {
			t.Fatalf("broken: %s", r)
		}
	}
	if c := hitCount("/items/broken"); c != 2 {
		t.Fatalf("origin asked %d times for a failing key, want 2 (errors are not cached)", c)
	}
}

// staleness measures how long after an acknowledged write some node still
// serves the value it replaced. Writers write increasing numbers to keys
// through random nodes; readers on every node read them continuously. A
// read that began after the ack of write w and returned a smaller number
// is stale; w's staleness is the latest end of such a read minus the ack.
type staleness struct {
	perWrite      []time.Duration // one per write, 0 when never stale
	reads         int64
	staleReads    int64
	byWriterOrOwn int64 // stale reads through the writing node or the owner
}

func (s staleness) quantile(q float64) time.Duration {
	v := slices.Clone(s.perWrite)
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[min(len(v)-1, int(q*float64(len(v))))]
}

func measureStaleness(t testing.TB, nodes []*testNode, keys, writesPerKey, readersPerNode int, pace time.Duration) staleness {
	t.Helper()
	ctx := context.Background()
	type ack struct {
		at    time.Time
		seq   int
		via   string
		owner string
	}
	type read struct {
		start, end time.Time
		seq        int
		via        string
	}
	names := make([]string, keys)
	acks := make([][]ack, keys)
	reads := make([][]read, keys)
	var readMu sync.Mutex
	for k := range names {
		names[k] = fmt.Sprintf("stale-%d", k)
		if err := nodes[0].Set(ctx, names[k], []byte("0"), 0); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	for _, n := range nodes {
		for r := 0; r < readersPerNode; r++ {
			rwg.Add(1)
			go func(n *testNode, r int) {
				defer rwg.Done()
				var local [][]read = make([][]read, keys)
				for i := r; ; i++ {
					select {
					case <-stop:
						readMu.Lock()
						for k := range local {
							reads[k] = append(reads[k], local[k]...)
						}
						readMu.Unlock()
						return
					default:
					}
					k := i % keys
					start := time.Now()
					it, err := n.Get(ctx, names[k])
					end := time.Now()
					if err != nil {
						continue
					}
					seq, _ := strconv.Atoi(string(it.Value))
					local[k] = append(local[k], read{start, end, seq, n.Name()})
					if pace > 0 {
						time.Sleep(pace)
					}
				}
			}(n, r)
		}
	}
	var wwg sync.WaitGroup
	var failures atomic.Int64
	for k := 0; k < keys; k++ {
		wwg.Add(1)
		go func(k int) {
			defer wwg.Done()
			for s := 1; s <= writesPerKey; s++ {
				n := nodes[(k+s)%len(nodes)]
				if err := n.Set(ctx, names[k], []byte(strconv.Itoa(s)), 0); err != nil {
					failures.Add(1)
					continue
				}
				at := time.Now()
				acks[k] = append(acks[k], ack{at, s, n.Name(), n.RingForTest().Owner(names[k])})
				time.Sleep(time.Duration(1+s%3) * time.Millisecond) // let readers fetch the new value
			}
		}(k)
	}
	wwg.Wait()
	close(stop)
	rwg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d writes failed", failures.Load())
	}
	var res staleness
	for k := 0; k < keys; k++ {
		rs := reads[k]
		res.reads += int64(len(rs))
		slices.SortFunc(rs, func(a, b read) int { return a.start.Compare(b.start) })
		for _, a := range acks[k] {
			var worst time.Duration
			// Reads that began after the ack.
			i, _ := slices.BinarySearchFunc(rs, a.at, func(r read, t time.Time) int { return r.start.Compare(t) })
			for _, r := range rs[i:] {
				if r.seq < a.seq {
					res.staleReads++
					if r.via == a.via || r.via == a.owner {
						res.byWriterOrOwn++
						t.Errorf("stale read through %s (the writing node or the owner %s): %d after write %d was acknowledged %s earlier",
							r.via, a.owner, r.seq, a.seq, r.start.Sub(a.at))
					}
					worst = max(worst, r.end.Sub(a.at))
				}
			}
			res.perWrite = append(res.perWrite, worst)
		}
	}
	return res
}

// Acceptance (tiers 2): a write through node A is never served stale by A
// or by the owner, and no node serves the old value longer than the
// measured staleness bound, which stays below the near-cache TTL (p99
// over 1,000 writes with readers on all nodes). Both with writes waiting
// (InvalidationWait, the default) and without.
func TestNearCacheStaleness(t *testing.T) {
	for _, tc := range []struct {
		name string
		wait time.Duration
	}{{"wait", 0}, {"async", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := startCluster(t, 3, false, func(c *node.Config) { c.Tier.InvalidationWait = tc.wait })
			res := measureStaleness(t, nodes, 4, 250, 2, 20*time.Microsecond)
			reportStaleness(t, nodes, res)
			if len(res.perWrite) < 1000 {
				t.Fatalf("only %d writes measured", len(res.perWrite))
			}
			if p99 := res.quantile(0.99); p99 >= node.DefaultNearCacheTTL {
				t.Fatalf("staleness p99 %s, want below the near-cache TTL %s", p99, node.DefaultNearCacheTTL)
			}
		})
	}
}

func reportStaleness(t testing.TB, nodes []*testNode, res staleness) {
	var hits, near, timeouts uint64
	for _, n := range nodes {
		st := n.TierStatsForTest()
		hits += st.Hits[node.TierLocal] + st.Hits[node.TierNear]
		near += st.Hits[node.TierNear]
		timeouts += st.InvalidationWaitTimeouts
	}
	t.Logf("%d writes, %d reads (%d tier hits, %d near), %d stale reads; staleness p50 %s, p99 %s, max %s; %d writes stopped waiting for invalidations",
		len(res.perWrite), res.reads, hits, near, res.staleReads, res.quantile(0.5), res.quantile(0.99), res.quantile(1), timeouts)
	if near == 0 {
		t.Fatal("no read was answered by a near cache: the test measured nothing")
	}
}

// BenchmarkNearCacheStaleness measures the staleness bound while 4 writers
// write through random nodes, with readers on every node: "paced" (2 per
// node, each pausing about 20µs between reads) and "saturated" (2 per node
// reading flat out, which keeps both cores busy and starves the
// invalidation path of CPU). It reports p50, p99 and max staleness in µs
// and the fraction of reads that were stale, with writes waiting for
// invalidations (the default) and without.
//
//	go test -run '^$' -bench BenchmarkNearCacheStaleness -benchtime 1x ./node/
func BenchmarkNearCacheStaleness(b *testing.B) {
	for _, load := range []struct {
		name   string
		pace   time.Duration
		writes int
	}{{"paced", 20 * time.Microsecond, 250}, {"saturated", 0, 100}} {
		for _, tc := range []struct {
			name string
			wait time.Duration
		}{{"wait=5ms", 0}, {"async", -1}} {
			b.Run(load.name+"/"+tc.name, func(b *testing.B) {
				var all staleness
				for i := 0; i < b.N; i++ {
					nodes := startCluster(b, 3, false, func(c *node.Config) { c.Tier.InvalidationWait = tc.wait })
					res := measureStaleness(b, nodes, 4, load.writes, 2, load.pace)
					reportStaleness(b, nodes, res)
					all.perWrite = append(all.perWrite, res.perWrite...)
					all.reads += res.reads
					all.staleReads += res.staleReads
					for _, n := range nodes {
						n.Abort()
					}
				}
				b.ReportMetric(float64(all.quantile(0.5).Microseconds()), "p50-µs")
				b.ReportMetric(float64(all.quantile(0.99).Microseconds()), "p99-µs")
				b.ReportMetric(float64(all.quantile(1).Microseconds()), "max-µs")
				b.ReportMetric(float64(all.staleReads)/float64(max(all.reads, 1)), "stale-read-fraction")
			})
		}
	}
}

// Acceptance (tiers 4): a hot key read through all nodes under load
// reaches its owner a handful of times per near-cache lifetime.
func TestHotKeyNearCache(t *testing.T) {
	const ttl = 250 * time.Millisecond
	nodes := startCluster(t, 3, false, func(c *node.Config) { c.Tier.NearTTL = ttl })
	const key = "hot"
	owner := nodes[0].RingForTest().Owner(key)
	if err := nodes[0].Set(context.Background(), key, []byte("hot value"), 0); err != nil {
		t.Fatal(err)
	}
	const dur = 1500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	var reads, failed atomic.Int64
	for _, n := range nodes {
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(n *testNode) {
				defer wg.Done()
				for ctx.Err() == nil {
					if _, err := n.Get(context.Background(), key); err != nil {
						failed.Add(1)
					}
					reads.Add(1)
				}
			}(n)
		}
	}
	wg.Wait()
	lifetimes := int64(dur/ttl) + 1
	for _, n := range nodes {
		st := n.TierStatsForTest()
		t.Logf("%s: forwards %d, near hits %d, local hits %d over %d lifetimes (%d reads in all)", n.Name(), st.Forwards, st.Hits[node.TierNear], st.Hits[node.TierLocal], lifetimes, reads.Load())
		if n.Name() != owner && uint64(st.Forwards) > uint64(3*lifetimes) {
			t.Errorf("%s reached the owner %d times in %d near-cache lifetimes", n.Name(), st.Forwards, lifetimes)
		}
	}
	if failed.Load() > 0 {
		t.Fatalf("%d reads failed", failed.Load())
	}
}

// Entries never outlive the shard copy: a key with a TTL is answered by
// no tier after it expires, and while it lives every node reports a TTL
// no longer than what is left.
//
// The run means something only if local and near copies answered before
// the key expired. A near answer needs a non-owner to read the key a second
// time while its copy lives, which a slow machine may not fit into a short
// TTL: then the run is repeated on a fresh key with a longer TTL (the
// checks on what was served hold in every run). (Redis shards: with the
// in-process Memory store there are no local copies of owned keys.)
func TestTierExpiry(t *testing.T) {
	nodes := startCluster(t, 3, true)
	for i, ttl := range []time.Duration{400 * time.Millisecond, 1600 * time.Millisecond, 6400 * time.Millisecond} {
		sources := tierExpiryRun(t, nodes, fmt.Sprintf("ttl-key-%d", i), ttl)
		if sources["local"] && sources["near"] {
			return
		}
		t.Logf("ttl %s: sources seen %v, not both local and near answers before expiry (a slow machine); again with a longer TTL", ttl, sources)
	}
	t.Fatal("no run saw local and near answers before expiry")
}

// tierExpiryRun writes key with ttl, reads it through every node until
// after it expired, checks each answer and returns the sources seen.
func tierExpiryRun(t *testing.T, nodes []*testNode, key string, ttl time.Duration) map[string]bool {
	t.Helper()
	if r := nodes[1].put(t, key, "short-lived", "ttl="+ttl.String()); r.status != http.StatusNoContent {
		t.Fatalf("put: %s", r)
	}
	// The owner stamped the expiry before it acknowledged the PUT: the key
	// expires at expires or earlier. Wall-clock readings (Round(0) drops the
	// monotonic one), as the expiry is a wall-clock time.
	expires := time.Now().Round(0).Add(ttl)
	sources := map[string]bool{}
	for {
		for _, n := range nodes {
			// The node reads its clock for the TTL it reports at some moment
			// between before and the answer: at most expires-before is left
			// then (a bound taken after the answer would race a slow GET).
			before := time.Now().Round(0)
			r := n.get(t, key)
			if r.status == http.StatusOK {
				if !before.Before(expires) {
					t.Fatalf("served by %s (%s) %s after it expired", n.Name(), r.header.Get(httpapi.HeaderSource), before.Sub(expires))
				}
				ms, _ := strconv.Atoi(r.header.Get(httpapi.HeaderTTLMs))
				// +1 ms: a TTL under a millisecond is reported as 1 ms.
				if left := expires.Sub(before); time.Duration(ms)*time.Millisecond > left+time.Millisecond {
					t.Fatalf("%s (%s) reports %d ms left, at most %s remain (the GET took %s)",
						n.Name(), r.header.Get(httpapi.HeaderSource), ms, left, time.Since(before))
				}
				sources[r.header.Get(httpapi.HeaderSource)] = true
			}
		}
		if time.Now().After(expires.Add(100 * time.Millisecond)) {
			return sources
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A ring change drops every copy: near copies and local ones (Redis shards,
// which have local copies).
func TestRingChangeDropsCopies(t *testing.T) {
	nodes := startCluster(t, 2, true)
	a, b := nodes[0], nodes[1]
	var keys []string
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("rc%d", i)
		keys = append(keys, k)
		if r := a.put(t, k, "v1"); r.status != http.StatusNoContent {
			t.Fatal(r)
		}
		a.get(t, k)
		b.get(t, k)
	}
	if st := a.TierStatsForTest(); st.Cache.Entries < 200 {
		t.Fatalf("a's tier holds %d entries", st.Cache.Entries)
	}
	c := startNode(t, "n2", []string{a.GossipAddr()}, true)
	nodes = append(nodes, c)
	waitRing(t, nodes, 3)
	waitMigrations(t, nodes, 30*time.Second)
	for _, n := range nodes[:2] {
		for _, k := range keys {
			if _, ok := n.TierGetForTest(k, true); ok {
				t.Fatalf("%s still serves a near copy of %s after the ring changed", n.Name(), k)
			}
			if _, ok := n.TierGetForTest(k, false); ok && n.RingForTest().Owner(k) != n.Name() {
				t.Fatalf("%s holds a local copy of %s it no longer owns", n.Name(), k)
			}
		}
	}
	// Writes to keys that moved are read back everywhere.
	for _, k := range keys {
		if r := c.put(t, k, "v2"); r.status != http.StatusNoContent {
			t.Fatal(r)
		}
	}
	for _, n := range nodes {
		for _, k := range keys {
			if r := n.get(t, k); r.status != http.StatusOK || string(r.body) != "v2" {
				t.Fatalf("%s via %s after the change: %s", k, n.Name(), r)
			}
		}
	}
	waitFor(t, 5*time.Second, "old-epoch entries are purged", func() bool {
		return a.TierStatsForTest().Cache.Entries <= int64(len(keys))
	})
}

// Imports (migration, replication copies) replace what the local tier
// holds: a newer version imported into the owner's shard is served at once
// (Redis shards, which have local copies).
func TestImportInvalidatesTier(t *testing.T) {
	nodes := startCluster(t, 2, true)
	a, b := nodes[0], nodes[1]
	key := keyOwnedBy(a, a.Name(), "imp")
	if r := a.put(t, key, "old"); r.status != http.StatusNoContent {
		t.Fatal(r)
	}
	if r := a.get(t, key); r.header.Get(httpapi.HeaderSource) != string(node.SourceLocal) {
		t.Fatalf("second read not from the local tier: %s %s", r, r.header.Get(httpapi.HeaderSource))
	}
	e, _, _ := a.Store().Get(context.Background(), key)
	e.Value, e.Version = []byte("imported"), e.Version+1000
	res, err := b.PeerTransportForTest().Import(context.Background(), a.Name(), []store.Entry{e})
	if err != nil || !res[0].IsAcked() {
		t.Fatalf("import: %v %v", res, err)
	}
	if r := a.get(t, key); string(r.body) != "imported" {
		t.Fatalf("after an import the owner serves %s", r)
	}
}

func TestInvalidateEndpoint(t *testing.T) {
	nodes := startCluster(t, 2, false)
	a, b := nodes[0], nodes[1]
	key := keyOwnedBy(a, b.Name(), "inv")
	if r := a.put(t, key, "v"); r.status != http.StatusNoContent {
		t.Fatal(r)
	}
	a.get(t, key)
	if r := a.get(t, key); r.header.Get(httpapi.HeaderSource) != string(node.SourceNear) {
		t.Fatalf("not a near hit: %s", r.header.Get(httpapi.HeaderSource))
	}
	ctx := context.Background()
	if err := peerAs(t, "stranger", peer.Auth{}).Invalidate(ctx, a.PeerAdvertisedForTest(), []string{key}); !errors.Is(err, peer.ErrRefused) {
		t.Fatalf("non-member: %v", err)
	}
	if r := a.get(t, key); r.header.Get(httpapi.HeaderSource) != string(node.SourceNear) {
		t.Fatalf("a stranger's invalidation dropped the copy: source %s", r.header.Get(httpapi.HeaderSource))
	}
	if err := peerAs(t, b.Name(), peer.Auth{}).Invalidate(ctx, a.PeerAdvertisedForTest(), []string{key}); err != nil {
		t.Fatalf("invalidate: %v", err)
	}
	if r := a.get(t, key); r.header.Get(httpapi.HeaderSource) != string(node.SourcePeer) {
		t.Fatalf("after an invalidation: source %s", r.header.Get(httpapi.HeaderSource))
	}
	// Library-mode config errors.
	for _, c := range []node.Config{{Name: "x", Tier: nodeconfig.Tier{Policy: "arc"}}, {Name: "x", Loader: nodeconfig.Loader{TTLJitter: 1.5}}} {
		if _, err := node.New(c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

// With the in-process Memory store as the shard, the local tier keeps no
// copies of owned keys (they would double the memory per key): owned reads
// come from the shard, and the tier holds only near copies of other
// owners' keys.
func TestInProcessShardNoOwnedCopies(t *testing.T) {
	nodes := startCluster(t, 2, false)
	a, b := nodes[0], nodes[1]
	mine := keyOwnedBy(a, a.Name(), "own")
	theirs := keyOwnedBy(a, b.Name(), "far")
	for _, k := range []string{mine, theirs} {
		if r := a.put(t, k, "v"); r.status != http.StatusNoContent {
			t.Fatal(r)
		}
	}
	for i := 0; i < 3; i++ {
		if r := a.get(t, mine); r.status != http.StatusOK || r.header.Get(httpapi.HeaderSource) != string(node.SourceShard) {
			t.Fatalf("read %d of an owned key: %s from %s, want 200 from the shard", i, r, r.header.Get(httpapi.HeaderSource))
		}
	}
	if _, ok := a.TierCacheForTest().Get(mine); ok {
		t.Fatal("the local tier holds a copy of an owned key")
	}
	a.get(t, theirs)
	if r := a.get(t, theirs); r.header.Get(httpapi.HeaderSource) != string(node.SourceNear) {
		t.Fatalf("second read of another owner's key: %s from %s, want a near copy", r, r.header.Get(httpapi.HeaderSource))
	}
	if st := a.TierStatsForTest(); st.Cache.Entries != 1 {
		t.Fatalf("the local tier holds %d entries, want only the near copy", st.Cache.Entries)
	}
}

// TestExpiryAlreadyPastDeletes: a write whose expiry has passed by the
// time the owner applies it (an instant asked for, or a lifetime that ran
// out on its way) leaves the key absent, as in Redis, on either shard,
// through the owner and forwarded; a shard refuses such a record, and the
// owner used to keep the record before it.
func TestExpiryAlreadyPastDeletes(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		nodes := startCluster(t, 2, withRedis)
		ctx := context.Background()
		past := time.Now().Add(-time.Second)
		for i, m := range []node.Mutation{
			{Value: []byte("new"), ExpireAt: past},
			{Expire: true, ExpireAt: past},
			{Expire: true, ExpireAt: past, ExpireIf: node.ExpireXX},
			{Op: node.OpGetSet, Value: []byte("new"), ExpireAt: past},
		} {
			for j, via := range nodes {
				key := fmt.Sprintf("past-%v-%d-%d", withRedis, i, j)
				if err := via.Set(ctx, key, []byte("old"), time.Hour); err != nil {
					t.Fatal(err)
				}
				res, err := via.Write(ctx, key, m)
				if err != nil || !res.Applied || (m.NeedsCurrent() && !res.Existed) { // a plain SET reads nothing first
					t.Fatalf("redis %v, %+v: %+v, %v; want applied to a live key", withRedis, m, res, err)
				}
				if m.Op == node.OpGetSet && string(res.Value) != "old" {
					t.Errorf("GETSET answered %q, want the old value", res.Value)
				}
				for _, n := range nodes {
					if it, err := n.Get(ctx, key); !errors.Is(err, node.ErrNotFound) {
						t.Errorf("redis %v, %+v via %s: %s reads %q, %v; want absent", withRedis, m, via.Name(), n.Name(), it.Value, err)
					}
				}
			}
		}
		// The same for plain writes batched together (a pipeline).
		var ops []node.Op
		for i := range 8 {
			key := fmt.Sprintf("past-many-%v-%d", withRedis, i)
			if err := nodes[0].Set(ctx, key, []byte("old"), time.Hour); err != nil {
				t.Fatal(err)
			}
			ops = append(ops, node.Op{Key: key, Write: true, Mutation: node.Mutation{Value: []byte("new"), ExpireAt: past}})
		}
		for i, r := range nodes[1].Many(ctx, ops) {
			if r.Err != nil {
				t.Fatalf("batch: %v", r.Err)
			}
			if it, err := nodes[0].Get(ctx, ops[i].Key); !errors.Is(err, node.ErrNotFound) {
				t.Errorf("redis %v, batched: %s reads %q, %v; want absent", withRedis, ops[i].Key, it.Value, err)
			}
		}
	}
}
