package hlc

import (
	"math"
	"sync"
	"testing"
)

func TestMonotonicAndUnique(t *testing.T) {
	c := New(func() int64 { return 1000 }) // frozen wall clock
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := uint64(0)
			for i := 0; i < 1000; i++ {
				v := c.Now()
				if v <= prev {
					t.Errorf("not monotonic: %d after %d", v, prev)
				}
				prev = v
				mu.Lock()
				if seen[v] {
					t.Errorf("duplicate version %d", v)
				}
				seen[v] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestObserve(t *testing.T) {
	c := New(func() int64 { return 1000 })
	c.Observe(5000)
	if v := c.Now(); v != 5001 {
		t.Fatalf("Now after Observe(5000) = %d, want 5001", v)
	}
	c.Observe(10) // older: ignored
	if v := c.Now(); v != 5002 {
		t.Fatalf("Now = %d, want 5002", v)
	}
}

func TestFollowsWallClock(t *testing.T) {
	var c Clock
	a := c.Now()
	if Time(a).Year() < 2020 {
		t.Fatalf("version %d does not follow the wall clock", a)
	}
}

func TestSaturates(t *testing.T) {
	c := New(func() int64 { return 1000 })
	c.Observe(math.MaxUint64 - 1)
	if v := c.Now(); v != math.MaxUint64 {
		t.Fatalf("Now = %d, want the largest version", v)
	}
	if v := c.Now(); v != math.MaxUint64 {
		t.Fatalf("Now wrapped to %d", v)
	}
}
