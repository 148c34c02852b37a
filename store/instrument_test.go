package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/store"
	"github.com/peercache/peercache/store/storetest"
)

// The wrapper changes no behaviour: the conformance suite passes through it.
func TestInstrumentConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return store.Instrument(store.NewMemory(store.MemoryOptions{SweepInterval: 50 * time.Millisecond}), prometheus.NewRegistry())
	})
}

// Every call is timed by operation; a call its caller cancelled is not
// counted as a store error, a failed one is.
func TestInstrumentCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	st := store.Instrument(store.NewMemory(store.MemoryOptions{}), reg)
	defer st.Close()
	ctx := context.Background()
	if _, err := st.Put(ctx, []store.Entry{{Key: "k", Value: []byte("v"), Version: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	st.Get(cancelled, "k")
	if _, _, err := st.Get(ctx, ""); err == nil {
		t.Fatal("Get of an empty key: no error")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] = len(mf.GetMetric())
	}
	if series["peercache_store_operation_duration_seconds"] != 8 || series["peercache_store_errors_total"] != 8 {
		t.Fatalf("series %v, want one of each per operation (8)", series)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() != "get" {
				continue
			}
			switch mf.GetName() {
			case "peercache_store_operation_duration_seconds":
				if c := m.GetHistogram().GetSampleCount(); c != 3 {
					t.Errorf("get latency samples %d, want 3", c)
				}
			case "peercache_store_errors_total":
				if c := m.GetCounter().GetValue(); c != 1 {
					t.Errorf("get errors %v, want 1 (the empty key, not the cancelled call)", c)
				}
			}
		}
	}
}
