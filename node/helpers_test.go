package node_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/peercache/peercache/internal/testredis"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/store"
)

// testNode is an in-process node with, optionally, its own redis-server.
type testNode struct {
	*node.Node
	t     testing.TB
	redis *testredis.Server
	base  string // http://host:port
}

type nodeOpt func(*node.Config)

func testLogger(name string) *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("PEERCACHE_TEST_LOG") == "debug" {
		lvl = slog.LevelDebug
	} else if os.Getenv("PEERCACHE_TEST_LOG") == "info" {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("test_node", name)
}

// startNode starts a node named name joining through seeds. withRedis gives
// it a real redis-server of its own; otherwise it uses the Memory store.
func startNode(t testing.TB, name string, seeds []string, withRedis bool, opts ...nodeOpt) *testNode {
	t.Helper()
	cfg := node.Config{
		Name:          name,
		HTTPAddr:      "127.0.0.1:0",
		GossipAddr:    "127.0.0.1:0",
		AdvertiseAddr: "127.0.0.1",
		Seeds:         seeds,
		Timing:        membership.TimingFast,
		Logger:        testLogger(name),
		SweepInterval: -1,
	}
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
		o(&cfg)
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatalf("node %s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { n.Abort() })
	tn.Node = n
	tn.base = "http://" + n.HTTPAddr()
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
	waitFor(t, 20*time.Second, fmt.Sprintf("all nodes see a ring of %d", want), func() bool {
		var sum string
		for i, n := range nodes {
			ci := n.Cluster()
			if len(ci.Ring.Members) != want {
				return false
			}
			if i == 0 {
				sum = ci.Ring.Checksum
			} else if ci.Ring.Checksum != sum {
				return false
			}
		}
		return true
	})
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var httpc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

func do(t testing.TB, method, u string, body []byte, hdr ...string) resp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatalf("request %s %s: %v", method, u, err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := httpc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func (n *testNode) keyURL(key string) string { return n.base + "/v1/keys/" + url.PathEscape(key) }

func (n *testNode) put(t testing.TB, key, value string, query ...string) resp {
	u := n.keyURL(key)
	if len(query) > 0 {
		u += "?" + strings.Join(query, "&")
	}
	return do(t, http.MethodPut, u, []byte(value))
}

func (n *testNode) get(t testing.TB, key string) resp {
	return do(t, http.MethodGet, n.keyURL(key), nil)
}

// tryGet is get for goroutines other than the test's (which must not call
// t.Fatal): a request that got no answer is returned as an error.
func (n *testNode) tryGet(key string) (resp, error) {
	res, err := httpc.Get(n.keyURL(key))
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}, err
}

func (n *testNode) del(t testing.TB, key string) resp {
	return do(t, http.MethodDelete, n.keyURL(key), nil)
}

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
