package localtier

import (
	"sync"
	"testing"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/store"
)

func newTier(t *testing.T, owned bool) *Tier {
	t.Helper()
	tr, err := New(Options{MaxBytes: 1 << 20, Owned: owned, NearTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

func TestNilTierDoesNothing(t *testing.T) {
	var tr *Tier
	tr.NewEpoch()
	tr.Invalidate("k")
	tr.Publish("k", store.Entry{Key: "k", Value: []byte("v")}, 0)
	tr.FillNear("k", kv.Item{Value: []byte("v")}, time.Second, time.Now(), 0, 0)
	tr.FillNegative("k", time.Now().Add(time.Second), 0, 0)
	tr.CountCollapsed(Local)
	tr.CountForward()
	tr.CountOwnerRead()
	tr.HottestLocal(10, func(string, int) bool { t.Fatal("called"); return false })
	if tr.Epoch() != 0 || tr.Guard("k") != 0 || tr.Owned() || tr.NearOn() || tr.FillLocal("k", kv.Item{}, 0, 0) {
		t.Fatal("a nil tier claims state")
	}
	if _, ok := tr.Near("k", "o"); ok {
		t.Fatal("near hit on a nil tier")
	}
	if _, _, ok := tr.Local("k", "self"); ok {
		t.Fatal("local hit on a nil tier")
	}
	if s := tr.Stats(); s != (Stats{}) {
		t.Fatalf("stats %+v", s)
	}
	tr.Close()
}

// A fill whose guard moved (a change came in after the read began) stores
// nothing; one with the current guard does.
func TestGuardedFill(t *testing.T) {
	tr := newTier(t, true)
	g := tr.Guard("k")
	tr.Invalidate("k") // a change during the read
	if tr.FillLocal("k", kv.Item{Value: []byte("old"), Version: 1}, g, tr.Epoch()) {
		t.Fatal("a fill that raced a change was stored")
	}
	g = tr.Guard("k")
	if !tr.FillLocal("k", kv.Item{Value: []byte("new"), Version: 2}, g, tr.Epoch()) {
		t.Fatal("fill refused")
	}
	it, neg, ok := tr.Local("k", "self")
	if !ok || neg || string(it.Value) != "new" || it.Owner != "self" || it.Source != kv.SourceLocal {
		t.Fatalf("Local = %+v %v %v", it, neg, ok)
	}
	if s := tr.Stats(); s.Hits[Local] != 1 {
		t.Fatalf("hits %v", s.Hits)
	}
}

// A new epoch hides every earlier copy, and the purge it starts frees them.
func TestNewEpochDropsCopies(t *testing.T) {
	tr := newTier(t, true)
	ep := tr.Epoch()
	tr.FillLocal("a", kv.Item{Value: []byte("1"), Version: 1}, tr.Guard("a"), ep)
	tr.FillNear("b", kv.Item{Value: []byte("2"), Version: 1}, time.Minute, time.Now(), tr.Guard("b"), ep)
	if _, ok := tr.Near("b", "o"); !ok {
		t.Fatal("near copy missing")
	}
	tr.NewEpoch()
	if _, _, ok := tr.Local("a", "self"); ok {
		t.Fatal("a copy of the previous epoch was served")
	}
	if _, ok := tr.Near("b", "o"); ok {
		t.Fatal("a near copy of the previous epoch was served")
	}
	tr.Close() // waits for the purge
}

// A near copy expires with the owner's copy when that comes first, and
// reports the owner's expiry.
func TestFillNearExpiry(t *testing.T) {
	tr := newTier(t, false)
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	tr.FillNear("k", kv.Item{Value: []byte("v"), Version: 3, ExpireAt: exp}, time.Minute, time.Now(), tr.Guard("k"), tr.Epoch())
	it, ok := tr.Near("k", "owner")
	if !ok || !it.ExpireAt.Equal(exp) || it.Owner != "owner" || it.Source != kv.SourceNear {
		t.Fatalf("Near = %+v %v", it, ok)
	}
	if _, ok := tr.Lookup("k", false); ok {
		t.Fatal("a near copy answered as a local one")
	}
	if tr.FillLocal("k", kv.Item{Value: []byte("v")}, tr.Guard("k"), tr.Epoch()) {
		t.Fatal("a tier without owned copies stored a local one")
	}
}

// Publish replaces the copy with the write's value (its own buffer), and a
// delete drops it.
func TestPublish(t *testing.T) {
	tr := newTier(t, true)
	buf := []byte("v1")
	tr.Publish("k", store.Entry{Key: "k", Value: buf, Version: 5}, tr.Guard("k"))
	buf[0] = 'x' // the request's buffer is reused
	it, _, ok := tr.Local("k", "self")
	if !ok || string(it.Value) != "v1" || it.Version != 5 {
		t.Fatalf("after publish: %+v %v", it, ok)
	}
	tr.Publish("k", store.Entry{Key: "k", Tombstone: true, Version: 6}, tr.Guard("k"))
	if _, _, ok := tr.Local("k", "self"); ok {
		t.Fatal("a deleted key is still served")
	}
}

func TestNegativeAndHottest(t *testing.T) {
	tr := newTier(t, true)
	ep := tr.Epoch()
	tr.FillNegative("gone", time.Now().Add(time.Minute), tr.Guard("gone"), ep)
	if _, neg, ok := tr.Local("gone", "self"); !ok || !neg {
		t.Fatal("negative entry not served")
	}
	tr.FillLocal("mine", kv.Item{Value: []byte("12345")}, tr.Guard("mine"), ep)
	tr.FillNear("theirs", kv.Item{Value: []byte("x")}, time.Minute, time.Now(), tr.Guard("theirs"), ep)
	var got []string
	tr.HottestLocal(100, func(key string, size int) bool {
		got = append(got, key)
		if key == "mine" && size != len("mine")+5 {
			t.Errorf("size %d", size)
		}
		return true
	})
	if len(got) != 1 || got[0] != "mine" {
		t.Fatalf("HottestLocal = %v, want only the local copy", got)
	}
}

// Epoch changes racing Close neither leak a purge nor race the cache.
func TestNewEpochRacesClose(t *testing.T) {
	tr, err := New(Options{MaxBytes: 1 << 20, Owned: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				tr.NewEpoch()
			}
		})
	}
	tr.Close()
	wg.Wait()
}

func TestHitRatio(t *testing.T) {
	var none *Tier
	if none.HitRatio() != nil {
		t.Fatal("a node without a tier has a hit ratio")
	}
	tr := newTier(t, true)
	if r := tr.HitRatio(); r == nil || *r != 0 {
		t.Fatalf("before any lookup: %v", r)
	}
	tr.Local("k", "self")
	if r := tr.HitRatio(); *r != 0 {
		t.Fatalf("after a miss: %v", *r)
	}
	tr.FillLocal("k", kv.Item{Key: "k", Value: []byte("v")}, tr.Guard("k"), tr.Epoch())
	if _, _, ok := tr.Local("k", "self"); !ok {
		t.Fatal("no hit after the fill")
	}
	if r := tr.HitRatio(); *r != 0.5 {
		t.Fatalf("one hit, one miss: %v", *r)
	}
}
