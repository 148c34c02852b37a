// Package hlc is a hybrid logical clock that stamps writes with versions.
//
// A version is a uint64 that follows wall-clock nanoseconds since the Unix
// epoch but never goes backwards and never repeats on one clock: Now returns
// max(last+1, wall). Observe folds in versions seen from other nodes so that
// a node's next stamp is larger than any version it has stored or imported.
// Across nodes, versions order writes "last writer wins" within clock skew.
package hlc

import (
	"math"
	"sync/atomic"
	"time"
)

// Clock issues monotonically increasing versions. The zero value is ready to
// use with the system clock.
type Clock struct {
	last atomic.Uint64
	// wall returns the current wall time in Unix nanoseconds; nil means
	// time.Now().UnixNano().
	wall func() int64
}

// New returns a clock that reads wall time from wall (nil: the system clock).
func New(wall func() int64) *Clock {
	return &Clock{wall: wall}
}

func (c *Clock) now() uint64 {
	if c.wall != nil {
		return uint64(c.wall())
	}
	return uint64(time.Now().UnixNano())
}

// Now returns a version larger than every version this clock has returned
// or observed. It saturates instead of wrapping: at the largest version it
// keeps returning it (which the node never lets happen: it observes no
// version beyond its wall clock plus the allowed skew).
func (c *Clock) Now() uint64 {
	return c.Reserve(1)
}

// Reserve returns the first of n consecutive versions (n >= 1), as n calls
// of Now would return them but with one reading of the wall clock: the
// versions are Offset(first, j) for j < n, each larger than every version
// this clock returned or observed before. Like Now it saturates at the
// largest version.
func (c *Clock) Reserve(n int) uint64 {
	n = max(n, 1)
	for {
		last := c.last.Load()
		first := c.now()
		if first <= last {
			if last == math.MaxUint64 {
				return last
			}
			first = last + 1
		}
		end := Offset(first, n-1)
		if c.last.CompareAndSwap(last, end) {
			return first
		}
	}
}

// Offset is the j-th version of a range that Reserve began at first,
// saturating at the largest version.
func Offset(first uint64, j int) uint64 {
	if v := first + uint64(j); v >= first {
		return v
	}
	return math.MaxUint64
}

// Observe records a version seen elsewhere so later stamps exceed it.
func (c *Clock) Observe(v uint64) {
	for {
		last := c.last.Load()
		if v <= last || c.last.CompareAndSwap(last, v) {
			return
		}
	}
}

// Time converts a version back to the wall time it (approximately) encodes.
func Time(v uint64) time.Time {
	return time.Unix(0, int64(v))
}
