// Package clusterview owns what a node knows of its cluster: immutable snapshots
// (View) of the ring it routes by, the earlier rings handoff reads ask (and
// who among the members may still hold a key from before: PreviousOwners),
// and the members with their gossiped metadata; the rule that turns a member
// set into the next snapshot (Next: who is in the ring, when it counts as
// changed, where a first ring's keys were before); and the holder that
// swaps snapshots in and wakes whoever waits for a change (Holder).
//
// It must not know what a node does when the ring changes (migration,
// warm-up, the local tier's epoch, logs and metrics are the caller's),
// nor the network or the shard.
package clusterview

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/ring"
)

// MaxPrev is how many earlier rings a view remembers for handoff reads (a
// key may have moved more than once in quick succession).
const MaxPrev = 3

// Keys in a member's gossiped metadata (membership.Meta.Extra).
const (
	// MetaRing holds the checksum of the ring the member has applied.
	MetaRing = "ring"
	// MetaBoot holds a random id the member chooses at each start: a
	// member that restarted under the same name has a new one (and may
	// have an empty shard).
	MetaBoot = "boot"
)

// View is one immutable snapshot of what a node knows about the cluster.
// Nothing in it is changed once it is published.
type View struct {
	// Version counts the snapshots whose ring differed from the one
	// before (a local counter).
	Version uint64
	// Ring is the ring of the active members.
	Ring *ring.Ring
	// Prev are earlier rings, newest first (at most MaxPrev).
	Prev []*ring.Ring
	// ChangedAt is when Ring replaced the ring before it.
	ChangedAt time.Time
	// Members are the members by name, whatever their state.
	Members map[string]membership.Member
	// Migrating: some member reports a migration in progress.
	Migrating bool
	// Boots maps each member to the boot id it gossips (MetaBoot).
	Boots map[string]string
	// Checksum identifies the ring (members and options); members gossip
	// the checksum of the ring they have applied (MetaRing).
	Checksum string
}

// PeerAddr returns the peer address member name gossips, false if name is
// no member of v or gossips none.
func (v *View) PeerAddr(name string) (string, bool) {
	m, ok := v.Members[name]
	if !ok || m.Meta.PeerAddr == "" {
		return "", false
	}
	return m.Meta.PeerAddr, true
}

// PeerProto returns the peer protocol version member name gossips (0:
// unknown).
func (v *View) PeerProto(name string) int { return v.Members[name].Meta.Proto }

// MaxPreviousOwners bounds how many members PreviousOwners lists (how many
// a handoff read asks).
const MaxPreviousOwners = 3

