package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

const (
	// DefaultMemoryMaxBytes is the Memory store's byte budget when
	// MemoryOptions.MaxBytes is 0.
	DefaultMemoryMaxBytes = 256 << 20
	// DefaultSweepInterval is how often the Memory store removes expired
	// records when MemoryOptions.SweepInterval is 0.
	DefaultSweepInterval = time.Second
	// MemoryEntryOverhead is the fixed number of bytes the Memory store
	// accounts for each record on top of len(Key)+len(Value): its slot
	// (48 bytes), its index entry (4 bytes at a load factor of 3/8 to 3/4),
	// its share of the scan order (8) and the growth slack of the slot
	// array and the slab. Measured at 70-80 live heap bytes per record of
	// 12-byte keys and 32-byte values on amd64 with Go 1.26
	// (TestMemoryHeapPerRecord); the garbage collector's headroom comes on
	// top.
	MemoryEntryOverhead = 80

	// shardBits selects the shard from the top bits of a key's hash, so each
	// shard holds one contiguous range of the hash space and a scan visits
	// the shards in order.
	shardBits  = 8
	numShards  = 1 << shardBits
	shardShift = 64 - shardBits
	// evictionSamples is how many random records an eviction compares; the
	// least recently used of them goes (as Redis' allkeys-lru, whose docs
	// show that 10 samples come very close to true LRU).
	evictionSamples = 10
	// defaultScanCount is the batch size of a Scan called with count <= 0.
	defaultScanCount = 10
	// ctxCheckEvery is how many records a batch call handles between checks
	// of its context.
	ctxCheckEvery = 256
	// compactMinGarbage is how many dead slab bytes a shard tolerates before
	// it compacts its slab (once they are also half of the slab).
	compactMinGarbage = 16 << 10
	// maxSlab bounds one shard's slab (offsets are uint32; 2 GiB fits an
	// int on 32-bit platforms too).
	maxSlab = math.MaxInt32
)

// ErrFull is returned (wrapped) by a Memory store's Put when a shard's slab
// cannot hold a record (more than 2 GiB of keys and values in one of its
// 256 shards, beyond any budget below 512 GiB).
var ErrFull = errors.New("store: memory shard full")

// MemoryOptions configures a Memory store. The zero value is usable.
type MemoryOptions struct {
	// MaxBytes is the byte budget (accounted as len(Key) + len(Value) +
	// MemoryEntryOverhead per record, tombstones included). 0 or less means
	// DefaultMemoryMaxBytes.
	MaxBytes int64
	// SweepInterval is how often expired records are removed in the
	// background. 0 or less means DefaultSweepInterval. Expired records are
	// invisible at once whatever the interval.
	SweepInterval time.Duration
	// Now is the clock used for expiry; nil means time.Now.
	Now func() time.Time
}

