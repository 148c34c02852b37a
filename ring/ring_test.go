package ring

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
)

const numKeys = 1_000_000

// testKeys is a fixed set of 1M pseudo-random keys (seeded, so deterministic).
var testKeys = sync.OnceValue(func() []string {
	rng := rand.New(rand.NewPCG(42, 1042))
	keys := make([]string, numKeys)
	for i := range keys {
		keys[i] = "key:" + strconv.FormatUint(rng.Uint64(), 36)
	}
	return keys
})

func names(format string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}

// containerIDs returns n Docker-style 12-hex-digit host names.
func containerIDs(seed uint64, n int) []string {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%012x", rng.Uint64()>>16)
	}
	return out
}

func nameSets() map[string][]string {
	return map[string][]string{
		"node-N":          names("node-%d", 10),
		"ip:port":         names("10.0.0.%d:7946", 10),
		"compose":         names("peercache-cachenode-%d", 10),
		"container-ids":   containerIDs(1, 10),
		"container-ids-2": containerIDs(2, 10),
	}
}

func ownerCounts(r *Ring, keys []string) map[string]int {
	c := make(map[string]int)
	for _, k := range keys {
		c[r.Owner(k)]++
	}
	return c
}

func maxOverMean(shares map[string]float64) float64 {
	mx := 0.0
	for _, s := range shares {
		mx = max(mx, s)
	}
	return mx * float64(len(shares))
}

func TestBalance(t *testing.T) {
	keys := testKeys()
	for name, members := range nameSets() {
		t.Run(name, func(t *testing.T) {
			r := New(members, Options{})
			counts := ownerCounts(r, keys)
			if len(counts) != len(members) {
				t.Fatalf("%d members own keys, want %d", len(counts), len(members))
			}
			sampled := make(map[string]float64)
			for m, c := range counts {
				sampled[m] = float64(c) / numKeys
			}
			shares := r.Shares()
			sum := 0.0
			for _, m := range members {
				sum += shares[m]
				if d := math.Abs(shares[m] - sampled[m]); d > 0.005 {
					t.Errorf("%s: Shares %.4f, sampled %.4f", m, shares[m], sampled[m])
				}
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Errorf("shares sum to %v", sum)
			}
			ms, mx := maxOverMean(sampled), maxOverMean(shares)
			t.Logf("max/mean: %.4f over 1M keys, %.4f exact", ms, mx)
			if ms > 1.15 || mx > 1.15 {
				t.Errorf("max/mean %.4f (keys) %.4f (exact) > 1.15", ms, mx)
			}
		})
	}
}

// TestBalanceManyNameSets checks the balance bound for many random name sets,
// not just a few lucky ones.
func TestBalanceManyNameSets(t *testing.T) {
	sets := 100
	if testing.Short() {
		sets = 10
	}
	worst := 0.0
	for s := range sets {
		r := New(containerIDs(uint64(100+s), 10), Options{})
		worst = max(worst, maxOverMean(r.Shares()))
	}
	t.Logf("10 members, %d random name sets: worst max/mean %.4f", sets, worst)
	if worst > 1.15 {
		t.Errorf("worst max/mean %.4f > 1.15", worst)
	}
	// 100 members over 8192 partitions get about 82 each, a binomial
	// spread of 11%; one slot per partition (VNodes 256) halves the excess.
	// docs/ARCHITECTURE.md has the figures.
	for _, c := range []struct {
		vnodes int
		bound  float64
	}{{0, 1.35}, {256, 1.25}} {
		r := New(names("10.0.%d.1:7946", 100), Options{VNodes: c.vnodes})
		mm := maxOverMean(r.Shares())
		t.Logf("100 members, %d partitions: max/mean %.4f", r.Partitions(), mm)
		if mm > c.bound {
			t.Errorf("100 members, %d partitions: max/mean %.4f > %.2f", r.Partitions(), mm, c.bound)
		}
	}
}

