// Package storetest is the conformance suite every store.Store
// implementation must pass.
//
// An implementation's test calls Run with a constructor that returns a
// fresh, empty store for each subtest:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			return store.NewMemory(store.MemoryOptions{})
//		})
//	}
//
// Time-based checks use the real clock: a store under test must use it.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peercache/peercache/store"
)

// Run runs the conformance suite against the stores newStore makes. newStore
// is called once per subtest and must return an empty store; Run closes it
// when the subtest ends.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"GetMissing", testGetMissing},
		{"RoundTrip", testRoundTrip},
		{"NoAliasing", testNoAliasing},
		{"Versions", testVersions},
		{"Versions64Bit", testVersions64Bit},
		{"Tombstones", testTombstones},
		{"ExpiredOnPut", testExpiredOnPut},
		{"ExpiryHonoured", testExpiryHonoured},
		{"NoExpiry", testNoExpiry},
		{"ExpireAtMillis", testExpireAtMillis},
		{"DuplicateKeysInBatch", testDuplicateKeysInBatch},
		{"LargeBatches", testLargeBatches},
		{"GetMany", testGetMany},
		{"DeleteIfVersion", testDeleteIfVersion},
		{"Delete", testDelete},
		{"ScanAll", testScanAll},
		{"ScanWhileChanging", testScanWhileChanging},
		{"Stats", testStats},
		{"Concurrency", testConcurrency},
		{"Invalid", testInvalid},
		{"ContextCancelled", testContextCancelled},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// ctxFor returns a context bounded for one subtest's calls.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func nowMs() int64 { return time.Now().UnixMilli() }

func put(t *testing.T, s store.Store, es ...store.Entry) []store.Outcome {
	t.Helper()
	out, err := s.Put(ctxFor(t), es)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if len(out) != len(es) {
		t.Fatalf("Put returned %d outcomes for %d entries", len(out), len(es))
	}
	return out
}

func put1(t *testing.T, s store.Store, e store.Entry) store.Outcome {
	t.Helper()
	return put(t, s, e)[0]
}

func wantOutcome(t *testing.T, s store.Store, e store.Entry, want store.Outcome) {
	t.Helper()
	if got := put1(t, s, e); got != want {
		t.Fatalf("Put(%q v%d) = %v, want %v", e.Key, e.Version, got, want)
	}
}

func get(t *testing.T, s store.Store, key string) (store.Entry, bool) {
	t.Helper()
	e, ok, err := s.Get(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return e, ok
}

func mustGet(t *testing.T, s store.Store, key string) store.Entry {
	t.Helper()
	e, ok := get(t, s, key)
	if !ok {
		t.Fatalf("Get(%q): not found", key)
	}
	return e
}

func wantMissing(t *testing.T, s store.Store, key string) {
	t.Helper()
	if e, ok := get(t, s, key); ok {
		t.Fatalf("Get(%q) = %+v, want not found", key, e)
	}
}

// sameEntry compares everything but treats nil and empty values alike.
func sameEntry(a, b store.Entry) bool {
	return a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.Version == b.Version &&
		a.ExpireAt == b.ExpireAt && a.Tombstone == b.Tombstone
}

func wantEntry(t *testing.T, s store.Store, want store.Entry) {
	t.Helper()
	got := mustGet(t, s, want.Key)
	if !sameEntry(got, want) {
		t.Fatalf("Get(%q) = %s, want %s", want.Key, show(got), show(want))
	}
}

func show(e store.Entry) string {
	v := e.Value
	if len(v) > 32 {
		v = v[:32]
	}
	return fmt.Sprintf("{key %q value %q (%d bytes) v%d exp %d tomb %v}", e.Key, v, len(e.Value), e.Version, e.ExpireAt, e.Tombstone)
}

func testGetMissing(t *testing.T, s store.Store) {
	wantMissing(t, s, "missing")
	es, found, err := s.GetMany(ctxFor(t), []string{"a", "b"})
	if err != nil || len(es) != 2 || len(found) != 2 || found[0] || found[1] {
		t.Fatalf("GetMany of missing keys = %v, %v, %v", es, found, err)
	}
}

func testRoundTrip(t *testing.T, s store.Store) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	large := make([]byte, 256<<10)
	for i := range large {
		large[i] = byte(rand.Uint32())
	}
	exp := nowMs() + time.Hour.Milliseconds()
	cases := []store.Entry{
		{Key: "text", Value: []byte("hello, world"), Version: 1},
		{Key: "binary", Value: binary, Version: 2, ExpireAt: exp},
		{Key: "empty", Value: []byte{}, Version: 3},
		{Key: "nil", Value: nil, Version: 4},
		{Key: "large", Value: large, Version: 5},
		{Key: "key with spaces/and:odd*chars?[x]\x00\xff", Value: []byte("v"), Version: 6},
		{Key: "ünïcödé-キー", Value: []byte("\x00\x00"), Version: 7},
	}
	for _, out := range put(t, s, cases...) {
		if out != store.Applied {
			t.Fatalf("Put outcomes: %v", out)
		}
	}
	for _, want := range cases {
		wantEntry(t, s, want)
	}
}

