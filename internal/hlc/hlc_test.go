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

func TestReserveIsUniqueAmongNow(t *testing.T) {
	c := New(func() int64 { return 1000 }) // frozen wall clock
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := uint64(0)
			for i := 0; i < 500; i++ {
				n := 1 + i%7
				first := c.Reserve(n)
				if first <= prev {
					t.Errorf("not monotonic: range at %d after %d", first, prev)
				}
				mu.Lock()
				for j := range n {
					v := Offset(first, j)
					if seen[v] {
						t.Errorf("duplicate version %d", v)
					}
					seen[v] = true
					prev = v
				}
				if v := c.Now(); seen[v] || v <= prev {
					t.Errorf("Now = %d inside or before a reserved range (last %d)", v, prev)
				} else {
					seen[v] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestReserveFollowsWallClock(t *testing.T) {
	c := New(func() int64 { return 1000 })
	if first := c.Reserve(3); first != 1000 {
		t.Fatalf("Reserve(3) = %d, want the wall clock 1000", first)
	}
	if v := c.Now(); v != 1003 {
		t.Fatalf("Now after Reserve(3) at 1000 = %d, want 1003", v)
	}
}

func TestReserveSaturates(t *testing.T) {
	c := New(func() int64 { return 1000 })
	c.Observe(math.MaxUint64 - 2)
	first := c.Reserve(5)
	if first != math.MaxUint64-1 {
		t.Fatalf("Reserve(5) = %d, want %d", first, uint64(math.MaxUint64-1))
	}
	for j, want := range []uint64{math.MaxUint64 - 1, math.MaxUint64, math.MaxUint64, math.MaxUint64, math.MaxUint64} {
		if v := Offset(first, j); v != want {
			t.Fatalf("Offset(first, %d) = %d, want %d (saturated, never wrapped)", j, v, want)
		}
	}
	if v := c.Reserve(2); v != math.MaxUint64 {
		t.Fatalf("Reserve at the top = %d, want the largest version", v)
	}
}