func TestAddMember(t *testing.T) {
	keys := testKeys()
	for name, members := range nameSets() {
		t.Run(name, func(t *testing.T) {
			old := New(members, Options{})
			const added = "newcomer-11"
			next := old.With(added)
			if !next.Equal(New(append(slices.Clone(members), added), Options{})) {
				t.Fatal("With differs from New")
			}
			moved := 0
			for _, k := range keys {
				o, n := old.Owner(k), next.Owner(k)
				if o != n {
					moved++
					if n != added {
						t.Fatalf("key %q moved %s -> %s, not to the new member", k, o, n)
					}
				}
			}
			frac := float64(moved) / numKeys
			t.Logf("moved fraction %.4f (ideal 1/11 = %.4f)", frac, 1.0/11)
			if frac < 0.05 || frac > 0.15 {
				t.Errorf("moved fraction %.4f outside [0.05, 0.15]", frac)
			}
		})
	}
}

func TestRemoveMember(t *testing.T) {
	keys := testKeys()[:200_000]
	members := names("10.0.0.%d:7946", 10)
	old := New(members, Options{})
	for _, gone := range []string{members[0], members[4], members[9]} {
		next := old.Without(gone)
		if next.Has(gone) || next.Len() != 9 {
			t.Fatalf("Without(%s): Has=%v Len=%d", gone, next.Has(gone), next.Len())
		}
		moved := 0
		for _, k := range keys {
			o, n := old.Owner(k), next.Owner(k)
			if o != n {
				moved++
				if o != gone {
					t.Fatalf("key %q moved %s -> %s though %s left", k, o, n, gone)
				}
			}
			if n == gone {
				t.Fatalf("key %q still owned by removed %s", k, gone)
			}
		}
		if want := old.Shares()[gone]; math.Abs(float64(moved)/float64(len(keys))-want) > 0.01 {
			t.Errorf("moved %d keys, want about %.3f of them", moved, want)
		}
	}
}

// TestWithWithoutMatchNew checks that incremental snapshots are identical,
// partition by partition, to ones built from scratch.
func TestWithWithoutMatchNew(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pool := names("m%02d", 30)
	set := map[string]bool{}
	r := New(nil, Options{VNodes: 16})
	for step := range 60 {
		m := pool[rng.IntN(len(pool))]
		if set[m] {
			delete(set, m)
			r = r.Without(m)
		} else {
			set[m] = true
			r = r.With(m)
		}
		var ms []string
		for m := range set {
			ms = append(ms, m)
		}
		want := New(ms, Options{VNodes: 16})
		if !r.Equal(want) || !slices.Equal(r.table, want.table) || !slices.Equal(r.seeds, want.seeds) {
			t.Fatalf("step %d: incremental ring differs from New(%v)", step, want.Members())
		}
	}
}

func TestOwners(t *testing.T) {
	keys := testKeys()[:20_000]
	for _, size := range []int{1, 2, 3, 10, 40} {
		r := New(names("n%d", size), Options{VNodes: 8})
		for _, k := range keys {
			for _, n := range []int{1, 2, 3, size + 5} {
				got := r.Owners(k, n)
				if want := min(n, size); len(got) != want {
					t.Fatalf("size %d: Owners(%q, %d) has %d members, want %d", size, k, n, len(got), want)
				}
				if got[0] != r.Owner(k) {
					t.Fatalf("Owners(%q)[0] = %s, Owner = %s", k, got[0], r.Owner(k))
				}
				seen := map[string]bool{}
				for _, m := range got {
					if seen[m] || !r.Has(m) {
						t.Fatalf("Owners(%q, %d) = %v: duplicate or unknown member", k, n, got)
					}
					seen[m] = true
				}
				// A shorter list is a prefix of a longer one.
				if n > 1 && !slices.Equal(r.Owners(k, n-1), got[:min(n-1, len(got))]) {
					t.Fatalf("Owners(%q, %d) is not a prefix of Owners(%q, %d)", k, n-1, k, n)
				}
			}
		}
	}
	r := New(names("n%d", 5), Options{})
	if got := r.Owners("k", 0); got != nil {
		t.Errorf("Owners(k, 0) = %v, want nil", got)
	}
	if got := r.Owners("k", -1); got != nil {
		t.Errorf("Owners(k, -1) = %v, want nil", got)
	}
	all := r.Owners("k", 100)
	if !slices.Equal(slices.Sorted(slices.Values(all)), r.Members()) {
		t.Errorf("Owners(k, 100) = %v, want all members", all)
	}
	// Replicas are spread: the second owner of a member's keys is not always
	// the same member.
	r = New(names("n%d", 10), Options{})
	second := map[string]bool{}
	for _, k := range keys {
		if o := r.Owners(k, 2); o[0] == "n0" {
			second[o[1]] = true
		}
	}
	if len(second) != 9 {
		t.Errorf("n0's keys have second owners %v, want all 9 others", second)
	}
}

