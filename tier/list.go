package tier

import (
	"hash/maphash"
	"sync"
)

// listCache is groupcache's lru (a map and a doubly linked list) sharded
// by key hash, each shard behind its own mutex with an equal part of the
// byte budget. lru moves an entry to the front on every hit; FIFO does not.
type listCache struct {
	seed   maphash.Seed
	mask   uint64
	lru    bool
	clk    clock
	shards []listShard
	max    int64
}

type listNode struct {
	key        string
	e          Entry
	deadline   int64
	size       int64
	prev, next *listNode
}

type listShard struct {
	mu        sync.Mutex
	m         map[string]*listNode
	root      listNode // sentinel: root.next is the newest, root.prev the oldest
	bytes     int64
	max       int64
	evictions uint64
	_         [64]byte // keep shards' hot fields on separate cache lines
}

func newListCache(maxBytes int64, shards int, lru bool) *listCache {
	c := &listCache{seed: maphash.MakeSeed(), mask: uint64(shards - 1), lru: lru, clk: newClock(),
		shards: make([]listShard, shards), max: maxBytes}
	per := maxBytes / int64(shards)
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[string]*listNode)
		s.root.next, s.root.prev = &s.root, &s.root
		s.max = per
	}
	return c
}

func (c *listCache) shard(key string) *listShard {
	if c.mask == 0 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)&c.mask]
}

func (s *listShard) unlink(n *listNode) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}

func (s *listShard) pushFront(n *listNode) {
	n.prev, n.next = &s.root, s.root.next
	s.root.next.prev = n
	s.root.next = n
}

func (s *listShard) remove(n *listNode) {
	s.unlink(n)
	delete(s.m, n.key)
	s.bytes -= n.size
}

func (c *listCache) Get(key string) (Entry, bool) {
	s := c.shard(key)
	s.mu.Lock()
	n, ok := s.m[key]
	if !ok {
		s.mu.Unlock()
		return Entry{}, false
	}
	if n.deadline != 0 && c.clk.now() >= n.deadline {
		s.remove(n)
		s.mu.Unlock()
		return Entry{}, false
	}
	if c.lru && s.root.next != n {
		s.unlink(n)
		s.pushFront(n)
	}
	e := n.e
	s.mu.Unlock()
	return e, true
}

func (c *listCache) Set(key string, e Entry) bool {
	return c.SetIf(key, e, nil)
}

func (c *listCache) SetIf(key string, e Entry, keep func(old Entry, found bool) bool) bool {
	size := Size(key, len(e.Value))
	s := c.shard(key)
	if size > s.max {
		c.Delete(key) // the old value must not outlive a newer one that did not fit
		return false
	}
	deadline := c.clk.deadline(e.Expires)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, found := s.m[key]
	if found && old.deadline != 0 && c.clk.now() >= old.deadline {
		s.remove(old)
		old, found = nil, false
	}
	if keep != nil {
		var oe Entry
		if found {
			oe = old.e
		}
		if !keep(oe, found) {
			return false
		}
	}
	if found {
		s.remove(old)
	}
	n := &listNode{key: key, e: e, deadline: deadline, size: size}
	s.m[key] = n
	s.pushFront(n)
	s.bytes += size
	for s.bytes > s.max {
		oldest := s.root.prev
		s.remove(oldest)
		s.evictions++
	}
	return true
}

func (c *listCache) Delete(key string) {
	s := c.shard(key)
	s.mu.Lock()
	if n, ok := s.m[key]; ok {
		s.remove(n)
	}
	s.mu.Unlock()
}

func (c *listCache) DeleteFunc(del func(key string, e Entry) bool) int {
	removed := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for n := s.root.next; n != &s.root; {
			next := n.next
			if del(n.key, n.e) {
				s.remove(n)
				removed++
			}
			n = next
		}
		s.mu.Unlock()
	}
	return removed
}

func (c *listCache) Hottest(fn func(key string, e Entry) bool) {
	// The shards in turn, a batch of the newest entries from each, copied
	// out under the shard's lock so that fn runs without it.
	const batch = 64
	type kv struct {
		key string
		e   Entry
	}
	pos := make([]*listNode, len(c.shards)) // where each shard's walk resumes (nil: at its front)
	done := make([]bool, len(c.shards))
	now := c.clk.now()
	for left := len(c.shards); left > 0; {
		for i := range c.shards {
			if done[i] {
				continue
			}
			s := &c.shards[i]
			var out []kv
			s.mu.Lock()
			n := pos[i]
			if n == nil || (n != &s.root && n.prev == nil) { // first visit, or the node left meanwhile: restart at the front
				n = s.root.next
			}
			for ; n != &s.root && len(out) < batch; n = n.next {
				if n.deadline == 0 || now < n.deadline {
					out = append(out, kv{n.key, n.e})
				}
			}
			pos[i] = n
			if n == &s.root {
				done[i] = true
				left--
			}
			s.mu.Unlock()
			for _, x := range out {
				if !fn(x.key, x.e) {
					return
				}
			}
		}
	}
}

func (c *listCache) Clear() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.m = make(map[string]*listNode)
		s.root.next, s.root.prev = &s.root, &s.root
		s.bytes = 0
		s.mu.Unlock()
	}
}

func (c *listCache) Stats() Stats {
	st := Stats{MaxBytes: c.max}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Entries += int64(len(s.m))
		st.Bytes += s.bytes
		st.Evictions += s.evictions
		s.mu.Unlock()
	}
	return st
}

func (c *listCache) Close() {}