// PreviousOwners lists the members other than self that may still hold key
// from before the latest ring changes: its owner in each earlier ring of v
// (newest first), then the next members in the key's rendezvous order,
// which is where the key lived before members that joined recently (even
// ones that joined before self did, whose earlier rings it never saw). At
// most MaxPreviousOwners.
func (v *View) PreviousOwners(key, self string) []string {
	var out []string
	add := func(o string) {
		if o != "" && o != self && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	for _, r := range v.Prev {
		add(r.Owner(key))
	}
	var buf [MaxPreviousOwners + 1]string
	for _, o := range v.Ring.AppendOwners(buf[:0], key, MaxPreviousOwners+1) {
		if len(out) >= MaxPreviousOwners {
			break
		}
		add(o)
	}
	return out
}

// Empty returns the view of a node that knows no member yet.
func Empty(opts ring.Options) *View {
	return &View{Ring: ring.New(nil, opts), Members: map[string]membership.Member{}}
}

// Self is what the node building a view says about itself: its name and
// state override what gossip last carried of it (its own state is
// authoritative locally and takes effect before gossip spreads it).
type Self struct {
	Name  string
	State membership.State
}

// Next returns the view that follows old for the member set ms: the ring
// of the members whose state is active. changed reports whether the ring
// differs from old's; if not, the new view keeps old's ring, version,
// earlier rings, change time and checksum, and only the members (and
// their metadata) are new.
//
// A node's first ring that includes it takes the ring without it as the
// previous one: the keys it now owns were on the other members before it
// joined, so that is where handoff reads go.
func Next(old *View, ms []membership.Member, self Self, opts ring.Options, now time.Time) (nv *View, changed bool) {
	nv = &View{Members: make(map[string]membership.Member, len(ms)), Boots: make(map[string]string, len(ms))}
	var active []string
	for _, m := range ms {
		nv.Members[m.Name] = m
		nv.Boots[m.Name] = m.Meta.Extra[MetaBoot]
		if m.Meta.Migrating {
			nv.Migrating = true
		}
		state := m.Meta.State
		if m.Name == self.Name {
			state = self.State
		}
		if state == membership.StateActive {
			active = append(active, m.Name)
		}
	}
	r := ring.New(active, opts)
	if r.Equal(old.Ring) {
		nv.Version, nv.Ring, nv.Prev, nv.ChangedAt, nv.Checksum = old.Version, old.Ring, old.Prev, old.ChangedAt, old.Checksum
		return nv, false
	}
	nv.Version = old.Version + 1
	nv.Ring = r
	nv.Checksum = r.Checksum()
	nv.ChangedAt = now
	prev := old.Ring
	if !old.Ring.Has(self.Name) && r.Has(self.Name) && old.Ring.Len() == 0 {
		prev = r.Without(self.Name)
	}
	nv.Prev = pushPrev(prev, old.Prev)
	return nv, true
}

// Without returns the view that follows old with member name out of the
// ring (a leaving node routes as if it were gone at once), or nil when
// name is not in old's ring.
func Without(old *View, name string, now time.Time) *View {
	if !old.Ring.Has(name) {
		return nil
	}
	nv := *old
	nv.Version = old.Version + 1
	nv.Ring = old.Ring.Without(name)
	nv.Checksum = nv.Ring.Checksum()
	nv.ChangedAt = now
	nv.Prev = pushPrev(old.Ring, old.Prev)
	return &nv
}

// pushPrev returns the earlier rings with r in front, at most MaxPrev.
func pushPrev(r *ring.Ring, prev []*ring.Ring) []*ring.Ring {
	out := append([]*ring.Ring{r}, prev...)
	return out[:min(len(out), MaxPrev)]
}

// Restarted lists the ring members of nv, other than self, whose boot id
// changed since old.
func Restarted(old, nv *View, self string) []string {
	var out []string
	for _, m := range nv.Ring.Members() {
		if m == self {
			continue
		}
		if ob, ok := old.Boots[m]; ok && ob != "" && nv.Boots[m] != "" && ob != nv.Boots[m] {
			out = append(out, m)
		}
	}
	return out
}

// Holder holds a node's current view. Load and Wait are lock-free; swaps
// are serialised by Lock and Unlock, which the caller holds around
// building the next view and swapping it in (with whatever must happen in
// the same order as the swaps).
type Holder struct {
	cur atomic.Pointer[current]
	mu  sync.Mutex
}

// current is the view with the channel closed when it is replaced.
type current struct {
	v       *View
	swapped chan struct{}
}

// NewHolder returns a holder of v.
func NewHolder(v *View) *Holder {
	h := &Holder{}
	h.cur.Store(&current{v: v, swapped: make(chan struct{})})
	return h
}

// Load returns the current view.
func (h *Holder) Load() *View { return h.cur.Load().v }

// Lock serialises a swap with the others.
func (h *Holder) Lock() { h.mu.Lock() }

// Unlock ends what Lock began.
func (h *Holder) Unlock() { h.mu.Unlock() }

// Swap makes v the current view and wakes every Wait (Lock held).
func (h *Holder) Swap(v *View) {
	old := h.cur.Swap(&current{v: v, swapped: make(chan struct{})})
	close(old.swapped)
}

// Wait waits for a view that done accepts, looking at each one as it is
// swapped in, for at most d (or until ctx ends). It returns the last view
// seen and whether done accepted it.
func (h *Holder) Wait(ctx context.Context, d time.Duration, done func(*View) bool) (*View, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c := h.cur.Load()
		if done(c.v) {
			return c.v, true
		}
		select {
		case <-ctx.Done():
			return c.v, false
		case <-deadline.C:
			return c.v, false
		case <-c.swapped:
		}
	}
}

// MembersByState counts the members of v by gossiped state (joining,
// active, leaving; "unknown" for any other), every state present.
func (v *View) MembersByState() map[string]int {
	counts := map[string]int{string(membership.StateJoining): 0, string(membership.StateActive): 0,
		string(membership.StateLeaving): 0, "unknown": 0}
	for _, m := range v.Members {
		s := string(m.Meta.State)
		if _, ok := counts[s]; !ok {
			s = "unknown"
		}
		counts[s]++
	}
	return counts
}