func TestOwnersMorePartitionsThanMembersCanFill(t *testing.T) {
	// 1000 members over 64 partitions: most members own no partition, and
	// Owners must still return all of them.
	r := New(names("n%d", 1000), Options{VNodes: 1})
	if r.Partitions() != 64 {
		t.Fatalf("Partitions = %d, want 64", r.Partitions())
	}
	got := r.Owners("x", 2000)
	if len(got) != 1000 || got[0] != r.Owner("x") {
		t.Fatalf("Owners returned %d members, primary %s", len(got), got[0])
	}
	if !slices.Equal(slices.Sorted(slices.Values(got)), r.Members()) {
		t.Fatal("Owners is not all members")
	}
	sum := 0.0
	for _, s := range r.Shares() {
		sum += s
	}
	if len(r.Shares()) != 1000 || math.Abs(sum-1) > 1e-9 {
		t.Fatalf("Shares: %d entries summing to %v", len(r.Shares()), sum)
	}
}

func checkDiff(t *testing.T, old, next *Ring, keys []string) {
	t.Helper()
	ranges := Diff(old, next)
	for i, g := range ranges {
		if g.From == g.To {
			t.Fatalf("range %d has From == To == %q", i, g.From)
		}
		if i > 0 {
			p := ranges[i-1]
			if p.End == g.Start && p.From == g.From && p.To == g.To {
				t.Fatalf("ranges %d and %d are adjacent with the same From/To, not merged", i-1, i)
			}
		}
	}
	// Ranges are in ring order and disjoint: every non-wrapping range
	// starts at or after the previous one's end, and only the last may wrap
	// past the top (Start >= End, except Start == MaxUint64 which starts at
	// 0), ending at or before the first one's start.
	wraps := func(g Range) bool { return g.Start >= g.End && g.Start != math.MaxUint64 }
	plain := ranges
	if n := len(ranges); n > 0 && wraps(ranges[n-1]) {
		plain = ranges[:n-1]
		if n > 1 && ranges[n-1].End > ranges[0].Start && ranges[0].Start != math.MaxUint64 {
			t.Fatalf("wrapping range %+v overlaps first range %+v", ranges[n-1], ranges[0])
		}
		if n > 1 && ranges[0].Start == math.MaxUint64 {
			t.Fatalf("wrapping range %+v and first range %+v both hold position 0", ranges[n-1], ranges[0])
		}
	}
	for i, g := range plain {
		if wraps(g) {
			t.Fatalf("range %d of %d wraps: %+v", i, len(ranges), g)
		}
		if i > 0 && g.Start < plain[i-1].End {
			t.Fatalf("ranges %d and %d overlap or are out of order", i-1, i)
		}
	}
	if len(plain) < len(ranges) && len(plain) > 0 && ranges[len(ranges)-1].Start < plain[len(plain)-1].End {
		t.Fatal("wrapping range overlaps the last plain range")
	}
	changed := 0
	for _, k := range keys {
		h := old.KeyHash(k)
		if h != next.KeyHash(k) {
			t.Fatal("KeyHash differs between rings")
		}
		o, n := old.Owner(k), next.Owner(k)
		if o != old.OwnerOfHash(h) || n != next.OwnerOfHash(h) {
			t.Fatal("OwnerOfHash(KeyHash(k)) != Owner(k)")
		}
		// The ranges are disjoint, so at most one holds h: the first plain
		// range ending at or after h, or else the wrapping one.
		var in []Range
		i, _ := slices.BinarySearchFunc(plain, h, func(g Range, h uint64) int { return cmp.Compare(g.End, h) })
		if i < len(plain) && plain[i].Contains(h) {
			in = append(in, plain[i])
		}
		if len(plain) < len(ranges) && ranges[len(ranges)-1].Contains(h) {
			in = append(in, ranges[len(ranges)-1])
		}
		if len(in) > 1 {
			t.Fatalf("key %q in %d overlapping ranges %v", k, len(in), in)
		}
		if o != n {
			changed++
			if len(in) != 1 || in[0].From != o || in[0].To != n {
				t.Fatalf("key %q moved %q -> %q, in ranges %v", k, o, n, in)
			}
		} else if len(in) != 0 {
			t.Fatalf("key %q stayed with %q, but is in range %v", k, o, in[0])
		}
	}
	if changed == 0 && len(ranges) != 0 && len(keys) > 10000 {
		t.Fatalf("no key moved but Diff has %d ranges", len(ranges))
	}
}

