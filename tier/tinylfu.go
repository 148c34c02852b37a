package tier

import (
	"sync/atomic"

	"github.com/maypok86/otter/v2"
)

// tinyLFU is W-TinyLFU from otter v2, weighted by Size. Expiry is checked
// on read against each entry's own deadline (otter's expiry machinery would
// add a timer wheel and a clock read it does not need).
type tinyLFU struct {
	c         *otter.Cache[string, *tlEntry]
	clk       clock
	max       int64
	evictions atomic.Uint64
}

type tlEntry struct {
	e        Entry
	deadline int64
}

// maxWeight is the largest weight otter accepts for one entry.
const maxWeight = 1<<32 - 1

func newTinyLFU(maxBytes int64) *tinyLFU {
	t := &tinyLFU{clk: newClock(), max: maxBytes}
	t.c = otter.Must(&otter.Options[string, *tlEntry]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(key string, v *tlEntry) uint32 {
			return uint32(min(Size(key, len(v.e.Value)), maxWeight))
		},
		// Maintenance (eviction included) on the calling goroutine: the
		// budget holds right after each write instead of eventually.
		Executor: func(fn func()) { fn() },
		OnAtomicDeletion: func(e otter.DeletionEvent[string, *tlEntry]) {
			if e.Cause == otter.CauseOverflow {
				t.evictions.Add(1)
			}
		},
	})
	return t
}

func (t *tinyLFU) Get(key string) (Entry, bool) {
	v, ok := t.c.GetIfPresent(key)
	if !ok {
		return Entry{}, false
	}
	if v.deadline != 0 && t.clk.now() >= v.deadline {
		t.c.ComputeIfPresent(key, func(old *tlEntry) (*tlEntry, otter.ComputeOp) {
			if old == v {
				return nil, otter.InvalidateOp
			}
			return old, otter.CancelOp
		})
		return Entry{}, false
	}
	return v.e, true
}

func (t *tinyLFU) fits(key string, e Entry) bool {
	s := Size(key, len(e.Value))
	return s <= maxWeight && s <= t.max
}

func (t *tinyLFU) Set(key string, e Entry) bool {
	if !t.fits(key, e) {
		t.c.Invalidate(key)
		return false
	}
	t.c.Set(key, &tlEntry{e: e, deadline: t.clk.deadline(e.Expires)})
	return true
}

func (t *tinyLFU) SetIf(key string, e Entry, keep func(old Entry, found bool) bool) bool {
	if !t.fits(key, e) {
		t.c.Invalidate(key)
		return false
	}
	nv := &tlEntry{e: e, deadline: t.clk.deadline(e.Expires)}
	stored := false
	t.c.Compute(key, func(old *tlEntry, found bool) (*tlEntry, otter.ComputeOp) {
		var oe Entry
		if found && (old.deadline == 0 || t.clk.now() < old.deadline) {
			oe = old.e
		} else {
			found = false
		}
		if !keep(oe, found) {
			return old, otter.CancelOp
		}
		stored = true
		return nv, otter.WriteOp
	})
	return stored
}

func (t *tinyLFU) Delete(key string) { t.c.Invalidate(key) }

func (t *tinyLFU) DeleteFunc(del func(key string, e Entry) bool) int {
	removed := 0
	for k, v := range t.c.All() {
		if del(k, v.e) {
			t.c.ComputeIfPresent(k, func(old *tlEntry) (*tlEntry, otter.ComputeOp) {
				if old == v {
					removed++
					return nil, otter.InvalidateOp
				}
				return old, otter.CancelOp
			})
		}
	}
	return removed
}

func (t *tinyLFU) Hottest(fn func(key string, e Entry) bool) {
	now := t.clk.now()
	for en := range t.c.Hottest() {
		if v := en.Value; v.deadline == 0 || now < v.deadline {
			if !fn(en.Key, v.e) {
				return
			}
		}
	}
}

func (t *tinyLFU) Clear() { t.c.InvalidateAll() }

func (t *tinyLFU) Stats() Stats {
	return Stats{Entries: int64(t.c.EstimatedSize()), Bytes: int64(t.c.WeightedSize()), MaxBytes: t.max,
		Evictions: t.evictions.Load()}
}

func (t *tinyLFU) Close() { t.c.StopAllGoroutines() }
