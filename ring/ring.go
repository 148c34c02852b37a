// Package ring owns peercache's key placement: the 16384 Redis Cluster hash
// slots a key maps to, immutable ring snapshots that map a slot to its owner
// member (and replica members), and the diff between two snapshots that
// tells migration which slot ranges changed hands. It knows nothing of the
// network or of storage, and it has no package-level mutable state.
//
// # Placement
//
// A key's slot is Redis Cluster's: CRC16 (XMODEM) of the key's hash tag (the
// first non-empty "{...}", or the whole key) modulo 16384 (see [Slot]), so
// keys sharing a tag share a slot and a Redis Cluster client computes the
// same slot as the server.
//
// A ring is a pure function of (member set, Options): every node that builds
// a ring from the same members and options places every slot identically,
// whatever the order in which members were listed or joined. The slots are
// grouped into a fixed number of equal partitions of consecutive slots,
// VNodes*64 rounded up to a power of two and capped at one slot each: 8192
// partitions of two slots with the default of 128. Each partition belongs to
// the member with the highest rendezvous score for it, a 64-bit mix of an
// xxhash of the member's name and the partition number; equal scores go to
// the member whose name sorts first.
//
// This keeps the two properties of a classic token ring, which are:
//
//   - when a member joins, the only keys that move are the ones it takes over
//   - when a member leaves, the only keys that move are its own
//
// and balances load much better than tokens hashed per member ("name#i"),
// whose shares have a relative spread of about 1/sqrt(vnodes). Fixed
// partitions with rendezvous ownership have a binomial spread,
// sqrt(members/partitions). The partition count trades that spread against
// the number of runs of consecutive slots with one owner, which is what a
// CLUSTER SLOTS reply lists (docs/ARCHITECTURE.md has the figures). Owner is
// a CRC16, a shift and a table lookup.
//
// Positions: [Ring.KeyHash] places a key at its slot times 2^50, so the
// 64-bit positions that [Range] and [Diff] speak of are slot boundaries.
//
// Building a ring costs O(members × partitions) cheap integer mixes (at the
// default size, well under a millisecond for 10 members); [Ring.With] and
// [Ring.Without] cost O(partitions). A snapshot holds a 4-byte entry per
// partition (32 KiB by default).
package ring

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// DefaultVNodes is the VNodes value used when Options.VNodes is zero.
const DefaultVNodes = 128

// Slots is the number of Redis Cluster hash slots keys map to.
const Slots = 16384

const (
	// partitionsPerVNodeBits (log2 64) makes the default 128 vnodes 8192
	// partitions of two slots each.
	partitionsPerVNodeBits = 6
	slotBits               = 14 // log2 Slots: one slot per partition at most
	// slotShift places a slot at the top 14 bits of a 64-bit position.
	slotShift = 64 - slotBits
)

// Options configures a ring. Every node must use identical options, since the
// ring is a pure function of the member set and the options.
type Options struct {
	// VNodes sets the number of partitions the 16384 slots are grouped
	// into: VNodes*64, rounded up to a power of two and capped at 16384 (one
	// slot each). Zero or negative means DefaultVNodes (8192 partitions of
	// two slots).
	VNodes int
}

// Ring is an immutable snapshot of the member set and its slot placement. It
// is safe for concurrent use. A nil *Ring behaves as an empty ring with
// default options.
type Ring struct {
	members []string // sorted, unique, non-empty
	seeds   []uint64 // xxhash of each member name
	table   []uint32 // partition -> index into members; nil when empty
	bits    uint     // log2 of the partition count
	vnodes  int      // normalized Options.VNodes
}

// New builds a ring snapshot of members. Duplicate and empty names are
// ignored, and order does not matter: the same set gives the same ring. An
// empty set is allowed; its Owner is "".
func New(members []string, opts Options) *Ring {
	r := newEmpty(opts)
	ms := make([]string, 0, len(members))
	for _, m := range members {
		if m != "" {
			ms = append(ms, m)
		}
	}
	slices.Sort(ms)
	ms = slices.Compact(ms)
	if len(ms) == 0 {
		return r
	}
	r.members = slices.Clip(ms)
	r.seeds = make([]uint64, len(ms))
	for i, m := range ms {
		r.seeds[i] = memberSeed(m)
	}
	r.table = make([]uint32, 1<<r.bits)
	if len(ms) > 1 {
		for p := range r.table {
			r.table[p] = r.best(uint64(p), -1)
		}
	}
	return r
}

