package node

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
)

// Write acknowledgement policies (Config.WriteAcks).
const (
	WriteAcksAll    = "all"
	WriteAcksQuorum = "quorum"
	WriteAcksOne    = "one"
)

// maxReplicas bounds Config.Replicas (and the owner buffers below).
const maxReplicas = 16

// owners returns the key's owners in r: the primary first, then replicas.
func (n *Node) owners(r *ring.Ring, key string, buf *[maxReplicas]string) []string {
	return r.AppendOwners(buf[:0], key, n.cfg.Replicas)
}

// isOwner reports whether this node is one of the key's owners in r.
func (n *Node) isOwner(r *ring.Ring, key string) bool {
	var buf [maxReplicas]string
	return slices.Contains(n.owners(r, key, &buf), n.cfg.Name)
}

// requiredReplicaAcks is how many replicas (besides the primary) must
// acknowledge a write, given how many replicas the key has in the ring.
func (n *Node) requiredReplicaAcks(replicas int) int {
	switch n.cfg.WriteAcks {
	case WriteAcksOne:
		return 0
	case WriteAcksQuorum:
		return min(replicas, n.cfg.Replicas/2) // majority of Replicas, the primary included
	default:
		return replicas
	}
}

// replicate sends writes the primary applied to their replicas and waits
// for the acknowledgements the policy asks for; the other copies finish in
// the background (bounded by PeerTimeout). Each replica gets one import
// with all the entries it holds a copy of. It returns one error per entry:
// a write with too few copies acknowledged (retryable; the write is on the
// primary, and the repair path copies it again).
func (n *Node) replicate(ctx context.Context, v *view, es []store.Entry) []*Error {
	errs := make([]*Error, len(es))
	required := make([]int, len(es)) // replica acks entry i needs
	acked := make([]int, len(es))
	spare := make([]int, len(es)) // replicas of entry i that may still answer
	byPeer := map[string][]int{}  // replica -> entries it gets
	for i, e := range es {
		var buf [maxReplicas]string
		for _, o := range n.owners(v.ring, e.Key, &buf) {
			if o != n.cfg.Name {
				byPeer[o] = append(byPeer[o], i)
				spare[i]++
			}
		}
		required[i] = n.requiredReplicaAcks(spare[i])
	}
	if len(byPeer) == 0 {
		return errs
	}
	if len(byPeer) == 1 && slices.Equal(required, spare) {
		// One replica, and every copy must be acknowledged (rf 2, acks
		// all): send on this goroutine, no fan-out needed.
		for p, idx := range byPeer {
			batch := make([]store.Entry, len(idx))
			for j, i := range idx {
				batch[j] = es[i]
			}
			sctx, cancel := context.WithTimeout(ctx, n.cfg.PeerTimeout)
			res, err := peerTransport{n}.send(sctx, p, batch)
			cancel()
			for j, i := range idx {
				if err == nil && res[j].IsAcked() {
					n.metrics.replication.WithLabelValues("acked").Inc()
					continue
				}
				why, label := fmt.Sprintf("%s refused the copy (it does not own the key in its view yet)", p), "refused"
				if err != nil {
					why, label = err.Error(), "error"
				}
				n.metrics.replication.WithLabelValues(label).Inc()
				n.repair.add(batch[j].Key) // copied again as soon as the replica answers
				errs[i] = retryable(http.StatusServiceUnavailable,
					"write applied on the primary but its replica copy was not acknowledged: %s", why)
			}
		}
		return errs
	}
	type answer struct {
		peer string
		idx  []int
		res  []migrate.ImportResult
		err  error
	}
	answers := make(chan answer, len(byPeer))
	// Sends outlive the request when the policy does not wait for them (or
	// the caller gives up), and a value may alias the caller's buffer (the
	// RESP door's read buffer, reused for the next pipeline): the sends get
	// their own copy.
	es = slices.Clone(es)
	for i := range es {
		es[i].Value = bytes.Clone(es[i].Value)
	}
	// Sends outlive the request when the policy does not wait for them.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.PeerTimeout)
	var wg sync.WaitGroup
	for p, idx := range byPeer {
		batch := make([]store.Entry, len(idx))
		for j, i := range idx {
			batch[j] = es[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := peerTransport{n}.send(sctx, p, batch)
			for j := range batch {
				if err == nil && !res[j].IsAcked() {
					n.metrics.replication.WithLabelValues("refused").Inc()
				} else if err != nil {
					n.metrics.replication.WithLabelValues("error").Inc()
				} else {
					n.metrics.replication.WithLabelValues("acked").Inc()
					continue
				}
				n.repair.add(batch[j].Key) // copied again as soon as the replica answers
			}
			answers <- answer{p, idx, res, err}
		}()
	}
	go func() { wg.Wait(); cancel() }()
	waiting := 0 // entries whose outcome is not known yet
	for i := range es {
		if required[i] > 0 {
			waiting++
		}
	}
	done := func(i int) bool { return acked[i] >= required[i] || errs[i] != nil }
	reasons := make([][]string, len(es))
	for got := 0; waiting > 0 && got < len(byPeer); got++ {
		var a answer
		select {
		case a = <-answers:
		case <-ctx.Done():
			for i := range es {
				if !done(i) {
					errs[i] = retryable(http.StatusServiceUnavailable, "waiting for replica acknowledgements: %v", ctx.Err())
				}
			}
			return errs
		}
		for j, i := range a.idx {
			if done(i) {
				continue
			}
			spare[i]--
			if a.err == nil && a.res[j].IsAcked() {
				if acked[i]++; done(i) {
					waiting--
				}
				continue
			}
			why := fmt.Sprintf("%s refused the copy (it does not own the key in its view yet)", a.peer)
			if a.err != nil {
				why = a.err.Error()
			}
			reasons[i] = append(reasons[i], why)
			if acked[i]+spare[i] < required[i] {
				errs[i] = retryable(http.StatusServiceUnavailable,
					"write applied on the primary but only %d of the %d replica copies required were acknowledged: %v",
					acked[i], required[i], reasons[i])
				waiting--
			}
		}
	}
	return errs
}

// replicaGet serves a read from this node's shard as one of the key's
// replicas, when the primary cannot be reached.
func (n *Node) replicaGet(ctx context.Context, v *view, key string) (Item, error) {
	if !n.isOwner(v.ring, key) {
		return Item{}, &Error{Status: http.StatusMisdirectedRequest, Owner: v.ring.Owner(key), Retryable: true,
			Message: fmt.Sprintf("this node holds no copy of the key; %s owns it in its view", v.ring.Owner(key))}
	}
	e, found, err := n.st.Get(ctx, key)
	if err != nil {
		return Item{}, retryable(http.StatusServiceUnavailable, "shard read failed: %v", err)
	}
	if !found || e.Tombstone {
		return Item{}, ErrNotFound
	}
	return itemOf(e, n.cfg.Name, SourceReplica), nil
}

// readFromReplicas answers a read whose primary could not be reached from
// the key's other owners, in ring order, without waiting for the ring to
// drop the primary.
func (n *Node) readFromReplicas(ctx context.Context, v *view, primary, key string) (Item, error, bool) {
	var buf [maxReplicas]string
	for _, o := range n.owners(v.ring, key, &buf) {
		if o == primary {
			continue
		}
		var it Item
		var err error
		if o == n.cfg.Name {
			it, err = n.replicaGet(ctx, v, key)
		} else {
			it, err = n.peerReplicaGet(ctx, v, o, key)
		}
		if err == nil || err == ErrNotFound {
			n.metrics.replicaReads.Inc()
			return it, err, true
		}
	}
	return Item{}, nil, false
}

// replicaPlacement tells migration where every key this node holds must
// be: on each of its owners. A key this node still owns is copied to the
// owners that may lack it (those that were not owners in the ring of the
// last completed run, or have restarted since); a key it no longer owns is
// sent to all its owners and deleted once they all acknowledged it.
type replicaPlacement struct {
	self      string
	rf        int
	ring      *ring.Ring
	base      *ring.Ring        // ring of the last completed run (nil: none, or a full copy is wanted)
	baseBoots map[string]string // member -> boot id at that run
	boots     map[string]string // member -> boot id now
	fullGen   uint64            // the full-copy request this run serves (0: none)
}

func (p replicaPlacement) Owner(key string) string { return p.ring.Owner(key) }

func (p replicaPlacement) Targets(key string) ([]string, bool) {
	var buf [maxReplicas]string
	owners := p.ring.AppendOwners(buf[:0], key, p.rf)
	if len(owners) == 0 {
		return nil, true
	}
	if !slices.Contains(owners, p.self) {
		return slices.Clone(owners), false
	}
	if p.rf == 1 {
		return nil, true
	}
	var had [maxReplicas]string
	var hadOwners []string
	if p.base != nil {
		hadOwners = p.base.AppendOwners(had[:0], key, p.rf)
	}
	// A primary that is gone (crashed, or left) may have acknowledged
	// writes whose background copies it never finished (acks quorum or
	// one): the surviving owners copy its keys to each other, since none
	// knows which copies are missing. Versioned imports make the extra
	// copies harmless.
	primaryGone := len(hadOwners) > 0 && !p.ring.Has(hadOwners[0])
	var to []string
	for _, o := range owners {
		if o == p.self {
			continue
		}
		if !primaryGone && slices.Contains(hadOwners, o) && p.boots[o] != "" && p.boots[o] == p.baseBoots[o] {
			continue // it had a copy at the last completed run and has not restarted
		}
		to = append(to, o)
	}
	return to, true
}

// placement returns the migration target for the current view. While a
// full copy is wanted (requestFullReplication) it has no base ring: every
// key is copied to all its owners.
func (n *Node) placement(v *view) replicaPlacement {
	n.base.mu.Lock()
	defer n.base.mu.Unlock()
	p := replicaPlacement{self: n.cfg.Name, rf: n.cfg.Replicas, ring: v.ring,
		base: n.base.ring, baseBoots: n.base.boots, boots: v.boots}
	if n.base.fullWanted > n.base.fullDone {
		p.base, p.baseBoots, p.fullGen = nil, nil, n.base.fullWanted
	}
	return p
}

// completed records that a ring-change run finished for p: every key this
// node holds is on all its owners in p.ring.
func (n *Node) completed(p replicaPlacement) {
	n.base.mu.Lock()
	n.base.ring, n.base.boots = p.ring, p.boots
	n.base.fullDone = max(n.base.fullDone, p.fullGen)
	n.base.mu.Unlock()
}

// underReplicated estimates the keys this node holds whose copies are not
// confirmed yet: those a running re-replication planned and has not
// finished, or those the last run could not finish.
func (n *Node) underReplicated() int64 {
	st := n.mig.Status()
	if st.Active {
		return max(0, st.CopyPlanned-st.Copied)
	}
	if st.Last != nil && st.Last.Error != "" {
		return max(0, st.Last.CopyPlanned-st.Last.Copied)
	}
	return 0
}
