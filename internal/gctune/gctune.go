// Package gctune owns the pacing of the Go garbage collector in a cache
// process: while the live heap is small, it raises GOGC so that the heap
// goal stays at a floor instead of twice the live heap.
//
// A cache node allocates for every request (the bytes of a request, a key,
// a value) while keeping little else alive: with a few MiB live, the
// default pacing (GOGC=100) collects every few MiB allocated, dozens of
// times a second under load, and the collector and its write barriers took
// 35-45% of the CPU of a pipelined SET (docs/benchmarks.md). The process has a memory limit
// already (the node's budget plus headroom, set by the caller with
// runtime/debug.SetMemoryLimit); the floor lies within it, so it spends
// memory the operator has granted, never more: the limit still bounds the
// heap whatever GOGC says, and once the live heap passes half the floor the
// pacing is the default one again.
//
// The package holds no state of its own: a Tuner is the only thing that
// changes GOGC, and it restores the percentage it found when it stops.
package gctune

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// DefaultPercent is the runtime's default GOGC, the least Percent returns.
const DefaultPercent = 100

// MaxPercent bounds the GOGC a Tuner sets (a heap goal of 101 times a
// live heap of a few hundred KiB).
const MaxPercent = 10000

// Interval is how often a Tuner reads the live heap.
const Interval = 200 * time.Millisecond

// liveMetric is the runtime metric of the heap that the last collection
// found alive.
const liveMetric = "/gc/heap/live:bytes"

// Percent returns the GOGC that puts the heap goal, live*(1+GOGC/100), at
// floor for a live heap of live bytes: DefaultPercent once the live heap is
// half the floor or more, at most MaxPercent.
func Percent(live, floor uint64) int {
	live = max(live, 1)
	if floor/2 <= live {
		return DefaultPercent
	}
	p := floor/live*100 - 100 // floor/live >= 2: p >= 100
	return int(min(p, MaxPercent))
}

// Tuner sets GOGC to Percent(live heap, floor) every Interval.
type Tuner struct {
	floor uint64
	log   *slog.Logger
}

// New returns a Tuner keeping the heap goal at floor bytes or more.
func New(floor uint64, log *slog.Logger) *Tuner {
	return &Tuner{floor: floor, log: log}
}

// Run tunes GOGC until ctx ends, then puts back the GOGC in force when it
// started. It changes GOGC only when the percentage moves by more than an
// eighth (setting it takes the heap lock).
func (t *Tuner) Run(ctx context.Context) {
	sample := []metrics.Sample{{Name: liveMetric}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		t.log.Warn("gc: the runtime does not report its live heap; garbage collector pacing left as it is")
		return
	}
	orig := debug.SetGCPercent(DefaultPercent)
	debug.SetGCPercent(orig)
	defer debug.SetGCPercent(orig)
	cur := orig
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		metrics.Read(sample)
		if p := Percent(sample[0].Value.Uint64(), t.floor); p != cur && (p > cur+cur/8 || p < cur-cur/8 || p == DefaultPercent) {
			debug.SetGCPercent(p)
			cur = p
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