func testNoAliasing(t *testing.T, s store.Store) {
	v := []byte("original")
	wantOutcome(t, s, store.Entry{Key: "k", Value: v, Version: 1}, store.Applied)
	copy(v, "XXXXXXXX")
	got := mustGet(t, s, "k")
	if string(got.Value) != "original" {
		t.Fatalf("value changed with the caller's buffer: %q", got.Value)
	}
	copy(got.Value, "YYYYYYYY")
	if again := mustGet(t, s, "k"); string(again.Value) != "original" {
		t.Fatalf("value changed with a returned buffer: %q", again.Value)
	}
}

func testVersions(t *testing.T, s store.Store) {
	wantOutcome(t, s, store.Entry{Key: "k", Value: []byte("v10"), Version: 10}, store.Applied)
	wantOutcome(t, s, store.Entry{Key: "k", Value: []byte("v20"), Version: 20}, store.Applied)
	wantEntry(t, s, store.Entry{Key: "k", Value: []byte("v20"), Version: 20})
	wantOutcome(t, s, store.Entry{Key: "k", Value: []byte("v15"), Version: 15}, store.Stale)
	wantOutcome(t, s, store.Entry{Key: "k", Value: []byte("v20'"), Version: 20}, store.Stale)
	wantOutcome(t, s, store.Entry{Key: "k", Value: []byte("v1"), Version: 1}, store.Stale)
	wantEntry(t, s, store.Entry{Key: "k", Value: []byte("v20"), Version: 20})
}

// testVersions64Bit uses versions a float64 cannot tell apart and versions
// whose high bit differs (a signed comparison would get them wrong).
func testVersions64Bit(t *testing.T, s store.Store) {
	steps := []struct {
		v    uint64
		want store.Outcome
	}{
		{0x7FFFFFFFFFFFFFFF, store.Applied},
		{0x8000000000000000, store.Applied},
		{0x8000000000000001, store.Applied},
		{0x8000000000000000, store.Stale},
		{1<<63 + 1<<53 + 2, store.Applied},
		{1<<63 + 1<<53 + 1, store.Stale},
		{1<<63 + 1<<53 + 3, store.Applied},
		{0xFFFFFFFFFFFFFF00, store.Applied},
		{0xFFFFFFFFFFFFFEFF, store.Stale},
		{0xFFFFFFFFFFFFFFFE, store.Applied},
		{0xFFFFFFFFFFFFFFFF, store.Applied},
		{0xFFFFFFFFFFFFFFFF, store.Stale},
		{0xFFFFFFFFFFFFFFFE, store.Stale},
	}
	var last uint64
	for i, st := range steps {
		wantOutcome(t, s, store.Entry{Key: "k", Value: fmt.Appendf(nil, "step %d", i), Version: st.v}, st.want)
		if st.want == store.Applied {
			last = st.v
		}
		if got := mustGet(t, s, "k"); got.Version != last {
			t.Fatalf("step %d: stored version %#x, want %#x", i, got.Version, last)
		}
	}
	// Equal high halves, differing low bytes, on a fresh key.
	wantOutcome(t, s, store.Entry{Key: "k2", Value: []byte("a"), Version: 0x0102030405060708}, store.Applied)
	wantOutcome(t, s, store.Entry{Key: "k2", Value: []byte("b"), Version: 0x0102030405060707}, store.Stale)
	wantOutcome(t, s, store.Entry{Key: "k2", Value: []byte("c"), Version: 0x0102030405060709}, store.Applied)
	deleted, err := s.DeleteIfVersion(ctxFor(t), []string{"k", "k2", "k2"},
		[]uint64{0xFFFFFFFFFFFFFFFE, 0x0102030405060708, 0x0102030405060709})
	if err != nil || len(deleted) != 3 || deleted[0] || deleted[1] || !deleted[2] {
		t.Fatalf("DeleteIfVersion = %v, %v; want [false false true]", deleted, err)
	}
}

