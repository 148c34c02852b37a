package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/peercache/peercache/internal/localtier"
	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/store"
)

// The read path, top to bottom: Get -> get (the near cache, then route: the
// owner here or a forward to it) -> ownerGet (local tier, then one
// collapsed read of the shard, the handoff source or the loader) or
// forwardGet (one collapsed peer read, filling the near cache). A read
// another node forwarded enters at serveForwardedGet.

// Get reads key through the cluster: from this node's shard when it owns the
// key, else from the owner. A missing key returns ErrNotFound.
func (n *Node) Get(ctx context.Context, key string) (Item, error) {
	it, err := n.get(ctx, key)
	if err != nil {
		return Item{}, err
	}
	return it, nil
}

// get reads key: a near copy, else from its owner through route.
func (n *Node) get(ctx context.Context, key string) (Item, error) {
	if err := n.checkKey(key); err != nil {
		return Item{}, err
	}
	ep := n.reads.tier.Epoch() // before the view
	v := n.views.cur.Load()
	if owner := v.Ring.Owner(key); owner != "" && owner != n.cfg.Name {
		if it, ok := n.reads.tier.Near(key, owner); ok { // near cache
			return it, nil
		}
	}
	var fromReplicas func(v *view, owner string) (Item, error, bool)
	if n.cfg.Replication.Factor > 1 { // an unreachable primary's replicas answer
		fromReplicas = func(v *view, owner string) (Item, error, bool) { return n.readFromReplicas(ctx, v, owner, key) }
	}
	return route(ctx, n, v, key,
		func(v *view) (Item, error) { return n.ownerGet(ctx, v, key) },                            // local tier, singleflight, shard, handoff, loader
		func(v *view, owner string) (Item, error) { return n.forwardGet(ctx, v, owner, key, ep) }, // collapsed, near-cached
		fromReplicas)
}

// StartGet begins a read of key that goes to its owner, another member
// (Forwards), with no goroutine waiting for the answer: a door that serves
// many clients from one thread (the RESP event loop) starts its reads and
// goes on. done is called once, on a goroutine of the peer client (or on
// this one, for a near copy), and must not block; retry means the attempt
// settled nothing (the owner's view differs, or it did not answer) and the
// read is to be made again through Get, which re-routes. StartGet returns
// false, having started nothing, when the read does not go that way (a
// bad key, a key this node owns, no connection up to the owner): Get it.
// The request leaves at once with now (a door that has nothing else to
// send), else with the next FlushStarted. There is no collapsing
// of concurrent reads of one key here: each starts its own.
func (n *Node) StartGet(key string, now bool, done func(it Item, err error, retry bool)) bool {
	if n.checkKey(key) != nil {
		return false
	}
	t := n.reads.tier
	ep := t.Epoch() // before the view
	v := n.views.cur.Load()
	owner := v.Ring.Owner(key)
	if owner == "" || owner == n.cfg.Name {
		return false
	}
	if it, ok := t.Near(key, owner); ok {
		done(it, nil, false)
		return true
	}
	g := t.Guard(key)
	sent := time.Now()
	ok := n.peer.members.GoGet(v, owner, key, now, func(it Item, nearTTL time.Duration, err error) {
		if err == nil {
			t.FillNear(key, it, nearTTL, sent, g, ep)
		}
		done(it, err, !settledRemotely(err))
	})
	if ok {
		t.CountForward()
	}
	return ok
}

// serveForwardedGet answers a read another node forwarded: this node owns
// the key in its view and reads it as ownerGet does, or it refuses (421,
// naming the owner in its view), never forwarding again.
func (n *Node) serveForwardedGet(ctx context.Context, key string) (Item, error) {
	if err := n.checkKey(key); err != nil {
		return Item{}, err
	}
	v, err := n.forwardedView(key)
	if err != nil {
		return Item{}, err
	}
	return n.ownerGet(ctx, v, key)
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
		g = t.Guard(key)
		fkey = "f\x00" + strconv.FormatUint(g, 36) + "\x00" + owner + "\x00" + key
	}
	flight := func() (ownerRead, error) {
		ctx := context.WithoutCancel(ctx) // bounded by PeerTimeout (member.Caller)
		// A flight that ended just before this one began may have filled
		// the near cache after this read looked: use that copy rather than
		// asking the owner again.
		if it, ok := t.PeekNear(key, owner); ok {
			return ownerRead{it: it}, nil
		}
		t.CountForward()
		sent := time.Now()
		// nearTTL: how long the owner lets this node keep a copy (it has
		// recorded this node and will invalidate the copy on a change).
		it, nearTTL, err := n.peer.members.Get(ctx, v, owner, key, false)
		if err == nil {
			t.FillNear(key, it, nearTTL, sent, g, ep)
		}
		return ownerRead{it: it, err: err}, nil
	}
	return n.collapsed(ctx, fkey, localtier.Near, flight)
}

// ownerRead is one collapsed read of the owner's shard (or load).
type ownerRead struct {
	it  Item
	err error
}

