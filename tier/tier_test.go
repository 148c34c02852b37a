package tier

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func mustNew(t testing.TB, o Options) Cache {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func val(n int) []byte { return make([]byte, n) }

// Acceptance (tiers 3): under a small byte budget LRU evicts the least
// recently used entry and FIFO the oldest inserted, whatever was read.
func TestEvictionOrder(t *testing.T) {
	size := Size("k0", 100)
	for _, tc := range []struct {
		policy  Policy
		evicted string
	}{{LRU, "k1"}, {FIFO, "k0"}} {
		t.Run(string(tc.policy), func(t *testing.T) {
			c := mustNew(t, Options{MaxBytes: 3 * size, Policy: tc.policy})
			for i := 0; i < 3; i++ {
				c.Set(fmt.Sprintf("k%d", i), Entry{Value: val(100)})
			}
			if _, ok := c.Get("k0"); !ok { // k0 is now the most recently used
				t.Fatal("k0 missing before any eviction")
			}
			c.Set("k3", Entry{Value: val(100)})
			for i := 0; i < 4; i++ {
				k := fmt.Sprintf("k%d", i)
				_, ok := c.Get(k)
				if want := k != tc.evicted; ok != want {
					t.Errorf("%s: present=%v, want %v (expected %s to be evicted)", k, ok, want, tc.evicted)
				}
			}
			if st := c.Stats(); st.Evictions != 1 || st.Entries != 3 || st.Bytes != 3*size {
				t.Errorf("stats %+v, want 1 eviction, 3 entries, %d bytes", st, 3*size)
			}
			// A larger entry evicts as many as it needs, in policy order.
			c.Set("big", Entry{Value: val(int(2*size) - EntryOverhead - 3)})
			if st := c.Stats(); st.Bytes > st.MaxBytes {
				t.Errorf("bytes %d over the budget %d", st.Bytes, st.MaxBytes)
			}
			// An entry larger than the budget is refused and drops the key.
			if c.Set("big", Entry{Value: val(int(3 * size))}) {
				t.Error("an entry over the whole budget was stored")
			}
			if _, ok := c.Get("big"); ok {
				t.Error("a refused Set left the older value behind")
			}
		})
	}
}

// Acceptance (tiers 3): the budget is never exceeded by more than one
// entry, whatever the mix of sizes, also under concurrent writers.
func TestByteBudget(t *testing.T) {
	for _, p := range []Policy{LRU, FIFO, TinyLFU} {
		t.Run(string(p), func(t *testing.T) {
			const budget = 64 << 10
			c := mustNew(t, Options{MaxBytes: budget, Policy: p})
			var wg sync.WaitGroup
			var mu sync.Mutex
			worst := int64(0)
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(g), 7))
					for i := 0; i < 20_000; i++ {
						n := r.IntN(2000)
						k := fmt.Sprintf("k%d", r.IntN(5000))
						if r.IntN(10) == 0 {
							c.Delete(k)
						} else {
							c.Set(k, Entry{Value: val(n)})
						}
						c.Get(fmt.Sprintf("k%d", r.IntN(5000)))
						if st := c.Stats(); st.Bytes > budget {
							mu.Lock()
							worst = max(worst, st.Bytes-budget)
							mu.Unlock()
						}
					}
				}(g)
			}
			wg.Wait()
			// Concurrent writers each hold at most one entry over the budget
			// between inserting and evicting.
			if maxEntry := Size("k0000", 2000); worst > 4*maxEntry {
				t.Fatalf("budget exceeded by %d bytes (one entry is at most %d)", worst, maxEntry)
			}
			st := c.Stats()
			if st.Bytes > budget {
				t.Fatalf("at rest: %d bytes over a budget of %d", st.Bytes, budget)
			}
			t.Logf("%s: worst excess under 4 writers %d bytes; at rest %+v", p, worst, st)
		})
	}
}