func testTombstones(t *testing.T, s store.Store) {
	exp := nowMs() + time.Hour.Milliseconds()
	wantOutcome(t, s, store.Entry{Key: "k", Value: []byte("v5"), Version: 5}, store.Applied)
	tomb := store.Entry{Key: "k", Version: 6, ExpireAt: exp, Tombstone: true}
	wantOutcome(t, s, tomb, store.Applied)
	wantEntry(t, s, tomb)
	wantOutcome(t, s, store.Entry{Key: "k", Value: []byte("v5"), Version: 5}, store.Stale)
	wantOutcome(t, s, store.Entry{Key: "k", Value: []byte("v6"), Version: 6}, store.Stale)
	wantEntry(t, s, tomb)
	wantOutcome(t, s, store.Entry{Key: "k", Value: []byte("v7"), Version: 7}, store.Applied)
	wantEntry(t, s, store.Entry{Key: "k", Value: []byte("v7"), Version: 7})

	// A tombstone for a key never seen blocks older writes too, and tombstones
	// are ordered among themselves.
	tomb2 := store.Entry{Key: "fresh", Version: 100, ExpireAt: exp, Tombstone: true}
	wantOutcome(t, s, tomb2, store.Applied)
	wantOutcome(t, s, store.Entry{Key: "fresh", Value: []byte("old"), Version: 99}, store.Stale)
	wantOutcome(t, s, store.Entry{Key: "fresh", Version: 99, ExpireAt: exp, Tombstone: true}, store.Stale)
	wantOutcome(t, s, store.Entry{Key: "fresh", Version: 101, ExpireAt: exp + 1, Tombstone: true}, store.Applied)
	wantEntry(t, s, store.Entry{Key: "fresh", Version: 101, ExpireAt: exp + 1, Tombstone: true})
}

func testExpiredOnPut(t *testing.T, s store.Store) {
	past := nowMs() - 1000
	wantOutcome(t, s, store.Entry{Key: "new", Value: []byte("x"), Version: 1, ExpireAt: past}, store.Expired)
	wantMissing(t, s, "new")
	wantOutcome(t, s, store.Entry{Key: "new", Version: 2, ExpireAt: past, Tombstone: true}, store.Expired)
	wantMissing(t, s, "new")

	// An expired newer copy leaves the stored older one alone.
	old := store.Entry{Key: "k", Value: []byte("old"), Version: 1}
	wantOutcome(t, s, old, store.Applied)
	wantOutcome(t, s, store.Entry{Key: "k", Value: []byte("new"), Version: 2, ExpireAt: past}, store.Expired)
	wantOutcome(t, s, store.Entry{Key: "k", Version: 3, ExpireAt: past, Tombstone: true}, store.Expired)
	wantEntry(t, s, old)
	// ExpireAt is exclusive: a record expiring at 1 ms (1970) is expired.
	wantOutcome(t, s, store.Entry{Key: "k", Value: []byte("epoch"), Version: 4, ExpireAt: 1}, store.Expired)
	wantEntry(t, s, old)
}

