package main

import (
	"context"
	"log/slog"
	"runtime/debug"

	"github.com/peercache/peercache/internal/gctune"
	"github.com/peercache/peercache/node"
)

// The process's Go memory limit (runtime/debug.SetMemoryLimit) comes from
// the node's memory budget (--memory-max-bytes), which covers the in-memory
// shard and the local tier: the limit is the budget plus a quarter of it
// for the garbage collector's headroom and request buffers, plus 32 MiB for
// the runtime, memberlist and the rest of the process (352 MiB with the
// default budget of 256 MiB). Near the limit the collector runs more often
// instead of letting the heap double; it is a soft limit, never a cause of
// failure. A GOMEMLIMIT in the environment wins (the runtime has applied
// it already).

// memoryLimitBase is the fixed part of the limit above the budget.
const memoryLimitBase = 32 << 20

// memoryLimit returns the Go memory limit for a budget (0: the default).
func memoryLimit(budget int64) int64 {
	if budget <= 0 {
		budget = node.DefaultMemoryMaxBytes
	}
	return budget + budget/4 + memoryLimitBase
}

// setMemoryLimit applies memoryLimit(budget) unless goMemLimit (the
// GOMEMLIMIT environment variable) is set; it returns the limit in force.
func setMemoryLimit(budget int64, goMemLimit string, log *slog.Logger) int64 {
	if goMemLimit != "" {
		limit := debug.SetMemoryLimit(-1) // (a negative value only reads it)
		log.Info("memory: GOMEMLIMIT is set; the Go memory limit is left as it is", "limit_bytes", limit)
		return limit
	}
	limit := memoryLimit(budget)
	debug.SetMemoryLimit(limit)
	log.Info("memory: Go memory limit set from the memory budget", "budget_bytes", budget, "limit_bytes", limit)
	return limit
}

// The garbage collector's pacing (internal/gctune): while the live heap is
// small, GOGC is raised so that the heap may grow to a floor before a
// collection, --gc-heap-floor bytes; 0 (the default) is defaultGCHeapFloor,
// 32 MiB, never more than half the limit in force; a negative value leaves
// the pacing to the runtime (GOGC=100). A GOGC in the environment wins. The
// floor is what an idle node may hold in garbage above what it keeps: its
// RSS can be that much higher than with the default pacing (measured with
// bench/rss.sh), which is why it is small beside the memory budget.

// defaultGCHeapFloor is the heap floor when --gc-heap-floor is 0.
const defaultGCHeapFloor = 32 << 20

// gcHeapFloor returns the heap floor for the flag's value and the Go memory
// limit in force; 0 means no tuning.
func gcHeapFloor(flag, limit int64) int64 {
	switch {
	case flag < 0:
		return 0
	case flag > 0:
		return flag
	}
	return min(defaultGCHeapFloor, limit/2)
}

// startGCTuner runs a gctune.Tuner for floor bytes until the returned
// function is called (which waits for it to stop), unless floor is 0 or
// goGC (the GOGC environment variable) is set.
func startGCTuner(floor int64, goGC string, log *slog.Logger) (stop func()) {
	switch {
	case goGC != "":
		log.Info("gc: GOGC is set; the garbage collector's pacing is left as it is", "gogc", goGC)
		return func() {}
	case floor <= 0:
		log.Info("gc: --gc-heap-floor is negative; default garbage collector pacing (GOGC=100)")
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		gctune.New(uint64(floor), log).Run(ctx)
	}()
	log.Info("gc: the heap may grow to a floor before a collection while little is live", "floor_bytes", floor)
	return func() { cancel(); <-done }
}