// Memory is the embedded Store: an in-process, byte-bounded map whose
// records hold no pointers, so that the garbage collector never scans them.
//
// Records are spread over 256 shards by the top bits of the xxhash64 of the
// key. Each shard has a read-write lock and three pointer-free structures:
// an index (an open-addressing hash table of slot numbers, linear probing),
// an array of fixed-size slots (hash, version, expiry, recency, and where
// the key and value lie) and a byte slab holding each record's key followed
// by its value. Every lookup compares the stored key, so keys whose hashes
// collide are told apart. Freed slots are reused (a free list); an
// overwrite reuses its slab bytes when the new value fits, and a shard
// compacts its slab once dead bytes are half of it, so overwrites and
// deletes do not leak.
//
// Scan walks the hash space in order and its cursor is the next hash to
// visit, so a key present for the whole scan is returned (exactly once, in
// fact) whatever is inserted or removed meanwhile. Each shard keeps the
// sorted list of its hashes for scans, rebuilt by the first scan after an
// insert or a removal in that shard.
//
// When a Put takes the accounted bytes over MaxBytes, records are evicted by
// sampled LRU: of 10 random records the least recently read or written one
// goes (an expired one first, if sampled), until the store is back within
// budget. Recency is a logical clock advanced by every Put, so Gets between
// two Puts count as equally recent. With one writer the budget is exceeded
// by at most one entry while a Put runs and never once it returns; each
// concurrent writer can add at most one more entry transiently. Evictions
// are counted (Evictions). Expired records are hidden from reads at once and
// removed by a sweeper goroutine that Close stops.
//
// Values are copied on Put and on Get: the caller owns what it passes in and
// what it gets back, and may modify either.
//
// Every method rejects empty keys and zero versions with an error wrapping
// ErrInvalid (Get and GetMany included), and Put also rejects tombstones
// without an ExpireAt or with a value, and ExpireAt outside [0, MaxExpireAt].
type Memory struct {
	maxBytes int64
	now      func() time.Time
	hash     func(string) uint64 // xxhash64; tests force collisions

	used    atomic.Int64 // accounted bytes
	count   atomic.Int64 // records, tombstones and not yet swept ones included
	evicted atomic.Uint64
	// seq counts Puts; it is the logical clock of recency. A Put stamps its
	// record with a new value, a Get with the current one, so eviction
	// (which only a Put triggers) sees the order of accesses relative to
	// writes without a shared write on every Get. Slots keep its low 32
	// bits, compared as ages (wrapping arithmetic).
	seq atomic.Uint64

	closed    atomic.Bool
	closeOnce sync.Once
	stop      chan struct{} // closed by Close to stop the sweeper
	sweepDone chan struct{} // closed by the sweeper when it returns

	shards [numShards]shard
}

// shard is one range of the hash space. Everything but minExpire, the
// slots' access fields and the scan order is read under mu (read lock) and
// written under mu (write lock); access is atomic; order is guarded by
// orderMu, taken under mu's read lock.
type shard struct {
	mu sync.RWMutex
	// table is the index: slot numbers plus one (0: empty) placed by linear
	// probing from hash & (len-1); len is 0 or a power of two, at most 3/4
	// full.
	table   []uint32
	records int // non-empty table entries (used slots)
	slots   []slot
	free    []uint32 // unused slots
	data    []byte   // slab: each record's key then its value, at slot.off
	garbage int      // slab bytes no record uses
	gen     uint64   // bumped by every insert and removal (scan order)

	orderMu  sync.Mutex
	order    []uint64 // the records' distinct hashes, sorted, as of orderGen
	orderGen uint64
	// minExpire is a lower bound of the ExpireAt of the shard's records that
	// expire (math.MaxInt64 if none does); the sweeper skips the shard while
	// it is in the future. Written under mu, read atomically.
	minExpire atomic.Int64
	_         [64]byte // keep neighbouring shards' locks off one cache line
}

// slot is one record, or an unused slot (flags without slotUsed). It holds
// no pointers.
type slot struct {
	hash     uint64
	version  uint64
	expireAt int64
	off      uint32 // slab offset of the key
	klen     uint32
	vlen     uint32
	room     uint32 // slab bytes reserved at off (>= klen+vlen)
	access   uint32 // low bits of Memory.seq at the last Get or Put (atomic)
	flags    uint8
}

const (
	slotUsed      = 1
	slotTombstone = 2
)

func (sh *shard) key(s *slot) []byte { return sh.data[s.off : s.off+s.klen] }

func (sh *shard) value(s *slot) []byte {
	return sh.data[s.off+s.klen : s.off+s.klen+s.vlen]
}

// find returns the slot of key (hash h), or -1; the caller holds mu.
func (sh *shard) find(h uint64, key string) int {
	if len(sh.table) == 0 {
		return -1
	}
	mask := uint64(len(sh.table) - 1)
	for p := h & mask; ; p = (p + 1) & mask {
		e := sh.table[p]
		if e == 0 {
			return -1
		}
		if s := &sh.slots[e-1]; s.hash == h && string(sh.key(s)) == key {
			return int(e - 1)
		}
	}
}