func TestDiff(t *testing.T) {
	keys := testKeys()[:100_000]
	base := names("10.0.0.%d:7946", 10)
	r10 := New(base, Options{})
	empty := New(nil, Options{})
	cases := []struct {
		name      string
		old, next *Ring
	}{
		{"add", r10, r10.With("10.0.0.99:7946")},
		{"remove", r10, r10.Without(base[3])},
		{"replace several", r10, r10.Without(base[1]).Without(base[2]).With("a").With("b")},
		{"same", r10, New(base, Options{})},
		{"empty to one", empty, New([]string{"solo"}, Options{})},
		{"one to other", New([]string{"solo"}, Options{}), New([]string{"other"}, Options{})},
		{"ring to empty", r10, empty},
		{"nil to ring", nil, r10},
		{"different vnodes", New(base, Options{VNodes: 16}), New(base, Options{VNodes: 128})},
		{"one slot each", New(base, Options{VNodes: 256}), New(base[:7], Options{VNodes: 256})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkDiff(t, c.old, c.next, keys)
		})
	}
	if d := Diff(r10, New(base, Options{})); d != nil {
		t.Errorf("Diff of equal rings = %v, want nil", d)
	}
	whole := Diff(New([]string{"solo"}, Options{}), New([]string{"other"}, Options{}))
	if len(whole) != 1 || whole[0].Start != whole[0].End || whole[0].From != "solo" || whole[0].To != "other" {
		t.Errorf("Diff(solo, other) = %v, want one whole-ring range", whole)
	}
	if d := Diff(empty, r10); len(d) == 0 || d[0].From != "" {
		t.Errorf("Diff(empty, r10) = %v, want ranges From \"\"", d)
	}
	// Adding a member gives ranges that all go to it.
	for _, g := range Diff(r10, r10.With("x")) {
		if g.To != "x" {
			t.Fatalf("range %v does not go to the new member", g)
		}
	}
}

func TestDiffWrapMerge(t *testing.T) {
	// Find a pair of rings where the first and last partitions move the
	// same way, and check the wrapping range they merge into.
	for i := range 1000 {
		old := New(names("w%d-"+strconv.Itoa(i), 3), Options{VNodes: 1})
		next := old.With("extra-" + strconv.Itoa(i))
		last := uint64(old.Partitions() - 1)
		if old.table[0] == old.table[last] && next.table[0] == next.table[last] && old.Owner("") != "" &&
			old.members[old.table[0]] != next.members[next.table[0]] {
			d := Diff(old, next)
			w := d[len(d)-1]
			if w.Start <= w.End || !w.Contains(0) || !w.Contains(math.MaxUint64) {
				t.Fatalf("expected a wrapping last range, got %+v", w)
			}
			if d[0].Start == math.MaxUint64 {
				t.Fatalf("first range %+v should have been merged into the wrapping one", d[0])
			}
			checkDiff(t, old, next, testKeys()[:50_000])
			return
		}
	}
	t.Fatal("no wrapping case found")
}

func TestRangeContains(t *testing.T) {
	tests := []struct {
		g    Range
		h    uint64
		want bool
	}{
		{Range{Start: 10, End: 20}, 10, false},
		{Range{Start: 10, End: 20}, 11, true},
		{Range{Start: 10, End: 20}, 20, true},
		{Range{Start: 10, End: 20}, 21, false},
		{Range{Start: 100, End: 5}, 101, true},
		{Range{Start: 100, End: 5}, math.MaxUint64, true},
		{Range{Start: 100, End: 5}, 0, true},
		{Range{Start: 100, End: 5}, 5, true},
		{Range{Start: 100, End: 5}, 6, false},
		{Range{Start: 100, End: 5}, 100, false},
		{Range{Start: math.MaxUint64, End: 9}, 0, true},
		{Range{Start: math.MaxUint64, End: 9}, math.MaxUint64, false},
		{Range{Start: 7, End: 7}, 7, true}, // whole ring
		{Range{Start: 7, End: 7}, 123, true},
	}
	for _, tt := range tests {
		if got := tt.g.Contains(tt.h); got != tt.want {
			t.Errorf("%+v.Contains(%d) = %v, want %v", tt.g, tt.h, got, tt.want)
		}
	}
}

