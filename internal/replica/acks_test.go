package replica

import (
	"fmt"
	"slices"
	"testing"

	"github.com/peercache/peercache/ring"
)

func TestParseAcks(t *testing.T) {
	for _, s := range []string{"all", "quorum", "one"} {
		if a, err := ParseAcks(s); err != nil || string(a) != s {
			t.Errorf("ParseAcks(%q) = %q, %v", s, a, err)
		}
	}
	for _, s := range []string{"", "most", "ALL"} {
		if _, err := ParseAcks(s); err == nil {
			t.Errorf("ParseAcks(%q): no error", s)
		}
	}
}

func TestRequired(t *testing.T) {
	for _, c := range []struct {
		acks         Acks
		replicas, rf int
		want         int
	}{
		{AcksAll, 2, 3, 2},
		{AcksAll, 1, 3, 1}, // fewer members than rf: every replica there is
		{AcksAll, 0, 1, 0},
		{AcksQuorum, 2, 3, 1}, // primary + 1 of 3
		{AcksQuorum, 4, 5, 2}, // primary + 2 of 5
		{AcksQuorum, 3, 4, 2}, // primary + 2 of 4
		{AcksQuorum, 1, 2, 1},
		{AcksQuorum, 0, 3, 0}, // no replica in the ring
		{AcksQuorum, 1, 5, 1}, // fewer replicas than the majority asks
		{AcksOne, 2, 3, 0},
		{"", 2, 3, 2}, // unknown: all
	} {
		if got := Required(c.acks, c.replicas, c.rf); got != c.want {
			t.Errorf("Required(%q, %d, %d) = %d, want %d", c.acks, c.replicas, c.rf, got, c.want)
		}
	}
}

func TestPlacementTargets(t *testing.T) {
	now := ring.New([]string{"a", "b", "c"}, ring.Options{})
	boots := map[string]string{"a": "1", "b": "1", "c": "1"}
	key := func(owner string) string {
		for i := 0; ; i++ {
			if k := fmt.Sprint("k", i); now.Owner(k) == owner {
				return k
			}
		}
	}
	// Not an owner: every owner gets it, and the member drops its copy.
	p := Placement{Self: "z", RF: 2, Ring: now, Boots: boots}
	k := key("a")
	var buf [MaxReplicas]string
	if to, keep := p.Targets(k); keep || !slices.Equal(to, Owners(now, k, 2, &buf)) {
		t.Errorf("non-owner: targets %v keep %v, want all owners, not kept", to, keep)
	}
	// rf 1: an owner keeps it and sends it nowhere.
	p = Placement{Self: "a", RF: 1, Ring: now, Boots: boots}
	if to, keep := p.Targets(k); !keep || len(to) != 0 {
		t.Errorf("rf 1 owner: targets %v keep %v", to, keep)
	}
	// No base: the other owners get it.
	p = Placement{Self: "a", RF: 3, Ring: now, Boots: boots}
	if to, keep := p.Targets(k); !keep || len(to) != 2 || slices.Contains(to, "a") {
		t.Errorf("no base: targets %v keep %v, want b and c", to, keep)
	}
	// Same base and boots: nothing to copy; a restarted owner gets it again.
	p = Placement{Self: "a", RF: 3, Ring: now, Base: now, BaseBoots: boots, Boots: boots}
	if to, keep := p.Targets(k); !keep || len(to) != 0 {
		t.Errorf("settled: targets %v keep %v, want none", to, keep)
	}
	p.Boots = map[string]string{"a": "1", "b": "2", "c": "1"}
	if to, keep := p.Targets(k); !keep || !slices.Equal(to, []string{"b"}) {
		t.Errorf("b restarted: targets %v keep %v, want [b]", to, keep)
	}
}
