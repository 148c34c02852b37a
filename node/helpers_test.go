package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/internal/nodetest"
	"github.com/peercache/peercache/internal/testredis"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/store"
)

// testNode is an in-process node with its HTTP door and, optionally, its
// own redis-server.
type testNode struct {
	*node.Node
	t     testing.TB
	web   *httpapi.Server
	redis *testredis.Server
	base  string // http://host:port
}

type nodeOpt func(*node.Config)

func testLogger(name string) *slog.Logger { return nodetest.Logger(name) }

// startNode starts a node named name joining through seeds. withRedis gives
// it a real redis-server of its own; otherwise it uses the Memory store.
func startNode(t testing.TB, name string, seeds []string, withRedis bool, opts ...nodeOpt) *testNode {
	t.Helper()
	cfg := nodetest.Base(name, seeds)
	tn := &testNode{t: t}
	if withRedis {
		tn.redis = testredis.Start(t)
		rs, err := store.NewRedis(store.RedisOptions{Addr: tn.redis.Addr()})
		if err != nil {
			t.Fatalf("redis store: %v", err)
		}
		t.Cleanup(func() { rs.Close() })
		cfg.Store = rs
	}
	for _, o := range opts {
		o(&cfg.Config)
	}
	tn.Node, tn.web = nodetest.Start(t, cfg)
	tn.base = "http://" + tn.web.Addr()
	return tn
}

// startCluster starts size nodes named n0..n{size-1}, all seeded with n0.
func startCluster(t testing.TB, size int, withRedis bool, opts ...nodeOpt) []*testNode {
	t.Helper()
	nodes := []*testNode{startNode(t, "n0", nil, withRedis, opts...)}
	seed := nodes[0].GossipAddr()
	for i := 1; i < size; i++ {
		nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i), []string{seed}, withRedis, opts...))
	}
	waitRing(t, nodes, size)
	return nodes
}

// waitRing waits until every node's ring has exactly want members and all
// nodes agree on it.
func waitRing(t testing.TB, nodes []*testNode, want int) {
	t.Helper()
	ns := make([]*node.Node, len(nodes))
	for i, n := range nodes {
		ns[i] = n.Node
	}
	nodetest.WaitRing(t, ns, want)
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return nodetest.WaitFor(t, timeout, what, cond)
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

func do(t testing.TB, method, u string, body []byte, hdr ...string) resp {
	t.Helper()
	return wrap(nodetest.Do(t, method, u, body, hdr...))
}

// wrap is nodetest's answer in this package's resp.
func wrap(r nodetest.Resp) resp { return resp{r.Status, r.Header, r.Body} }

func (n *testNode) keyURL(key string) string { return nodetest.KeyURL(n.base, key) }

func (n *testNode) put(t testing.TB, key, value string, query ...string) resp {
	return wrap(nodetest.Put(t, n.base, key, value, query...))
}

func (n *testNode) get(t testing.TB, key string) resp { return wrap(nodetest.Get(t, n.base, key)) }

// tryGet is get for goroutines other than the test's (which must not call
// t.Fatal): a request that got no answer is returned as an error.
func (n *testNode) tryGet(key string) (resp, error) {
	r, err := nodetest.TryGet(n.keyURL(key))
	return wrap(r), err
}

func (n *testNode) del(t testing.TB, key string) resp { return wrap(nodetest.Del(t, n.base, key)) }

// shardSnapshot returns every live record of a node's shard.
func shardSnapshot(t testing.TB, st store.Store) map[string]store.Entry {
	t.Helper()
	ctx := context.Background()
	out := map[string]store.Entry{}
	var cursor uint64
	for {
		keys, next, err := st.Scan(ctx, cursor, 1000)
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		if len(keys) > 0 {
			es, found, err := st.GetMany(ctx, keys)
			if err != nil {
				t.Fatalf("getmany: %v", err)
			}
			for i, e := range es {
				if found[i] {
					out[e.Key] = e
				}
			}
		}
		if next == 0 {
			return out
		}
		cursor = next
	}
}

// startNodeRedis starts a bare redis-server and returns a client for it.
func startNodeRedis(t testing.TB) *goredis.Client {
	return testredis.Start(t).Client()
}

// peerAs returns a peer protocol client that calls itself name (a real
// member's name, or a stranger's).
func peerAs(t testing.TB, name string, auth peer.Auth) *peer.Client {
	t.Helper()
	c, err := peer.NewClient(peer.ClientConfig{Name: name, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// concurrently runs op(i) for every i in [0, count) on conc goroutines,
// each taking the next i, and returns how long they took; a goroutine
// stops early when op returns false.
func concurrently(conc, count int, op func(i int) bool) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= count || !op(i) {
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
