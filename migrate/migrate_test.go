package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peercache/peercache/store"
)

// newTestStore returns an empty shard for a test.
func newTestStore(tb testing.TB) store.Store {
	tb.Helper()
	s := store.NewMemory(store.MemoryOptions{})
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// fakeTransport imports into per-peer stores with store.Put semantics and
// records what it was sent. before, if set, runs first and may answer the
// call itself (handled == true).
type fakeTransport struct {
	peers map[string]store.Store
	delay time.Duration

	before func(call int, peer string, entries []store.Entry) (res []ImportResult, err error, handled bool)

	calls, inflight, maxInflight, entriesSent atomic.Int64

	mu   sync.Mutex
	sent map[string][]store.Entry // key -> every copy sent, in order
}

func newFakeTransport(peers map[string]store.Store) *fakeTransport {
	return &fakeTransport{peers: peers, sent: make(map[string][]store.Entry)}
}

func (f *fakeTransport) Import(ctx context.Context, peer string, entries []store.Entry) ([]ImportResult, error) {
	call := int(f.calls.Add(1))
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.maxInflight.Load()
		if n <= m || f.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	f.entriesSent.Add(int64(len(entries)))
	f.mu.Lock()
	for _, e := range entries {
		f.sent[e.Key] = append(f.sent[e.Key], e)
	}
	f.mu.Unlock()
	if f.delay > 0 {
		if err := sleep(ctx, f.delay); err != nil {
			return nil, err
		}
	}
	if f.before != nil {
		if res, err, ok := f.before(call, peer, entries); ok {
			return res, err
		}
	}
	dst, ok := f.peers[peer]
	if !ok {
		return nil, fmt.Errorf("unknown peer %q", peer)
	}
	outs, err := dst.Put(ctx, entries)
	if err != nil {
		return nil, err
	}
	res := make([]ImportResult, len(outs))
	for i, o := range outs {
		res[i] = FromOutcome(o)
	}
	return res, nil
}

func (f *fakeTransport) sentCopies(key string) []store.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.Entry(nil), f.sent[key]...)
}

// hashPlacement spreads keys over nodes by FNV hash; keys starting with
// "orphan-" have no owner.
func hashPlacement(nodes ...string) PlacementFunc {
	return func(key string) string {
		if strings.HasPrefix(key, "orphan-") {
			return ""
		}
		h := fnv.New32a()
		h.Write([]byte(key))
		return nodes[h.Sum32()%uint32(len(nodes))]
	}
}

// fill writes n keys named prefix-i: every 5th a tombstone, every 3rd with
// an expiry an hour ahead, the rest without expiry.
func fill(tb testing.TB, s store.Store, prefix string, n int, valueSize int) []store.Entry {
	tb.Helper()
	exp := time.Now().Add(time.Hour).UnixMilli()
	es := make([]store.Entry, 0, n)
	for i := range n {
		e := store.Entry{Key: fmt.Sprintf("%s-%d", prefix, i), Version: uint64(1000 + i)}
		switch {
		case i%5 == 0:
			e.Tombstone, e.ExpireAt = true, exp
		case i%3 == 0:
			e.Value, e.ExpireAt = bytes.Repeat([]byte{byte(i)}, valueSize), exp
		default:
			e.Value = bytes.Repeat([]byte{byte(i)}, valueSize)
		}
		es = append(es, e)
	}
	ctx := context.Background()
	for len(es) > 0 {
		chunk := es[:min(len(es), 1000)]
		outs, err := s.Put(ctx, chunk)
		if err != nil {
			tb.Fatal(err)
		}
		for i, o := range outs {
			if o != store.Applied {
				tb.Fatalf("fill %s: %v", chunk[i].Key, o)
			}
		}
		es = es[len(chunk):]
	}
	return allEntries(tb, s)
}

