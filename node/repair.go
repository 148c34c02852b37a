package node

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/store"
)

// Repair of copies that failed. A primary applies a write and then copies
// it to the key's replicas; when a copy fails (the replica did not answer,
// or refused because its view lagged), the write stays on fewer than
// Replicas owners, and a crash of the primary before the next full
// re-replication run (a ring change or the sweep) would lose it. The
// repairer closes that window: it remembers every key whose copy failed
// and copies it again, with backoff, as soon as the owners answer, so a key
// is back to Replicas copies within seconds of the cluster settling.
//
// The set is bounded (maxRepairKeys); past it the repairer forgets the keys
// and asks for a full re-replication run instead, which copies every key
// this node holds to all its owners. Each attempt re-plans against the
// current ring: a key this node no longer owns is dropped (the ring-change
// migration moves it to all its new owners), and a key's new co-owners are
// the targets. Copies are ordinary versioned imports, so a copy that races
// a newer write of the key can never replace it.
const (
	maxRepairKeys     = 100_000
	repairBatch       = 512
	repairMinBackoff  = 50 * time.Millisecond
	repairMaxBackoff  = time.Second
	repairSendTimeout = 5 * time.Second
)

// repairer is one node's set of keys whose copies must be made again.
type repairer struct {
	n    *Node
	wake chan struct{} // capacity 1

	mu       sync.Mutex
	keys     map[string]uint64 // key -> generation of its latest failure
	gen      uint64
	overflow bool // keys were forgotten: a full re-replication run is due
	repaired uint64
	dropped  uint64
	rounds   uint64
}

func newRepairer(n *Node) *repairer {
	return &repairer{n: n, wake: make(chan struct{}, 1), keys: map[string]uint64{}}
}

// add records that a copy of key failed.
func (r *repairer) add(key string) {
	r.mu.Lock()
	r.gen++
	if _, ok := r.keys[key]; ok || len(r.keys) < maxRepairKeys {
		r.keys[strings.Clone(key)] = r.gen
	} else {
		r.overflow = true
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// pending returns how many keys wait for a copy.
func (r *repairer) pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys)
}

// repairStats are the repairer's counters.
type repairStats struct {
	Pending           int
	Repaired, Dropped uint64
	Rounds            uint64
}

func (r *repairer) stats() repairStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return repairStats{Pending: len(r.keys), Repaired: r.repaired, Dropped: r.dropped, Rounds: r.rounds}
}

// take returns up to repairBatch keys with their generations, and whether
// a full run is due (the set overflowed since the last take).
func (r *repairer) take() (map[string]uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	full := r.overflow
	r.overflow = false
	out := make(map[string]uint64, min(len(r.keys), repairBatch))
	for k, g := range r.keys {
		if len(out) == repairBatch {
			break
		}
		out[k] = g
	}
	return out, full
}

// done forgets the keys whose copies are made (or that need none any more),
// unless a copy of one failed again since it was taken.
func (r *repairer) done(taken map[string]uint64, keys []string, repaired bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if g, ok := r.keys[k]; ok && g == taken[k] {
			delete(r.keys, k)
			if repaired {
				r.repaired++
			} else {
				r.dropped++
			}
		}
	}
}

// run copies the recorded keys until ctx ends: a round as soon as a key is
// added, then rounds with backoff (50 ms doubling to 1 s) while some fail.
func (r *repairer) run(ctx context.Context) {
	backoff := repairMinBackoff
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		for {
			// Let the write that failed finish and the peer settle a
			// little before trying again.
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			taken, full := r.take()
			if full {
				r.n.log.Warn("repair: more keys with missing copies than it can track; re-replicating everything", "limit", maxRepairKeys)
				r.n.requestFullReplication()
			}
			if len(taken) == 0 {
				backoff = repairMinBackoff
				break
			}
			if r.round(ctx, taken) {
				backoff = repairMinBackoff
			} else {
				backoff = min(2*backoff, repairMaxBackoff)
			}
		}
	}
}

// round copies taken to their other owners in the current view and reports
// whether every copy was acknowledged.
func (r *repairer) round(ctx context.Context, taken map[string]uint64) bool {
	n := r.n
	r.mu.Lock()
	r.rounds++
	r.mu.Unlock()
	keys := make([]string, 0, len(taken))
	for k := range taken {
		keys = append(keys, k)
	}
	sctx, cancel := context.WithTimeout(ctx, repairSendTimeout)
	defer cancel()
	entries, found, err := n.st.GetMany(sctx, keys)
	if err != nil {
		n.log.Debug("repair: reading the shard failed", "keys", len(keys), "err", err)
		return false
	}
	v := n.views.cur.Load()
	var gone []string
	groups := map[string][]store.Entry{} // targets joined by "\x00" -> entries
	for i, k := range keys {
		var buf [maxReplicas]string
		owners := n.owners(v.ring, k, &buf)
		if !found[i] || !slices.Contains(owners, n.cfg.Name) {
			// Expired or gone, or no longer this node's: the ring-change
			// migration sends what this node holds to all its new owners.
			gone = append(gone, k)
			continue
		}
		var to []string
		for _, o := range owners {
			if o != n.cfg.Name {
				to = append(to, o)
			}
		}
		if len(to) == 0 {
			gone = append(gone, k)
			continue
		}
		e := entries[i]
		e.Key = k
		sig := strings.Join(to, "\x00")
		groups[sig] = append(groups[sig], e)
	}
	r.done(taken, gone, false)
	ok := true
	for sig, es := range groups {
		acked := make([]int, len(es))
		targets := strings.Split(sig, "\x00")
		for _, p := range targets {
			res, err := n.importer().Import(sctx, p, es)
			if err != nil {
				n.log.Debug("repair: copy not acknowledged", "peer", p, "keys", len(es), "err", err)
				continue
			}
			for i, x := range res {
				if x.IsAcked() {
					acked[i]++
				}
			}
		}
		var fixed []string
		for i, e := range es {
			if acked[i] == len(targets) {
				fixed = append(fixed, e.Key)
			} else {
				ok = false
			}
		}
		r.done(taken, fixed, true)
		n.metrics.repaired.Add(float64(len(fixed)))
	}
	return ok
}

// importer returns the transport that ships entries to peers' import
// endpoints (migration, replication copies, repair).
func (n *Node) importer() migrate.Transport { return peerTransport{n} }

// requestFullReplication starts a run that copies every key this node
// holds to all of its owners, as if no run had completed before (see
// placement and completed).
func (n *Node) requestFullReplication() {
	n.base.mu.Lock()
	n.base.fullWanted++
	n.base.mu.Unlock()
	select {
	case n.views.ringChanged <- struct{}{}:
	default:
	}
}
