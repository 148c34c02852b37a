package node

import (
	"context"
	"hash/maphash"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/peercache/peercache/internal/nearcache"
	"github.com/peercache/peercache/store"
	"github.com/peercache/peercache/tier"
)

// Defaults of the local tier and the near cache.
const (
	DefaultNearCacheTTL     = time.Second
	DefaultLoaderNegTTL     = 5 * time.Second
	DefaultNearTrackMaxKeys = 1 << 18
	DefaultInvalidationWait = 5 * time.Millisecond
)

// The local tier is one tier.Cache per node holding two kinds of entries,
// told apart by the entry's tag:
//
//   - local: a copy of a record of this node's own shard, served only while
//     this node owns the key; none when the shard keeps its records in this
//     process already (inProcessStore: the embedded Memory store), where a
//     copy would only double the memory per key (only the Getter's negative
//     entries are kept then);
//   - near: a copy of a value fetched from the key's owner, served only
//     while another node owns it, for at most NearCacheTTL; the owner
//     remembers who fetched it and sends an invalidation when it changes.
//
// Two mechanisms keep copies from outliving the value they copy:
//
//   - Epochs. Every entry carries the tier epoch current when the read that
//     produced it began; the epoch moves on every ring change (after the new
//     view is stored), and entries of an older epoch are never served. A
//     ring change therefore drops every copy at once, whatever moved.
//   - Guards. Keys hash to one of guardStripes counters. Whatever changes a
//     key's value (an owner write, an import, an invalidation from the
//     owner, a write forwarded from here) bumps the key's counter and then
//     deletes or replaces the entry; a read that fills the tier loads the
//     counter before it reads its source and stores only if the counter has
//     not moved (checked under the cache's per-key lock, tier.Cache.SetIf).
//     A fill can thus never put back a value that a change has replaced.
//     The counter also keys singleflight, so a read never joins a read that
//     began before a change it must see.
type localTier struct {
	c tier.Cache
	// owned: the tier keeps copies of this node's own records (false when
	// the shard is in-process; see inProcessStore).
	owned   bool
	seed    maphash.Seed
	epoch   atomic.Uint64
	guards  [guardStripes]atomic.Uint64
	nearTTL time.Duration // 0: no near cache
	// filled: a fill was attempted. Until then the cache is empty and a
	// change only bumps the key's guard (drop skips the delete, which costs
	// a lock in the cache: a node with the in-process shard and no near
	// cache never fills the tier).
	filled atomic.Bool

	purging atomic.Bool

	hits, misses [2]stripedCounter // by tierLocal, tierNear
	collapsed    [2]atomic.Uint64  // singleflight followers: owner reads, forwards
	forwards     atomic.Uint64     // forwarded reads sent (singleflight leaders)
	ownerReads   atomic.Uint64     // shard reads behind the local tier (leaders)
}

const guardStripes = 4096

// Entry tags: epoch << 2 | flags.
const (
	tagNear     = 1
	tagNegative = 2
)

const (
	tierLocal = 0
	tierNear  = 1
)

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

// inProcessStore is implemented by shards that keep their records in this
// process (store.Memory): reading them costs no more than reading a copy in
// the local tier, so the tier keeps none of them.
type inProcessStore interface {
	// InProcess reports whether the records live in this process.
	InProcess() bool
}

// isInProcess reports whether st keeps its records in this process.
func isInProcess(st store.Store) bool {
	ip, ok := st.(inProcessStore)
	return ok && ip.InProcess()
}

// newLocalTier returns the local tier for cfg (nil when disabled); owned
// says whether it keeps copies of the node's own records.
func newLocalTier(cfg Config, owned bool) (*localTier, error) {
	if cfg.LocalTierBytes < 0 {
		return nil, nil
	}
	c, err := tier.New(tier.Options{MaxBytes: cfg.LocalTierBytes, Policy: tier.Policy(cfg.LocalTierPolicy)})
	if err != nil {
		return nil, err
	}
	t := &localTier{c: c, seed: maphash.MakeSeed(), owned: owned}
	if cfg.NearCacheTTL > 0 {
		t.nearTTL = cfg.NearCacheTTL
	}
	return t, nil
}

func (t *localTier) guard(key string) *atomic.Uint64 {
	return &t.guards[maphash.String(t.seed, key)&(guardStripes-1)]
}

// invalidate drops key: its value changed, or may have.
func (t *localTier) invalidate(key string) {
	t.guard(key).Add(1)
	t.drop(key)
}

// drop deletes key's entry, if the tier has ever been filled. Callers bump
// the key's guard first: a fill that raced the check sees the guard moved
// and stores nothing (filled is set before the fill's guard is compared).
func (t *localTier) drop(key string) {
	if t.filled.Load() {
		t.c.Delete(key)
	}
}

// fill stores e (read while the key's guard was g) unless a change came in
// between; an entry of the same epoch and kind is replaced only by a newer
// version.
func (t *localTier) fill(key string, e tier.Entry, g uint64) bool {
	t.filled.Store(true)
	gd := t.guard(key)
	return t.c.SetIf(key, e, func(old tier.Entry, found bool) bool {
		return gd.Load() == g && (!found || old.Tag != e.Tag || e.Version > old.Version)
	})
}

