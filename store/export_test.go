package store

// SweeperDone exposes, to the external tests, the channel the Memory store's
// sweeper closes when it returns.
func SweeperDone(m *Memory) <-chan struct{} { return m.sweepDone }

// NewMemoryHashed is NewMemory with another key hash (to force collisions).
func NewMemoryHashed(opts MemoryOptions, hash func(string) uint64) *Memory {
	m := NewMemory(opts)
	m.hash = hash
	return m
}

// SlabBytes is the total length of the Memory store's slabs and slots, in
// bytes (what overwrites and deletes must not let grow without bound).
func SlabBytes(m *Memory) (slab, slots int) {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		slab += len(sh.data)
		slots += len(sh.slots)
		sh.mu.RUnlock()
	}
	return slab, slots
}