// index adds slot n (in use, its hash set) to the table, growing the table
// instead if it would be more than 3/4 full (the rebuilt table holds n);
// the caller holds mu for writing.
func (sh *shard) index(n uint32) {
	if (sh.records+1)*4 > len(sh.table)*3 {
		sh.rehash(max(8, 2*len(sh.table)))
	} else {
		sh.place(n)
	}
	sh.records++
}

// place puts slot n in the first empty table entry of its probe sequence.
func (sh *shard) place(n uint32) {
	mask := uint64(len(sh.table) - 1)
	p := sh.slots[n].hash & mask
	for sh.table[p] != 0 {
		p = (p + 1) & mask
	}
	sh.table[p] = n + 1
}

// rehash rebuilds the table with size entries (a power of two).
func (sh *shard) rehash(size int) {
	sh.table = make([]uint32, size)
	for i := range sh.slots {
		if sh.slots[i].flags&slotUsed != 0 {
			sh.place(uint32(i))
		}
	}
}

// unindex removes slot n from the table (backward-shift deletion, so that
// no probe sequence is broken), shrinking the table once it is less than
// 1/8 full; the caller holds mu for writing.
func (sh *shard) unindex(n uint32) {
	mask := uint64(len(sh.table) - 1)
	i := sh.slots[n].hash & mask
	for sh.table[i] != n+1 {
		i = (i + 1) & mask
	}
	sh.table[i] = 0
	for j := (i + 1) & mask; sh.table[j] != 0; j = (j + 1) & mask {
		k := sh.slots[sh.table[j]-1].hash & mask // the entry's home
		// It stays unless the hole lies cyclically in [k, j).
		if (i <= j && (i < k && k <= j)) || (i > j && (i < k || k <= j)) {
			continue
		}
		sh.table[i], sh.table[j] = sh.table[j], 0
		i = j
	}
	sh.records--
}

// alloc reserves n slab bytes and returns their offset (ok false if the
// slab is full even after a compaction); the caller holds mu for writing.
func (sh *shard) alloc(n int) (uint32, bool) {
	if len(sh.data)+n > cap(sh.data) && sh.garbage > len(sh.data)/4 {
		sh.compact(n)
	}
	if len(sh.data)+n > maxSlab {
		sh.compact(n)
		if len(sh.data)+n > maxSlab {
			return 0, false
		}
	}
	off := len(sh.data)
	sh.data = slices.Grow(sh.data, n)[:off+n]
	return uint32(off), true
}

// compact copies the live records into a new slab with room for extra
// more bytes; the caller holds mu for writing.
func (sh *shard) compact(extra int) {
	live := len(sh.data) - sh.garbage
	data := make([]byte, 0, live+live/4+extra)
	for i := range sh.slots {
		s := &sh.slots[i]
		if s.flags&slotUsed == 0 {
			continue
		}
		n := s.klen + s.vlen
		off := len(data)
		data = append(data, sh.data[s.off:s.off+n]...)
		s.off, s.room = uint32(off), n
	}
	sh.data, sh.garbage = data, 0
}

// newSlot returns an unused slot number; the caller holds mu for writing.
func (sh *shard) newSlot() uint32 {
	if n := len(sh.free); n > 0 {
		i := sh.free[n-1]
		sh.free = sh.free[:n-1]
		return i
	}
	sh.slots = append(sh.slots, slot{})
	return uint32(len(sh.slots) - 1)
}

