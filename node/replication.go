package node

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"

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

// replicate sends a write the primary applied to the key's replicas in
// parallel and waits for the acknowledgements the policy asks for. The
// others finish in the background (bounded by PeerTimeout).
func (n *Node) replicate(ctx context.Context, v *view, e store.Entry) *Error {
	var buf [maxReplicas]string
	owners := n.owners(v.ring, e.Key, &buf)
	replicas := make([]string, 0, len(owners))
	for _, o := range owners {
		if o != n.cfg.Name {
			replicas = append(replicas, o)
		}
	}
	if len(replicas) == 0 {
		return nil
	}
	need := n.requiredReplicaAcks(len(replicas))
	type answer struct {
		peer string
		err  error
	}
	answers := make(chan answer, len(replicas))
	// Sends outlive the request when the policy does not wait for them.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.PeerTimeout)
	var wg sync.WaitGroup
	for _, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := peerTransport{n}.send(sctx, r, []store.Entry{e})
			if err == nil && !res[0].IsAcked() {
				err = fmt.Errorf("%s refused the copy (it does not own the key in its view yet)", r)
			}
			if err != nil {
				n.metrics.replication.WithLabelValues("error").Inc()
				n.repair.add(e.Key) // copied again as soon as the replica answers (repair.go)
			} else {
				n.metrics.replication.WithLabelValues("acked").Inc()
			}
			answers <- answer{r, err}
		}()
	}
	go func() { wg.Wait(); cancel() }()
	acked, failed := 0, 0
	var errs []string
	for acked < need {
		select {
		case a := <-answers:
			if a.err == nil {
				acked++
				continue
			}
			failed++
			errs = append(errs, a.err.Error())
			if len(replicas)-failed < need {
				return retryable(http.StatusServiceUnavailable,
					"write applied on the primary but only %d of the %d replica copies required were acknowledged: %v", acked, need, errs)
			}
		case <-ctx.Done():
			return retryable(http.StatusServiceUnavailable, "waiting for replica acknowledgements: %v", ctx.Err())
		}
	}
	return nil
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
	var to []string
	for _, o := range owners {
		if o == p.self {
			continue
		}
		if slices.Contains(hadOwners, o) && p.boots[o] != "" && p.boots[o] == p.baseBoots[o] {
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
	n.baseMu.Lock()
	defer n.baseMu.Unlock()
	p := replicaPlacement{self: n.cfg.Name, rf: n.cfg.Replicas, ring: v.ring,
		base: n.baseRing, baseBoots: n.baseBoots, boots: v.boots}
	if n.fullWanted > n.fullDone {
		p.base, p.baseBoots, p.fullGen = nil, nil, n.fullWanted
	}
	return p
}

// completed records that a ring-change run finished for p: every key this
// node holds is on all its owners in p.ring.
func (n *Node) completed(p replicaPlacement) {
	n.baseMu.Lock()
	n.baseRing, n.baseBoots = p.ring, p.boots
	n.fullDone = max(n.fullDone, p.fullGen)
	n.baseMu.Unlock()
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
