// Package localtier owns a node's in-process tier: one tier.Cache holding
// two kinds of copies, and the rules that keep a copy from outliving the
// value it copies.
//
//   - local: a copy of a record of the node's own shard, served only while
//     the node owns the key; none when the shard keeps its records in the
//     process already (Options.Owned false: the embedded Memory store),
//     where a copy would only double the memory per key (only the
//     read-through loader's negative entries are kept then);
//   - near: a copy of a value fetched from the key's owner, served only
//     while another node owns it, for at most Options.NearTTL; the owner
//     remembers who fetched it and sends an invalidation when it changes.
//
// Two mechanisms keep copies correct:
//
//   - Epochs. Every entry carries the epoch current when the read that
//     produced it began; the epoch moves on every ring change (NewEpoch,
//     called after the new view is stored), and entries of an older epoch
//     are never served. A ring change therefore drops every copy at once,
//     whatever moved.
//   - Guards. Keys hash to one of guardStripes counters. Whatever changes a
//     key's value (an owner write, an import, an invalidation from the
//     owner, a write forwarded from here) bumps the key's counter and then
//     deletes or replaces the entry; a read that fills the tier loads the
//     counter (Guard) before it reads its source and stores only if the
//     counter has not moved (checked under the cache's per-key lock,
//     tier.Cache.SetIf). A fill can thus never put back a value that a
//     change has replaced. The counter also keys the node's singleflight,
//     so a read never joins a read that began before a change it must see.
//
// A nil *Tier is a node without a local tier: every method is safe to call
// on it and does nothing (lookups miss, fills store nothing, Epoch and
// Guard are 0).
//
// The package knows nothing of the ring, the network or the shard's
// protocol: who owns a key and when the ring changed are the caller's to
// say. It keeps the tier's epoch and flags in tier.Entry's Tag and a near
// copy's own expiry in its Aux.
package localtier

import (
	"bytes"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/store"
	"github.com/peercache/peercache/tier"
)

// Kinds of copy, the index of Stats' per-kind counters.
const (
	Local = 0 // copies of the node's own records (and negative entries)
	Near  = 1 // copies of values other owners hold
)

const guardStripes = 4096

// Entry tags: epoch << 2 | flags.
const (
	tagNear     = 1
	tagNegative = 2
)

func tagOf(epoch uint64, flags uint64) uint64 { return epoch<<2 | flags }

// Options configure a Tier.
type Options struct {
	// MaxBytes is the tier's byte budget (keys, values, per-entry overhead).
	MaxBytes int64
	// Policy is the eviction policy (tier.Policy; "" is the default).
	Policy tier.Policy
	// Owned says whether the tier keeps copies of the node's own records
	// (false when the shard keeps them in this process already).
	Owned bool
	// NearTTL bounds how long a near copy is kept (0: no near copies).
	NearTTL time.Duration
	// Logger receives debug lines about epoch purges (nil: slog.Default()).
	Logger *slog.Logger
}

// Tier is a node's local tier (see the package comment).
type Tier struct {
	c       tier.Cache
	owned   bool
	seed    maphash.Seed
	epoch   atomic.Uint64
	guards  [guardStripes]atomic.Uint64
	nearTTL time.Duration
	log     *slog.Logger
	// filled: a fill was attempted. Until then the cache is empty and a
	// change only bumps the key's guard (drop skips the delete, which costs
	// a lock in the cache: a node with the in-process shard and no near
	// cache never fills the tier).
	filled atomic.Bool

	purging atomic.Bool    // a purge of older epochs is running
	purges  sync.WaitGroup // that purge (Close waits for it)
	mu      sync.Mutex     // orders purges.Add with Close
	closed  bool           // guarded by mu

	hits, misses [2]stripedCounter // by Local, Near
	collapsed    [2]atomic.Uint64  // singleflight followers: owner reads, forwards
	forwards     atomic.Uint64     // forwarded reads sent (singleflight leaders)
	ownerReads   atomic.Uint64     // shard reads behind the local tier (leaders)
}

// New returns a tier for o.
func New(o Options) (*Tier, error) {
	c, err := tier.New(tier.Options{MaxBytes: o.MaxBytes, Policy: o.Policy})
	if err != nil {
		return nil, err
	}
	t := &Tier{c: c, seed: maphash.MakeSeed(), owned: o.Owned, log: o.Logger}
	if o.NearTTL > 0 {
		t.nearTTL = o.NearTTL
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	return t, nil
}

// Owned reports whether the tier keeps copies of the node's own records.
func (t *Tier) Owned() bool { return t != nil && t.owned }

// Epoch returns the current epoch (0 without a tier). A read loads it
// before the view it routes by.
func (t *Tier) Epoch() uint64 {
	if t == nil {
		return 0
	}
	return t.epoch.Load()
}

// Guard returns key's guard counter (0 without a tier). A read loads it
// before it reads its source and passes it to the fill.
func (t *Tier) Guard(key string) uint64 {
	if t == nil {
		return 0
	}
	return t.guard(key).Load()
}

func (t *Tier) guard(key string) *atomic.Uint64 {
	return &t.guards[maphash.String(t.seed, key)&(guardStripes-1)]
}

// NewEpoch moves the epoch on, after a new view with a different ring (or
// with members that restarted) was stored: every copy made before is
// dropped (lazily: entries of older epochs are never served; a background
// pass, which Close waits for, frees their memory).
func (t *Tier) NewEpoch() {
	if t == nil {
		return
	}
	ep := t.epoch.Add(1)
	if !t.purging.CompareAndSwap(false, true) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		t.purging.Store(false)
		return
	}
	t.purges.Go(func() {
		defer t.purging.Store(false)
		start := time.Now()
		removed := t.c.DeleteFunc(func(_ string, e tier.Entry) bool { return e.Tag>>2 < ep })
		t.log.Debug("local tier: dropped copies of the previous ring", "entries", removed, "took", time.Since(start))
	})
}