func TestOrderIndependence(t *testing.T) {
	members := containerIDs(9, 12)
	ref := New(members, Options{})
	rng := rand.New(rand.NewPCG(5, 6))
	for range 5 {
		shuffled := slices.Clone(members)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		shuffled = append(shuffled, shuffled[0], shuffled[3], "") // duplicates and an empty name are ignored
		r := New(shuffled, Options{})
		if !r.Equal(ref) || !slices.Equal(r.table, ref.table) {
			t.Fatal("ring depends on member order")
		}
		for _, k := range testKeys()[:10_000] {
			if r.Owner(k) != ref.Owner(k) {
				t.Fatalf("Owner(%q) depends on member order", k)
			}
		}
	}
	if !slices.IsSorted(ref.Members()) || ref.Len() != 12 {
		t.Errorf("Members() = %v, want 12 sorted", ref.Members())
	}
	ms := ref.Members()
	ms[0] = "mutated"
	if ref.Has("mutated") || ref.Members()[0] == "mutated" {
		t.Error("Members() is not a copy")
	}
}

func TestEmptyRing(t *testing.T) {
	for _, r := range []*Ring{New(nil, Options{}), New([]string{"", ""}, Options{}), nil, New([]string{"a"}, Options{}).Without("a")} {
		if r.Owner("k") != "" || r.OwnerOfHash(5) != "" || r.Owners("k", 3) != nil || r.Len() != 0 || r.Has("") {
			t.Errorf("empty ring %p is not empty", r)
		}
		if len(r.Members()) != 0 || len(r.Shares()) != 0 {
			t.Errorf("empty ring has members %v shares %v", r.Members(), r.Shares())
		}
		if !r.Equal(New(nil, Options{})) {
			t.Error("empty rings with default options are not Equal")
		}
		if w := r.With("a"); w.Owner("k") != "a" || w.Len() != 1 {
			t.Error("With on empty ring")
		}
	}
}

func TestSingleMember(t *testing.T) {
	r := New([]string{"only"}, Options{})
	for _, k := range testKeys()[:1000] {
		if r.Owner(k) != "only" {
			t.Fatalf("Owner(%q) = %q", k, r.Owner(k))
		}
		if o := r.Owners(k, 3); !slices.Equal(o, []string{"only"}) {
			t.Fatalf("Owners = %v", o)
		}
	}
	if s := r.Shares(); s["only"] != 1 {
		t.Errorf("Shares = %v", s)
	}
	if r.With("only") != r || r.Without("nobody") != r {
		t.Error("With an existing / Without an absent member should return the same snapshot")
	}
}

func TestOptions(t *testing.T) {
	def := New([]string{"a", "b"}, Options{})
	if o := def.Options(); o.VNodes != DefaultVNodes {
		t.Errorf("Options() = %+v", o)
	}
	if def.Partitions() != 1<<13 {
		t.Errorf("default Partitions = %d, want 8192", def.Partitions())
	}
	if !def.Equal(New([]string{"b", "a"}, Options{VNodes: DefaultVNodes})) {
		t.Error("explicit defaults not Equal to zero Options")
	}
	if def.Equal(New([]string{"a", "b"}, Options{VNodes: 64})) {
		t.Error("different VNodes are Equal")
	}
	if def.Equal(New([]string{"a", "c"}, Options{})) {
		t.Error("different members are Equal")
	}
	for _, c := range []struct{ vnodes, parts int }{{-1, 1 << 13}, {1, 64}, {2, 128}, {100, 1 << 13}, {129, 1 << 14}, {1 << 20, 1 << 14}} {
		if p := New(nil, Options{VNodes: c.vnodes}).Partitions(); p != c.parts {
			t.Errorf("VNodes %d: %d partitions, want %d", c.vnodes, p, c.parts)
		}
	}
	w := def.Without("a").With("z")
	if o := w.Options(); o.VNodes != DefaultVNodes || w.Partitions() != def.Partitions() {
		t.Error("With/Without lost options")
	}
}

