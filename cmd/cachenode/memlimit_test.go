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