// Invalidate drops key's copy: its value changed, or may have (a write
// forwarded from here, an import, an invalidation from the owner).
func (t *Tier) Invalidate(key string) {
	if t == nil {
		return
	}
	t.guard(key).Add(1)
	t.drop(key)
}

// drop deletes key's entry, if the tier has ever been filled. Callers bump
// the key's guard first: a fill that raced the check sees the guard moved
// and stores nothing (filled is set before the fill's guard is compared).
func (t *Tier) drop(key string) {
	if t.filled.Load() {
		t.c.Delete(key)
	}
}

// fill stores e (read while the key's guard was g) unless a change came in
// between; an entry of the same epoch and kind is replaced only by a newer
// version.
func (t *Tier) fill(key string, e tier.Entry, g uint64) bool {
	t.filled.Store(true)
	gd := t.guard(key)
	return t.c.SetIf(key, e, func(old tier.Entry, found bool) bool {
		return gd.Load() == g && (!found || old.Tag != e.Tag || e.Version > old.Version)
	})
}

// Lookup returns key's entry if it is of the current epoch and of the kind
// wanted (near or not), without counting a hit or a miss.
func (t *Tier) Lookup(key string, near bool) (tier.Entry, bool) {
	if t == nil {
		return tier.Entry{}, false
	}
	e, ok := t.c.Get(key)
	if !ok || e.Tag>>2 != t.epoch.Load() || (e.Tag&tagNear != 0) != near {
		return tier.Entry{}, false
	}
	return e, true
}

// NearOn reports whether the tier keeps near copies.
func (t *Tier) NearOn() bool { return t != nil && t.nearTTL > 0 }

// Near returns the near copy of key (owned by owner), counting a hit or a
// miss.
func (t *Tier) Near(key, owner string) (kv.Item, bool) {
	if !t.NearOn() {
		return kv.Item{}, false
	}
	e, ok := t.Lookup(key, true)
	if !ok {
		t.misses[Near].inc()
		return kv.Item{}, false
	}
	t.hits[Near].inc()
	return nearItem(key, owner, e), true
}

// PeekNear is Near without counting: a forward that is about to leave
// looks whether a flight that ended just before it filled the copy.
func (t *Tier) PeekNear(key, owner string) (kv.Item, bool) {
	if !t.NearOn() {
		return kv.Item{}, false
	}
	e, ok := t.Lookup(key, true)
	if !ok {
		return kv.Item{}, false
	}
	return nearItem(key, owner, e), true
}

// nearItem is the item a near-cache entry holds.
func nearItem(key, owner string, e tier.Entry) kv.Item {
	it := kv.Item{Key: key, Value: e.Value, Version: e.Version, Owner: owner, Source: kv.SourceNear}
	if e.Aux != 0 {
		it.ExpireAt = time.UnixMilli(e.Aux)
	}
	return it
}

