package warm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var members = []string{"a", "b", "c"}

func testRing(ms ...string) *ring.Ring { return ring.New(ms, ring.Options{}) }

// tierOf is a Hottest over keys (hottest first), each of size bytes, that
// records how many entries were looked at.
func tierOf(keys []string, size int, scanned *int) Hottest {
	return func(maxScan int, fn func(key string, size int) bool) {
		for _, k := range keys {
			*scanned++
			if !fn(k, size) || *scanned >= maxScan {
				return
			}
		}
	}
}

// valueOf returns counter c's value.
func valueOf(t *testing.T, c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func keysN(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("k%05d", i)
	}
	return ks
}

// recorder is a Delivery that records what each address was sent.
type recorder struct {
	mu   sync.Mutex
	sent map[string][]string
}

func (rc *recorder) delivery(c prometheus.Counter) Delivery {
	return Delivery{
		Addr: func(owner string) (string, bool) { return "addr-" + owner, owner != "unknown" },
		Send: func(ctx context.Context, addr string, keys []string) (int, error) {
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if rc.sent == nil {
				rc.sent = map[string][]string{}
			}
			rc.sent[addr] = append(rc.sent[addr], keys...)
			return len(keys), nil
		},
		Sent: c,
	}
}

func (rc *recorder) total() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, ks := range rc.sent {
		n += len(ks)
	}
	return n
}

func TestPlanOnlyKeysOthersOwn(t *testing.T) {
	r := testRing(members...)
	keys := keysN(300)
	var p Planner
	scanned := 0
	p.Plan(r, "a", Bounds{Keys: 1000, Bytes: 1 << 30}, tierOf(keys, 10, &scanned))
	var rc recorder
	sent := prometheus.NewCounter(prometheus.CounterOpts{Name: "sent"})
	p.Send(context.Background(), r, rc.delivery(sent))
	want := 0
	for _, k := range keys {
		o := r.Owner(k)
		if o == "a" {
			continue
		}
		want++
		if !slices.Contains(rc.sent["addr-"+o], k) {
			t.Errorf("key %s of %s was not sent to it", k, o)
		}
	}
	if got := rc.total(); got != want || want == 0 {
		t.Errorf("sent %d keys, want %d (every key b and c own)", got, want)
	}
	if got := valueOf(t, sent); got != float64(want) {
		t.Errorf("sent counter %v, want %d", got, want)
	}
	if !p.Done(r) {
		t.Error("Done after Send is false")
	}
}

func TestPlanBounds(t *testing.T) {
	r := testRing(members...)
	keys := keysN(5000)
	// scanKeys: 799 keys this node owns, then keys others own: a plan
	// allowed 100 keys looks at 800 entries and notes only one of them.
	var mine, others []string
	for _, k := range keys {
		if r.Owner(k) == "a" {
			mine = append(mine, k)
		} else {
			others = append(others, k)
		}
	}
	scanKeys := append(slices.Clone(mine[:799]), others...)
	for _, c := range []struct {
		name    string
		b       Bounds
		keys    []string
		want    int // keys sent
		scanned int // entries looked at
	}{
		{"keys", Bounds{Keys: 10, Bytes: 1 << 30}, others, 10, 10},
		{"bytes", Bounds{Keys: 1000, Bytes: 50}, others, 5, 5}, // 10 bytes each
		{"scan", Bounds{Keys: 100, Bytes: 1 << 30}, scanKeys, 1, 800},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p Planner
			scanned := 0
			p.Plan(r, "a", c.b, tierOf(c.keys, 10, &scanned))
			var rc recorder
			p.Send(context.Background(), r, rc.delivery(nil))
			if got := rc.total(); got != c.want {
				t.Errorf("sent %d keys, want %d", got, c.want)
			}
			if scanned != c.scanned {
				t.Errorf("looked at %d entries, want %d", scanned, c.scanned)
			}
		})
	}
}