func testExpiryHonoured(t *testing.T, s store.Store) {
	exp := nowMs() + 150
	e := store.Entry{Key: "k", Value: []byte("short"), Version: 5, ExpireAt: exp}
	tomb := store.Entry{Key: "t", Version: 5, ExpireAt: exp, Tombstone: true}
	keep := store.Entry{Key: "keep", Value: []byte("long"), Version: 1, ExpireAt: exp + time.Hour.Milliseconds()}
	put(t, s, e, tomb, keep)
	if _, ok := get(t, s, "k"); !ok && nowMs() < exp {
		t.Fatal("entry gone before its ExpireAt")
	}
	// Expired records are invisible at once: no polling needed past ExpireAt.
	time.Sleep(time.Until(time.UnixMilli(exp + 150)))
	wantMissing(t, s, "k")
	wantMissing(t, s, "t")
	_, found, err := s.GetMany(ctxFor(t), []string{"k", "t", "keep"})
	if err != nil || found[0] || found[1] || !found[2] {
		t.Fatalf("GetMany after expiry: found %v, err %v; want [false false true]", found, err)
	}
	deleted, err := s.DeleteIfVersion(ctxFor(t), []string{"k"}, []uint64{5})
	if err != nil || deleted[0] {
		t.Fatalf("DeleteIfVersion of an expired record = %v, %v; want false", deleted, err)
	}
	// An expired record (or tombstone) no longer blocks older versions.
	wantOutcome(t, s, store.Entry{Key: "k", Value: []byte("again"), Version: 1}, store.Applied)
	wantOutcome(t, s, store.Entry{Key: "t", Value: []byte("again"), Version: 1}, store.Applied)
	wantEntry(t, s, keep)
}

func testNoExpiry(t *testing.T, s store.Store) {
	wantOutcome(t, s, store.Entry{Key: "k", Value: []byte("forever"), Version: 1}, store.Applied)
	if got := mustGet(t, s, "k"); got.ExpireAt != 0 {
		t.Fatalf("ExpireAt = %d, want 0", got.ExpireAt)
	}
	// A newer version without expiry clears the old expiry.
	exp := nowMs() + 200
	wantOutcome(t, s, store.Entry{Key: "j", Value: []byte("short"), Version: 1, ExpireAt: exp}, store.Applied)
	wantOutcome(t, s, store.Entry{Key: "j", Value: []byte("forever"), Version: 2}, store.Applied)
	time.Sleep(time.Until(time.UnixMilli(exp + 50)))
	wantEntry(t, s, store.Entry{Key: "j", Value: []byte("forever"), Version: 2})
}

func testExpireAtMillis(t *testing.T, s store.Store) {
	base := (nowMs()/1000)*1000 + time.Hour.Milliseconds()
	es := []store.Entry{
		{Key: "a", Value: []byte("a"), Version: 1, ExpireAt: base + 1},
		{Key: "b", Value: []byte("b"), Version: 1, ExpireAt: base + 123},
		{Key: "c", Value: []byte("c"), Version: 1, ExpireAt: base + 999},
		{Key: "d", Version: 1, ExpireAt: base + 7, Tombstone: true},
		{Key: "far", Value: []byte("far"), Version: 1, ExpireAt: store.MaxExpireAt},
	}
	put(t, s, es...)
	for _, e := range es {
		wantEntry(t, s, e)
	}
}

func testDuplicateKeysInBatch(t *testing.T, s store.Store) {
	out := put(t, s,
		store.Entry{Key: "k", Value: []byte("1"), Version: 1},
		store.Entry{Key: "k", Value: []byte("3"), Version: 3},
		store.Entry{Key: "k", Value: []byte("2"), Version: 2},
		store.Entry{Key: "k", Value: []byte("3'"), Version: 3},
	)
	want := []store.Outcome{store.Applied, store.Applied, store.Stale, store.Stale}
	for i := range want {
		if out[i] != want[i] {
			t.Fatalf("outcomes = %v, want %v", out, want)
		}
	}
	wantEntry(t, s, store.Entry{Key: "k", Value: []byte("3"), Version: 3})
}