// remove unindexes and frees slot i; the caller holds mu for writing.
func (sh *shard) remove(i uint32) {
	sh.unindex(i)
	s := &sh.slots[i]
	sh.garbage += int(s.room)
	*s = slot{}
	sh.free = append(sh.free, i)
	sh.gen++
	if sh.garbage >= compactMinGarbage && sh.garbage > len(sh.data)/2 {
		sh.compact(0)
	}
	switch {
	case sh.records == 0:
		// Empty: give everything back.
		sh.slots, sh.free, sh.data, sh.garbage, sh.table = nil, nil, nil, 0, nil
	case len(sh.table) > 64 && sh.records*8 < len(sh.table):
		sh.rehash(len(sh.table) / 4)
	}
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store and starts its sweeper; call Close
// to stop it.
func NewMemory(opts MemoryOptions) *Memory {
	m := &Memory{
		maxBytes:  opts.MaxBytes,
		now:       opts.Now,
		stop:      make(chan struct{}),
		sweepDone: make(chan struct{}),
		hash:      xxhash.Sum64String,
	}
	if m.maxBytes <= 0 {
		m.maxBytes = DefaultMemoryMaxBytes
	}
	if m.now == nil {
		m.now = time.Now
	}
	interval := opts.SweepInterval
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	for i := range m.shards {
		sh := &m.shards[i]
		sh.minExpire.Store(math.MaxInt64)
	}
	go m.sweepLoop(interval)
	return m
}

func (m *Memory) shardOf(hash uint64) *shard { return &m.shards[hash>>shardShift] }

// check returns an error if the store is closed or ctx is done.
func (m *Memory) check(ctx context.Context, op string) error {
	if m.closed.Load() {
		return fmt.Errorf("store: memory %s: %w", op, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: memory %s: %w", op, err)
	}
	return nil
}

// Get returns the live record for key (see Store).
func (m *Memory) Get(ctx context.Context, key string) (Entry, bool, error) {
	if err := m.check(ctx, "get"); err != nil {
		return Entry{}, false, err
	}
	if key == "" {
		return Entry{}, false, fmt.Errorf("store: memory get: %w: empty key", ErrInvalid)
	}
	var bt batch
	e, ok := m.get(key, &bt)
	return e, ok, nil
}

// batch is what one Get, GetMany or Put call shares across its records:
// one reading of Memory.now, taken only if asked; for a Put, the batch's
// values of Memory.seq, taken in one atomic add (n: how many), not one
// contended add per record; for a GetMany, the values copied out (values).
type batch struct {
	ms       int64
	set      bool
	n        int
	seq, end uint64 // the next value of Memory.seq is seq+1, up to end
	values   valueArena
}

// valueArena hands out the values a GetMany copies, carved from shared
// allocations: one for a batch of small values, not one per value. Each
// value is capped (a three-index slice) and none is written again, so a
// caller may keep or append to any of them.
type valueArena struct {
	buf  []byte
	left int // values still to come in the batch, this one included (0: a single Get)
}

// maxArenaValue is the largest value carved from a shared allocation, and
// maxArena the largest such allocation.
const (
	maxArenaValue = 1 << 10
	maxArena      = 16 << 10
)

// take returns n bytes for a value. When the current allocation is used
// up, the next is sized for the values left, as if all were n bytes.
func (a *valueArena) take(n int) []byte {
	if a.left <= 1 || n > maxArenaValue {
		return make([]byte, n)
	}
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, min(n*a.left, max(maxArena, n)))
	}
	l := len(a.buf)
	a.buf = a.buf[:l+n]
	return a.buf[l : l+n : l+n]
}

// nextSeq returns a new value of Memory.seq, reserving the batch's on first
// use.
func (c *batch) nextSeq(m *Memory) uint64 {
	if c.seq == c.end {
		n := uint64(max(c.n, 1))
		c.end = m.seq.Add(n)
		c.seq = c.end - n
	}
	c.seq++
	return c.seq
}

func (c *batch) nowMs(m *Memory) int64 {
	if !c.set {
		c.ms, c.set = m.now().UnixMilli(), true
	}
	return c.ms
}