// ownerGet answers a read of a key this node owns: from the local
// tier, else from the shard (one read for concurrent misses, which then
// fills the tier), else from Config.Loader.Getter (one load, written through the
// ordinary owner write path).
func (n *Node) ownerGet(ctx context.Context, v *view, key string) (Item, error) {
	if n.readsShardOnly() {
		return n.shardGet(ctx, v, key)
	}
	t := n.reads.tier
	if !t.Owned() && (n.cfg.Loader.Getter == nil || n.cfg.Loader.NegativeTTL <= 0) {
		t = nil // no copies of owned records, and no negative entries either
	}
	var g uint64
	if t != nil {
		if it, negative, ok := t.Local(key, n.cfg.Name); ok {
			if negative {
				return Item{}, ErrNotFound
			}
			return it, nil
		}
		g = t.Guard(key)
	}
	ep := n.reads.tier.Epoch()
	flight := func() (ownerRead, error) {
		// Shared by every caller that joins: not bound to the first one's
		// cancellation.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*n.cfg.Peer.Timeout)
		defer cancel()
		t.CountOwnerRead()
		it, err := n.shardGet(ctx, v, key)
		if err == nil {
			t.FillLocal(key, it, g, ep)
			return ownerRead{it: it}, nil
		}
		if err != ErrNotFound || n.cfg.Loader.Getter == nil {
			return ownerRead{err: err}, nil
		}
		it, err = n.load(ctx, v, key, g, ep)
		return ownerRead{it: it, err: err}, nil
	}
	fkey := "l\x00" + key
	if t != nil {
		// The guard value keys the flight: a read joins only a flight that
		// began after every change this read must see.
		fkey = "o\x00" + strconv.FormatUint(g, 36) + "\x00" + key
	}
	return n.collapsed(ctx, fkey, localtier.Local, flight)
}

// readsShardOnly reports whether an owner's read is a plain shard read:
// the local tier keeps no copies of owned records and there is no loader
// (so no flight to join, nothing to fill).
func (n *Node) readsShardOnly() bool {
	return !n.reads.tier.Owned() && n.cfg.Loader.Getter == nil
}

// ownerGetMany answers reads of keys this node owns in v, as ownerGet
// answers each, into its and errs. When reads are plain shard reads
// (readsShardOnly) they are one shard GetMany, and only a key missing
// while a ring change settles is read again alone (shardGet asks its
// previous owner); otherwise they are ownerGet one by one.
func (n *Node) ownerGetMany(ctx context.Context, v *view, keys []string, its []Item, errs []error) {
	if !n.readsShardOnly() || len(keys) < 2 {
		for j, k := range keys {
			its[j], errs[j] = n.ownerGet(ctx, v, k)
		}
		return
	}
	es, found, err := n.st.GetMany(ctx, keys)
	var handoff, asked bool // handoffActive(v), asked at the first miss only (it reads the clock)
	for j, k := range keys {
		if err == nil && !found[j] && !asked {
			handoff, asked = n.handoffActive(v), true
		}
		switch {
		case err != nil:
			its[j], errs[j] = Item{}, kv.Retryable(http.StatusServiceUnavailable, "shard read failed: %w", err)
		case !found[j] && handoff:
			its[j], errs[j] = n.shardGet(ctx, v, k)
		case !found[j] || es[j].Tombstone:
			its[j], errs[j] = Item{}, ErrNotFound
		default:
			its[j], errs[j] = itemOf(es[j], n.cfg.Name, SourceShard), nil
		}
	}
}

// collapsed runs flight once for every caller that asks for fkey at the
// same time (singleflight), counting the callers that joined one in
// flight by kind (localtier.Local: owner reads; localtier.Near: forwards).
func (n *Node) collapsed(ctx context.Context, fkey string, kind int, flight func() (ownerRead, error)) (Item, error) {
	res, shared, err := n.reads.flights.Do(ctx, fkey, flight)
	if shared {
		n.reads.tier.CountCollapsed(kind)
	}
	if err != nil { // this caller's ctx ended while it waited
		return Item{}, kv.Retryable(http.StatusServiceUnavailable, "read cancelled: %w", err)
	}
	return res.it, res.err
}

// shardGet reads key from this node's shard (and, during a migration,
// from its previous owner).
func (n *Node) shardGet(ctx context.Context, v *view, key string) (Item, error) {
	e, found, err := n.st.Get(ctx, key)
	if err != nil {
		return Item{}, kv.Retryable(http.StatusServiceUnavailable, "shard read failed: %w", err)
	}
	src := SourceShard
	if !found && n.handoffActive(v) {
		if he, ok, _ := n.handoffGet(ctx, v, key); ok {
			e, found, src = he, true, SourceHandoff
		} else {
			// The previous owner may have handed the key over (and deleted
			// its copy after this shard acknowledged it) between the first
			// read and the handoff read: look again.
			if e, found, err = n.st.Get(ctx, key); err != nil {
				return Item{}, kv.Retryable(http.StatusServiceUnavailable, "shard read failed: %w", err)
			}
		}
	}
	if !found || e.Tombstone {
		return Item{}, ErrNotFound
	}
	return itemOf(e, n.cfg.Name, src), nil
}