func TestOwnerAllocs(t *testing.T) {
	r := New(names("node-%d", 10), Options{})
	key := "user:12345"
	if a := testing.AllocsPerRun(1000, func() { _ = r.Owner(key) }); a != 0 {
		t.Errorf("Owner allocates %v times", a)
	}
	buf := make([]string, 0, 4)
	if a := testing.AllocsPerRun(1000, func() { buf = r.AppendOwners(buf[:0], key, 3) }); a != 0 {
		t.Errorf("AppendOwners allocates %v times", a)
	}
	if a := testing.AllocsPerRun(1000, func() { _ = r.KeyHash(key) }); a != 0 {
		t.Errorf("KeyHash allocates %v times", a)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := New(names("node-%d", 10), Options{})
	keys := testKeys()[:5000]
	want := make([]string, len(keys))
	for i, k := range keys {
		want[i] = r.Owner(k)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i, k := range keys {
				if r.Owner(k) != want[i] || r.Owners(k, 2)[0] != want[i] {
					t.Errorf("goroutine %d: inconsistent owner for %q", g, k)
					return
				}
			}
			_ = r.Shares()
			_ = r.With(fmt.Sprint("g", g)).Without("node-1")
		})
	}
	wg.Wait()
}

var sink string

func BenchmarkOwner(b *testing.B) {
	keys := testKeys()[:4096]
	for _, n := range []int{3, 10, 100} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			r := New(names("10.0.0.%d:7946", n), Options{})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sink = r.Owner(keys[i&4095])
				i++
			}
		})
	}
}

func BenchmarkOwners2(b *testing.B) {
	keys := testKeys()[:4096]
	r := New(names("10.0.0.%d:7946", 10), Options{})
	b.Run("Owners", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			sink = r.Owners(keys[i&4095], 2)[1]
			i++
		}
	})
	b.Run("AppendOwners", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]string, 0, 2)
		i := 0
		for b.Loop() {
			buf = r.AppendOwners(buf[:0], keys[i&4095], 2)
			i++
		}
		sink = buf[1]
	})
}

func BenchmarkNew(b *testing.B) {
	for _, n := range []int{10, 100} {
		members := names("10.0.0.%d:7946", n)
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = New(members, Options{})
			}
		})
	}
	r := New(names("10.0.0.%d:7946", 100), Options{})
	b.Run("With/members=100", func(b *testing.B) {
		for b.Loop() {
			_ = r.With("newcomer")
		}
	})
	b.Run("Without/members=100", func(b *testing.B) {
		for b.Loop() {
			_ = r.Without("10.0.0.42:7946")
		}
	})
}

// Owners ranks members so that the next one is where a key goes when the
// ones before it leave: the property handoff reads and replicas rely on.
func TestOwnersFollowRemovals(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f"}
	r := New(names, Options{})
	for i := 0; i < 2000; i++ {
		key := "key-" + strconv.Itoa(i)
		ranked := r.Owners(key, len(names))
		cur := r
		for j := 0; j < len(names)-1; j++ {
			if got := cur.Owner(key); got != ranked[j] {
				t.Fatalf("%s: after removing %v, owner %s, want %s", key, ranked[:j], got, ranked[j])
			}
			cur = cur.Without(ranked[j])
		}
	}
}

