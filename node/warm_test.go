package node_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/internal/zipf"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/store"
)

// warmConfig is the node config of the warm-up runs: no near cache (reads
// of other owners' keys go to the owner, not to a copy), and the warm-up on
// or off.
func warmConfig(warm bool) func(*node.Config) {
	return func(c *node.Config) {
		c.Tier.NearTTL = -1
		if !warm {
			c.Tier.WarmKeys = -1
		}
	}
}

// Acceptance (warm-up 1): two nodes with Redis shards serve reads that fill
// their local tiers; a third joins. The previous owners send it their hot
// keys of its share once they have moved them, and its first read of such
// a key is a local-tier hit; without warm-up it reads its shard.
func TestWarmupOnJoin(t *testing.T) {
	for _, warm := range []bool{true, false} {
		t.Run(fmt.Sprintf("warm=%v", warm), func(t *testing.T) {
			opt := warmConfig(warm)
			nodes := startCluster(t, 2, true, opt)
			const keys = 1000
			for i := 0; i < keys; i++ {
				if r := nodes[i%2].put(t, fmt.Sprintf("h%d", i), "v"); r.status != http.StatusNoContent {
					t.Fatal(r)
				}
			}
			for _, n := range nodes { // reads fill the owners' tiers
				for i := 0; i < keys; i++ {
					n.get(t, fmt.Sprintf("h%d", i))
				}
			}
			j := startNode(t, "n2", []string{nodes[0].GossipAddr()}, true, opt)
			nodes = append(nodes, j)
			waitRing(t, nodes, 3)
			waitMigrations(t, nodes, 30*time.Second)
			// Every previous owner sends its list once its own migration is
			// done, each on its own schedule: the first entries in the
			// joiner's tier say only that one warm-up arrived. Wait until
			// every node has finished the warm-up of the ring (the joiner
			// has answered every list, so its tier is filled).
			r := j.RingForTest()
			waitFor(t, 30*time.Second, "every node finished the warm-up of the new ring", func() bool {
				for _, n := range nodes {
					if !n.RingForTest().Equal(r) || !n.WarmedUpForTest(r) {
						return false
					}
				}
				return true
			})
			var mine, local int
			for i := 0; i < keys; i++ {
				k := fmt.Sprintf("h%d", i)
				if j.RingForTest().Owner(k) != j.Name() {
					continue
				}
				mine++
				if r := j.get(t, k); r.header.Get(httpapi.HeaderSource) == string(node.SourceLocal) {
					local++
				}
			}
			t.Logf("warm=%v: the joiner owns %d of %d keys; %d of its first reads were local-tier hits", warm, mine, keys, local)
			switch {
			case mine < keys/5:
				t.Fatalf("the joiner owns only %d keys", mine)
			case warm && local < mine*9/10:
				t.Errorf("with warm-up only %d of %d first reads hit the local tier", local, mine)
			case !warm && local != 0:
				t.Errorf("without warm-up %d first reads hit the local tier", local)
			}
		})
	}
}

// POST /v1/warm reads keys through their owners, which load the missing
// ones from the origin.
func TestWarmEndpoint(t *testing.T) {
	origin := func(ctx context.Context, key string) ([]byte, time.Duration, error) {
		if strings.HasPrefix(key, "none") {
			return nil, 0, node.ErrNotFound
		}
		return []byte("from origin " + key), time.Minute, nil
	}
	nodes := startCluster(t, 2, false, func(c *node.Config) { c.Loader.Getter = origin })
	a := nodes[0]
	body := "w1\nw2\nw3\nnone1\nw1\n"
	r := do(t, http.MethodPost, a.base+"/v1/warm", []byte(body))
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"loaded": 3`) || !strings.Contains(string(r.body), `"missing": 1`) || !strings.Contains(string(r.body), `"keys": 4`) {
		t.Fatalf("first warm: %s", r)
	}
	r = do(t, http.MethodPost, a.base+"/v1/warm", []byte(body))
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"present": 3`) {
		t.Fatalf("second warm: %s", r)
	}
	if r := nodes[1].get(t, "w2"); r.status != http.StatusOK || string(r.body) != "from origin w2" {
		t.Fatalf("read after warm: %s", r)
	}
	if r := do(t, http.MethodGet, a.base+"/v1/warm", nil); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/warm: %s", r)
	}
}

// BenchmarkJoinWarmup: three nodes with Redis shards serve a zipf(0.99)
// read load over 100k keys from 8 readers through all of them (near cache
// off, so that hits are the owners' local tiers); a fourth node joins. The
// joiner's local-tier hit ratio in each of its first 10 seconds, with and
// without warm-up, against the steady-state ratio of the nodes before the
// join (goal: at least 0.8 of it within 10 s with warm-up).
//
//	go test -run '^$' -bench BenchmarkJoinWarmup -benchtime 1x ./node/
func BenchmarkJoinWarmup(b *testing.B) {
	for _, warm := range []bool{true, false} {
		b.Run(fmt.Sprintf("warm=%v", warm), func(b *testing.B) {
			for range b.N {
				benchWarmup(b, warm)
			}
		})
	}
}

func benchWarmup(b *testing.B, warm bool) {
	opt := warmConfig(warm)
	nodes := startCluster(b, 3, true, opt)
	const keys = 100_000
	entries := make([]store.Entry, 0, 10_000)
	for k := 0; k < keys; k++ {
		entries = append(entries, store.Entry{Key: fmt.Sprintf("z:%06d", k), Value: make([]byte, 100)})
		if len(entries) == cap(entries) {
			bulkLoad(b, nodes, entries)
			entries = entries[:0]
		}
	}
	var mu sync.Mutex
	targets := append([]*testNode(nil), nodes...)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			z := zipf.New(keys, 0.99, uint64(g+1))
			for i := 0; ctx.Err() == nil; i++ {
				mu.Lock()
				n := targets[i%len(targets)]
				mu.Unlock()
				n.Get(ctx, fmt.Sprintf("z:%06d", z.Next()))
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	ratio := func(ns ...*testNode) (h, m uint64) {
		for _, n := range ns {
			s := n.TierStatsForTest()
			h += s.Hits[node.TierLocal]
			m += s.Misses[node.TierLocal]
		}
		return
	}
	time.Sleep(8 * time.Second) // fill the tiers
	h0, m0 := ratio(nodes...)
	time.Sleep(2 * time.Second)
	h1, m1 := ratio(nodes...)
	steady := float64(h1-h0) / float64(h1-h0+m1-m0)
	b.ResetTimer()
	j := startNode(b, "n3", []string{nodes[0].GossipAddr()}, true, opt)
	mu.Lock()
	targets = append(targets, j)
	mu.Unlock()
	var per []string
	var sum float64
	ph, pm := ratio(j)
	for s := 1; s <= 10; s++ {
		time.Sleep(time.Second)
		h, m := ratio(j)
		r := 0.0
		if h+m > ph+pm {
			r = float64(h-ph) / float64(h-ph+m-pm)
		}
		sum += r
		per = append(per, fmt.Sprintf("%.2f", r))
		ph, pm = h, m
	}
	b.StopTimer()
	mean := sum / 10
	b.ReportMetric(steady, "steady-hit-ratio")
	b.ReportMetric(mean, "joiner-hit-ratio-10s")
	b.ReportMetric(mean/steady, "of-steady")
	b.Logf("warm=%v: steady-state local-tier hit ratio %.3f; joiner's per second over its first 10 s: %s (mean %.3f = %.2f of steady)",
		warm, steady, strings.Join(per, " "), mean, mean/steady)
}