func (m *Memory) get(key string, bt *batch) (Entry, bool) {
	h := m.hash(key)
	sh := m.shardOf(h)
	sh.mu.RLock()
	i := sh.find(h, key)
	if i < 0 {
		sh.mu.RUnlock()
		return Entry{}, false
	}
	s := &sh.slots[i]
	if s.expireAt != 0 && s.expireAt <= bt.nowMs(m) {
		sh.mu.RUnlock()
		return Entry{}, false
	}
	e := Entry{
		Key:       key,
		Version:   s.version,
		ExpireAt:  s.expireAt,
		Tombstone: s.flags&slotTombstone != 0,
	}
	if !e.Tombstone {
		// Copied under the lock: a later overwrite may reuse these bytes.
		e.Value = bt.values.take(int(s.vlen))
		copy(e.Value, sh.value(s))
	}
	if seq := uint32(m.seq.Load()); atomic.LoadUint32(&s.access) != seq {
		atomic.StoreUint32(&s.access, seq)
	}
	sh.mu.RUnlock()
	return e, true
}

// GetMany is a batch Get (see Store).
func (m *Memory) GetMany(ctx context.Context, keys []string) ([]Entry, []bool, error) {
	if err := m.check(ctx, "get many"); err != nil {
		return nil, nil, err
	}
	if err := validateKeys(keys); err != nil {
		return nil, nil, fmt.Errorf("store: memory get many: %w", err)
	}
	entries := make([]Entry, len(keys))
	found := make([]bool, len(keys))
	bt := batch{values: valueArena{left: len(keys)}}
	for i, k := range keys {
		bt.values.left = len(keys) - i
		if i > 0 && i%ctxCheckEvery == 0 {
			if err := m.check(ctx, "get many"); err != nil {
				return nil, nil, err
			}
		}
		entries[i], found[i] = m.get(k, &bt)
	}
	return entries, found, nil
}

// Put writes each entry only if it is newer than the stored record (see
// Store). The whole batch is rejected, with an error wrapping ErrInvalid and
// nothing written, if any entry is invalid (see Store's rules) or larger than
// the byte budget on its own.
//
// If ctx is cancelled part-way, the entries before the cancellation may have
// been written; the error reports the cancellation.
func (m *Memory) Put(ctx context.Context, entries []Entry) ([]Outcome, error) {
	if err := m.check(ctx, "put"); err != nil {
		return nil, err
	}
	for i := range entries {
		e := &entries[i]
		if err := validateEntry(e); err != nil {
			return nil, fmt.Errorf("store: memory put: entry %d: %w", i, err)
		}
		if size := entrySize(e); size > m.maxBytes {
			return nil, fmt.Errorf("store: memory put: entry %d: %w: key %q: %d accounted bytes exceed the budget of %d",
				i, ErrInvalid, e.Key, size, m.maxBytes)
		}
	}
	out := make([]Outcome, len(entries))
	bt := batch{n: len(entries)} // one reading for the batch, and none unless an expiry is compared
	for i := range entries {
		if i > 0 && i%ctxCheckEvery == 0 {
			if err := m.check(ctx, "put"); err != nil {
				return nil, err
			}
		}
		o, err := m.put(&entries[i], &bt)
		if err != nil {
			return nil, fmt.Errorf("store: memory put: entry %d: %w", i, err)
		}
		out[i] = o
		if m.used.Load() > m.maxBytes {
			m.evict()
		}
	}
	return out, nil
}

func entrySize(e *Entry) int64 {
	return int64(len(e.Key)) + int64(len(e.Value)) + MemoryEntryOverhead
}