func testLargeBatches(t *testing.T, s store.Store) {
	const n = 2500
	es := make([]store.Entry, n)
	keys := make([]string, n)
	versions := make([]uint64, n)
	for i := range es {
		keys[i] = fmt.Sprintf("key-%05d", i)
		versions[i] = uint64(i + 1)
		es[i] = store.Entry{Key: keys[i], Value: fmt.Appendf(nil, "value-%d", i), Version: versions[i]}
	}
	for i, o := range put(t, s, es...) {
		if o != store.Applied {
			t.Fatalf("entry %d: %v", i, o)
		}
	}
	for i, o := range put(t, s, es...) {
		if o != store.Stale {
			t.Fatalf("second put, entry %d: %v", i, o)
		}
	}
	got, found, err := s.GetMany(ctxFor(t), keys)
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	for i := range es {
		if !found[i] || !sameEntry(got[i], es[i]) {
			t.Fatalf("GetMany[%d] = %s (found %v), want %s", i, show(got[i]), found[i], show(es[i]))
		}
	}
	deleted, err := s.DeleteIfVersion(ctxFor(t), keys, versions)
	if err != nil {
		t.Fatalf("DeleteIfVersion: %v", err)
	}
	for i, d := range deleted {
		if !d {
			t.Fatalf("key %d not deleted", i)
		}
	}
	_, found, err = s.GetMany(ctxFor(t), keys)
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	for i, f := range found {
		if f {
			t.Fatalf("key %d still found after delete", i)
		}
	}
}

func testGetMany(t *testing.T, s store.Store) {
	a := store.Entry{Key: "a", Value: []byte("A"), Version: 1}
	c := store.Entry{Key: "c", Version: 2, ExpireAt: nowMs() + time.Hour.Milliseconds(), Tombstone: true}
	put(t, s, a, c)
	keys := []string{"a", "b", "c", "a", "zz"}
	got, found, err := s.GetMany(ctxFor(t), keys)
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if len(got) != len(keys) || len(found) != len(keys) {
		t.Fatalf("GetMany returned %d entries and %d flags for %d keys", len(got), len(found), len(keys))
	}
	wantFound := []bool{true, false, true, true, false}
	wantEntries := []store.Entry{a, {}, c, a, {}}
	for i := range keys {
		if found[i] != wantFound[i] || (found[i] && !sameEntry(got[i], wantEntries[i])) {
			t.Fatalf("GetMany[%d] (%q) = %s, %v; want %s, %v", i, keys[i], show(got[i]), found[i], show(wantEntries[i]), wantFound[i])
		}
	}
	got, found, err = s.GetMany(ctxFor(t), nil)
	if err != nil || len(got) != 0 || len(found) != 0 {
		t.Fatalf("GetMany(nil) = %v, %v, %v", got, found, err)
	}
}

