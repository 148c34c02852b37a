package rate

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRecentOnly(t *testing.T) {
	var c Counter
	start := time.Unix(1000, 0)
	for i := range 10 {
		c.Add(start.Add(time.Duration(i) * 100 * time.Millisecond)) // 10 in the first second
	}
	// One second after start: 10 events over the 1 s since start.
	if r := c.Rate(start.Add(time.Second), start); r < 9 || r > 11 {
		t.Errorf("rate %.1f, want about 10", r)
	}
	// Half a second after start the span is at least 0.5 s.
	if r := c.Rate(start.Add(400*time.Millisecond), start); r > 20 {
		t.Errorf("rate %.1f over a short span", r)
	}
	// Buckets older than the window are not counted, even when recycled.
	c.Add(start.Add(16 * time.Second))
	if r := c.Rate(start.Add(16*time.Second), start.Add(-time.Hour)); r > 1 {
		t.Errorf("rate %.2f after a recycled bucket, want the one new event only", r)
	}
	if c.Total() != 11 {
		t.Errorf("total %d", c.Total())
	}
}

func TestConcurrentAdds(t *testing.T) {
	var c Counter
	now := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				c.Add(now)
			}
		})
	}
	wg.Wait()
	if c.Total() != 8000 {
		t.Fatalf("total %d", c.Total())
	}
}

func TestGateOnePerSecond(t *testing.T) {
	var g Gate
	start := time.Unix(1000, 0)
	if !g.Allow(start) {
		t.Fatal("the first event was held back")
	}
	for _, d := range []time.Duration{0, time.Millisecond, 999 * time.Millisecond} {
		if g.Allow(start.Add(d)) {
			t.Fatalf("an event %v after the last one passed", d)
		}
	}
	if !g.Allow(start.Add(time.Second)) {
		t.Fatal("an event a second later was held back")
	}
	if g.Allow(start.Add(1500 * time.Millisecond)) {
		t.Fatal("the second is counted from the event that passed, not the first")
	}
}

func TestGateConcurrent(t *testing.T) {
	var g Gate
	now := time.Unix(2000, 0)
	var passed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if g.Allow(now) {
					passed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if passed.Load() != 1 {
		t.Fatalf("%d events at one moment passed, want 1", passed.Load())
	}
}
