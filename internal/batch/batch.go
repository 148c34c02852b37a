// Package batch owns the bookkeeping of a batch of operations on keys that a
// client sent together (a pipeline): cutting it into runs of distinct keys
// (DistinctRun), grouping the operations of one run by the member that owns
// their key (Scratch.Group), and the buffers that one batch leaves for the
// next (Scratch: the groups, and the caller's requests in flight with the
// buffers they carry).
//
// The package must not know the node that composes it or the peer protocol:
// operations are the caller's, seen only as indexes and keys; a request in
// flight is the caller's type, which says how to forget what it carried and
// keep its buffers (Part). It has no package-level mutable state; a Scratch
// serves one batch at a time.
package batch

import "github.com/cespare/xxhash/v2"

// MaxKept bounds the slices a Scratch keeps for reuse: one that grew past
// it (a rare huge batch) is let go rather than held.
const MaxKept = 1024

// Part is the constraint on a caller's request in flight (a pointer to its
// type T) that a Scratch reuses.
type Part[T any] interface {
	*T
	// Recycle forgets what the request carried, keeping its buffers for the
	// next request unless they have grown past maxKept.
	Recycle(maxKept int)
}

// Scratch is the working space of one batch, kept (in a pool) for the next:
// the operations of each owner, the local ones, and the requests in flight
// (P, a pointer to T) with their buffers. The zero value is ready to use.
type Scratch[T any, P Part[T]] struct {
	// Owners are the owners met in the current round, in the order Group
	// met them.
	Owners []string
	// Remote holds the operations (indexes into the round's) going to
	// Owners[i].
	Remote [][]int
	// Local holds the operations served locally.
	Local []int
	// Parts are the requests in flight of the current round.
	Parts []P
	spare []P // parts whose buffers are reused
}

// Group returns the index of owner in sc.Owners, adding it (with an empty
// sc.Remote entry) if needed.
func (sc *Scratch[T, P]) Group(owner string) int {
	for i, o := range sc.Owners {
		if o == owner {
			return i
		}
	}
	sc.Owners = append(sc.Owners, owner)
	if len(sc.Remote) < len(sc.Owners) {
		sc.Remote = append(sc.Remote, nil)
	}
	sc.Remote[len(sc.Owners)-1] = sc.Remote[len(sc.Owners)-1][:0]
	return len(sc.Owners) - 1
}

// Part returns a part to fill, with the buffers of an earlier one.
func (sc *Scratch[T, P]) Part() P {
	if k := len(sc.spare); k > 0 {
		p := sc.spare[k-1]
		sc.spare = sc.spare[:k-1]
		return p
	}
	return P(new(T))
}

// Round forgets the operations of one round, keeping the buffers: each
// part is recycled for a later Part.
func (sc *Scratch[T, P]) Round() {
	for _, p := range sc.Parts {
		p.Recycle(MaxKept)
		sc.spare = append(sc.spare, p)
	}
	sc.Parts = sc.Parts[:0]
	sc.Owners = sc.Owners[:0]
	sc.Local = sc.Local[:0]
}

// Reset makes sc ready for the next batch, letting go of the slices that
// grew past MaxKept.
func (sc *Scratch[T, P]) Reset() {
	sc.Round()
	for i := range sc.Remote {
		if cap(sc.Remote[i]) > MaxKept {
			sc.Remote[i] = nil
		}
	}
	if cap(sc.Local) > MaxKept {
		sc.Local = nil
	}
}

// DistinctRun is the length of the longest prefix of n operations whose
// keys (key(i) of operation i) are distinct: at least 1 when n > 0. Up to
// shortRun keys are told apart by a 64-bit hash first (pairwise, without
// allocating), and compared byte by byte only when two hashes agree.
func DistinctRun(n int, key func(i int) string) int {
	if n > shortRun {
		seen := make(map[string]struct{}, n)
		for i := range n {
			k := key(i)
			if _, dup := seen[k]; dup {
				return i
			}
			seen[k] = struct{}{}
		}
		return n
	}
	var hs [shortRun]uint64
	for i := range n {
		k := key(i)
		h := xxhash.Sum64String(k)
		for j := range i {
			if hs[j] == h && key(j) == k {
				return i
			}
		}
		hs[i] = h
	}
	return n
}

// shortRun is the longest run DistinctRun checks without a map.
const shortRun = 32
