package node

// evictionCounter is implemented by shards that evict records to stay
// within a byte budget and count them (store.Memory).
type evictionCounter interface {
	// Evictions returns how many records were evicted since the store was
	// created.
	Evictions() uint64
}

// Evictions are the keys dropped to stay within the memory budget since the
// node started.
type Evictions struct {
	// Store counts the records the shard evicted: those keys are gone (a
	// read answers not found). Only the in-memory store counts them; a Redis
	// shard reports its own in its INFO (evicted_keys) and is 0 here.
	Store uint64 `json:"store"`
	// LocalTier counts the copies the local tier evicted (the keys stay in
	// their shards).
	LocalTier uint64 `json:"local_tier"`
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