func itemOf(e store.Entry, owner string, src Source) Item {
	it := Item{Key: e.Key, Value: e.Value, Version: e.Version, Owner: owner, Source: src}
	if e.ExpireAt != 0 {
		it.ExpireAt = time.UnixMilli(e.ExpireAt)
	}
	return it
}

// handoffActive reports whether a key this node owns may still sit on its
// previous owner: shortly after a ring change, or while any member migrates.
func (n *Node) handoffActive(v *view) bool {
	if r := n.shard.resetAt.Load(); r != 0 && time.Since(time.Unix(0, r)) < n.cfg.Migration.HandoffWindow {
		return true // the shard came back after an outage, maybe empty
	}
	return len(v.Prev) > 0 && (v.Migrating || time.Since(v.ChangedAt) < n.cfg.Migration.HandoffWindow)
}

// handoffGet asks the key's previous owners (newest ring first) for their
// copy and imports it into this node's shard (only if newer). unanswered
// tells that some previous owner could not be asked (the copy may be
// there).
func (n *Node) handoffGet(ctx context.Context, v *view, key string) (e store.Entry, found, unanswered bool) {
	for _, prev := range v.PreviousOwners(key, n.cfg.Name) {
		if _, ok := v.Members[prev]; !ok {
			continue // gone: nothing to ask
		}
		e, found, err := n.peer.members.Handoff(ctx, v, prev, key)
		if err != nil {
			unanswered = true
			n.metrics.Handoff.WithLabelValues("error").Inc()
			n.log.Debug("handoff read failed", "peer", prev, "key", key, "err", err)
			continue
		}
		if !found {
			n.metrics.Handoff.WithLabelValues("miss").Inc()
			continue
		}
		n.metrics.Handoff.WithLabelValues("hit").Inc()
		if !n.writes.imports.Sane(prev, e) { // a version from the future
			continue
		}
		n.clock.Observe(e.Version)
		if _, err := n.st.Put(ctx, []store.Entry{e}); err != nil {
			n.log.Warn("storing a handed-off key failed", "key", key, "err", err)
		}
		return e, true, false
	}
	n.log.Debug("handoff miss", "key", key, "asked", v.PreviousOwners(key, n.cfg.Name), "ring_version", v.Version)
	return store.Entry{}, false, unanswered
}

// load calls the Getter for key (a miss at its owner) and stores the
// value. g and ep are the key's guard and the tier epoch from before the
// shard read that missed.
func (n *Node) load(ctx context.Context, v *view, key string, g, ep uint64) (Item, error) {
	val, ttl, err := n.cfg.Loader.Getter(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		n.reads.loads[1].Add(1)
		if n.cfg.Loader.NegativeTTL > 0 {
			n.reads.tier.FillNegative(key, time.Now().Add(n.jitter(n.cfg.Loader.NegativeTTL)), g, ep)
		}
		return Item{}, ErrNotFound
	case err != nil:
		n.reads.loads[2].Add(1)
		return Item{}, kv.Errorf(http.StatusBadGateway, "loading the key from the origin failed: %w", err)
	case len(val) > n.cfg.Limits.MaxValueBytes:
		n.reads.loads[2].Add(1)
		return Item{}, kv.Errorf(http.StatusBadGateway, "the origin's value is %d bytes; the limit is %d", len(val), n.cfg.Limits.MaxValueBytes)
	}
	n.reads.loads[0].Add(1)
	if ttl < 0 {
		ttl = 0
	}
	if ttl > 0 {
		ttl = max(n.jitter(ttl), time.Millisecond)
		if n.cfg.Limits.MaxTTL > 0 {
			ttl = min(ttl, n.cfg.Limits.MaxTTL)
		}
	}
	// The key is absent, so no node holds a copy to invalidate; the nodes
	// that asked keep their fetch records for later writes, and get this
	// very value.
	// The value is stored as the owner stores a write (stamped, only if
	// the key is still absent, replicated), but spread invalidates nothing.
	res, e, applied, werr := n.ownerApply(ctx, key, Mutation{Value: val, TTL: ttl, IfAbsent: true})
	if werr != nil {
		return Item{}, werr
	}
	if !res.Applied { // written meanwhile: that write wins
		return n.shardGet(ctx, v, key)
	}
	if applied {
		if err := n.spread(ctx, []store.Entry{e}, false)[0]; err != nil {
			return Item{}, err
		}
	}
	it := res.Item
	it.Value, it.Source = val, SourceOrigin
	return it, nil
}

// jitter shortens d by a random fraction of up to Config.Loader.TTLJitter, so
// that keys written together do not all expire together.
func (n *Node) jitter(d time.Duration) time.Duration {
	if n.cfg.Loader.TTLJitter <= 0 || d <= 0 {
		return d
	}
	return d - time.Duration(rand.Float64()*n.cfg.Loader.TTLJitter*float64(d))
}
