package batch

import (
	"fmt"
	"slices"
	"testing"
)

func TestDistinctRun(t *testing.T) {
	many := make([]string, 40) // past the length that switches to a map
	for i := range many {
		many[i] = fmt.Sprint("k", i)
	}
	for _, tc := range []struct {
		keys []string
		want int
	}{
		{nil, 0},
		{[]string{"a"}, 1},
		{[]string{"a", "b", "c"}, 3},
		{[]string{"a", "b", "a", "c"}, 2},
		{[]string{"a", "a"}, 1},
		{[]string{"a", "b", "c", "b"}, 3},
		{many, 40},
		{append(slices.Clone(many), "k3"), 40},
		{append(slices.Clone(many[:35]), "k0", "x"), 35},
	} {
		if got := DistinctRun(len(tc.keys), func(i int) string { return tc.keys[i] }); got != tc.want {
			t.Errorf("DistinctRun(%q) = %d, want %d", tc.keys, got, tc.want)
		}
	}
}

// part is a request in flight with a buffer, as a caller's would be.
type part struct {
	owner string
	buf   []int
}

func (p *part) Recycle(maxKept int) {
	buf := p.buf
	*p = part{}
	if cap(buf) <= maxKept {
		p.buf = buf[:0]
	}
}

func TestScratchGroups(t *testing.T) {
	var sc Scratch[part, *part]
	for i, owner := range []string{"b", "a", "b", "c", "a", "b"} {
		g := sc.Group(owner)
		sc.Remote[g] = append(sc.Remote[g], i)
	}
	if !slices.Equal(sc.Owners, []string{"b", "a", "c"}) {
		t.Fatalf("owners %q, want in the order met", sc.Owners)
	}
	for g, want := range [][]int{{0, 2, 5}, {1, 4}, {3}} {
		if !slices.Equal(sc.Remote[g], want) {
			t.Errorf("remote[%d] (%s) = %v, want %v", g, sc.Owners[g], sc.Remote[g], want)
		}
	}
	sc.Round()
	if len(sc.Owners) != 0 {
		t.Fatalf("owners %q after Round", sc.Owners)
	}
	// The next round starts every group empty, on the buffers of the last.
	if g := sc.Group("c"); g != 0 || len(sc.Remote[0]) != 0 || cap(sc.Remote[0]) == 0 {
		t.Fatalf("group %d, remote %v (cap %d): want 0, empty, reused", g, sc.Remote[0], cap(sc.Remote[0]))
	}
}

func TestScratchReusesParts(t *testing.T) {
	var sc Scratch[part, *part]
	p := sc.Part()
	p.owner, p.buf = "a", append(p.buf, 1, 2, 3)
	big := sc.Part()
	big.owner, big.buf = "b", make([]int, MaxKept+1)
	sc.Parts = append(sc.Parts, p, big)
	sc.Local = append(sc.Local, 7)
	sc.Round()
	if len(sc.Parts) != 0 || len(sc.Local) != 0 {
		t.Fatalf("parts %d, local %v after Round", len(sc.Parts), sc.Local)
	}
	got := []*part{sc.Part(), sc.Part()}
	if !slices.Contains(got, p) || !slices.Contains(got, big) {
		t.Fatal("Part does not hand out the recycled parts")
	}
	if p.owner != "" || len(p.buf) != 0 || cap(p.buf) < 3 {
		t.Errorf("recycled part %+v (cap %d): want forgotten, buffer kept", p, cap(p.buf))
	}
	if big.buf != nil {
		t.Errorf("a buffer past MaxKept was kept (cap %d)", cap(big.buf))
	}
	if q := sc.Part(); q == p || q == big {
		t.Fatal("a part handed out twice")
	}
}

func TestScratchResetLetsGoOfLargeSlices(t *testing.T) {
	var sc Scratch[part, *part]
	sc.Group("a")
	sc.Group("b")
	sc.Remote[0] = make([]int, MaxKept+1)
	sc.Remote[1] = append(sc.Remote[1], 1)
	sc.Local = make([]int, MaxKept+1)
	sc.Reset()
	if sc.Remote[0] != nil || sc.Local != nil {
		t.Errorf("slices past MaxKept kept: remote cap %d, local cap %d", cap(sc.Remote[0]), cap(sc.Local))
	}
	if cap(sc.Remote[1]) == 0 {
		t.Error("a small slice was let go")
	}
	if len(sc.Owners) != 0 {
		t.Errorf("owners %q after Reset", sc.Owners)
	}
}

func BenchmarkDistinctRun(b *testing.B) {
	for _, n := range []int{16, 64} {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("key:%012d", i*37)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if DistinctRun(n, func(i int) string { return keys[i] }) != n {
					b.Fatal("not distinct")
				}
			}
		})
	}
}