func (m *Memory) put(e *Entry, bt *batch) (Outcome, error) {
	if e.ExpireAt != 0 && !live(e.ExpireAt, bt.nowMs(m)) {
		return Expired, nil
	}
	value := e.Value
	if e.Tombstone {
		value = nil
	}
	size := entrySize(e)
	h := m.hash(e.Key)
	sh := m.shardOf(h)
	klen, vlen := len(e.Key), len(value)

	sh.mu.Lock()
	i := sh.find(h, e.Key)
	var s *slot
	delta := size
	if i >= 0 {
		s = &sh.slots[i]
		if (s.expireAt == 0 || live(s.expireAt, bt.nowMs(m))) && s.version >= e.Version {
			sh.mu.Unlock()
			return Stale, nil
		}
		delta -= int64(s.klen) + int64(s.vlen) + MemoryEntryOverhead
		if uint32(klen+vlen) > s.room {
			off, ok := sh.alloc(klen + vlen)
			if !ok {
				sh.mu.Unlock()
				return 0, fmt.Errorf("%w: key %q", ErrFull, e.Key)
			}
			s = &sh.slots[i] // (alloc may compact, never moves slots)
			sh.garbage += int(s.room)
			s.off, s.room = off, uint32(klen+vlen)
			copy(sh.data[off:], e.Key)
		}
		// Else the new value fits the record's room: written in place.
	} else {
		off, ok := sh.alloc(klen + vlen)
		if !ok {
			sh.mu.Unlock()
			return 0, fmt.Errorf("%w: key %q", ErrFull, e.Key)
		}
		n := sh.newSlot()
		s = &sh.slots[n]
		*s = slot{hash: h, off: off, klen: uint32(klen), room: uint32(klen + vlen), flags: slotUsed}
		sh.index(n)
		sh.gen++
		copy(sh.data[off:], e.Key)
		m.count.Add(1)
	}
	copy(sh.data[s.off+s.klen:], value)
	s.vlen = uint32(vlen)
	s.version = e.Version
	s.expireAt = e.ExpireAt
	s.flags = slotUsed
	if e.Tombstone {
		s.flags |= slotTombstone
	}
	s.access = uint32(bt.nextSeq(m))
	if e.ExpireAt != 0 && e.ExpireAt < sh.minExpire.Load() {
		sh.minExpire.Store(e.ExpireAt)
	}
	sh.mu.Unlock()
	m.used.Add(delta)
	return Applied, nil
}

// removeLocked drops slot i of sh; the caller holds sh.mu for writing.
func (m *Memory) removeLocked(sh *shard, i uint32) {
	s := &sh.slots[i]
	m.used.Add(-(int64(s.klen) + int64(s.vlen) + MemoryEntryOverhead))
	m.count.Add(-1)
	sh.remove(i)
}

// evict removes records by sampled LRU until the store is within budget.
func (m *Memory) evict() {
	for m.used.Load() > m.maxBytes {
		if !m.evictOne() {
			return
		}
	}
}

// sampled is a snapshot of one slot taken for eviction.
type sampled struct {
	shard    int
	slot     uint32
	hash     uint64
	version  uint64
	expireAt int64
	age      uint32
}

// evictOne removes the least recently used of evictionSamples random records
// (or the first expired one sampled). It returns false if the store is empty.
func (m *Memory) evictOne() bool {
	nowMs := m.now().UnixMilli()
	cur := uint32(m.seq.Load())
	var victim sampled
	found := false
	for range evictionSamples {
		c, ok := m.sample(rand.Uint64(), cur)
		if !ok {
			return false
		}
		if !live(c.expireAt, nowMs) {
			victim, found = c, true
			break
		}
		if !found || c.age > victim.age {
			victim, found = c, true
		}
	}
	sh := &m.shards[victim.shard]
	sh.mu.Lock()
	if int(victim.slot) < len(sh.slots) {
		// The slot may have been freed or reused since it was sampled.
		if s := &sh.slots[victim.slot]; s.flags&slotUsed != 0 && s.hash == victim.hash && s.version == victim.version {
			m.removeLocked(sh, victim.slot)
			m.evicted.Add(1)
		}
	}
	sh.mu.Unlock()
	return true
}

// sample returns a snapshot of a random record: the first used slot at or
// after a random position of a random shard (starting from the shard r
// picks, wrapping around); ok is false if the store is empty.
func (m *Memory) sample(r uint64, cur uint32) (c sampled, ok bool) {
	start := int(r >> shardShift)
	for k := 0; k < numShards; k++ {
		si := (start + k) % numShards
		sh := &m.shards[si]
		sh.mu.RLock()
		if n := len(sh.slots); n > len(sh.free) {
			from := int(uint32(r) % uint32(n))
			for j := 0; j < n; j++ {
				i := (from + j) % n
				s := &sh.slots[i]
				if s.flags&slotUsed != 0 {
					c = sampled{shard: si, slot: uint32(i), hash: s.hash, version: s.version,
						expireAt: s.expireAt, age: cur - atomic.LoadUint32(&s.access)}
					ok = true
					break
				}
			}
		}
		sh.mu.RUnlock()
		if ok {
			return c, true
		}
	}
	return sampled{}, false
}

