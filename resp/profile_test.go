package resp

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/peercache/peercache/bench/load"
	"github.com/peercache/peercache/internal/testredis"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/store"
)

// TestProfileRedisBenchmark runs redis-benchmark against an in-process node
// for profiling the server (go test -run TestProfileRedisBenchmark
// -cpuprofile cpu.out ./resp/ with PEERCACHE_PROFILE_ARGS set, e.g.
// "-t get -n 200000 -c 50 -r 1000"; PEERCACHE_PROFILE_REDIS=1 gives the
// node a redis-server shard). Skipped unless that variable is set.
func TestProfileRedisBenchmark(t *testing.T) {
	args := os.Getenv("PEERCACHE_PROFILE_ARGS")
	if args == "" {
		t.Skip("set PEERCACHE_PROFILE_ARGS to redis-benchmark arguments to run")
	}
	rb := needTool(t, "redis-benchmark")
	var opts []func(*node.Config)
	if os.Getenv("PEERCACHE_PROFILE_REDIS") != "" {
		// The node's shard in a redis-server of its own, as cachenode
		// --redis-addr makes it (coalesced calls).
		srv := testredis.Start(t)
		st, err := store.NewRedis(store.RedisOptions{Addr: srv.Addr(), Coalesce: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		opts = append(opts, func(c *node.Config) { c.Store = st })
	}
	n := startNode(t, "prof", nil, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rb, append([]string{"-h", "127.0.0.1", "-p", n.port, "-q"}, strings.Fields(args)...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestProfileForwarding loads the first node of a 2-node cluster (no near
// cache) over HTTP with keys the second owns, for a CPU profile of the
// forwarding path (PEERCACHE_PROFILE_FORWARD=1; skipped otherwise).
func TestProfileForwarding(t *testing.T) {
	if os.Getenv("PEERCACHE_PROFILE_FORWARD") == "" {
		t.Skip("set PEERCACHE_PROFILE_FORWARD=1 to run")
	}
	noNear := func(c *node.Config) { c.Tier.NearTTL = -1 }
	a := startNode(t, "a", nil, noNear)
	b := startNode(t, "b", []string{a.GossipAddr()}, noNear)
	for len(a.Cluster().Ring.Members) != 2 || len(b.Cluster().Ring.Members) != 2 {
		time.Sleep(20 * time.Millisecond)
	}
	res, err := load.Run(context.Background(), load.Config{Target: load.TargetHTTP, Addrs: []string{a.web.Addr()},
		Ops: 100000, Concurrency: 50, Keys: 1000, ReadRatio: 1, Preload: true, RemoteOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%.0f ops/s, p99 %.0f µs, errors %d", res.OpsPerSec, res.Latency.P99, res.Errors)
}
