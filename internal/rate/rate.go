// Package rate counts events and reports how many per second came over
// the last few seconds (a node's request rate in its status), and gates
// events to one a second (Gate: log lines a peer could multiply), both
// lock-free. It knows nothing of what the events are.
package rate

import (
	"sync/atomic"
	"time"
)

const (
	buckets = 16
	window  = 5 // seconds averaged by Rate
)

// Counter counts events in one-second buckets. A bucket being recycled may
// lose a concurrent count: good enough for a rate display. The zero value
// is ready to use.
type Counter struct {
	total   atomic.Uint64
	buckets [buckets]struct {
		sec atomic.Int64
		n   atomic.Uint64
	}
}

// Add counts one event at now.
func (c *Counter) Add(now time.Time) {
	c.total.Add(1)
	sec := now.Unix()
	b := &c.buckets[sec%buckets]
	if b.sec.Load() != sec {
		if old := b.sec.Swap(sec); old != sec {
			b.n.Store(0)
		}
	}
	b.n.Add(1)
}

// Total returns every event counted.
func (c *Counter) Total() uint64 { return c.total.Load() }

// Rate returns the events per second over the last five seconds (counting
// the current, partial second), or over the time since start if that is
// shorter.
func (c *Counter) Rate(now, start time.Time) float64 {
	sec := now.Unix()
	var sum uint64
	for i := int64(0); i <= window; i++ {
		b := &c.buckets[(sec-i)%buckets]
		if b.sec.Load() == sec-i {
			sum += b.n.Load()
		}
	}
	frac := float64(now.UnixNano()%int64(time.Second)) / float64(time.Second)
	span := min(float64(window)+frac, now.Sub(start).Seconds())
	if span < 0.5 {
		span = 0.5
	}
	return float64(sum) / span
}

// Gate lets through at most one event per second (for log lines about
// events a misbehaving peer could multiply), lock-free. The zero value is
// ready to use.
type Gate struct {
	last atomic.Int64 // Unix ns of the last event let through
}

// Allow reports whether an event at now passes: whether none passed in
// the second before now. Of events at the same moment, one passes.
func (g *Gate) Allow(now time.Time) bool {
	t, last := now.UnixNano(), g.last.Load()
	return t-last >= int64(time.Second) && g.last.CompareAndSwap(last, t)
}