func testDelete(t *testing.T, s store.Store) {
	exp := nowMs() + time.Hour.Milliseconds()
	put(t, s,
		store.Entry{Key: "a", Value: []byte("a"), Version: 5},
		store.Entry{Key: "b", Value: []byte("b"), Version: 5},
		store.Entry{Key: "t", Version: 9, ExpireAt: exp, Tombstone: true},
	)
	if err := s.Delete(ctxFor(t), []string{"a", "missing", "t", "a"}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantMissing(t, s, "a")
	wantMissing(t, s, "t")
	wantEntry(t, s, store.Entry{Key: "b", Value: []byte("b"), Version: 5})
	// Once deleted, an older version may be written again (no tombstone left).
	wantOutcome(t, s, store.Entry{Key: "a", Value: []byte("a1"), Version: 1}, store.Applied)
	if err := s.Delete(ctxFor(t), nil); err != nil {
		t.Fatalf("Delete(nil) = %v", err)
	}
	keys := make([]string, 2500) // more than one Redis batch
	entries := make([]store.Entry, len(keys))
	for i := range keys {
		keys[i] = fmt.Sprintf("many-%d", i)
		entries[i] = store.Entry{Key: keys[i], Value: []byte("v"), Version: 1}
	}
	put(t, s, entries...)
	if err := s.Delete(ctxFor(t), keys); err != nil {
		t.Fatalf("Delete of %d keys: %v", len(keys), err)
	}
	for _, k := range []string{keys[0], keys[1500], keys[2499]} {
		wantMissing(t, s, k)
	}
}

func testDeleteIfVersion(t *testing.T, s store.Store) {
	exp := nowMs() + time.Hour.Milliseconds()
	put(t, s,
		store.Entry{Key: "a", Value: []byte("a"), Version: 5},
		store.Entry{Key: "b", Value: []byte("b"), Version: 5},
		store.Entry{Key: "c", Value: []byte("c"), Version: 5},
		store.Entry{Key: "t", Version: 9, ExpireAt: exp, Tombstone: true},
	)
	keys := []string{"a", "b", "c", "missing", "t"}
	deleted, err := s.DeleteIfVersion(ctxFor(t), keys, []uint64{5, 4, 6, 1, 9})
	if err != nil {
		t.Fatalf("DeleteIfVersion: %v", err)
	}
	want := []bool{true, false, false, false, true}
	for i := range want {
		if deleted[i] != want[i] {
			t.Fatalf("DeleteIfVersion = %v, want %v", deleted, want)
		}
	}
	wantMissing(t, s, "a")
	wantMissing(t, s, "t")
	wantEntry(t, s, store.Entry{Key: "b", Value: []byte("b"), Version: 5})
	wantEntry(t, s, store.Entry{Key: "c", Value: []byte("c"), Version: 5})
	// Once deleted, an older version may be written again (no tombstone left).
	wantOutcome(t, s, store.Entry{Key: "a", Value: []byte("a1"), Version: 1}, store.Applied)
	deleted, err = s.DeleteIfVersion(ctxFor(t), nil, nil)
	if err != nil || len(deleted) != 0 {
		t.Fatalf("DeleteIfVersion(nil) = %v, %v", deleted, err)
	}
}

// scanAll runs a full scan and counts how often each key came back.
func scanAll(ctx context.Context, s store.Store, count int) (map[string]int, int, error) {
	seen := make(map[string]int)
	calls := 0
	var cursor uint64
	for {
		keys, next, err := s.Scan(ctx, cursor, count)
		if err != nil {
			return nil, calls, err
		}
		calls++
		for _, k := range keys {
			seen[k]++
		}
		if next == 0 {
			return seen, calls, nil
		}
		if next >= store.ScanCursorLimit {
			return nil, calls, fmt.Errorf("scan cursor %d beyond store.ScanCursorLimit", next)
		}
		cursor = next
		if calls > 10_000_000 {
			return nil, calls, errors.New("scan does not end")
		}
	}
}

func putKeys(t *testing.T, s store.Store, prefix string, n int) []string {
	t.Helper()
	keys := make([]string, n)
	es := make([]store.Entry, n)
	for i := range es {
		keys[i] = fmt.Sprintf("%s%d", prefix, i)
		es[i] = store.Entry{Key: keys[i], Value: []byte("v"), Version: 1}
	}
	put(t, s, es...)
	return keys
}

func testScanAll(t *testing.T, s store.Store) {
	seen, _, err := scanAll(ctxFor(t), s, 10)
	if err != nil || len(seen) != 0 {
		t.Fatalf("scan of an empty store = %v, %v", seen, err)
	}
	keys := putKeys(t, s, "key-", 5000)
	put(t, s, store.Entry{Key: "tomb", Version: 1, ExpireAt: nowMs() + time.Hour.Milliseconds(), Tombstone: true})
	keys = append(keys, "tomb")
	for _, count := range []int{7, 1000, 0} {
		seen, calls, err := scanAll(ctxFor(t), s, count)
		if err != nil {
			t.Fatalf("scan (count %d): %v", count, err)
		}
		for _, k := range keys {
			if seen[k] == 0 {
				t.Fatalf("scan (count %d, %d calls) missed %q", count, calls, k)
			}
		}
		if len(seen) != len(keys) {
			t.Fatalf("scan (count %d) returned %d distinct keys, want %d", count, len(seen), len(keys))
		}
		if count == 7 && calls < 5000/7/10 {
			t.Fatalf("scan with count 7 took only %d calls for 5001 keys", calls)
		}
	}
}

func testScanWhileChanging(t *testing.T, s store.Store) {
	stable := putKeys(t, s, "stable-", 5000)
	churn := putKeys(t, s, "churn-", 2000)

	ctx, cancel := context.WithCancel(ctxFor(t))
	var wg sync.WaitGroup
	var churnErr atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := make(map[string]uint64, len(churn))
		for _, k := range churn {
			last[k] = 1
		}
		for i := 0; ctx.Err() == nil; i++ {
			k := churn[i%len(churn)]
			var err error
			if v := last[k]; v != 0 && i%3 == 0 {
				_, err = s.DeleteIfVersion(ctx, []string{k}, []uint64{v})
				last[k] = 0
			} else {
				last[k] = uint64(i + 2)
				_, err = s.Put(ctx, []store.Entry{
					{Key: k, Value: []byte("w"), Version: last[k]},
					{Key: fmt.Sprintf("new-%d", i), Value: []byte("n"), Version: 1},
				})
			}
			if err != nil && ctx.Err() == nil {
				churnErr.Store(err)
				return
			}
		}
	}()
	var (
		seen map[string]int
		err  error
	)
	for round := 0; round < 2 && err == nil; round++ {
		seen, _, err = scanAll(ctx, s, 13)
		for _, k := range stable {
			if err == nil && seen[k] == 0 {
				err = fmt.Errorf("round %d: scan missed stable key %q", round, k)
			}
		}
	}
	cancel()
	wg.Wait()
	if e := churnErr.Load(); e != nil {
		t.Fatalf("churn: %v", e)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func testStats(t *testing.T, s store.Store) {
	st0, err := s.Stats(ctxFor(t))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st0.Keys < 0 || st0.Bytes < 0 {
		t.Fatalf("Stats of an empty store = %+v", st0)
	}
	putKeys(t, s, "k", 300)
	st, err := s.Stats(ctxFor(t))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.Keys < 300 || st.Bytes <= 0 {
		t.Fatalf("Stats after 300 puts = %+v, want Keys >= 300 and Bytes > 0", st)
	}
	if err := s.Ping(ctxFor(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// testConcurrency races writers, readers and scanners over a few keys and
// then checks that each key holds the highest version any Put reported as
// applied. (A Put of v can only apply while the stored version is below v, so
// once the highest applied version is stored nothing can replace it.)
func testConcurrency(t *testing.T, s store.Store) {
	const (
		workers = 4
		ops     = 300
		nkeys   = 16
	)
	ctx := ctxFor(t)
	var clock atomic.Uint64
	var mu sync.Mutex
	applied := make(map[string]uint64) // highest applied version per key
	var wg sync.WaitGroup
	errs := make(chan error, workers*2)
	for w := 0; w < workers; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < ops; i++ {
				k := fmt.Sprintf("k%d", rand.IntN(nkeys))
				v := clock.Add(1)
				e := store.Entry{Key: k, Value: fmt.Appendf(nil, "%d", v), Version: v}
				if i%10 == 0 {
					e = store.Entry{Key: k, Version: v, ExpireAt: nowMs() + time.Hour.Milliseconds(), Tombstone: true}
				}
				out, err := s.Put(ctx, []store.Entry{e})
				if err == nil && out[0] == store.Applied {
					mu.Lock()
					applied[k] = max(applied[k], v)
					mu.Unlock()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < ops; i++ {
				k := fmt.Sprintf("k%d", rand.IntN(nkeys))
				var err error
				switch i % 4 {
				case 0:
					var e store.Entry
					var ok bool
					e, ok, err = s.Get(ctx, k)
					if err == nil && ok && !e.Tombstone && string(e.Value) != fmt.Sprint(e.Version) {
						err = fmt.Errorf("torn read of %q: value %q, version %d", k, e.Value, e.Version)
					}
				case 1:
					_, _, err = s.GetMany(ctx, []string{k, "k0", "k1"})
				case 2:
					_, _, err = s.Scan(ctx, 0, 5)
				case 3:
					// A version that never matches: a no-op that still races.
					_, err = s.DeleteIfVersion(ctx, []string{k}, []uint64{1 << 62})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k, v := range applied {
		if got := mustGet(t, s, k); got.Version != v {
			t.Fatalf("%q holds version %d, want the last applied %d", k, got.Version, v)
		}
	}
}

func testInvalid(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	exp := nowMs() + time.Hour.Milliseconds()
	good := store.Entry{Key: "good", Value: []byte("g"), Version: 1}
	bad := []store.Entry{
		{Key: "", Value: []byte("x"), Version: 1},
		{Key: "k", Value: []byte("x"), Version: 0},
		{Key: "k", Value: []byte("x"), Version: 1, ExpireAt: -5},
		{Key: "k", Value: []byte("x"), Version: 1, ExpireAt: store.MaxExpireAt + 1},
		{Key: "k", Version: 1, Tombstone: true},
		{Key: "k", Value: []byte("x"), Version: 1, ExpireAt: exp, Tombstone: true},
	}
	for i, b := range bad {
		// The valid entry before the invalid one must not be written either.
		out, err := s.Put(ctx, []store.Entry{good, b})
		if !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad entry %d %s: Put = %v, %v; want ErrInvalid", i, show(b), out, err)
		}
	}
	wantMissing(t, s, "good")
	if _, _, err := s.Get(ctx, ""); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Get(\"\") error = %v, want ErrInvalid", err)
	}
	if _, _, err := s.GetMany(ctx, []string{"a", ""}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("GetMany with an empty key: error = %v, want ErrInvalid", err)
	}
	if _, err := s.DeleteIfVersion(ctx, []string{"a", "b"}, []uint64{1}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("DeleteIfVersion with mismatched lengths: error = %v, want ErrInvalid", err)
	}
	if err := s.Delete(ctx, []string{"a", ""}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Delete with an empty key: error = %v, want ErrInvalid", err)
	}
	if _, err := s.DeleteIfVersion(ctx, []string{""}, []uint64{1}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("DeleteIfVersion with an empty key: error = %v, want ErrInvalid", err)
	}
	if _, err := s.DeleteIfVersion(ctx, []string{"a"}, []uint64{0}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("DeleteIfVersion with version 0: error = %v, want ErrInvalid", err)
	}
}

func testContextCancelled(t *testing.T, s store.Store) {
	put(t, s, store.Entry{Key: "k", Value: []byte("v"), Version: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s with a cancelled context: error = %v, want context.Canceled", op, err)
		}
	}
	_, _, err := s.Get(ctx, "k")
	check("Get", err)
	_, _, err = s.GetMany(ctx, []string{"k"})
	check("GetMany", err)
	_, err = s.Put(ctx, []store.Entry{{Key: "k", Value: []byte("v2"), Version: 2}})
	check("Put", err)
	_, err = s.DeleteIfVersion(ctx, []string{"k"}, []uint64{1})
	check("DeleteIfVersion", err)
	check("Delete", s.Delete(ctx, []string{"k"}))
	_, _, err = s.Scan(ctx, 0, 10)
	check("Scan", err)
	wantEntry(t, s, store.Entry{Key: "k", Value: []byte("v"), Version: 1})
}

func testClose(t *testing.T, s store.Store) {
	put(t, s, store.Entry{Key: "k", Value: []byte("v"), Version: 1})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := ctxFor(t)
	_, _, err := s.Get(ctx, "k")
	if !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get after Close: error = %v, want ErrClosed", err)
	}
	_, err = s.Put(ctx, []store.Entry{{Key: "k", Value: []byte("v2"), Version: 2}})
	if !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Put after Close: error = %v, want ErrClosed", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Ping after Close: error = %v, want ErrClosed", err)
	}
}
