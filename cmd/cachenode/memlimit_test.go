package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	for _, c := range []struct{ budget, want int64 }{
		{0, 256<<20 + 64<<20 + 32<<20},
		{256 << 20, 352 << 20},
		{1 << 30, 1<<30 + 256<<20 + 32<<20},
	} {
		if got := memoryLimit(c.budget); got != c.want {
			t.Errorf("memoryLimit(%d) = %d, want %d", c.budget, got, c.want)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	if got := setMemoryLimit(64<<20, "", log); got != memoryLimit(64<<20) || debug.SetMemoryLimit(-1) != got {
		t.Fatalf("setMemoryLimit without GOMEMLIMIT: %d, limit in force %d; want %d", got, debug.SetMemoryLimit(-1), memoryLimit(64<<20))
	}
	debug.SetMemoryLimit(123 << 20) // as if the runtime had applied GOMEMLIMIT=123MiB
	if got := setMemoryLimit(64<<20, "123MiB", log); got != 123<<20 || debug.SetMemoryLimit(-1) != 123<<20 {
		t.Fatalf("setMemoryLimit with GOMEMLIMIT set changed the limit: %d", got)
	}
}

func TestGCHeapFloor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ flag, limit, want int64 }{
		{0, memoryLimit(0), 32 * mib},          // the default
		{0, memoryLimit(1 << 30), 32 * mib},    // whatever the budget
		{0, 48 * mib, 24 * mib},                // GOMEMLIMIT=48MiB: half of it
		{-1, memoryLimit(0), 0},                // off
		{200 * mib, memoryLimit(0), 200 * mib}, // as given
	} {
		if got := gcHeapFloor(c.flag, c.limit); got != c.want {
			t.Errorf("gcHeapFloor(%d, %d) = %d, want %d", c.flag, c.limit, got, c.want)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	startGCTuner(96*mib, "400", log)() // GOGC set: nothing runs
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("GOGC changed to %d although GOGC was set in the environment", p)
	}
	startGCTuner(96*mib, "", log)() // starts, stops, restores
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("GOGC is %d after the tuner stopped, want 100", p)
	}
}
