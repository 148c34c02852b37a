package node

import (
	"context"

	"github.com/peercache/peercache/internal/warm"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
)

// Cache warm-up on a join (package internal/warm): at a ring change the
// node notes the hottest local copies whose key another member now owns
// and, once its migration to that ring has finished, sends each new owner
// its keys; the new owner fills its local tier with them from its shard.
// With an in-process shard (the embedded Memory store) there is no warm-up:
// the local tier keeps no copies of owned keys, and the new owner serves
// the migrated keys from its shard as fast as from a tier.

// warmer holds the warm-up plan of the latest ring change and the latest
// ring whose warm-up this node finished sending (or had none to send).
type warmer = warm.Planner

// planWarm notes the hottest local copies whose key another member owns in
// nr. Called at a ring change, before the tier epoch moves on.
func (n *Node) planWarm(nr *ring.Ring) {
	t := n.reads.tier
	if !t.Owned() {
		return // an in-process shard leaves no copies of owned keys to send
	}
	n.warm.Plan(nr, n.cfg.Name, warm.Bounds{Keys: n.cfg.Tier.WarmKeys, Bytes: n.cfg.Tier.WarmBytes}, t.HottestLocal)
}

// sendWarm sends the plan made for ring r (if that is still the latest) to
// the new owners; called once the migration to r has finished.
func (n *Node) sendWarm(ctx context.Context, r *ring.Ring) {
	n.warm.Send(ctx, r, warm.Delivery{
		Addr:   n.peer.members.Addr,
		Send:   n.peer.members.Warm,
		Sent:   n.metrics.Warm.WithLabelValues("sent"),
		Logger: n.log,
	})
}

// warmedUp reports whether this node has finished the warm-up of ring r:
// its migration to r is done and every new owner has answered the keys
// it was sent (and filled its tier with them), or this node had none to
// send. A warm-up is synchronous: the receiver answers once it has filled.
func (n *Node) warmedUp(r *ring.Ring) bool { return n.warm.Done(r) }

// Warm (server side) loads keys into this node's local tier from its shard:
// only keys it owns, only live records, each filled as a read would fill it
// (the guard read before the shard, so that a write in between wins).
func (h peerHandler) Warm(ctx context.Context, from string, keys []string) int {
	n := h.n
	t := n.reads.tier
	if !t.Owned() || h.refused() != nil {
		return 0 // (an in-process shard is as warm as a tier would be)
	}
	return warm.Fill(ctx, keys, warm.FillConfig{
		Mine: func(batch []string) []string {
			v := n.views.cur.Load()
			var mine []string
			for _, k := range batch {
				if n.checkKey(k) == nil && v.Ring.Owner(k) == n.cfg.Name {
					mine = append(mine, k)
				}
			}
			return mine
		},
		Epoch: t.Epoch,
		Guard: t.Guard,
		Read:  n.st.GetMany,
		Fill: func(key string, e store.Entry, g, ep uint64) bool {
			return t.FillLocal(key, itemOf(e, "", ""), g, ep)
		},
		Filled: n.metrics.Warm.WithLabelValues("filled"),
	})
}

// Warm loads keys into the cluster before traffic is switched on
// (warm.Keys): each is read through its owner, which loads it from the
// read-through origin (Config.Loader.Getter, cachenode --origin) when no
// shard holds it. The keys of one owner go together (Many).
func (n *Node) Warm(ctx context.Context, keys []string) WarmResult {
	return warm.Keys(ctx, keys, maxManyOps, func(ctx context.Context, batch []string) []warm.Read {
		ops := make([]Op, len(batch))
		for i, k := range batch {
			ops[i] = Op{Key: k}
		}
		out := make([]warm.Read, len(ops))
		for i, r := range n.Many(ctx, ops) {
			out[i] = warm.Read{Origin: r.Item.Source == SourceOrigin, Err: r.Err}
		}
		return out
	})
}
