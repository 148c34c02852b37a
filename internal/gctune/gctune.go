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
// heap whatever GOGC says, and once the live heap is about half the floor the
// pacing is the default one again.
//
// The package holds no state of its own: a Tuner is the only thing that
// changes GOGC, and it restores the percentage it found when it stops.
package gctune

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DefaultPercent is the runtime's default GOGC, the least Percent returns.
const DefaultPercent = 100

// MaxPercent bounds the GOGC a Tuner sets.
const MaxPercent = 5000

// The runtime metrics a Tuner reads: the heap the last collection found
// alive, and the roots it scanned (goroutine stacks and globals), which the
// runtime's heap goal counts too.
const (
	liveMetric    = "/gc/heap/live:bytes"
	stacksMetric  = "/gc/scan/stack:bytes"
	globalsMetric = "/gc/scan/globals:bytes"
)

// Percent returns the GOGC that puts the heap goal at floor, for a live
// heap of live bytes and roots bytes of stacks and globals: the runtime's
// goal is live + (live+roots)*GOGC/100. It is DefaultPercent when that
// goal would be reached at GOGC=100 or less (the live heap is about half
// the floor or more), and at most MaxPercent.
//
// The runtime never sets a goal under its minimum heap, 4 MiB scaled by
// GOGC/100, so Percent never exceeds floor/4 MiB*100 either: a higher GOGC
// would put the goal above the floor whatever the live heap (with no live
// heap known yet, before the first collection, that bound is the answer).
func Percent(live, roots, floor uint64) int {
	if floor <= live {
		return DefaultPercent
	}
	p := (floor - live) * 100 / max(live+roots, 1)
	p = min(p, floor*100/runtimeHeapMinimum, MaxPercent)
	return int(max(p, DefaultPercent))
}

// runtimeHeapMinimum is the Go runtime's minimum heap goal at GOGC=100
// (defaultHeapMinimum in runtime/mgcpacer.go); the goal is never under
// runtimeHeapMinimum*GOGC/100.
const runtimeHeapMinimum = 4 << 20

// Tuner sets GOGC to Percent(live heap, roots, floor) after every
// collection: a cleanup attached to an object it allocates for the purpose
// runs once the collection that found the object dead has ended, and arms
// the next one. Reacting to each collection, not to a timer, matters: the
// goal the runtime sets at the end of a collection is live*(1+GOGC/100)
// for the heap just found, and a GOGC raised for a few MiB would, applied
// to a heap grown to tens of MiB in between, let it grow many times past
// the floor.
type Tuner struct {
	floor  uint64
	log    *slog.Logger
	sample []metrics.Sample

	mu      sync.Mutex // guards what follows; held while GOGC is read or set
	stopped bool
	cur     int // the GOGC this Tuner last set
}

// New returns a Tuner keeping the heap goal at floor bytes or more.
func New(floor uint64, log *slog.Logger) *Tuner {
	return &Tuner{floor: floor, log: log,
		sample: []metrics.Sample{{Name: liveMetric}, {Name: stacksMetric}, {Name: globalsMetric}}}
}

// gcSentinel is the object whose death tells a Tuner that a collection
// ended (it holds a pointer so that the tiny allocator does not pack it
// with others, which would tie its death to theirs).
type gcSentinel struct{ _ *byte }

// Run tunes GOGC until ctx ends, then puts back the GOGC in force when it
// started; no tuning happens after Run returns. GOGC changes only when the
// percentage moves by more than an eighth.
func (t *Tuner) Run(ctx context.Context) {
	metrics.Read(t.sample)
	for _, m := range t.sample {
		if m.Value.Kind() != metrics.KindUint64 {
			t.log.Warn("gc: the runtime does not report its live heap; garbage collector pacing left as it is", "metric", m.Name)
			return
		}
	}
	t.mu.Lock()
	orig := debug.SetGCPercent(DefaultPercent)
	debug.SetGCPercent(orig)
	t.cur = orig
	t.tuneLocked()
	t.mu.Unlock()
	t.arm()
	<-ctx.Done()
	t.mu.Lock()
	t.stopped = true
	debug.SetGCPercent(orig)
	t.mu.Unlock()
}

// arm attaches the next collection's cleanup.
func (t *Tuner) arm() {
	runtime.AddCleanup(&gcSentinel{}, func(t *Tuner) { t.afterGC() }, t)
}

// afterGC runs on the runtime's cleanup goroutine after a collection.
func (t *Tuner) afterGC() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.tuneLocked()
	t.arm()
}

func (t *Tuner) tuneLocked() {
	metrics.Read(t.sample)
	p := Percent(t.sample[0].Value.Uint64(), t.sample[1].Value.Uint64()+t.sample[2].Value.Uint64(), t.floor)
	if cur := t.cur; p != cur && (p > cur+cur/8 || p < cur-cur/8 || p == DefaultPercent) {
		debug.SetGCPercent(p)
		t.cur = p
	}
}