func TestSlot(t *testing.T) {
	if c := CRC16("123456789"); c != 0x31c3 {
		t.Fatalf("CRC16(123456789) = %#x, want 0x31c3", c)
	}
	// Values from the Redis documentation of CLUSTER KEYSLOT and the
	// cluster specification's hash tag examples.
	for _, c := range []struct {
		key  string
		slot int
	}{
		{"somekey", 11058}, {"foo{hash_tag}", 2515}, {"bar{hash_tag}", 2515},
		{"", 0}, {"{user1000}.following", Slot("user1000")}, {"foo{}{bar}", Slot("foo{}{bar}")},
		{"foo{{bar}}zap", Slot("{bar")}, {"foo{bar}{zap}", Slot("bar")}, {"x{", Slot("x{")},
	} {
		if got := Slot(c.key); got != c.slot || SlotOf([]byte(c.key)) != c.slot {
			t.Errorf("Slot(%q) = %d, want %d", c.key, got, c.slot)
		}
	}
	for _, c := range []struct{ key, tag string }{
		{"{user1000}.following", "user1000"}, {"foo{}{bar}", "foo{}{bar}"}, {"foo{{bar}}zap", "{bar"},
		{"foo{bar}{zap}", "bar"}, {"{}", "{}"}, {"}{a}", "a"}, {"plain", "plain"},
	} {
		if got := HashTag(c.key); got != c.tag {
			t.Errorf("HashTag(%q) = %q, want %q", c.key, got, c.tag)
		}
	}
	r := New(names("node-%d", 3), Options{})
	for _, k := range testKeys()[:10_000] {
		s := Slot(k)
		if s < 0 || s >= Slots || r.Owner(k) != r.SlotOwner(s) || r.KeyHash(k) != SlotHash(s) {
			t.Fatalf("key %q: slot %d, Owner %s, SlotOwner %s", k, s, r.Owner(k), r.SlotOwner(s))
		}
	}
	if r.Owner("a{tag}") != r.Owner("b{tag}") {
		t.Error("keys with one hash tag have different owners")
	}
	if a := testing.AllocsPerRun(100, func() { _ = Slot("foo{hash_tag}") }); a != 0 {
		t.Errorf("Slot allocates %v times", a)
	}
}

func TestSlotRuns(t *testing.T) {
	if New(nil, Options{}).SlotRuns(1) != nil || New([]string{"a"}, Options{}).SlotRuns(0) != nil {
		t.Fatal("SlotRuns of an empty ring or n 0 is not nil")
	}
	for _, n := range []int{1, 2, 5} {
		r := New(names("node-%d", 10), Options{})
		runs := r.SlotRuns(n)
		next := 0
		for i, g := range runs {
			if g.First != next || g.Last < g.First || len(g.Owners) != min(n, r.Len()) {
				t.Fatalf("n %d: run %d = %+v after slot %d", n, i, g, next-1)
			}
			if i > 0 && slices.Equal(runs[i-1].Owners, g.Owners) {
				t.Fatalf("n %d: runs %d and %d have the same owners", n, i-1, i)
			}
			for _, s := range []int{g.First, g.Last, (g.First + g.Last) / 2} {
				if !slices.Equal(r.AppendSlotOwners(nil, s, n), g.Owners) || r.SlotOwner(s) != g.Owners[0] {
					t.Fatalf("n %d: slot %d: owners %v, run says %v", n, s, r.AppendSlotOwners(nil, s, n), g.Owners)
				}
			}
			next = g.Last + 1
		}
		if next != Slots {
			t.Fatalf("n %d: runs end at slot %d", n, next-1)
		}
		t.Logf("10 members, %d owners: %d runs", n, len(runs))
	}
	one := New([]string{"solo"}, Options{}).SlotRuns(3)
	if len(one) != 1 || one[0].First != 0 || one[0].Last != Slots-1 || !slices.Equal(one[0].Owners, []string{"solo"}) {
		t.Fatalf("one member: %+v", one)
	}
}

// crc16Bitwise is CRC-16/XMODEM by its definition, one bit at a time: what
// the sliced tables of CRC16 must agree with.
func crc16Bitwise(s string) uint16 {
	var c uint16
	for i := 0; i < len(s); i++ {
		c ^= uint16(s[i]) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
	}
	return c
}

func TestCRC16MatchesItsDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 64)
	for range 20000 {
		n := rng.IntN(len(b) + 1)
		for i := range n {
			b[i] = byte(rng.Uint32())
		}
		if got, want := CRC16(string(b[:n])), crc16Bitwise(string(b[:n])); got != want {
			t.Fatalf("CRC16(%q) = %#x, want %#x", b[:n], got, want)
		}
	}
}

func BenchmarkSlot(b *testing.B) {
	for b.Loop() {
		_ = Slot("key:000000000123")
	}
}
