package node_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/peercache/peercache/node"
)

// scrape fetches /metrics and returns every sample, keyed by its series as
// printed (name{labels}).
func scrape(t *testing.T, n *testNode) map[string]float64 {
	t.Helper()
	r := do(t, http.MethodGet, n.base+"/metrics", nil)
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: %s", r)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// The operator series exist and move with traffic: members by state,
// memberlist health, store latency and errors, shard size, migration and
// read-only gauges.
func TestOperatorMetrics(t *testing.T) {
	// No local tier: the reads below are to reach the store.
	nodes := startCluster(t, 3, false, func(c *node.Config) { c.Tier.Bytes = -1 })
	n := nodes[0]
	before := scrape(t, n)
	for _, s := range []string{
		`peercache_members{state="active"}`, `peercache_members{state="joining"}`, `peercache_members{state="leaving"}`,
		`peercache_memberlist_health_score`, `peercache_migration_active`, `peercache_migration_in_flight_keys`,
		`peercache_migration_run_keys{stage="moved"}`, `peercache_migration_run_bytes`, `peercache_migration_bytes_total`,
		`peercache_shard_keys`, `peercache_shard_bytes`, `peercache_read_only{scope="cluster"}`, `peercache_read_only{scope="node"}`,
		`peercache_store_errors_total{op="put"}`, `peercache_store_operation_duration_seconds_count{op="put"}`,
	} {
		if _, ok := before[s]; !ok {
			t.Errorf("/metrics lacks %s", s)
		}
	}
	if v := before[`peercache_members{state="active"}`]; v != 3 {
		t.Errorf("active members %v, want 3", v)
	}

	// Writes to keys this node owns touch its store.
	owned := 0
	for i := 0; owned < 50; i++ {
		k := fmt.Sprintf("m%d", i)
		if n.RingForTest().Owner(k) != n.Name() {
			continue
		}
		owned++
		if r := n.put(t, k, "value"); r.status != http.StatusNoContent {
			t.Fatalf("put: %s", r)
		}
		if r := n.get(t, k); r.status != http.StatusOK {
			t.Fatalf("get: %s", r)
		}
	}
	if err := n.SetMode(node.ModeReadOnly, node.ScopeNode); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, n)
	for _, s := range []string{`peercache_store_operation_duration_seconds_count{op="put"}`, `peercache_store_operation_duration_seconds_count{op="get"}`} {
		if d := after[s] - before[s]; d < 50 {
			t.Errorf("%s grew by %v, want >= 50", s, d)
		}
	}
	if d := after[`peercache_shard_keys`] - before[`peercache_shard_keys`]; d < 50 {
		t.Errorf("peercache_shard_keys grew by %v, want >= 50", d)
	}
	if after[`peercache_read_only{scope="node"}`] != 1 || after[`peercache_read_only{scope="cluster"}`] != 0 {
		t.Errorf("read_only gauges: node %v cluster %v", after[`peercache_read_only{scope="node"}`], after[`peercache_read_only{scope="cluster"}`])
	}
	if after[`peercache_store_errors_total{op="put"}`] != 0 {
		t.Errorf("store errors: %v", after[`peercache_store_errors_total{op="put"}`])
	}
}