// allEntries returns every live entry of s, keyed by scan.
func allEntries(tb testing.TB, s store.Store) []store.Entry {
	tb.Helper()
	ctx := context.Background()
	seen := make(map[string]bool)
	var keys []string
	var cursor uint64
	for {
		ks, next, err := s.Scan(ctx, cursor, 500)
		if err != nil {
			tb.Fatal(err)
		}
		for _, k := range ks {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	es, found, err := s.GetMany(ctx, keys)
	if err != nil {
		tb.Fatal(err)
	}
	var out []store.Entry
	for i := range es {
		if found[i] {
			out = append(out, es[i])
		}
	}
	return out
}

func byKey(es []store.Entry) map[string]store.Entry {
	m := make(map[string]store.Entry, len(es))
	for _, e := range es {
		m[e.Key] = e
	}
	return m
}

func sameEntry(a, b store.Entry) bool {
	return a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.Version == b.Version &&
		a.ExpireAt == b.ExpireAt && a.Tombstone == b.Tombstone
}

func TestMovesExactlyTheKeysWhoseOwnerChanged(t *testing.T) {
	ctx := context.Background()
	src, b, c := newTestStore(t), newTestStore(t), newTestStore(t)
	fill(t, src, "k", 2000, 20)
	fill(t, src, "orphan", 50, 20)
	orig := byKey(allEntries(t, src))
	p := hashPlacement("a", "b", "c")
	tr := newFakeTransport(map[string]store.Store{"b": b, "c": c})
	m := New("a", src, tr, Options{BatchSize: 64, Workers: 3, ScanCount: 100})

	res, err := m.Run(ctx, p, "ring-change")
	if err != nil {
		t.Fatal(err)
	}

	want := map[string]map[string]store.Entry{"a": {}, "b": {}, "c": {}, "": {}}
	for k, e := range orig {
		want[p.Owner(k)][k] = e
	}
	check := func(name string, s store.Store, want ...map[string]store.Entry) {
		t.Helper()
		got := byKey(allEntries(t, s))
		n := 0
		for _, w := range want {
			n += len(w)
			for k, e := range w {
				if g, ok := got[k]; !ok || !sameEntry(g, e) {
					t.Errorf("%s: key %s = %+v (present %v), want %+v", name, k, g, ok, e)
				}
			}
		}
		if len(got) != n {
			t.Errorf("%s holds %d keys, want %d", name, len(got), n)
		}
	}
	check("source", src, want["a"], want[""])
	check("b", b, want["b"])
	check("c", c, want["c"])

	moved := int64(len(want["b"]) + len(want["c"]))
	if res.Moved != moved || res.Planned != moved || res.Failed != 0 || res.Stale != 0 || res.Dropped != 0 {
		t.Errorf("result %+v, want moved=planned=%d", res, moved)
	}
	if res.Passes != 2 {
		t.Errorf("passes = %d, want 2 (one moving, one clean)", res.Passes)
	}
	if res.Scanned < int64(len(orig)) {
		t.Errorf("scanned %d < %d keys", res.Scanned, len(orig))
	}
	if res.Bytes <= 0 || res.Reason != "ring-change" || res.Error != "" {
		t.Errorf("result %+v", res)
	}
	// Nothing owned by self or by nobody was ever sent.
	for k := range want["a"] {
		if len(tr.sentCopies(k)) != 0 {
			t.Fatalf("key %s owned by self was sent", k)
		}
	}
	for k := range want[""] {
		if len(tr.sentCopies(k)) != 0 {
			t.Fatalf("key %s without owner was sent", k)
		}
	}
}

func TestNothingToMove(t *testing.T) {
	src := newTestStore(t)
	fill(t, src, "orphan", 100, 10)
	tr := newFakeTransport(nil)
	res, err := New("a", src, tr, Options{}).Run(context.Background(), hashPlacement("a"), "ring-change")
	if err != nil {
		t.Fatal(err)
	}
	if res.Passes != 1 || res.Planned != 0 || tr.calls.Load() != 0 || len(allEntries(t, src)) != 100 {
		t.Fatalf("result %+v, calls %d", res, tr.calls.Load())
	}
}

func TestKeyRewrittenBeforeAckIsKeptAndMovedNext(t *testing.T) {
	ctx := context.Background()
	src, dst := newTestStore(t), newTestStore(t)
	fill(t, src, "k", 100, 10)
	const hot = "k-7"
	var rewritten atomic.Bool
	tr := newFakeTransport(map[string]store.Store{"b": dst})
	tr.before = func(call int, peer string, entries []store.Entry) ([]ImportResult, error, bool) {
		for _, e := range entries {
			if e.Key == hot && rewritten.CompareAndSwap(false, true) {
				// A local write lands after the read, before the ack.
				if _, err := src.Put(ctx, []store.Entry{{Key: hot, Value: []byte("new"), Version: 1 << 40}}); err != nil {
					t.Error(err)
				}
			}
		}
		return nil, nil, false
	}
	res, err := New("a", src, tr, Options{BatchSize: 16}).Run(ctx, PlacementFunc(func(string) string { return "b" }), "ring-change")
	if err != nil {
		t.Fatal(err)
	}
	copies := tr.sentCopies(hot)
	if len(copies) != 2 || copies[0].Version != 1007 || copies[1].Version != 1<<40 || string(copies[1].Value) != "new" {
		t.Fatalf("copies of %s sent: %+v; want the old version, then the rewritten one", hot, copies)
	}
	e, ok, err := dst.Get(ctx, hot)
	if err != nil || !ok || e.Version != 1<<40 || string(e.Value) != "new" {
		t.Fatalf("receiver holds %+v %v %v, want the rewritten version", e, ok, err)
	}
	if left := allEntries(t, src); len(left) != 0 {
		t.Fatalf("source still holds %d keys", len(left))
	}
	if res.Passes != 3 || res.Moved != 101 {
		t.Fatalf("result %+v, want 3 passes and 101 moves", res)
	}
}

func TestExpiredKeysAreDroppedNotSent(t *testing.T) {
	ctx := context.Background()
	src, dst := newTestStore(t), newTestStore(t)
	soon := time.Now().Add(10 * time.Second).UnixMilli()
	later := time.Now().Add(time.Hour).UnixMilli()
	var es []store.Entry
	for i := range 40 {
		e := store.Entry{Key: fmt.Sprintf("k-%d", i), Value: []byte("v"), Version: 1, ExpireAt: later}
		if i%2 == 0 {
			e.ExpireAt = soon // expired by the migrator's clock
		}
		if i%4 == 0 {
			e.Value, e.Tombstone = nil, true
		}
		es = append(es, e)
	}
	if _, err := src.Put(ctx, es); err != nil {
		t.Fatal(err)
	}
	tr := newFakeTransport(map[string]store.Store{"b": dst})
	clock := func() time.Time { return time.Now().Add(time.Minute) }
	res, err := New("a", src, tr, Options{Now: clock, BatchSize: 8}).Run(ctx, PlacementFunc(func(string) string { return "b" }), "ring-change")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		sent := len(tr.sentCopies(e.Key))
		if e.ExpireAt == soon && sent != 0 {
			t.Errorf("expired %s was sent", e.Key)
		}
		if e.ExpireAt == later && sent != 1 {
			t.Errorf("live %s sent %d times", e.Key, sent)
		}
	}
	if left := allEntries(t, src); len(left) != 0 {
		t.Fatalf("source still holds %v", left)
	}
	if got := allEntries(t, dst); len(got) != 20 {
		t.Fatalf("receiver holds %d keys, want 20", len(got))
	}
	if res.Dropped != 20 || res.Moved != 20 {
		t.Fatalf("result %+v, want 20 dropped, 20 moved", res)
	}
}

func TestReceiverHoldingNewerKeepsItAndSenderDeletes(t *testing.T) {
	ctx := context.Background()
	src, dst := newTestStore(t), newTestStore(t)
	fill(t, src, "k", 50, 10)
	newer := []store.Entry{
		{Key: "k-1", Value: []byte("newer"), Version: 5000},
		{Key: "k-2", Version: 5000, Tombstone: true, ExpireAt: time.Now().Add(time.Hour).UnixMilli()},
		{Key: "k-3", Value: []byte("same"), Version: 1003}, // same version counts as held
	}
	if _, err := dst.Put(ctx, newer); err != nil {
		t.Fatal(err)
	}
	tr := newFakeTransport(map[string]store.Store{"b": dst})
	res, err := New("a", src, tr, Options{}).Run(ctx, PlacementFunc(func(string) string { return "b" }), "ring-change")
	if err != nil {
		t.Fatal(err)
	}
	got := byKey(allEntries(t, dst))
	for _, e := range newer {
		if !sameEntry(got[e.Key], e) {
			t.Errorf("receiver's %s = %+v, want its own %+v", e.Key, got[e.Key], e)
		}
	}
	if left := allEntries(t, src); len(left) != 0 {
		t.Fatalf("source still holds %d keys", len(left))
	}
	if res.Stale != 3 || res.Moved != 47 {
		t.Fatalf("result %+v, want 3 stale, 47 moved", res)
	}
}

func TestRefusalsAndErrorsAreRetried(t *testing.T) {
	ctx := context.Background()
	src, dst := newTestStore(t), newTestStore(t)
	fill(t, src, "k", 300, 10)
	tr := newFakeTransport(map[string]store.Store{"b": dst})
	tr.before = func(call int, peer string, entries []store.Entry) ([]ImportResult, error, bool) {
		switch {
		case call <= 2:
			return nil, errors.New("connection refused"), true
		case call <= 6:
			// The receiver's ring is not updated yet for half the keys.
			outs, err := dst.Put(ctx, entries[:len(entries)/2])
			if err != nil {
				return nil, err, true
			}
			res := make([]ImportResult, len(entries))
			for i := range res {
				res[i] = Refused
				if i < len(outs) {
					res[i] = FromOutcome(outs[i])
				}
			}
			return res, nil, true
		case call == 7:
			return []ImportResult{Acked}, nil, true // wrong length: an error
		}
		return nil, nil, false
	}
	res, err := New("a", src, tr, Options{BatchSize: 100}).Run(ctx, PlacementFunc(func(string) string { return "b" }), "ring-change")
	if err != nil {
		t.Fatal(err)
	}
	if left := allEntries(t, src); len(left) != 0 {
		t.Fatalf("source still holds %d keys", len(left))
	}
	if got := allEntries(t, dst); len(got) != 300 {
		t.Fatalf("receiver holds %d keys", len(got))
	}
	if res.Retries == 0 || res.Failed != 0 || res.Moved != 300 {
		t.Fatalf("result %+v", res)
	}
}

func TestStoreScanErrorIsRetried(t *testing.T) {
	ctx := context.Background()
	src, dst := newTestStore(t), newTestStore(t)
	fill(t, src, "k", 100, 10)
	flaky := &flakyScan{Store: src}
	flaky.fails.Store(2)
	tr := newFakeTransport(map[string]store.Store{"b": dst})
	res, err := New("a", flaky, tr, Options{ScanCount: 10}).Run(ctx, PlacementFunc(func(string) string { return "b" }), "ring-change")
	if err != nil {
		t.Fatal(err)
	}
	if left := allEntries(t, src); len(left) != 0 || res.Moved != 100 {
		t.Fatalf("source holds %d keys, result %+v", len(left), res)
	}
}

type flakyScan struct {
	store.Store
	fails atomic.Int64
}

func (f *flakyScan) Scan(ctx context.Context, cursor uint64, count int) ([]string, uint64, error) {
	if cursor != 0 && f.fails.Add(-1) >= 0 {
		return nil, 0, errors.New("connection reset")
	}
	return f.Store.Scan(ctx, cursor, count)
}

func TestCancelStopsPromptlyAndReportsFailed(t *testing.T) {
	src := newTestStore(t)
	fill(t, src, "k", 200, 10)
	tr := newFakeTransport(nil)
	tr.before = func(_ int, _ string, entries []store.Entry) ([]ImportResult, error, bool) {
		res := make([]ImportResult, len(entries))
		for i := range res {
			res[i] = Refused
		}
		return res, nil, true
	}
	ctx, cancel := context.WithCancel(context.Background())
	var canceledAt atomic.Int64
	time.AfterFunc(700*time.Millisecond, func() { // inside a backoff sleep or a retry round
		canceledAt.Store(time.Now().UnixNano())
		cancel()
	})
	m := New("a", src, tr, Options{BatchSize: 50})
	res, err := m.Run(ctx, PlacementFunc(func(string) string { return "b" }), "ring-change")
	if late := time.Since(time.Unix(0, canceledAt.Load())); late > time.Second {
		t.Errorf("Run returned %v after cancel", late)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if res.Failed != 200 || res.Moved != 0 || res.Retries == 0 || res.Error == "" {
		t.Fatalf("result %+v", res)
	}
	if len(allEntries(t, src)) != 200 {
		t.Fatal("refused keys were deleted")
	}
	if st := m.Status(); st.Active || st.Last == nil || st.Last.Failed != 200 {
		t.Fatalf("status %+v", st)
	}
}

func TestWorkersBoundConcurrency(t *testing.T) {
	src := newTestStore(t)
	fill(t, src, "k", 1000, 10)
	peers := map[string]store.Store{"b": newTestStore(t), "c": newTestStore(t), "d": newTestStore(t)}
	tr := newFakeTransport(peers)
	tr.delay = 2 * time.Millisecond
	res, err := New("a", src, tr, Options{BatchSize: 10, Workers: 3}).Run(context.Background(), hashPlacement("b", "c", "d"), "ring-change")
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.maxInflight.Load(); got > 3 || got < 1 {
		t.Fatalf("max in flight = %d, want 1..3", got)
	}
	if res.Moved != 1000 {
		t.Fatalf("result %+v", res)
	}
}

func TestRateLimit(t *testing.T) {
	src, dst := newTestStore(t), newTestStore(t)
	fill(t, src, "k", 600, 10)
	tr := newFakeTransport(map[string]store.Store{"b": dst})
	m := New("a", src, tr, Options{RateLimit: 2000, BatchSize: 100, Workers: 8})
	start := time.Now()
	res, err := m.Run(context.Background(), PlacementFunc(func(string) string { return "b" }), "ring-change")
	if err != nil {
		t.Fatal(err)
	}
	// 600 keys at 2000/s with one batch of 100 free: at least 250ms. Sleeps
	// never end early, so this lower bound cannot flake.
	if el := time.Since(start); el < 240*time.Millisecond {
		t.Fatalf("600 keys at 2000 keys/s took %v", el)
	}
	if res.Moved != 600 {
		t.Fatalf("result %+v", res)
	}
	// Batches shrink to the rate when the rate is below the batch size.
	if m := New("a", src, tr, Options{RateLimit: 50}); m.batch != 50 {
		t.Fatalf("batch = %d with RateLimit 50", m.batch)
	}
}

func TestLimiterPaces(t *testing.T) {
	l := newLimiter(1000)
	ctx := context.Background()
	start := time.Now()
	for range 5 {
		if err := l.wait(ctx, 100); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 390*time.Millisecond {
		t.Fatalf("5x100 keys at 1000/s in %v", el)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.wait(cctx, 1000); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on canceled ctx = %v", err)
	}
	if err := newLimiter(0).wait(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}
}

func TestStatusDuringAndAfterRun(t *testing.T) {
	src, dst := newTestStore(t), newTestStore(t)
	fill(t, src, "k", 100, 10)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	tr := newFakeTransport(map[string]store.Store{"b": dst})
	tr.before = func(call int, _ string, _ []store.Entry) ([]ImportResult, error, bool) {
		if call == 2 {
			entered <- struct{}{}
			<-release
		}
		return nil, nil, false
	}
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	m := New("a", src, tr, Options{BatchSize: 10, Workers: 1, ProgressInterval: time.Millisecond, Logger: logger})
	if st := m.Status(); st.Active || st.Last != nil {
		t.Fatalf("status before any run: %+v", st)
	}
	done := make(chan error, 1)
	go func() {
		_, err := m.Run(context.Background(), PlacementFunc(func(string) string { return "b" }), "drain")
		done <- err
	}()
	<-entered
	time.Sleep(5 * time.Millisecond) // let a progress line or two be logged
	st := m.Status()
	if !st.Active || st.Reason != "drain" || st.StartedAt.IsZero() || st.Planned == 0 || st.Moved != 10 || st.Passes != 1 {
		t.Errorf("status during run: %+v", st)
	}
	// A second run waits for the first.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.Run(ctx, PlacementFunc(func(string) string { return "b" }), "ring-change"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("concurrent Run = %v, want it to wait", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st = m.Status()
	if st.Active || st.Last == nil || st.Last.Moved != 100 || st.Last.Reason != "drain" || st.Last.Duration <= 0 {
		t.Fatalf("status after run: %+v", st)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"active":false`, `"keys_per_sec"`, `"last":{`, `"duration_ns"`, `"moved":100`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("status JSON %s lacks %s", b, field)
		}
	}
	if strings.Contains(string(b), "started_at") {
		t.Errorf("idle status JSON has started_at: %s", b)
	}
	out := logs.String()
	for _, line := range []string{`msg="migration started" component=migrate self=a reason=drain`, `msg="migration progress"`, `msg="migration finished"`, "moved=100", "keys_per_sec="} {
		if !strings.Contains(out, line) {
			t.Errorf("logs lack %q:\n%s", line, out)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestImportResult(t *testing.T) {
	cases := []struct {
		o     store.Outcome
		r     ImportResult
		name  string
		acked bool
	}{
		{store.Applied, Acked, "acked", true},
		{store.Stale, AckedStale, "acked-stale", true},
		{store.Expired, AckedExpired, "acked-expired", true},
		{store.Outcome(0), Refused, "refused", false},
	}
	for _, c := range cases {
		if r := FromOutcome(c.o); r != c.r || r.String() != c.name || r.IsAcked() != c.acked {
			t.Errorf("FromOutcome(%v) = %v (%s, acked %v)", c.o, r, r.String(), r.IsAcked())
		}
	}
	if ImportResult(0).IsAcked() || ImportResult(0).String() != "unknown" {
		t.Error("zero ImportResult must not be an ack")
	}
}

func TestNilPlacement(t *testing.T) {
	if _, err := New("a", newTestStore(t), newFakeTransport(nil), Options{}).Run(context.Background(), nil, "x"); err == nil {
		t.Fatal("nil placement accepted")
	}
}

// targetsFunc adapts a function to TargetPlacement.
type targetsFunc func(key string) ([]string, bool)

func (f targetsFunc) Owner(key string) string {
	to, _ := f(key)
	if len(to) == 0 {
		return ""
	}
	return to[0]
}

func (f targetsFunc) Targets(key string) ([]string, bool) { return f(key) }

// Replication: keys this node keeps are copied to every target and stay;
// keys it gives up are deleted only once every target acknowledged them.
func TestTargetsCopyAndMove(t *testing.T) {
	src, b, c := newTestStore(t), newTestStore(t), newTestStore(t)
	fill(t, src, "keep", 200, 10)
	var keepEntries, moveEntries []store.Entry
	for _, e := range fill(t, src, "move", 200, 10) {
		if strings.HasPrefix(e.Key, "keep") {
			keepEntries = append(keepEntries, e)
		} else {
			moveEntries = append(moveEntries, e)
		}
	}
	tr := newFakeTransport(map[string]store.Store{"b": b, "c": c})
	refuseC := atomic.Bool{}
	refuseC.Store(true)
	tr.before = func(call int, peer string, entries []store.Entry) ([]ImportResult, error, bool) {
		if peer == "c" && refuseC.Load() {
			res := make([]ImportResult, len(entries))
			for i := range res {
				res[i] = Refused
			}
			return res, nil, true
		}
		return nil, nil, false
	}
	p := targetsFunc(func(key string) ([]string, bool) {
		if strings.HasPrefix(key, "keep") {
			return []string{"b"}, true
		}
		return []string{"b", "c"}, false
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(300 * time.Millisecond); refuseC.Store(false) }()
	defer cancel()
	res, err := New("a", src, tr, Options{BatchSize: 32}).Run(ctx, p, "replicas")
	if err != nil {
		t.Fatal(err)
	}
	if res.Copied != int64(len(keepEntries)) {
		t.Fatalf("copied %d, want %d (%+v)", res.Copied, len(keepEntries), res)
	}
	ctx2 := context.Background()
	for _, e := range keepEntries {
		if _, ok, _ := src.Get(ctx2, e.Key); !ok {
			t.Fatalf("kept key %s deleted locally", e.Key)
		}
		if _, ok, _ := b.Get(ctx2, e.Key); !ok {
			t.Fatalf("kept key %s not copied to b", e.Key)
		}
	}
	for _, e := range moveEntries {
		if _, ok, _ := src.Get(ctx2, e.Key); ok {
			t.Fatalf("moved key %s still local", e.Key)
		}
		for name, st := range map[string]store.Store{"b": b, "c": c} {
			if _, ok, _ := st.Get(ctx2, e.Key); !ok {
				t.Fatalf("moved key %s missing on %s", e.Key, name)
			}
		}
	}
}
