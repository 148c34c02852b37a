package nodemetrics_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/internal/localtier"
	"github.com/peercache/peercache/internal/nodemetrics"
	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/tier"
)

// fixed returns Sources that report the given snapshots and fixed gauges.
func fixed(ops nodemetrics.Ops, tr nodemetrics.Tier) nodemetrics.Sources {
	return nodemetrics.Sources{
		Ops:             func() nodemetrics.Ops { return ops },
		Tier:            func() nodemetrics.Tier { return tr },
		RepairPending:   func() int { return 4 },
		UnderReplicated: func() int64 { return 5 },
		RingMembers:     func() int { return 3 },
		RingVersion:     func() uint64 { return 9 },
		Ready:           func() bool { return true },
	}
}

// gather returns every sample in reg, keyed by name{label="value",...}
// (labels in the registry's order), and every family's type and help.
func gather(t *testing.T, reg *prometheus.Registry) (samples map[string]float64, types, help map[string]string) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	samples, types, help = map[string]float64{}, map[string]string{}, map[string]string{}
	for _, mf := range mfs {
		types[mf.GetName()], help[mf.GetName()] = mf.GetType().String(), mf.GetHelp()
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
			}
			key := mf.GetName()
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			var v float64
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			default:
				continue // Go and process summaries and histograms
			}
			samples[key] = v
		}
	}
	return samples, types, help
}

