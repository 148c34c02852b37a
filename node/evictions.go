package node

import "github.com/peercache/peercache/status"

// evictionCounter is implemented by shards that evict records to stay
// within a byte budget and count them (store.Memory).
type evictionCounter interface {
	// Evictions returns how many records were evicted since the store was
	// created.
	Evictions() uint64
}

// Evictions are the keys dropped to stay within the memory budget since the
// node started (in NodeStatus).
type Evictions = status.Evictions

// evictions returns the node's eviction counts.
func (n *Node) evictions() Evictions {
	var e Evictions
	if n.shard.evictions != nil {
		e.Store = n.shard.evictions.Evictions()
	}
	e.LocalTier = n.reads.tier.Stats().Cache.Evictions
	return e
}
