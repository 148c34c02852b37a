package clusterview

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/ring"
)

func member(name string, state membership.State, boot string) membership.Member {
	return membership.Member{Name: name, Meta: membership.Meta{State: state, Extra: map[string]string{MetaBoot: boot}}}
}

var opts = ring.Options{VNodes: 16}

func TestNextRingOfActiveMembers(t *testing.T) {
	now := time.Unix(100, 0)
	v0 := Empty(opts)
	ms := []membership.Member{member("a", membership.StateActive, "1"), member("b", membership.StateActive, "1"),
		member("c", membership.StateJoining, "1")}
	v1, changed := Next(v0, ms, Self{Name: "a", State: membership.StateActive}, opts, now)
	if !changed || v1.Version != 1 || !slices.Equal(v1.Ring.Members(), []string{"a", "b"}) || !v1.ChangedAt.Equal(now) {
		t.Fatalf("first view: changed %v, %+v", changed, v1)
	}
	if len(v1.Members) != 3 || v1.Checksum != v1.Ring.Checksum() {
		t.Fatalf("members %d, checksum %q", len(v1.Members), v1.Checksum)
	}
	// This node's first ring: handoff reads go to the ring without it.
	if len(v1.Prev) != 1 || !slices.Equal(v1.Prev[0].Members(), []string{"b"}) {
		t.Fatalf("prev of the first ring: %v", v1.Prev)
	}

	// Same active members, new metadata: same ring, same version.
	ms[2].Meta.Migrating = true
	v2, changed := Next(v1, ms, Self{Name: "a", State: membership.StateActive}, opts, now.Add(time.Second))
	if changed || v2.Version != 1 || v2.Ring != v1.Ring || !v2.ChangedAt.Equal(now) || !v2.Migrating {
		t.Fatalf("same ring: changed %v, %+v", changed, v2)
	}

	// This node's own state wins over what gossip last said of it.
	v3, changed := Next(v2, ms, Self{Name: "a", State: membership.StateLeaving}, opts, now.Add(2*time.Second))
	if !changed || v3.Version != 2 || !slices.Equal(v3.Ring.Members(), []string{"b"}) || v3.Prev[0] != v2.Ring {
		t.Fatalf("leaving self: %+v", v3)
	}
}

func TestPrevBounded(t *testing.T) {
	v := Empty(opts)
	names := []string{"a", "b", "c", "d", "e", "f"}
	for i := range names {
		var ms []membership.Member
		for _, n := range names[:i+1] {
			ms = append(ms, member(n, membership.StateActive, "1"))
		}
		v, _ = Next(v, ms, Self{Name: "a", State: membership.StateActive}, opts, time.Now())
	}
	if len(v.Prev) != MaxPrev {
		t.Fatalf("%d earlier rings, want %d", len(v.Prev), MaxPrev)
	}
}

func TestWithoutAndRestarted(t *testing.T) {
	ms := []membership.Member{member("a", membership.StateActive, "1"), member("b", membership.StateActive, "1")}
	v1, _ := Next(Empty(opts), ms, Self{Name: "a", State: membership.StateActive}, opts, time.Now())
	w := Without(v1, "a", time.Now())
	if w == nil || w.Version != v1.Version+1 || w.Ring.Has("a") || w.Prev[0] != v1.Ring || len(w.Members) != 2 {
		t.Fatalf("Without: %+v", w)
	}
	if Without(w, "a", time.Now()) != nil {
		t.Fatal("Without of a member not in the ring made a view")
	}
	ms[1] = member("b", membership.StateActive, "2")
	v2, changed := Next(v1, ms, Self{Name: "a", State: membership.StateActive}, opts, time.Now())
	if changed {
		t.Fatal("a restart under the same name changed the ring")
	}
	if got := Restarted(v1, v2, "a"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("Restarted = %v", got)
	}
	if got := Restarted(v1, v1, "a"); got != nil {
		t.Fatalf("Restarted without a change = %v", got)
	}
}

