package replica

import (
	"slices"
	"sync"

	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/ring"
)

// Placement tells migration where every key a member holds must be: on
// each of its owners. A key the member still owns is copied to the owners
// that may lack it (those that were not owners in the ring of the last
// completed run, or have restarted since); a key it no longer owns is sent
// to all its owners and deleted once they all acknowledged it.
type Placement struct {
	// Self is the member whose keys are placed.
	Self string
	// RF is the replication factor: how many owners each key has.
	RF int
	// Ring is the ring the keys must be placed on.
	Ring *ring.Ring
	// Base is the ring of the last completed run (nil: none, or a full
	// copy is wanted, so every key goes to all its other owners).
	Base *ring.Ring
	// BaseBoots maps each member to its boot id at the last completed run.
	BaseBoots map[string]string
	// Boots maps each member to its boot id now; a member whose boot id
	// changed restarted (with an empty shard) and gets its copies again.
	Boots map[string]string
	// FullGen is the full-copy request this run serves (0: none).
	FullGen uint64
}

var _ migrate.TargetPlacement = Placement{}

// Owner returns key's primary in p.Ring.
func (p Placement) Owner(key string) string { return p.Ring.Owner(key) }

// Targets returns the owners that must receive key from p.Self, and
// whether p.Self keeps its own copy (it is still one of key's owners).
func (p Placement) Targets(key string) ([]string, bool) {
	var buf [MaxReplicas]string
	owners := Owners(p.Ring, key, p.RF, &buf)
	if len(owners) == 0 {
		return nil, true
	}
	if !slices.Contains(owners, p.Self) {
		return slices.Clone(owners), false
	}
	if p.RF == 1 {
		return nil, true
	}
	var had [MaxReplicas]string
	var hadOwners []string
	if p.Base != nil {
		hadOwners = Owners(p.Base, key, p.RF, &had)
	}
	// A primary that is gone (crashed, or left) may have acknowledged
	// writes whose background copies it never finished (acks quorum or
	// one): the surviving owners copy its keys to each other, since none
	// knows which copies are missing. Versioned imports make the extra
	// copies harmless.
	primaryGone := len(hadOwners) > 0 && !p.Ring.Has(hadOwners[0])
	var to []string
	for _, o := range owners {
		if o == p.Self {
			continue
		}
		if !primaryGone && slices.Contains(hadOwners, o) && p.Boots[o] != "" && p.Boots[o] == p.BaseBoots[o] {
			continue // it had a copy at the last completed run and has not restarted
		}
		to = append(to, o)
	}
	return to, true
}

// Base is what a member's ring-change runs are planned against: the ring
// and boot ids of its last completed run, and the full copies asked for
// (WantFull) and served. It is safe for concurrent use; the zero value is
// a member that has completed no run.
type Base struct {
	mu         sync.Mutex
	ring       *ring.Ring
	boots      map[string]string // boot ids at that run
	fullWanted uint64            // full re-replication runs asked for
	fullDone   uint64            // the latest of them a completed run served
}

// Placement returns the placement of a run that puts self's keys on r (with
// the members' boot ids now) with rf owners each, against the base. While a
// full copy is wanted it has no base ring: every key is copied to all its
// owners.
func (b *Base) Placement(self string, rf int, r *ring.Ring, boots map[string]string) Placement {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := Placement{Self: self, RF: rf, Ring: r, Base: b.ring, BaseBoots: b.boots, Boots: boots}
	if b.fullWanted > b.fullDone {
		p.Base, p.BaseBoots, p.FullGen = nil, nil, b.fullWanted
	}
	return p
}

// Completed records that a run finished for p: every key the member holds
// is on all its owners in p.Ring, which becomes the base.
func (b *Base) Completed(p Placement) {
	b.mu.Lock()
	b.ring, b.boots = p.Ring, p.Boots
	b.fullDone = max(b.fullDone, p.FullGen)
	b.mu.Unlock()
}

// WantFull asks for a full copy: the placements from now on have no base
// ring, until a run for one of them completes.
func (b *Base) WantFull() {
	b.mu.Lock()
	b.fullWanted++
	b.mu.Unlock()
}
