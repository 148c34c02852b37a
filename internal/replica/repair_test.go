package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
)

func TestRepairerBoundedSet(t *testing.T) {
	r := NewRepairer(RepairConfig{Self: "a", RF: 2, MaxKeys: 3})
	for i := range 5 {
		r.Add(fmt.Sprint("k", i))
	}
	r.Add("k0") // already in the set: recorded again, no overflow of its own
	if got := r.Pending(); got != 3 {
		t.Fatalf("pending %d, want 3 (the bound)", got)
	}
	taken, full := r.take()
	if !full || len(taken) != 3 {
		t.Fatalf("take: %d keys, full %v; want 3 and a full run", len(taken), full)
	}
	if _, full := r.take(); full {
		t.Error("second take still asks for a full run")
	}
}

func TestRepairerTakeBatch(t *testing.T) {
	r := NewRepairer(RepairConfig{Self: "a", RF: 2})
	for i := range repairBatch + 10 {
		r.Add(fmt.Sprint("k", i))
	}
	if taken, full := r.take(); len(taken) != repairBatch || full {
		t.Fatalf("take: %d keys, full %v; want %d, no full run", len(taken), full, repairBatch)
	}
	if got := r.Pending(); got != repairBatch+10 {
		t.Fatalf("take removed keys: pending %d", got)
	}
}

// A key whose copy failed again after it was taken stays in the set.
func TestRepairerDoneKeepsNewerFailures(t *testing.T) {
	r := NewRepairer(RepairConfig{Self: "a", RF: 2})
	r.Add("x")
	r.Add("y")
	r.Add("z")
	taken, _ := r.take()
	r.Add("x") // failed again meanwhile
	r.done(taken, []string{"x", "y"}, true)
	r.done(taken, []string{"z"}, false)
	st := r.Stats()
	if st.Pending != 1 || st.Repaired != 1 || st.Dropped != 1 {
		t.Fatalf("stats %+v, want pending 1 (x), repaired 1 (y), dropped 1 (z)", st)
	}
	taken, _ = r.take()
	if _, ok := taken["x"]; !ok || len(taken) != 1 {
		t.Fatalf("left %v, want x", taken)
	}
}

// fakeShard holds entries for GetMany.
type fakeShard map[string]store.Entry

func (f fakeShard) GetMany(_ context.Context, keys []string) ([]store.Entry, []bool, error) {
	es, found := make([]store.Entry, len(keys)), make([]bool, len(keys))
	for i, k := range keys {
		es[i], found[i] = f[k]
	}
	return es, found, nil
}

func TestRepairerRun(t *testing.T) {
	rg := ring.New([]string{"a", "b", "c"}, ring.Options{})
	shard := fakeShard{}
	var mine, other []string
	for i := 0; len(mine) < 20 || len(other) < 5; i++ {
		k := fmt.Sprint("k", i)
		var buf [MaxReplicas]string
		switch os := Owners(rg, k, 2, &buf); {
		case os[0] == "a" || os[1] == "a":
			if len(mine) < 20 {
				mine = append(mine, k)
				shard[k] = store.Entry{Value: []byte("v-" + k), Version: 1}
			}
		default:
			if len(other) < 5 {
				other = append(other, k)
				shard[k] = store.Entry{Value: []byte("v-" + k), Version: 1}
			}
		}
	}
	var (
		mu       sync.Mutex
		received = map[string]int{} // key -> copies acknowledged
		refuse   atomic.Bool
		fulls    atomic.Int32
	)
	refuse.Store(true)
	r := NewRepairer(RepairConfig{
		Self: "a", RF: 2, Store: shard,
		Ring: func() *ring.Ring { return rg },
		Import: func(_ context.Context, peer string, es []store.Entry) ([]migrate.ImportResult, error) {
			if peer == "a" {
				t.Errorf("import to self")
			}
			if refuse.Load() {
				return nil, errors.New("unreachable")
			}
			mu.Lock()
			defer mu.Unlock()
			res := make([]migrate.ImportResult, len(es))
			for i, e := range es {
				if string(e.Value) != "v-"+e.Key {
					t.Errorf("copy of %s carries %q", e.Key, e.Value)
				}
				received[e.Key]++
				res[i] = migrate.Acked
			}
			return res, nil
		},
		FullCopy: func() { fulls.Add(1) },
	})
	for _, k := range append(append([]string{}, mine...), append(other, "gone")...) {
		r.Add(k)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	wait := func(what string, ok func(RepairStats) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok(r.Stats()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: stats %+v", what, r.Stats())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Keys this member holds no copy of, or does not own, are dropped at
	// once; the others wait while their owner does not answer.
	wait("dropped", func(s RepairStats) bool { return s.Dropped == uint64(len(other)+1) && s.Rounds >= 2 })
	if st := r.Stats(); st.Pending != len(mine) || st.Repaired != 0 {
		t.Fatalf("while refused: stats %+v, want %d pending", st, len(mine))
	}
	refuse.Store(false)
	wait("repaired", func(s RepairStats) bool { return s.Pending == 0 })
	if st := r.Stats(); st.Repaired != uint64(len(mine)) {
		t.Fatalf("stats %+v, want %d repaired", st, len(mine))
	}
	mu.Lock()
	for _, k := range mine {
		if received[k] != 1 {
			t.Errorf("%s copied %d times, want once (rf 2: one other owner)", k, received[k])
		}
	}
	mu.Unlock()
	if fulls.Load() != 0 {
		t.Error("full copy asked for without an overflow")
	}
}

func TestRepairerOverflowAsksForFullCopy(t *testing.T) {
	rg := ring.New([]string{"a"}, ring.Options{})
	full := make(chan struct{}, 1)
	r := NewRepairer(RepairConfig{Self: "a", RF: 2, Store: fakeShard{}, MaxKeys: 1,
		Ring:     func() *ring.Ring { return rg },
		Import:   func(context.Context, string, []store.Entry) ([]migrate.ImportResult, error) { return nil, nil },
		FullCopy: func() { full <- struct{}{} },
	})
	r.Add("x")
	r.Add("y")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-full:
	case <-time.After(5 * time.Second):
		t.Fatal("no full copy asked for after the set overflowed")
	}
}