// newEmpty returns an empty ring with normalized opts.
func newEmpty(opts Options) *Ring {
	r := &Ring{vnodes: opts.VNodes}
	if r.vnodes <= 0 {
		r.vnodes = DefaultVNodes
	}
	r.bits = min(partitionsPerVNodeBits+uint(bits.Len(uint(r.vnodes-1))), slotBits)
	return r
}

// best returns the index of the member with the highest score for partition p,
// skipping index skip (-1 for none). Ties go to the lower index, that is the
// name that sorts first.
func (r *Ring) best(p uint64, skip int) uint32 {
	bi, bs := -1, uint64(0)
	pk := partitionKey(p)
	for i, seed := range r.seeds {
		if i == skip {
			continue
		}
		if s := score(seed, pk); bi < 0 || s > bs {
			bi, bs = i, s
		}
	}
	return uint32(bi)
}

// memberSeed places a member on the ring.
func memberSeed(name string) uint64 { return xxhash.Sum64String(name) }

// partitionKey is the per-partition input to score.
func partitionKey(p uint64) uint64 { return mix64(p + 0x9e3779b97f4a7c15) }

// score is the rendezvous weight of the member with the given seed for the
// partition with key pk (see partitionKey).
func score(seed, pk uint64) uint64 { return mix64(seed ^ pk) }

// mix64 is the MurmurHash3 64-bit finalizer, a bijection with full avalanche.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// Options returns the ring's options, normalized: VNodes is never zero.
func (r *Ring) Options() Options {
	if r == nil {
		return Options{VNodes: DefaultVNodes}
	}
	return Options{VNodes: r.vnodes}
}

// Partitions returns the number of equal partitions the slots are grouped
// into; it depends only on Options.VNodes.
func (r *Ring) Partitions() int {
	if r == nil {
		return 1 << newEmpty(Options{}).bits
	}
	return 1 << r.bits
}

// KeyHash returns the ring position of key: its slot (see [Slot]) times
// 2^50, so that positions sort by slot. Ranges returned by Diff are in this
// space. It does not allocate.
func (r *Ring) KeyHash(key string) uint64 { return uint64(Slot(key)) << slotShift }

// SlotHash returns the ring position of slot, the KeyHash of every key in it.
func SlotHash(slot int) uint64 { return uint64(slot&(Slots-1)) << slotShift }

// Owner returns the member owning key, the owner of the partition its slot
// lies in, or "" if the ring is empty. It does not allocate.
func (r *Ring) Owner(key string) string {
	if r == nil || len(r.members) == 0 {
		return ""
	}
	return r.members[r.table[Slot(key)>>(slotBits-r.bits)]]
}

// SlotOwner returns the member owning slot (taken modulo 16384), or "" if
// the ring is empty.
func (r *Ring) SlotOwner(slot int) string {
	if r == nil || len(r.members) == 0 {
		return ""
	}
	return r.members[r.table[(slot&(Slots-1))>>(slotBits-r.bits)]]
}

// OwnerOfHash returns the member owning ring position h (a KeyHash value), or
// "" if the ring is empty.
func (r *Ring) OwnerOfHash(h uint64) string {
	if r == nil || len(r.members) == 0 {
		return ""
	}
	return r.members[r.table[h>>(64-r.bits)]]
}

// Owners returns up to n distinct members for key in rendezvous order: the
// members ranked by their score for the key's partition, highest first. The
// first is the primary owner (== Owner(key)); the next ones are the replicas,
// and also where the key goes if the members before them leave (so a node
// looking for a key that may not have moved yet asks them in this order).
// It returns every member when n >= Len(), and nil when n <= 0 or the ring
// is empty.
func (r *Ring) Owners(key string, n int) []string {
	if r == nil || n <= 0 || len(r.members) == 0 {
		return nil
	}
	return r.AppendOwners(make([]string, 0, min(n, len(r.members))), key, n)
}

// AppendOwners appends Owners(key, n) to dst and returns the extended slice.
// It does not allocate when dst has room and n <= 16.
func (r *Ring) AppendOwners(dst []string, key string, n int) []string {
	return r.AppendSlotOwners(dst, Slot(key), n)
}

