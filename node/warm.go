package node

import (
	"context"
	"sync"

	"github.com/peercache/peercache/ring"
)

// Cache warm-up on a join. When the ring changes, the keys this node owned
// and now hands to another member leave with the migration, but the new
// owner's local tier starts cold: every read of them first misses its tier
// and reads its shard. So at the ring change (before the change drops this
// node's copies) the node notes the hottest of its local copies whose key
// another member now owns, in its tier's order (W-TinyLFU's retention
// order by default), bounded by WarmKeys and WarmBytes; once its migration
// to the new ring has finished, it sends each new owner its list (keys
// only). The new owner reads those keys from its own shard, where the
// migration has just put them, and fills its local tier with them through
// the same guards as any read, so a write racing the warm-up wins.
//
// With an in-process shard (the embedded Memory store) there is no warm-up:
// the local tier keeps no copies of owned keys, and the new owner serves
// the migrated keys from its shard as fast as from a tier.

// Defaults of the warm-up.
const (
	DefaultWarmKeys  = 10_000
	DefaultWarmBytes = 16 << 20
)

// warmPlan is the keys to send, by new owner, for one ring.
type warmPlan struct {
	ring *ring.Ring
	keys map[string][]string
}

// warmer holds the plan of the latest ring change.
type warmer struct {
	mu   sync.Mutex
	plan *warmPlan
	done *ring.Ring // the latest ring whose warm-up this node finished sending (or had none to send)
}

// planWarm notes the hottest local copies whose key another member owns in
// nr. Called at a ring change, before the tier epoch moves on.
func (n *Node) planWarm(nr *ring.Ring) {
	t := n.reads.tier
	if !t.Owned() || n.cfg.WarmKeys <= 0 || nr.Len() == 0 {
		return // an in-process shard leaves no copies of owned keys to send
	}
	plan := &warmPlan{ring: nr, keys: map[string][]string{}}
	count := 0
	var bytes int64
	t.HottestLocal(8*n.cfg.WarmKeys, func(key string, size int) bool {
		if o := nr.Owner(key); o != "" && o != n.cfg.Name {
			plan.keys[o] = append(plan.keys[o], key)
			count++
			bytes += int64(size)
		}
		return count < n.cfg.WarmKeys && bytes < n.cfg.WarmBytes
	})
	n.warm.mu.Lock()
	if count > 0 {
		n.warm.plan = plan
	} else {
		n.warm.plan = nil
	}
	n.warm.mu.Unlock()
}

// sendWarm sends the plan made for ring r (if that is still the latest) to
// the new owners; called once the migration to r has finished.
func (n *Node) sendWarm(ctx context.Context, r *ring.Ring) {
	defer func() {
		n.warm.mu.Lock()
		n.warm.done = r
		n.warm.mu.Unlock()
	}()
	n.warm.mu.Lock()
	plan := n.warm.plan
	if plan == nil || !plan.ring.Equal(r) {
		n.warm.mu.Unlock()
		return
	}
	n.warm.plan = nil
	n.warm.mu.Unlock()
	var wg sync.WaitGroup
	for owner, keys := range plan.keys {
		addr, e := n.peerAddr(n.views.cur.Load(), owner)
		if e != nil {
			continue
		}
		wg.Go(func() {
			wctx, cancel := n.peerCtx(ctx)
			defer cancel()
			loaded, err := n.peer.client.Warm(wctx, addr, keys)
			n.metrics.warm.WithLabelValues("sent").Add(float64(len(keys)))
			if err != nil {
				n.log.Debug("warm-up not delivered", "peer", owner, "keys", len(keys), "err", err)
				return
			}
			n.log.Info("warm-up sent", "peer", owner, "keys", len(keys), "loaded", loaded)
		})
	}
	wg.Wait()
}

// warmedUp reports whether this node has finished the warm-up of ring r:
// its migration to r is done and every new owner has answered the keys
// it was sent (and filled its tier with them), or this node had none to
// send. A warm-up is synchronous: the receiver answers once it has filled.
func (n *Node) warmedUp(r *ring.Ring) bool {
	n.warm.mu.Lock()
	defer n.warm.mu.Unlock()
	return n.warm.done != nil && n.warm.done.Equal(r)
}

// warmBatch is how many keys one shard read of a warm-up loads.
const warmBatch = 256

// Warm (server side) loads keys into this node's local tier from its shard:
// only keys it owns, only live records, each filled as a read would fill it
// (the guard read before the shard, so that a write in between wins).
func (h peerHandler) Warm(ctx context.Context, from string, keys []string) int {
	n := h.n
	t := n.reads.tier
	if !t.Owned() || h.refused() != nil {
		return 0 // (an in-process shard is as warm as a tier would be)
	}
	loaded := 0
	for len(keys) > 0 && ctx.Err() == nil {
		batch := keys[:min(len(keys), warmBatch)]
		keys = keys[len(batch):]
		ep := t.Epoch()
		v := n.views.cur.Load()
		var mine []string
		var guards []uint64
		for _, k := range batch {
			if n.checkKey(k) == nil && v.ring.Owner(k) == n.cfg.Name {
				mine = append(mine, k)
				guards = append(guards, t.Guard(k))
			}
		}
		if len(mine) == 0 {
			continue
		}
		es, found, err := n.st.GetMany(ctx, mine)
		if err != nil {
			break
		}
		for i, e := range es {
			if !found[i] || e.Tombstone {
				continue
			}
			if t.FillLocal(mine[i], itemOf(e, "", ""), guards[i], ep) {
				loaded++
			}
		}
	}
	n.metrics.warm.WithLabelValues("filled").Add(float64(loaded))
	return loaded
}

// WarmResult counts what Warm did with a list of keys.
type WarmResult struct {
	Keys    int    `json:"keys"`    // keys asked for
	Present int    `json:"present"` // already cached
	Loaded  int    `json:"loaded"`  // loaded through the read-through origin
	Missing int    `json:"missing"` // neither cached nor known to the origin
	Failed  int    `json:"failed"`  // errors (the first is in Error)
	Error   string `json:"error,omitempty"`
}

// Warm loads keys into the cluster before traffic is switched on: each is
// read through its owner, which loads it from the read-through origin
// (Config.Getter, cachenode --origin) when no shard holds it. The keys of
// one owner go together (Many).
func (n *Node) Warm(ctx context.Context, keys []string) WarmResult {
	res := WarmResult{Keys: len(keys)}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), maxManyOps)]
		keys = keys[len(batch):]
		ops := make([]Op, 0, len(batch))
		seen := make(map[string]bool, len(batch))
		for _, k := range batch {
			if !seen[k] {
				seen[k] = true
				ops = append(ops, Op{Key: k})
			}
		}
		res.Keys -= len(batch) - len(ops)
		for _, r := range n.Many(ctx, ops) {
			switch {
			case r.Err == nil && r.Item.Source == SourceOrigin:
				res.Loaded++
			case r.Err == nil:
				res.Present++
			case r.Err == ErrNotFound:
				res.Missing++
			default:
				res.Failed++
				if res.Error == "" {
					res.Error = r.Err.Error()
				}
			}
		}
	}
	return res
}