func TestPlanNothing(t *testing.T) {
	r := testRing(members...)
	keys := keysN(100)
	for _, c := range []struct {
		name string
		r    *ring.Ring
		b    Bounds
		keys []string
	}{
		{"no bounds", r, Bounds{Keys: 0, Bytes: 1 << 30}, keys},
		{"empty ring", testRing(), Bounds{Keys: 10, Bytes: 1 << 30}, keys},
		{"all mine", testRing("a"), Bounds{Keys: 10, Bytes: 1 << 30}, keys},
		{"empty tier", r, Bounds{Keys: 10, Bytes: 1 << 30}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p Planner
			scanned := 0
			p.Plan(c.r, "a", c.b, tierOf(c.keys, 10, &scanned))
			var rc recorder
			if p.Done(c.r) {
				t.Fatal("Done before Send")
			}
			p.Send(context.Background(), c.r, rc.delivery(nil))
			if got := rc.total(); got != 0 {
				t.Errorf("sent %d keys, want none", got)
			}
			if !p.Done(c.r) {
				t.Error("Done after a Send with nothing to send is false")
			}
		})
	}
}

func TestStalePlanNotSent(t *testing.T) {
	r1 := testRing(members...)
	r2 := testRing("a", "b", "c", "d")
	keys := keysN(100)
	b := Bounds{Keys: 1000, Bytes: 1 << 30}
	var p Planner
	scanned := 0
	p.Plan(r1, "a", b, tierOf(keys, 10, &scanned))
	p.Plan(r2, "a", b, tierOf(keys, 10, &scanned))
	var rc recorder
	p.Send(context.Background(), r1, rc.delivery(nil))
	if got := rc.total(); got != 0 {
		t.Errorf("the plan of a later ring was sent for an earlier one: %d keys", got)
	}
	if !p.Done(r1) || p.Done(r2) {
		t.Errorf("Done(r1) = %v, Done(r2) = %v; want true, false", p.Done(r1), p.Done(r2))
	}
	p.Send(context.Background(), r2, rc.delivery(nil))
	if rc.total() == 0 {
		t.Error("the latest plan was not sent")
	}
	if !p.Done(r2) || p.Done(r1) {
		t.Errorf("after Send(r2): Done(r1) = %v, Done(r2) = %v; want false, true", p.Done(r1), p.Done(r2))
	}
	// A plan is sent once.
	before := rc.total()
	p.Send(context.Background(), r2, rc.delivery(nil))
	if rc.total() != before {
		t.Error("a plan was sent twice")
	}
}

func TestSendSkipsUnknownAndCountsFailures(t *testing.T) {
	r := testRing("a", "b", "unknown")
	keys := keysN(300)
	var p Planner
	scanned := 0
	p.Plan(r, "a", Bounds{Keys: 1000, Bytes: 1 << 30}, tierOf(keys, 10, &scanned))
	toB := 0
	for _, k := range keys {
		if r.Owner(k) == "b" {
			toB++
		}
	}
	sent := prometheus.NewCounter(prometheus.CounterOpts{Name: "sent"})
	var mu sync.Mutex
	var addrs []string
	p.Send(context.Background(), r, Delivery{
		Addr: func(owner string) (string, bool) { return owner, owner != "unknown" },
		Send: func(ctx context.Context, addr string, keys []string) (int, error) {
			mu.Lock()
			addrs = append(addrs, addr)
			mu.Unlock()
			return 0, errors.New("unreachable")
		},
		Sent: sent,
	})
	if !slices.Equal(addrs, []string{"b"}) {
		t.Errorf("sent to %v, want [b] (unknown has no address)", addrs)
	}
	if got := valueOf(t, sent); got != float64(toB) {
		t.Errorf("sent counter %v, want %d (undelivered keys count)", got, toB)
	}
	if !p.Done(r) {
		t.Error("Done after a failed Send is false")
	}
}

// shard is a FillConfig over a map of records, recording its reads.
type shard struct {
	records map[string]store.Entry
	reads   [][]string
	filled  map[string]uint64 // key -> guard it was filled with
}

func (s *shard) config(mine func(string) bool) FillConfig {
	return FillConfig{
		Mine: func(batch []string) []string {
			var out []string
			for _, k := range batch {
				if mine(k) {
					out = append(out, k)
				}
			}
			return out
		},
		Epoch: func() uint64 { return 7 },
		Guard: func(key string) uint64 { return uint64(len(key)) },
		Read: func(ctx context.Context, keys []string) ([]store.Entry, []bool, error) {
			s.reads = append(s.reads, slices.Clone(keys))
			es := make([]store.Entry, len(keys))
			found := make([]bool, len(keys))
			for i, k := range keys {
				es[i], found[i] = s.records[k]
			}
			return es, found, nil
		},
		Fill: func(key string, e store.Entry, g, ep uint64) bool {
			if ep != 7 || e.Key != key {
				return false
			}
			if s.filled == nil {
				s.filled = map[string]uint64{}
			}
			s.filled[key] = g
			return true
		},
	}
}

