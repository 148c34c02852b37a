package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/nodeconfig"
	"github.com/peercache/peercache/store"
)

func TestMemorySplit(t *testing.T) {
	redisShard := store.NewMemory(store.MemoryOptions{}) // stands for any caller-provided shard
	t.Cleanup(func() { redisShard.Close() })
	for _, c := range []struct {
		name              string
		cfg               node.Config
		wantStore, wantLT int64
	}{
		{"defaults", node.Config{}, 224 << 20, 32 << 20},
		{"budget", node.Config{MemoryMaxBytes: 1 << 30}, 896 << 20, 128 << 20},
		{"explicit tier", node.Config{MemoryMaxBytes: 1 << 30, Tier: nodeconfig.Tier{Bytes: 100 << 20}}, 924 << 20, 100 << 20},
		{"no tier", node.Config{Tier: nodeconfig.Tier{Bytes: -1}}, 256 << 20, 0},
		{"own shard", node.Config{Store: redisShard}, 0, 64 << 20},
		{"own shard, budget", node.Config{Store: redisShard, MemoryMaxBytes: 1 << 30}, 0, 256 << 20},
	} {
		st, lt := c.cfg.MemorySplit()
		if st != c.wantStore || lt != c.wantLT {
			t.Errorf("%s: MemorySplit = %d, %d; want %d, %d", c.name, st, lt, c.wantStore, c.wantLT)
		}
		// setDefaults fills LocalTierBytes with the same share.
		cfg := c.cfg
		cfg.SetDefaults()
		if st2, lt2 := cfg.MemorySplit(); st2 != st || lt2 != lt {
			t.Errorf("%s: after setDefaults MemorySplit = %d, %d; want %d, %d", c.name, st2, lt2, st, lt)
		}
	}
	bad := node.Config{Name: "x", MemoryMaxBytes: 1 << 20, Tier: nodeconfig.Tier{Bytes: 1 << 20}}
	bad.SetDefaults()
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "local-tier-bytes") {
		t.Fatalf("a local tier as large as the whole budget: validate = %v", err)
	}
}

// Keys the in-memory shard evicts to stay within the memory budget are
// counted: in /v1/status, in peercache_evictions_total and by the store.
func TestEvictionsCounted(t *testing.T) {
	n := startNode(t, "n0", nil, false, func(c *node.Config) { c.MemoryMaxBytes = 64 << 10 })
	st := n.Status(context.Background())
	if st.Evictions != (node.Evictions{}) || st.MemoryMaxBytes != 64<<10 {
		t.Fatalf("status before any write: evictions %+v, budget %d", st.Evictions, st.MemoryMaxBytes)
	}
	if v := scrape(t, n)[`peercache_evictions_total{tier="store"}`]; v != 0 {
		t.Fatalf(`peercache_evictions_total{tier="store"} = %v before any write`, v)
	}
	const keys = 800
	value := strings.Repeat("v", 100)
	for i := 0; i < keys; i++ {
		if r := n.put(t, fmt.Sprintf("key-%d", i), value); r.status != http.StatusNoContent {
			t.Fatal(r)
		}
	}
	r := do(t, http.MethodGet, n.base+"/v1/status", nil)
	var got node.NodeStatus
	if err := json.Unmarshal(r.body, &got); err != nil || r.status != http.StatusOK {
		t.Fatalf("/v1/status: %s (%v)", r, err)
	}
	if got.Evictions.Store == 0 || int64(got.Evictions.Store)+got.Keys != keys {
		t.Fatalf("/v1/status: evictions %+v with %d keys held, want store evictions adding up to the %d written", got.Evictions, got.Keys, keys)
	}
	var raw struct {
		Evictions map[string]uint64 `json:"evictions"`
	}
	if err := json.Unmarshal(r.body, &raw); err != nil || raw.Evictions["store"] != got.Evictions.Store {
		t.Fatalf("/v1/status JSON lacks evictions.store: %s", r.body)
	}
	m := scrape(t, n)
	if v := m[`peercache_evictions_total{tier="store"}`]; v < float64(got.Evictions.Store) {
		t.Fatalf(`peercache_evictions_total{tier="store"} = %v, status says %d`, v, got.Evictions.Store)
	}
	if _, ok := m[`peercache_evictions_total{tier="local_tier"}`]; !ok {
		t.Fatal(`/metrics lacks peercache_evictions_total{tier="local_tier"}`)
	}
	// An evicted key is gone (a miss), not an error.
	misses := 0
	for i := 0; i < keys; i++ {
		switch r := n.get(t, fmt.Sprintf("key-%d", i)); r.status {
		case http.StatusNotFound:
			misses++
		case http.StatusOK:
		default:
			t.Fatal(r)
		}
	}
	if int64(misses) != int64(got.Evictions.Store) {
		t.Fatalf("%d misses, %d evictions", misses, got.Evictions.Store)
	}
}
