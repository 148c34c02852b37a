package node

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peercache/peercache/store"
	"github.com/peercache/peercache/tier"
)

// nearGet looks key up in this node's near cache (another node owns it).
func (n *Node) nearGet(key, owner string) (Item, bool) {
	t := n.tier
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
	t := n.tier
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
	t := n.tier
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

// fetchTracker is the owner's memory of which nodes fetched which keys
// recently, so that a change of a key reaches the near caches that may
// hold it. A record lives between one and two near-cache lifetimes (two
// generations of maps, rotated every lifetime): longer than any copy made
// from the read it records. It is bounded: when full, answers carry no
// near-cache permission, so nothing untracked is ever cached.
type fetchTracker struct {
	stripes [64]trackStripe
	seedMu  sync.Mutex
	ids     map[string]uint16
	names   []string
	count   atomic.Int64
	max     int64
	refused atomic.Uint64
	ttl     time.Duration
	stopc   chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

type trackStripe struct {
	mu        sync.Mutex
	cur, prev map[string][]uint16
	_         [40]byte
}

func newFetchTracker(ttl time.Duration, maxKeys int) *fetchTracker {
	tr := &fetchTracker{ids: map[string]uint16{}, max: int64(maxKeys), ttl: ttl, stopc: make(chan struct{})}
	for i := range tr.stripes {
		tr.stripes[i].cur, tr.stripes[i].prev = map[string][]uint16{}, map[string][]uint16{}
	}
	tr.wg.Add(1)
	go tr.rotateLoop()
	return tr
}

func (tr *fetchTracker) rotateLoop() {
	defer tr.wg.Done()
	tk := time.NewTicker(tr.ttl)
	defer tk.Stop()
	for {
		select {
		case <-tr.stopc:
			return
		case <-tk.C:
		}
		for i := range tr.stripes {
			s := &tr.stripes[i]
			s.mu.Lock()
			dropped := len(s.prev)
			s.prev, s.cur = s.cur, make(map[string][]uint16, len(s.cur)/2)
			s.mu.Unlock()
			tr.count.Add(-int64(dropped))
		}
	}
}

func (tr *fetchTracker) stop() { tr.once.Do(func() { close(tr.stopc); tr.wg.Wait() }) }

func (tr *fetchTracker) stripe(key string) *trackStripe {
	var h uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return &tr.stripes[h&63]
}

func (tr *fetchTracker) id(name string) (uint16, bool) {
	tr.seedMu.Lock()
	defer tr.seedMu.Unlock()
	if id, ok := tr.ids[name]; ok {
		return id, true
	}
	if len(tr.names) >= 1<<16-1 {
		return 0, false
	}
	id := uint16(len(tr.names))
	tr.ids[name] = id
	tr.names = append(tr.names, name)
	return id, true
}

func (tr *fetchTracker) name(id uint16) string {
	tr.seedMu.Lock()
	defer tr.seedMu.Unlock()
	return tr.names[id]
}

// track records that node from is about to read key. It must be called
// before the read, and reports whether from may keep a copy.
func (tr *fetchTracker) track(key, from string) bool {
	id, ok := tr.id(from)
	if !ok {
		tr.refused.Add(1)
		return false
	}
	s := tr.stripe(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	ids, found := s.cur[key]
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	if !found {
		if tr.count.Load() >= tr.max {
			tr.refused.Add(1)
			return false
		}
		tr.count.Add(1)
		key = strings.Clone(key)
	}
	s.cur[key] = append(ids, id)
	return true
}

// take removes and returns the nodes that fetched key recently.
func (tr *fetchTracker) take(key string) []uint16 {
	s := tr.stripe(key)
	s.mu.Lock()
	a, inA := s.cur[key]
	b, inB := s.prev[key]
	if inA {
		delete(s.cur, key)
	}
	if inB {
		delete(s.prev, key)
	}
	s.mu.Unlock()
	if inA {
		tr.count.Add(-1)
	}
	if inB {
		tr.count.Add(-1)
	}
	out := a
	for _, x := range b {
		dup := false
		for _, y := range a {
			dup = dup || x == y
		}
		if !dup {
			out = append(out, x)
		}
	}
	return out
}

// trackFetch records a forwarded read from member from (before it is
// carried out) and returns how long that member may keep a copy (0: none).
func (n *Node) trackFetch(key, from string) time.Duration {
	if n.tracker == nil || from == "" || from == n.cfg.Name {
		return 0
	}
	if !n.tracker.track(key, from) {
		return 0
	}
	return n.tracker.ttl
}

// invalidateFetchers sends an invalidation of key to every node that
// fetched it recently. Called after the change is in the shard and in the
// local tier. With wait, it returns once they acknowledged, or after
// InvalidationWait at most.
func (n *Node) invalidateFetchers(ctx context.Context, key string, wait bool) {
	n.waitInvalidations(ctx, n.queueInvalidations(key, wait))
}

// invalidateFetchersMany invalidates the near copies of several changed
// keys and waits (InvalidationWait at most, in all) for them.
func (n *Node) invalidateFetchersMany(ctx context.Context, es []store.Entry) {
	var done []chan struct{}
	for _, e := range es {
		done = append(done, n.queueInvalidations(e.Key, true)...)
	}
	n.waitInvalidations(ctx, done)
}

// queueInvalidations queues key's invalidation for every node that fetched
// it and returns, with wait, what to wait for.
func (n *Node) queueInvalidations(key string, wait bool) []chan struct{} {
	if n.tracker == nil || n.inval == nil {
		return nil
	}
	ids := n.tracker.take(key)
	if len(ids) == 0 {
		return nil
	}
	wait = wait && n.cfg.InvalidationWait > 0
	var done []chan struct{}
	for _, id := range ids {
		var ch chan struct{}
		if wait {
			ch = make(chan struct{})
			done = append(done, ch)
		}
		n.inval.enqueue(n.tracker.name(id), key, ch)
	}
	return done
}

// waitInvalidations waits until every queued invalidation in done was
// acknowledged, or InvalidationWait passed.
func (n *Node) waitInvalidations(ctx context.Context, done []chan struct{}) {
	if len(done) == 0 {
		return
	}
	timer := time.NewTimer(n.cfg.InvalidationWait)
	defer timer.Stop()
	for _, ch := range done {
		select {
		case <-ch:
		case <-timer.C:
			n.inval.waitTimeouts.Add(1)
			return
		case <-ctx.Done():
			return
		}
	}
}