// FillNear keeps a copy of it, fetched from its owner, for at most nearTTL
// (the owner's permission) from sent (when the request left). g is the
// key's guard and ep the epoch, both loaded before the request.
func (t *Tier) FillNear(key string, it kv.Item, nearTTL time.Duration, sent time.Time, g, ep uint64) {
	if !t.NearOn() || nearTTL <= 0 {
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

// Local returns the local copy of key (owned by self), counting a hit or a
// miss; negative: the entry says the loader did not find the key.
func (t *Tier) Local(key, self string) (it kv.Item, negative, ok bool) {
	if t == nil {
		return kv.Item{}, false, false
	}
	e, ok := t.Lookup(key, false)
	if !ok {
		t.misses[Local].inc()
		return kv.Item{}, false, false
	}
	t.hits[Local].inc()
	if e.Tag&tagNegative != 0 {
		return kv.Item{}, true, true
	}
	return kv.Item{Key: key, Value: e.Value, Version: e.Version, ExpireAt: e.Expires, Owner: self, Source: kv.SourceLocal}, false, true
}

// FillLocal keeps a copy of it, read from the node's own shard while the
// key's guard was g and the epoch ep, when the tier keeps copies of owned
// records. It reports whether the copy was stored.
func (t *Tier) FillLocal(key string, it kv.Item, g, ep uint64) bool {
	if !t.Owned() {
		return false
	}
	return t.fill(key, tier.Entry{Value: it.Value, Version: it.Version, Expires: it.ExpireAt, Tag: tagOf(ep, 0)}, g)
}

// FillNegative remembers until expires that the loader did not find key.
func (t *Tier) FillNegative(key string, expires time.Time, g, ep uint64) {
	if t == nil {
		return
	}
	t.fill(key, tier.Entry{Expires: expires, Tag: tagOf(ep, tagNegative)}, g)
}

// Publish brings the tier in line with a write the owner just applied to
// its shard (called with the key's write lock held). g is the key's guard
// before the write. A later change, or a read that began before this
// write, can then never leave an older value behind.
func (t *Tier) Publish(key string, e store.Entry, g uint64) {
	if t == nil {
		return
	}
	gd := t.guard(key)
	if gd.Add(1) != g+1 || e.Tombstone {
		// Another change of this stripe came in between (or a delete):
		// drop rather than reason about the order.
		t.drop(key)
		return
	}
	if !t.owned {
		// No copies of owned records (the write above bumped the guard, so
		// a negative entry's fill that raced it fails); drop a negative entry.
		t.drop(key)
		return
	}
	// A copy: e.Value may alias the request's buffer, which the tier must
	// not keep alive (nor see reused).
	te := tier.Entry{Value: bytes.Clone(e.Value), Version: e.Version, Tag: tagOf(t.epoch.Load(), 0)}
	if e.ExpireAt != 0 {
		te.Expires = time.UnixMilli(e.ExpireAt)
	}
	if !t.fill(key, te, g+1) {
		if old, ok := t.c.Get(key); !ok || old.Version < e.Version || old.Tag != te.Tag {
			t.c.Delete(key)
		}
	}
}

// HottestLocal calls fn for the local copies of the current epoch (not
// near copies, not negative entries), hottest first in the tier's
// retention order, until fn returns false or maxScan entries of any kind
// were looked at. size is the key's and value's bytes.
func (t *Tier) HottestLocal(maxScan int, fn func(key string, size int) bool) {
	if t == nil {
		return
	}
	ep := t.epoch.Load()
	scanned := 0
	t.c.Hottest(func(key string, e tier.Entry) bool {
		scanned++
		if e.Tag>>2 != ep || e.Tag&(tagNear|tagNegative) != 0 {
			return scanned < maxScan // near copies, older epochs: not this node's keys
		}
		return fn(key, len(key)+len(e.Value)) && scanned < maxScan
	})
}

// CountCollapsed counts a read that joined one in flight (kind Local: an
// owner read; Near: a forward).
func (t *Tier) CountCollapsed(kind int) {
	if t != nil {
		t.collapsed[kind].Add(1)
	}
}

// CountForward counts a forwarded read sent after a near-cache miss.
func (t *Tier) CountForward() {
	if t != nil {
		t.forwards.Add(1)
	}
}

// CountOwnerRead counts a shard read after a local miss.
func (t *Tier) CountOwnerRead() {
	if t != nil {
		t.ownerReads.Add(1)
	}
}

// Stats are the tier's counters.
type Stats struct {
	// Hits and Misses count lookups by kind (Local, Near).
	Hits, Misses [2]uint64
	// Collapsed counts reads that joined one in flight, by kind.
	Collapsed [2]uint64
	// Forwards counts forwarded reads sent after a near-cache miss.
	Forwards uint64
	// OwnerReads counts shard reads after a local miss.
	OwnerReads uint64
	// Cache is the underlying cache's counters.
	Cache tier.Stats
}

// HitRatio is the tier's hit ratio over both kinds of entries: nil
// without a tier, 0 before its first lookup.
func (t *Tier) HitRatio() *float64 {
	if t == nil {
		return nil
	}
	s := t.Stats()
	h, m := s.Hits[0]+s.Hits[1], s.Misses[0]+s.Misses[1]
	r := 0.0
	if h+m > 0 {
		r = float64(h) / float64(h+m)
	}
	return &r
}

// Stats returns the tier's counters (zero without a tier).
func (t *Tier) Stats() Stats {
	var s Stats
	if t == nil {
		return s
	}
	for i := range 2 {
		s.Hits[i], s.Misses[i], s.Collapsed[i] = t.hits[i].load(), t.misses[i].load(), t.collapsed[i].Load()
	}
	s.Forwards, s.OwnerReads = t.forwards.Load(), t.ownerReads.Load()
	s.Cache = t.c.Stats()
	return s
}

// Cache returns the underlying cache, entries of every epoch and kind
// included (for tests and diagnostics).
func (t *Tier) Cache() tier.Cache { return t.c }

// Close waits for a running purge and stops the cache's background work.
func (t *Tier) Close() {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.purges.Wait()
	t.c.Close()
}

// stripedCounter is a counter written from many goroutines without all of
// them hitting one cache line.
type stripedCounter struct {
	s [8]struct {
		n atomic.Uint64
		_ [56]byte
	}
}

func (c *stripedCounter) inc() { c.s[rand.Uint32()&7].n.Add(1) }

func (c *stripedCounter) load() uint64 {
	var t uint64
	for i := range c.s {
		t += c.s[i].n.Load()
	}
	return t
}