// get returns key's entry if it is of the current epoch and of the kind
// wanted (near or not).
func (t *localTier) get(key string, near bool) (tier.Entry, bool) {
	e, ok := t.c.Get(key)
	if !ok || e.Tag>>2 != t.epoch.Load() || (e.Tag&tagNear != 0) != near {
		return tier.Entry{}, false
	}
	return e, true
}

func tagOf(epoch uint64, flags uint64) uint64 { return epoch<<2 | flags }

// tierEpoch returns the current tier epoch (0 without a tier). Load it
// before the view a read routes by.
func (n *Node) tierEpoch() uint64 {
	if n.reads.tier == nil {
		return 0
	}
	return n.reads.tier.epoch.Load()
}

// tierViewChanged is called after a new view with a different ring (or
// with members that restarted) was stored: every copy made before is
// dropped (lazily: entries of older epochs are never served; a background
// pass frees their memory).
func (n *Node) tierViewChanged() {
	t := n.reads.tier
	if t == nil {
		return
	}
	ep := t.epoch.Add(1)
	if !t.purging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer t.purging.Store(false)
		start := time.Now()
		removed := t.c.DeleteFunc(func(_ string, e tier.Entry) bool { return e.Tag>>2 < ep })
		n.log.Debug("local tier: dropped copies of the previous ring", "entries", removed, "took", time.Since(start))
	}()
}

// tierInvalidate drops key's local copy (a write forwarded from here, an
// import, an invalidation from the owner).
func (n *Node) tierInvalidate(key string) {
	if n.reads.tier != nil {
		n.reads.tier.invalidate(key)
	}
}

// importApplied is called for every entry an import wrote to the shard
// (migration, replication copy, write-through from a new owner): the local
// copy goes, and so do near copies other nodes fetched from here.
func (n *Node) importApplied(key string) {
	n.tierInvalidate(key)
	n.reads.near.Invalidate(context.Background(), key, false)
}

// tierStats are the local tier's counters (metrics, status, tests).
type tierStats struct {
	Hits, Misses             [2]uint64
	Collapsed                [2]uint64
	Forwards                 uint64
	OwnerReads               uint64
	Cache                    tier.Stats
	InvalidationsOut         uint64
	InvalidationBatches      uint64
	InvalidationsIn          uint64
	InvalidationDrop         uint64
	InvalidationFailed       uint64
	InvalidationWaitTimeouts uint64
	NearRefused              uint64
	Loads                    [3]uint64 // loaded, not found, failed
}

func (n *Node) tierStats() tierStats {
	var s tierStats
	if t := n.reads.tier; t != nil {
		for i := 0; i < 2; i++ {
			s.Hits[i], s.Misses[i], s.Collapsed[i] = t.hits[i].load(), t.misses[i].load(), t.collapsed[i].Load()
		}
		s.Forwards, s.OwnerReads = t.forwards.Load(), t.ownerReads.Load()
		s.Cache = t.c.Stats()
	}
	ns := n.reads.near.Stats()
	s.InvalidationsOut, s.InvalidationBatches, s.InvalidationsIn = ns.Sent, ns.Batches, ns.Received
	s.InvalidationDrop, s.InvalidationFailed, s.InvalidationWaitTimeouts = ns.Dropped, ns.Failed, ns.WaitTimeouts
	s.NearRefused = ns.Refused
	for i := range s.Loads {
		s.Loads[i] = n.reads.loads[i].Load()
	}
	return s
}

// hitRatio is the local tier's hit ratio over both kinds of entries (nil
// without a tier; 0 before its first lookup).
func (n *Node) hitRatio() *float64 {
	if n.reads.tier == nil {
		return nil
	}
	s := n.tierStats()
	h, m := s.Hits[0]+s.Hits[1], s.Misses[0]+s.Misses[1]
	r := 0.0
	if h+m > 0 {
		r = float64(h) / float64(h+m)
	}
	return &r
}

// closeTier stops the tier's background work.
func (n *Node) closeTier() {
	if n.reads.tier != nil {
		n.reads.tier.c.Close()
	}
	n.reads.near.Stop()
}

// initTier sets up the local tier, the near-cache tracker and the
// invalidation sender from the config (called by New).
func (n *Node) initTier() error {
	t, err := newLocalTier(n.cfg, !n.shard.inProcess)
	if err != nil {
		return err
	}
	n.reads.tier = t
	n.reads.near = nearcache.New(n.life.ctx, nearcache.Config{Self: n.cfg.Name, TTL: n.cfg.NearCacheTTL,
		MaxKeys: n.cfg.NearTrackMaxKeys, Wait: n.cfg.InvalidationWait, Send: n.peerInvalidate,
		Member: func(name string) bool { _, ok := n.views.cur.Load().members[name]; return ok },
		Logger: n.log})
	return nil
}