// AppendSlotOwners appends the first n members of slot's rendezvous order
// (taken modulo 16384; Owners of any key in the slot) to dst and returns
// the extended slice. It does not allocate when dst has room and n <= 16.
func (r *Ring) AppendSlotOwners(dst []string, slot, n int) []string {
	if r == nil || n <= 0 || len(r.members) == 0 {
		return dst
	}
	n = min(n, len(r.members))
	pk := partitionKey(uint64(slot&(Slots-1)) >> (slotBits - r.bits))
	var small [16]uint32
	var picked []uint32 // member indices, for small n
	var seen []bool     // for large n
	if n <= len(small) {
		picked = small[:0]
	} else {
		seen = make([]bool, len(r.members))
	}
	taken := func(i int) bool {
		if seen != nil {
			return seen[i]
		}
		return slices.Contains(picked, uint32(i))
	}
	for found := 0; found < n; found++ {
		bi, bs := -1, uint64(0)
		for i, seed := range r.seeds {
			if taken(i) {
				continue
			}
			if s := score(seed, pk); bi < 0 || s > bs {
				bi, bs = i, s
			}
		}
		if seen != nil {
			seen[bi] = true
		} else {
			picked = append(picked, uint32(bi))
		}
		dst = append(dst, r.members[bi])
	}
	return dst
}

// SlotRun is a run of consecutive slots, First to Last inclusive, whose
// rendezvous order starts with the same Owners (primary first).
type SlotRun struct {
	First, Last int
	Owners      []string
}

// SlotRuns cuts the 16384 slots into maximal runs with the same first n
// owners (n is capped at Len()), in slot order: what a CLUSTER SLOTS reply
// lists. Runs share their Owners slices with each other when equal; callers
// must not change them. It is nil for an empty ring or n <= 0.
func (r *Ring) SlotRuns(n int) []SlotRun {
	if r.Len() == 0 || n <= 0 {
		return nil
	}
	var out []SlotRun
	var buf []string
	per := Slots >> r.bits // slots in a partition
	for p := range r.table {
		buf = r.AppendSlotOwners(buf[:0], p*per, n)
		if k := len(out) - 1; k >= 0 && slices.Equal(out[k].Owners, buf) {
			out[k].Last = (p+1)*per - 1
			continue
		}
		out = append(out, SlotRun{First: p * per, Last: (p+1)*per - 1, Owners: slices.Clone(buf)})
	}
	return out
}

// Members returns the members, sorted, in a new slice.
func (r *Ring) Members() []string {
	if r == nil {
		return []string{}
	}
	return append([]string{}, r.members...)
}

// Has reports whether member is in the ring.
func (r *Ring) Has(member string) bool {
	if r == nil {
		return false
	}
	_, ok := slices.BinarySearch(r.members, member)
	return ok
}

// Len returns the number of members.
func (r *Ring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.members)
}

// With returns a snapshot with member added and the same options; it equals
// New(append(r.Members(), member), r.Options()). It returns r itself when
// member is already present or empty (snapshots are immutable).
func (r *Ring) With(member string) *Ring {
	if member == "" || r.Has(member) {
		return r
	}
	if r.Len() == 0 {
		return New([]string{member}, r.Options())
	}
	pos, _ := slices.BinarySearch(r.members, member)
	nr := r.derive(slices.Insert(slices.Clone(r.members), pos, member))
	xs := memberSeed(member)
	for p, w := range r.table {
		pk := partitionKey(uint64(p))
		ns, ws := score(xs, pk), score(r.seeds[w], pk)
		switch {
		case ns > ws || (ns == ws && uint32(pos) <= w):
			nr.table[p] = uint32(pos)
		case w >= uint32(pos):
			nr.table[p] = w + 1
		default:
			nr.table[p] = w
		}
	}
	return nr
}

// Without returns a snapshot with member removed and the same options; it
// equals New(members minus member, r.Options()). Only member's keys move. It
// returns r itself when member is not present.
func (r *Ring) Without(member string) *Ring {
	if !r.Has(member) {
		return r
	}
	if r.Len() == 1 {
		return newEmpty(r.Options())
	}
	pos, _ := slices.BinarySearch(r.members, member)
	nr := r.derive(slices.Delete(slices.Clone(r.members), pos, pos+1))
	for p, w := range r.table {
		if w == uint32(pos) {
			w = r.best(uint64(p), pos)
		}
		if w > uint32(pos) {
			w--
		}
		nr.table[p] = w
	}
	return nr
}

