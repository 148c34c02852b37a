package node

import (
	"context"
	"strconv"
	"time"

	"github.com/peercache/peercache/tier"
)

// nearGet looks key up in this node's near cache (another node owns it).
func (n *Node) nearGet(key, owner string) (Item, bool) {
	t := n.reads.tier
	if t == nil || t.nearTTL == 0 {
		return Item{}, false
	}
	e, ok := t.get(key, true)
	if !ok {
		t.misses[tierNear].inc()
		return Item{}, false
	}
	t.hits[tierNear].inc()
	return nearItem(key, owner, e), true
}

// nearItem is the item a near-cache entry holds.
func nearItem(key, owner string, e tier.Entry) Item {
	it := Item{Key: key, Value: e.Value, Version: e.Version, Owner: owner, Source: SourceNear}
	if e.Aux != 0 {
		it.ExpireAt = time.UnixMilli(e.Aux)
	}
	return it
}

// forwardGet reads key from its owner: one request for all concurrent
// misses of the key on this node, whose answer fills the near cache when
// the owner allows it. ep is the tier epoch loaded before the view v.
func (n *Node) forwardGet(ctx context.Context, v *view, owner, key string, ep uint64) (Item, error) {
	t := n.reads.tier
	var g uint64
	fkey := "f\x00" + owner + "\x00" + key
	if t != nil {
		// Keyed by the guard too: a read never joins a forward that began
		// before a write through this node (which bumps the guard).
		g = t.guard(key).Load()
		fkey = "f\x00" + strconv.FormatUint(g, 36) + "\x00" + owner + "\x00" + key
	}
	flight := func() (ownerRead, error) {
		ctx := context.WithoutCancel(ctx) // peerRead bounds it by PeerTimeout
		if t != nil && t.nearTTL > 0 {
			// A flight that ended just before this one began may have
			// filled the near cache after this read looked: use that copy
			// rather than asking the owner again.
			if e, ok := t.get(key, true); ok {
				return ownerRead{it: nearItem(key, owner, e)}, nil
			}
		}
		if t != nil {
			t.forwards.Add(1)
		}
		sent := time.Now()
		// nearTTL: how long the owner lets this node keep a copy (it has
		// recorded this node and will invalidate the copy on a change).
		it, nearTTL, err := n.peerGet(ctx, v, owner, key)
		if err == nil {
			n.nearFill(key, it, nearTTL, sent, g, ep)
		}
		return ownerRead{it: it, err: err}, nil
	}
	return n.collapsed(ctx, fkey, tierNear, flight)
}

// nearFill keeps a copy of it, fetched from its owner, in the near cache
// for at most nearTTL (the owner's permission) from sent (when the request
// left). g is the key's guard and ep the tier epoch, both loaded before the
// request.
func (n *Node) nearFill(key string, it Item, nearTTL time.Duration, sent time.Time, g, ep uint64) {
	t := n.reads.tier
	if t == nil || t.nearTTL == 0 || nearTTL <= 0 {
		return
	}
	exp := sent.Add(min(nearTTL, t.nearTTL))
	e := tier.Entry{Value: it.Value, Version: it.Version, Tag: tagOf(ep, tagNear)}
	if !it.ExpireAt.IsZero() {
		// The owner's remaining TTL is counted from before the request
		// left: never later than the owner's copy expires.
		if it.ExpireAt.Before(exp) {
			exp = it.ExpireAt
		}
		e.Aux = it.ExpireAt.UnixMilli()
	}
	e.Expires = exp
	t.fill(key, e, g)
}