func TestFill(t *testing.T) {
	keys := keysN(1000)
	s := &shard{records: map[string]store.Entry{}}
	for i, k := range keys {
		switch i % 4 {
		case 0: // missing
		case 1:
			s.records[k] = store.Entry{Key: k, Version: 1, ExpireAt: 1, Tombstone: true}
		default:
			s.records[k] = store.Entry{Key: k, Value: []byte("v"), Version: 1}
		}
	}
	mine := func(k string) bool { return k[len(k)-1] != '9' } // keys ending in 9 are another member's
	filledC := prometheus.NewCounter(prometheus.CounterOpts{Name: "filled"})
	cfg := s.config(mine)
	cfg.Filled = filledC
	got := Fill(context.Background(), keys, cfg)

	want := 0
	for i, k := range keys {
		live := i%4 >= 2
		_, filled := s.filled[k]
		switch {
		case live && mine(k):
			want++
			if !filled {
				t.Errorf("live key %s of this node was not filled", k)
			}
		case filled:
			t.Errorf("key %s filled (live %v, mine %v)", k, live, mine(k))
		}
	}
	if got != want || len(s.filled) != want {
		t.Errorf("Fill returned %d, filled %d keys, want %d", got, len(s.filled), want)
	}
	if c := valueOf(t, filledC); c != float64(want) {
		t.Errorf("filled counter %v, want %d", c, want)
	}
	if len(s.reads) != 4 { // 256+256+256+232 keys asked, each batch read once
		t.Fatalf("%d shard reads, want 4", len(s.reads))
	}
	for i, r := range s.reads {
		for _, k := range r {
			if !mine(k) {
				t.Errorf("read %d asked the shard for %s, another member's", i, k)
			}
		}
		if want := mineIn(keys[i*fillBatch:min(len(keys), (i+1)*fillBatch)], mine); !slices.Equal(r, want) {
			t.Errorf("read %d asked for %d keys, want the %d of batch %d", i, len(r), len(want), i)
		}
	}
	for k, g := range s.filled {
		if g != uint64(len(k)) {
			t.Errorf("key %s filled with guard %d, not its own", k, g)
		}
	}
}

func mineIn(batch []string, mine func(string) bool) []string {
	var out []string
	for _, k := range batch {
		if mine(k) {
			out = append(out, k)
		}
	}
	return out
}

func TestFillSkipsBatchesWithNothingMine(t *testing.T) {
	keys := keysN(600)
	s := &shard{records: map[string]store.Entry{}}
	for _, k := range keys {
		s.records[k] = store.Entry{Key: k, Value: []byte("v"), Version: 1}
	}
	// Only the keys of the last batch (512..599) are this node's.
	mine := func(k string) bool { return k >= keys[2*fillBatch] }
	if got := Fill(context.Background(), keys, s.config(mine)); got != 600-2*fillBatch {
		t.Errorf("filled %d keys, want %d", got, 600-2*fillBatch)
	}
	if len(s.reads) != 1 {
		t.Errorf("%d shard reads, want 1 (batches with no key of this node read nothing)", len(s.reads))
	}
}

func TestFillStops(t *testing.T) {
	keys := keysN(600)
	s := &shard{records: map[string]store.Entry{}}
	for _, k := range keys {
		s.records[k] = store.Entry{Key: k, Value: []byte("v"), Version: 1}
	}
	all := func(string) bool { return true }

	cfg := s.config(all)
	read := cfg.Read
	cfg.Read = func(ctx context.Context, keys []string) ([]store.Entry, []bool, error) {
		if len(s.reads) == 1 {
			return nil, nil, errors.New("shard down")
		}
		return read(ctx, keys)
	}
	if got := Fill(context.Background(), keys, cfg); got != fillBatch {
		t.Errorf("filled %d keys before the failed read, want %d", got, fillBatch)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.reads, s.filled = nil, nil
	if got := Fill(ctx, keys, s.config(all)); got != 0 || len(s.reads) != 0 {
		t.Errorf("with an ended context: filled %d keys in %d reads, want none", got, len(s.reads))
	}
}