func TestHolderWait(t *testing.T) {
	v0 := Empty(opts)
	h := NewHolder(v0)
	if h.Load() != v0 {
		t.Fatal("Load")
	}
	// Already accepted: no wait.
	if v, ok := h.Wait(context.Background(), time.Hour, func(*View) bool { return true }); !ok || v != v0 {
		t.Fatal("Wait on an accepted view")
	}
	// Woken by a swap, well before the bound.
	var wg sync.WaitGroup
	got := make(chan *View, 1)
	wg.Go(func() {
		v, ok := h.Wait(context.Background(), time.Minute, func(v *View) bool { return v.Version == 2 })
		if ok {
			got <- v
		}
	})
	time.Sleep(10 * time.Millisecond)
	for i := 1; i <= 2; i++ {
		h.Lock()
		h.Swap(&View{Version: uint64(i), Ring: v0.Ring})
		h.Unlock()
	}
	wg.Wait()
	select {
	case v := <-got:
		if v.Version != 2 {
			t.Fatalf("woke with version %d", v.Version)
		}
	default:
		t.Fatal("Wait did not see the swap")
	}
	// Bounded by d and by ctx.
	if _, ok := h.Wait(context.Background(), 5*time.Millisecond, func(*View) bool { return false }); ok {
		t.Fatal("Wait past its bound")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ok := h.Wait(ctx, time.Hour, func(*View) bool { return false }); ok {
		t.Fatal("Wait past its context")
	}
}

func TestPreviousOwners(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f"}
	full := ring.New(names, opts)
	// No earlier ring: the next members in the key's rendezvous order,
	// self left out, at most MaxPreviousOwners.
	v := &View{Ring: full}
	for i := range 50 {
		key := fmt.Sprint("k", i)
		order := full.Owners(key, len(names))
		self := order[i%3] // first, second or third in the key's order
		var want []string
		for _, o := range order[:MaxPreviousOwners+1] {
			if o != self && len(want) < MaxPreviousOwners {
				want = append(want, o)
			}
		}
		if got := v.PreviousOwners(key, self); !slices.Equal(got, want) {
			t.Fatalf("%s, self %s (order %v): %v, want %v", key, self, order, got, want)
		}
	}

	// Earlier rings first, newest first, each owner once; then the
	// rendezvous order fills up to MaxPreviousOwners.
	prev1, prev2 := ring.New([]string{"a", "b"}, opts), ring.New([]string{"c"}, opts)
	v = &View{Ring: full, Prev: []*ring.Ring{prev1, prev2}}
	for i := range 50 {
		key := fmt.Sprint("k", i)
		var want []string
		for _, o := range append([]string{prev1.Owner(key), prev2.Owner(key)}, full.Owners(key, MaxPreviousOwners+1)...) {
			if o != "f" && !slices.Contains(want, o) && len(want) < MaxPreviousOwners {
				want = append(want, o)
			}
		}
		got := v.PreviousOwners(key, "f")
		if !slices.Equal(got, want) || got[0] != prev1.Owner(key) {
			t.Fatalf("%s: %v, want %v", key, got, want)
		}
	}
	// Self is never listed, even as an earlier owner.
	v = &View{Ring: ring.New([]string{"b"}, opts), Prev: []*ring.Ring{ring.New([]string{"a"}, opts)}}
	if got := v.PreviousOwners("k", "a"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("self as earlier owner: %v", got)
	}
	// A view of no member: nobody to ask.
	if got := Empty(opts).PreviousOwners("k", "a"); len(got) != 0 {
		t.Fatalf("empty view: %v", got)
	}
}

func TestMembersByState(t *testing.T) {
	v := &View{Members: map[string]membership.Member{
		"a": {Meta: membership.Meta{State: membership.StateActive}},
		"b": {Meta: membership.Meta{State: membership.StateActive}},
		"c": {Meta: membership.Meta{State: "weird"}},
	}}
	got := v.MembersByState()
	if got["active"] != 2 || got["unknown"] != 1 || got["joining"] != 0 || got["leaving"] != 0 || len(got) != 4 {
		t.Fatalf("MembersByState = %v", got)
	}
}