// Evictions returns how many records the store has evicted to stay within
// its budget since it was created (expired records swept are not counted).
func (m *Memory) Evictions() uint64 { return m.evicted.Load() }

// DeleteIfVersion removes each key whose live record has exactly the given
// version (see Store).
func (m *Memory) DeleteIfVersion(ctx context.Context, keys []string, versions []uint64) ([]bool, error) {
	if err := m.check(ctx, "delete"); err != nil {
		return nil, err
	}
	if err := validateDeletes(keys, versions); err != nil {
		return nil, fmt.Errorf("store: memory delete: %w", err)
	}
	deleted := make([]bool, len(keys))
	nowMs := m.now().UnixMilli()
	for i, k := range keys {
		if i > 0 && i%ctxCheckEvery == 0 {
			if err := m.check(ctx, "delete"); err != nil {
				return nil, err
			}
		}
		h := m.hash(k)
		sh := m.shardOf(h)
		sh.mu.Lock()
		if j := sh.find(h, k); j >= 0 {
			if s := &sh.slots[j]; live(s.expireAt, nowMs) && s.version == versions[i] {
				m.removeLocked(sh, uint32(j))
				deleted[i] = true
			}
		}
		sh.mu.Unlock()
	}
	return deleted, nil
}

// Delete removes each key whatever its record (see Store).
func (m *Memory) Delete(ctx context.Context, keys []string) error {
	if err := m.check(ctx, "delete"); err != nil {
		return err
	}
	if err := validateKeys(keys); err != nil {
		return fmt.Errorf("store: memory delete: %w", err)
	}
	for i, k := range keys {
		if i > 0 && i%ctxCheckEvery == 0 {
			if err := m.check(ctx, "delete"); err != nil {
				return err
			}
		}
		h := m.hash(k)
		sh := m.shardOf(h)
		sh.mu.Lock()
		if j := sh.find(h, k); j >= 0 {
			m.removeLocked(sh, uint32(j))
		}
		sh.mu.Unlock()
	}
	return nil
}

// sortedHashes returns the shard's hashes in order; the caller holds mu
// (read lock) and orderMu.
func (sh *shard) sortedHashes() []uint64 {
	if sh.order == nil || sh.orderGen != sh.gen {
		order := sh.order[:0]
		for i := range sh.slots {
			if s := &sh.slots[i]; s.flags&slotUsed != 0 {
				order = append(order, s.hash)
			}
		}
		slices.Sort(order)
		sh.order, sh.orderGen = slices.Compact(order), sh.gen
	}
	return sh.order
}