// Acceptance (tiers 3): expiry is honoured: an entry is never returned at
// or after its Expires.
func TestExpiry(t *testing.T) {
	for _, p := range []Policy{LRU, FIFO, TinyLFU} {
		t.Run(string(p), func(t *testing.T) {
			c := mustNew(t, Options{MaxBytes: 1 << 20, Policy: p})
			exp := time.Now().Add(80 * time.Millisecond)
			c.Set("short", Entry{Value: []byte("v"), Expires: exp})
			c.Set("past", Entry{Value: []byte("v"), Expires: time.Now().Add(-time.Second)})
			c.Set("forever", Entry{Value: []byte("v")})
			if _, ok := c.Get("past"); ok {
				t.Fatal("an entry that expired before it was stored is served")
			}
			// The Get happens somewhere between before and after: a miss is
			// early only if even after is early, a hit late only if even
			// before is late (a check that timed the Get from one side only
			// would fail when the goroutine is descheduled around it).
			for {
				before := time.Now()
				_, ok := c.Get("short")
				after := time.Now()
				if !ok {
					if after.Before(exp.Add(-5 * time.Millisecond)) {
						t.Fatalf("expired %s early", exp.Sub(after))
					}
					break
				}
				if !before.Before(exp) {
					t.Fatalf("served %s after its expiry", before.Sub(exp))
				}
				time.Sleep(time.Millisecond)
			}
			if _, ok := c.Get("forever"); !ok {
				t.Fatal("entry without expiry lost")
			}
		})
	}
}

func TestSetIfAndDeleteFunc(t *testing.T) {
	for _, p := range []Policy{LRU, FIFO, TinyLFU} {
		t.Run(string(p), func(t *testing.T) {
			c := mustNew(t, Options{MaxBytes: 1 << 20, Policy: p})
			newer := func(e Entry) func(Entry, bool) bool {
				return func(old Entry, found bool) bool { return !found || e.Version > old.Version }
			}
			e5 := Entry{Value: []byte("five"), Version: 5}
			if !c.SetIf("k", e5, newer(e5)) {
				t.Fatal("SetIf into an empty slot refused")
			}
			e3 := Entry{Value: []byte("three"), Version: 3}
			if c.SetIf("k", e3, newer(e3)) {
				t.Fatal("an older version replaced a newer one")
			}
			if got, _ := c.Get("k"); got.Version != 5 {
				t.Fatalf("version %d, want 5", got.Version)
			}
			for i := 0; i < 100; i++ {
				c.Set(fmt.Sprintf("d%d", i), Entry{Value: []byte("x"), Tag: uint64(i % 2)})
			}
			if n := c.DeleteFunc(func(k string, e Entry) bool { return e.Tag == 1 }); n != 50 {
				t.Fatalf("DeleteFunc removed %d, want 50", n)
			}
			if _, ok := c.Get("d1"); ok {
				t.Fatal("d1 survived DeleteFunc")
			}
			if _, ok := c.Get("d2"); !ok {
				t.Fatal("d2 removed by DeleteFunc")
			}
			c.Clear()
			if _, ok := c.Get("d2"); ok || c.Stats().Bytes != 0 {
				t.Fatalf("Clear left %+v", c.Stats())
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"": DefaultPolicy, "LRU": LRU, "fifo": FIFO, " tinylfu ": TinyLFU} {
		if got, err := ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParsePolicy("arc"); err == nil {
		t.Error("ParsePolicy(arc) accepted")
	}
	if _, err := New(Options{MaxBytes: 0}); err == nil {
		t.Error("New with no budget accepted")
	}
	if _, err := New(Options{MaxBytes: 1 << 20, Policy: LRU, Shards: 3}); err == nil {
		t.Error("3 shards accepted")
	}
}

// Hottest visits entries in the policy's order of value, skips expired
// ones and stops when told.
func TestHottest(t *testing.T) {
	for _, p := range []Policy{LRU, FIFO, TinyLFU} {
		c, err := New(Options{MaxBytes: 1 << 20, Policy: p})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			c.Set(fmt.Sprintf("k%d", i), Entry{Value: []byte("v")})
		}
		c.Set("gone", Entry{Value: []byte("v"), Expires: time.Now().Add(-time.Second)})
		for i := 0; i < 20; i++ {
			c.Get("k7") // hot
		}
		seen := map[string]bool{}
		c.Hottest(func(key string, e Entry) bool {
			seen[key] = true
			return true
		})
		if len(seen) != 100 || seen["gone"] {
			t.Errorf("%s: visited %d entries (expired one: %v)", p, len(seen), seen["gone"])
		}
		n := 0
		c.Hottest(func(string, Entry) bool { n++; return n < 10 })
		if n != 10 {
			t.Errorf("%s: did not stop: %d", p, n)
		}
		if p == LRU {
			var first string
			c.Hottest(func(key string, e Entry) bool { first = key; return false })
			if first != "k7" {
				t.Errorf("LRU: hottest is %s, want the key just read", first)
			}
		}
		c.Close()
	}
}