func TestSeries(t *testing.T) {
	var ts localtier.Stats
	ts.Hits[localtier.Local], ts.Hits[localtier.Near] = 10, 11
	ts.Misses[localtier.Near] = 12
	ts.Collapsed[localtier.Local], ts.Collapsed[localtier.Near] = 13, 14
	ts.Cache = tier.Stats{Entries: 2, Bytes: 300, MaxBytes: 1000, Evictions: 15}
	ops := nodemetrics.Ops{
		MembersByState: map[string]int{"joining": 0, "active": 2, "leaving": 1, "unknown": 0},
		Health:         1,
		Migration:      migrate.Status{Active: true, Scanned: 100, Planned: 40, Moved: 20, Stale: 5, Dropped: 3, Failed: 2, Bytes: 4096, KeysPerSec: 12.5},
		ShardKeys:      77, ShardBytes: 8192, ShardOK: true,
		ClusterReadOnly: true,
	}
	tr := nodemetrics.Tier{Stats: ts, InvalidationsOut: 21, InvalidationBatches: 22, NearRefused: 23,
		Loads: [3]uint64{31, 32, 33}, StoreEvictions: 41, LocalTierEvictions: 42}

	reg := prometheus.NewRegistry()
	c := nodemetrics.New(reg, fixed(ops, tr))
	c.FwdGet.Inc()
	c.FwdPut.Add(2)
	c.FwdDelete.Add(3)
	c.RingChanges.Inc()
	c.Handoff.WithLabelValues("hit").Inc()
	c.ObserveMigration(migrate.Result{Moved: 6, Stale: 1, Bytes: 512})

	got, types, help := gather(t, reg)
	for series, want := range map[string]float64{
		`peercache_forwarded_total{op="get"}`:            1,
		`peercache_forwarded_total{op="put"}`:            2,
		`peercache_forwarded_total{op="delete"}`:         3,
		`peercache_ring_changes_total`:                   1,
		`peercache_misdirected_total`:                    0,
		`peercache_handoff_reads_total{result="hit"}`:    1,
		`peercache_migration_keys_total{result="moved"}`: 6,
		`peercache_migration_keys_total{result="stale"}`: 1,
		`peercache_migration_bytes_total`:                512,
		`peercache_repair_pending_keys`:                  4,
		`peercache_under_replicated_keys`:                5,
		`peercache_ring_members`:                         3,
		`peercache_ring_version`:                         9,
		`peercache_ready`:                                1,

		`peercache_members{state="active"}`:            2,
		`peercache_members{state="leaving"}`:           1,
		`peercache_members{state="joining"}`:           0,
		`peercache_memberlist_health_score`:            1,
		`peercache_migration_active`:                   1,
		`peercache_migration_in_flight_keys`:           12, // 40 - 20 - 5 - 3
		`peercache_migration_run_keys{stage="failed"}`: 2,
		`peercache_migration_run_bytes`:                4096,
		`peercache_migration_keys_per_second`:          12.5,
		`peercache_shard_keys`:                         77,
		`peercache_shard_bytes`:                        8192,
		`peercache_read_only{scope="node"}`:            0,
		`peercache_read_only{scope="cluster"}`:         1,

		`peercache_local_tier_hits_total{tier="local"}`:          10,
		`peercache_local_tier_hits_total{tier="near"}`:           11,
		`peercache_local_tier_misses_total{tier="near"}`:         12,
		`peercache_singleflight_collapsed_total{path="owner"}`:   13,
		`peercache_singleflight_collapsed_total{path="forward"}`: 14,
		`peercache_local_tier_evictions_total`:                   15,
		`peercache_local_tier_bytes`:                             300,
		`peercache_local_tier_max_bytes`:                         1000,
		`peercache_invalidations_sent_total`:                     21,
		`peercache_invalidation_batches_total`:                   22,
		`peercache_near_cache_refused_total`:                     23,
		`peercache_origin_loads_total{result="not_found"}`:       32,
		`peercache_evictions_total{tier="store"}`:                41,
		`peercache_evictions_total{tier="local_tier"}`:           42,
	} {
		if v, ok := got[series]; !ok {
			t.Errorf("%s missing", series)
		} else if v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	for name, want := range map[string]string{
		"peercache_forwarded_total":           "COUNTER",
		"peercache_members":                   "GAUGE",
		"peercache_local_tier_hits_total":     "COUNTER",
		"peercache_local_tier_bytes":          "GAUGE",
		"peercache_repair_pending_keys":       "GAUGE",
		"peercache_migration_keys_per_second": "GAUGE",
	} {
		if types[name] != want {
			t.Errorf("%s is a %s, want %s", name, types[name], want)
		}
	}
	if h := help["peercache_ready"]; h != "1 when the node is ready to serve." {
		t.Errorf("peercache_ready help %q", h)
	}
	names := []string{"go_goroutines"}
	if runtime.GOOS == "linux" { // where the process collector reads /proc
		names = append(names, "process_start_time_seconds")
	}
	for _, name := range names {
		if _, ok := types[name]; !ok {
			t.Errorf("%s missing: the Go and process collectors are registered", name)
		}
	}

	// A shard that did not answer leaves its series out.
	ops.ShardOK = false
	reg2 := prometheus.NewRegistry()
	nodemetrics.New(reg2, fixed(ops, tr))
	got2, _, _ := gather(t, reg2)
	if _, ok := got2["peercache_shard_keys"]; ok {
		t.Error("peercache_shard_keys reported without ShardOK")
	}
}

// Two sets of series in two registries are independent: one node's counts
// never show in another's.
func TestTwoRegistries(t *testing.T) {
	ra, rb := prometheus.NewRegistry(), prometheus.NewRegistry()
	a := nodemetrics.New(ra, fixed(nodemetrics.Ops{}, nodemetrics.Tier{}))
	b := nodemetrics.New(rb, fixed(nodemetrics.Ops{}, nodemetrics.Tier{}))
	if a == b || a.FwdGet == b.FwdGet {
		t.Fatal("two New calls share their counters")
	}
	a.FwdGet.Add(5)
	b.RingChanges.Inc()
	ga, _, _ := gather(t, ra)
	gb, _, _ := gather(t, rb)
	if ga[`peercache_forwarded_total{op="get"}`] != 5 || gb[`peercache_forwarded_total{op="get"}`] != 0 {
		t.Errorf("forwarded get: a %v, b %v; want 5 and 0", ga[`peercache_forwarded_total{op="get"}`], gb[`peercache_forwarded_total{op="get"}`])
	}
	if ga["peercache_ring_changes_total"] != 0 || gb["peercache_ring_changes_total"] != 1 {
		t.Errorf("ring changes: a %v, b %v; want 0 and 1", ga["peercache_ring_changes_total"], gb["peercache_ring_changes_total"])
	}
}

// A registry holds one node's series: registering them twice in it panics
// (as MustRegister does).
func TestRegisterTwicePanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	nodemetrics.New(reg, fixed(nodemetrics.Ops{}, nodemetrics.Tier{}))
	defer func() {
		if recover() == nil {
			t.Error("second New in one registry did not panic")
		}
	}()
	nodemetrics.New(reg, fixed(nodemetrics.Ops{}, nodemetrics.Tier{}))
}