// Scan returns about count live keys (tombstones included) from cursor on
// (see Store). Keys come in (xxhash64(key), key) order; the cursor is the
// next window of 1<<memScanWindowBits hashes to visit (so it stays below
// ScanCursorLimit), and the keys of one window are never split across
// batches, so a batch may exceed count by the (rare) keys whose hashes
// share a window with the last one returned.
func (m *Memory) Scan(ctx context.Context, cursor uint64, count int) ([]string, uint64, error) {
	if err := m.check(ctx, "scan"); err != nil {
		return nil, 0, err
	}
	if cursor >= ScanCursorLimit {
		return nil, 0, fmt.Errorf("store: memory scan: cursor %d out of range", cursor)
	}
	if count <= 0 {
		count = defaultScanCount
	}
	nowMs := m.now().UnixMilli()
	keys := make([]string, 0, min(count, 4096))
	var chain []string
	start := cursor << memScanWindowBits
	last := uint64(0) // the window of the last hash returned
	for si := int(start >> shardShift); si < numShards; si++ {
		if si%16 == 0 {
			if err := m.check(ctx, "scan"); err != nil {
				return nil, 0, err
			}
		}
		sh := &m.shards[si]
		sh.mu.RLock()
		sh.orderMu.Lock()
		order := sh.sortedHashes()
		from := 0
		if si == int(start>>shardShift) {
			from, _ = slices.BinarySearch(order, start)
		}
		next, full := uint64(0), false
		for _, h := range order[from:] {
			if w := h >> memScanWindowBits; len(keys) >= count && w != last {
				next, full = w, true
				break
			}
			chain = chain[:0]
			// Every record of hash h lies in the probe run from h's home.
			mask := uint64(len(sh.table) - 1)
			for p := h & mask; sh.table[p] != 0; p = (p + 1) & mask {
				if s := &sh.slots[sh.table[p]-1]; s.hash == h && live(s.expireAt, nowMs) {
					chain = append(chain, string(sh.key(s)))
				}
			}
			if len(chain) > 1 {
				slices.Sort(chain)
			}
			keys = append(keys, chain...)
			last = h >> memScanWindowBits
		}
		sh.orderMu.Unlock()
		sh.mu.RUnlock()
		if full {
			// next is a window above the last one returned, so it is never
			// 0, and every hash below it was visited.
			return keys, next, nil
		}
	}
	return keys, 0, nil
}

// memScanWindowBits is how many low hash bits Memory's scan cursor drops:
// 64 minus this fits below ScanCursorLimit.
const memScanWindowBits = 10

// Stats reports the number of records (including expired ones the sweeper
// has not removed yet) and the accounted bytes.
func (m *Memory) Stats(ctx context.Context) (Stats, error) {
	if err := m.check(ctx, "stats"); err != nil {
		return Stats{}, err
	}
	return Stats{Keys: m.count.Load(), Bytes: m.used.Load()}, nil
}

// InProcess reports that the records live in this process (true): a cache
// in front of a Memory store in the same process only doubles the memory
// per key.
func (m *Memory) InProcess() bool { return true }

// Ping returns nil unless the store is closed or ctx is done.
func (m *Memory) Ping(ctx context.Context) error {
	return m.check(ctx, "ping")
}

// Close stops the sweeper, waits for it to return and drops every record.
// Later calls return errors wrapping ErrClosed. Close is idempotent.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		close(m.stop)
		<-m.sweepDone
		for i := range m.shards {
			sh := &m.shards[i]
			sh.mu.Lock()
			sh.table, sh.records = nil, 0
			sh.slots, sh.free, sh.data, sh.garbage = nil, nil, nil, 0
			sh.gen++
			sh.orderMu.Lock()
			sh.order = nil
			sh.orderMu.Unlock()
			sh.minExpire.Store(math.MaxInt64)
			sh.mu.Unlock()
		}
		m.used.Store(0)
		m.count.Store(0)
	})
	return nil
}

// sweepLoop removes expired records every interval until Close.
func (m *Memory) sweepLoop(interval time.Duration) {
	defer close(m.sweepDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.sweep()
		}
	}
}

// sweep removes the expired records of every shard that may hold some. It
// holds one shard's lock at a time and gives up early when Close is called.
func (m *Memory) sweep() {
	nowMs := m.now().UnixMilli()
	for i := range m.shards {
		sh := &m.shards[i]
		if sh.minExpire.Load() > nowMs {
			continue
		}
		select {
		case <-m.stop:
			return
		default:
		}
		sh.mu.Lock()
		next := int64(math.MaxInt64)
		for j := 0; j < len(sh.slots); j++ {
			s := &sh.slots[j]
			if s.flags&slotUsed == 0 || s.expireAt == 0 {
				continue
			}
			if s.expireAt <= nowMs {
				m.removeLocked(sh, uint32(j)) // (may empty the shard: len(sh.slots) becomes 0)
			} else if s.expireAt < next {
				next = s.expireAt
			}
		}
		sh.minExpire.Store(next)
		sh.mu.Unlock()
	}
}