// derive returns a ring with r's options, the given sorted members and an
// unfilled table.
func (r *Ring) derive(members []string) *Ring {
	nr := &Ring{members: members, bits: r.bits, vnodes: r.vnodes}
	nr.seeds = make([]uint64, len(members))
	for i, m := range members {
		nr.seeds[i] = memberSeed(m)
	}
	nr.table = make([]uint32, len(r.table))
	return nr
}

// Equal reports whether r and o have the same members and options, and so
// place every key identically. VNodes values that give the same partition
// count count as equal.
func (r *Ring) Equal(o *Ring) bool {
	if r == nil {
		r = newEmpty(Options{})
	}
	if o == nil {
		o = newEmpty(Options{})
	}
	return r.bits == o.bits && slices.Equal(r.members, o.members)
}

// Shares returns the fraction of the slots owned by each member. The
// fractions are exact and sum to 1. Members that own nothing appear with 0. An
// empty ring gives an empty map.
func (r *Ring) Shares() map[string]float64 {
	out := make(map[string]float64, r.Len())
	if r.Len() == 0 {
		return out
	}
	counts := make([]int, len(r.members))
	for _, m := range r.table {
		counts[m]++
	}
	for i, m := range r.members {
		out[m] = float64(counts[i]) / float64(len(r.table))
	}
	return out
}

// Range is an arc of the ring whose keys move From one member To another.
// Bounds are KeyHash values, and the arc is half-open: it holds the positions
// h with Start < h <= End. When Start >= End the arc wraps past the top of the
// hash space: h > Start || h <= End. So Start == math.MaxUint64 means the arc
// begins at position 0, and Start == End is the whole ring. Use Contains
// rather than comparing by hand. From is "" when the old ring was
// empty, and To is "" when the new ring is empty.
type Range struct {
	Start, End uint64
	From, To   string
}

// Contains reports whether ring position h (a KeyHash value) lies in g.
func (g Range) Contains(h uint64) bool {
	if g.Start < g.End {
		return g.Start < h && h <= g.End
	}
	return h > g.Start || h <= g.End
}

// Diff returns the arcs of the ring whose owner differs between old and next,
// so that a key's owner changed exactly when its KeyHash lies in a returned
// range, with From == old.Owner(key) and To == next.Owner(key). Adjacent arcs
// with the same From and To are merged, including across the top of the hash
// space. The ranges are disjoint and in ring order from position 0; a range
// that wraps past the top (Start >= End, Start != math.MaxUint64) comes
// last. Diff is nil when nothing moves. The rings may have different VNodes.
func Diff(old, next *Ring) []Range {
	if old == nil {
		old = newEmpty(Options{})
	}
	if next == nil {
		next = newEmpty(Options{})
	}
	b := max(old.bits, next.bits)
	shift := 64 - b
	size := uint64(1) << b
	owner := func(r *Ring, p uint64) string {
		if len(r.members) == 0 {
			return ""
		}
		return r.members[r.table[p>>(b-r.bits)]]
	}
	var out []Range
	open := false // out's last range ends at the previous partition
	for p := range size {
		from, to := owner(old, p), owner(next, p)
		if from == to {
			open = false
			continue
		}
		end := (p+1)<<shift - 1
		if open && out[len(out)-1].From == from && out[len(out)-1].To == to {
			out[len(out)-1].End = end
			continue
		}
		out = append(out, Range{Start: p<<shift - 1, End: end, From: from, To: to})
		open = true
	}
	// Merge the last range into the first when they meet at the top.
	if n := len(out); n > 1 && out[0].Start == math.MaxUint64 && out[n-1].End == math.MaxUint64 &&
		out[0].From == out[n-1].From && out[0].To == out[n-1].To {
		out[n-1].End = out[0].End
		out = out[1:]
	}
	return out
}

// Checksum identifies the ring: a hex digest of its members, its VNodes
// setting and the placement scheme (slots), equal on every node that built
// the same ring. Nodes compare it to tell whether they agree on placement; a
// node of a release that placed keys by xxhash shows another checksum.
func (r *Ring) Checksum() string {
	o := r.Options()
	var members []string
	if r != nil {
		members = r.members
	}
	return fmt.Sprintf("%016x", xxhash.Sum64String(strings.Join(members, "\x00")+"\x00"+strconv.Itoa(o.VNodes)+"\x00slots"))
}
