package migrate

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peercache/peercache/store"
)

// toB places every key on "b" except the keys named "mine-...", which stay
// on "a".
var toB = PlacementFunc(func(key string) string {
	if len(key) > 5 && key[:5] == "mine-" {
		return "a"
	}
	return "b"
})

func TestTrackedRunEndsAfterOneCleanPass(t *testing.T) {
	ctx := context.Background()
	src, dst := newTestStore(t), newTestStore(t)
	fill(t, src, "k", 1000, 10)
	fill(t, src, "mine", 100, 10)
	m := New("a", src, newFakeTransport(map[string]store.Store{"b": dst}), Options{BatchSize: 64, ScanCount: 100})
	m.TrackWrites(src)
	res, err := m.Run(ctx, toB, "ring-change")
	if err != nil {
		t.Fatal(err)
	}
	if res.Passes != 1 || res.Moved != 1000 {
		t.Fatalf("result %+v, want 1 pass and 1000 moves", res)
	}
	if got := len(allEntries(t, src)); got != 100 {
		t.Fatalf("source holds %d keys, want its own 100", got)
	}
}

// runWritingDuringPass runs a tracked migration of 500 keys to "b" that,
// when the first batch reaches the receiver, writes writes through the
// tracked shard (as writes accepted under an older view would land while
// the pass runs). It returns the result, the source and the receiver.
func runWritingDuringPass(t *testing.T, writes ...store.Entry) (Result, store.Store, store.Store) {
	t.Helper()
	ctx := context.Background()
	src, dst := newTestStore(t), newTestStore(t)
	fill(t, src, "k", 500, 10)
	tr := newFakeTransport(map[string]store.Store{"b": dst})
	m := New("a", src, tr, Options{BatchSize: 16, ScanCount: 50})
	shard := m.TrackWrites(src)
	var wrote atomic.Bool
	tr.before = func(call int, peer string, entries []store.Entry) ([]ImportResult, error, bool) {
		if wrote.CompareAndSwap(false, true) {
			for _, e := range writes {
				if _, err := shard.Put(ctx, []store.Entry{e}); err != nil {
					t.Error(err)
				}
			}
		}
		return nil, nil, false
	}
	res, err := m.Run(ctx, toB, "ring-change")
	if err != nil {
		t.Fatal(err)
	}
	return res, src, dst
}

func TestTrackedWriteBehindTheScannerIsMoved(t *testing.T) {
	res, src, dst := runWritingDuringPass(t,
		store.Entry{Key: "mine-1", Value: []byte("kept"), Version: 1 << 40},
		store.Entry{Key: "late", Value: []byte("moved"), Version: 1 << 40})
	if e, ok, err := dst.Get(context.Background(), "late"); err != nil || !ok || string(e.Value) != "moved" {
		t.Fatalf("receiver holds late = %+v %v %v, want it moved", e, ok, err)
	}
	left := allEntries(t, src)
	if len(left) != 1 || left[0].Key != "mine-1" {
		t.Fatalf("source holds %+v, want only mine-1", left)
	}
	if res.Passes < 2 || res.Moved != 501 {
		t.Fatalf("result %+v, want a second pass and 501 moves", res)
	}
}

func TestTrackedWriteOfAKeptKeyNeedsNoSecondPass(t *testing.T) {
	res, src, _ := runWritingDuringPass(t, store.Entry{Key: "mine-2", Value: []byte("kept"), Version: 1 << 40})
	if res.Passes != 1 || res.Moved != 500 {
		t.Fatalf("result %+v, want 1 pass (the write was of a key this node keeps) and 500 moves", res)
	}
	if left := allEntries(t, src); len(left) != 1 || left[0].Key != "mine-2" {
		t.Fatalf("source holds %+v, want only mine-2", left)
	}
}

// blockingPut holds every Put until release is closed.
type blockingPut struct {
	store.Store
	entered chan struct{}
	release chan struct{}
}

func (b *blockingPut) Put(ctx context.Context, entries []store.Entry) ([]store.Outcome, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.Store.Put(ctx, entries)
}

func TestTrackedRunWaitsForWritesInFlight(t *testing.T) {
	ctx := context.Background()
	src, dst := newTestStore(t), newTestStore(t)
	fill(t, src, "k", 100, 10)
	bp := &blockingPut{Store: src, entered: make(chan struct{}, 1), release: make(chan struct{})}
	m := New("a", src, newFakeTransport(map[string]store.Store{"b": dst}), Options{})
	shard := m.TrackWrites(bp)

	// A write that began before the run (under the old view) is still
	// on its way to the shard when the run starts.
	putDone := make(chan error, 1)
	go func() {
		_, err := shard.Put(ctx, []store.Entry{{Key: "slow", Value: []byte("v"), Version: 1 << 40}})
		putDone <- err
	}()
	<-bp.entered
	runDone := make(chan Result, 1)
	go func() {
		res, err := m.Run(ctx, toB, "ring-change")
		if err != nil {
			t.Error(err)
		}
		runDone <- res
	}()
	time.Sleep(50 * time.Millisecond)
	if st := m.Status(); st.Scanned != 0 {
		t.Fatalf("the run scanned %d keys while a write was in flight; want it to wait", st.Scanned)
	}
	close(bp.release)
	if err := <-putDone; err != nil {
		t.Fatal(err)
	}
	res := <-runDone
	if res.Passes != 1 || res.Moved != 101 {
		t.Fatalf("result %+v, want the write found by the first pass: 1 pass, 101 moves", res)
	}
	if _, ok, _ := dst.Get(ctx, "slow"); !ok {
		t.Fatal("the write in flight at the run's start was not moved")
	}
}

func TestTrackedKeyRewrittenBeforeAckIsKeptAndMovedNext(t *testing.T) {
	ctx := context.Background()
	src, dst := newTestStore(t), newTestStore(t)
	fill(t, src, "k", 100, 10)
	const hot = "k-7"
	tr := newFakeTransport(map[string]store.Store{"b": dst})
	m := New("a", src, tr, Options{BatchSize: 16})
	shard := m.TrackWrites(src)
	var rewritten atomic.Bool
	tr.before = func(call int, peer string, entries []store.Entry) ([]ImportResult, error, bool) {
		for _, e := range entries {
			if e.Key == hot && rewritten.CompareAndSwap(false, true) {
				// A write under an older view lands after the read,
				// before the ack: the delete must keep it.
				if _, err := shard.Put(ctx, []store.Entry{{Key: hot, Value: []byte("new"), Version: 1 << 40}}); err != nil {
					t.Error(err)
				}
			}
		}
		return nil, nil, false
	}
	res, err := m.Run(ctx, toB, "ring-change")
	if err != nil {
		t.Fatal(err)
	}
	e, ok, err := dst.Get(ctx, hot)
	if err != nil || !ok || e.Version != 1<<40 || string(e.Value) != "new" {
		t.Fatalf("receiver holds %+v %v %v, want the rewritten version", e, ok, err)
	}
	if left := allEntries(t, src); len(left) != 0 {
		t.Fatalf("source still holds %+v", left)
	}
	if res.Moved != 101 {
		t.Fatalf("result %+v, want 101 moves", res)
	}
}
