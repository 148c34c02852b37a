package node

import (
	"context"

	"github.com/peercache/peercache/internal/localtier"
	"github.com/peercache/peercache/internal/nearcache"
	"github.com/peercache/peercache/internal/nodemetrics"
	"github.com/peercache/peercache/store"
	"github.com/peercache/peercache/tier"
)

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

// initTier sets up the local tier (package localtier: nil when disabled),
// the near-cache tracker and the invalidation sender from the config
// (called by New).
func (n *Node) initTier() error {
	if n.cfg.Tier.Bytes >= 0 {
		t, err := localtier.New(localtier.Options{MaxBytes: n.cfg.Tier.Bytes, Policy: tier.Policy(n.cfg.Tier.Policy),
			Owned: !n.shard.inProcess, NearTTL: n.cfg.Tier.NearTTL, Logger: n.log})
		if err != nil {
			return err
		}
		n.reads.tier = t
	}
	n.reads.near = nearcache.New(n.life.ctx, nearcache.Config{Self: n.cfg.Name, TTL: n.cfg.Tier.NearTTL,
		MaxKeys: n.cfg.Tier.NearTrackMaxKeys, Wait: n.cfg.Tier.InvalidationWait, Send: n.peer.members.Invalidate,
		Member: func(name string) bool { _, ok := n.views.cur.Load().Members[name]; return ok },
		Logger: n.log})
	return nil
}

// closeTier stops the tier's and the near cache's background work.
func (n *Node) closeTier() {
	n.reads.tier.Close()
	n.reads.near.Stop()
}

// importApplied is called for every entry an import wrote to the shard
// (migration, replication copy, write-through from a new owner): the local
// copy goes, and so do near copies other nodes fetched from here.
func (n *Node) importApplied(key string) {
	n.reads.tier.Invalidate(key)
	n.reads.near.Invalidate(context.Background(), key, false)
}

// tierStats are the counters of the local tier, the near cache, the
// read-through loader and the evictions, as the tier series report them
// (metrics, tests).
type tierStats = nodemetrics.Tier

func (n *Node) tierStats() tierStats {
	ev := n.evictions()
	s := tierStats{Stats: n.reads.tier.Stats(), StoreEvictions: ev.Store, LocalTierEvictions: ev.LocalTier}
	ns := n.reads.near.Stats()
	s.InvalidationsOut, s.InvalidationBatches, s.InvalidationsIn = ns.Sent, ns.Batches, ns.Received
	s.InvalidationDrop, s.InvalidationFailed, s.InvalidationWaitTimeouts = ns.Dropped, ns.Failed, ns.WaitTimeouts
	s.NearRefused = ns.Refused
	for i := range s.Loads {
		s.Loads[i] = n.reads.loads[i].Load()
	}
	return s
}

// evictionCounter is implemented by shards that evict records to stay
// within a byte budget and count them (store.Memory).
type evictionCounter interface {
	// Evictions returns how many records were evicted since the store was
	// created.
	Evictions() uint64
}

// evictions returns the node's eviction counts.
func (n *Node) evictions() Evictions {
	var e Evictions
	if n.shard.evictions != nil {
		e.Store = n.shard.evictions.Evictions()
	}
	e.LocalTier = n.reads.tier.Stats().Cache.Evictions
	return e
}
