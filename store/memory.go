package store

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/google/btree"
)

const (
	// DefaultMemoryMaxBytes is the Memory store's byte budget when
	// MemoryOptions.MaxBytes is 0.
	DefaultMemoryMaxBytes = 256 << 20
	// DefaultSweepInterval is how often the Memory store removes expired
	// records when MemoryOptions.SweepInterval is 0.
	DefaultSweepInterval = time.Second
	// MemoryEntryOverhead is the fixed number of bytes the Memory store
	// accounts for each record on top of len(Key)+len(Value): the record
	// struct (96), its map slot (about 30), its B-tree slot (about 25) and
	// allocation rounding. Measured at 170-180 live heap bytes per record on
	// amd64 with Go 1.26; the garbage collector's headroom comes on top.
	MemoryEntryOverhead = 176

	// shardBits selects the shard from the top bits of a key's hash, so each
	// shard holds one contiguous range of the hash space and a scan visits
	// the shards in order.
	shardBits  = 8
	numShards  = 1 << shardBits
	shardShift = 64 - shardBits
	// btreeDegree is the degree of each shard's B-tree.
	btreeDegree = 32
	// evictionSamples is how many random records an eviction compares; the
	// least recently used of them goes (as Redis' allkeys-lru, whose docs
	// show that 10 samples come very close to true LRU).
	evictionSamples = 10
	// defaultScanCount is the batch size of a Scan called with count <= 0.
	defaultScanCount = 10
	// ctxCheckEvery is how many records a batch call handles between checks
	// of its context.
	ctxCheckEvery = 256
)

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

// Memory is the embedded Store: an in-process, byte-bounded map.
//
// Records are spread over 256 shards by the top bits of the xxhash64 of the
// key; each shard has a read-write lock, a map for lookups and a B-tree that
// orders its keys by (hash, key). Scan walks the hash space in order and its
// cursor is the next hash to visit, so a key present for the whole scan is
// returned (exactly once, in fact) whatever is inserted or removed meanwhile.
//
// When a Put takes the accounted bytes over MaxBytes, records are evicted by
// sampled LRU: of 10 random records the least recently read or written one
// goes (an expired one first, if sampled), until the store is back within
// budget. Recency is a logical clock advanced by every Put, so Gets between
// two Puts count as equally recent. With one writer the budget is exceeded
// by at most one entry while a Put runs and never once it returns; each
// concurrent writer can add at most one more entry transiently. Expired records are hidden from reads at once and
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

	used  atomic.Int64 // accounted bytes
	count atomic.Int64 // records, tombstones and not yet swept ones included
	// seq counts Puts; it is the logical clock of recency. A Put stamps its
	// record with a new value, a Get with the current one, so eviction
	// (which only a Put triggers) sees the order of accesses relative to
	// writes without a shared write on every Get.
	seq atomic.Int64
	// minItem sorts before every record of its hash (its key is empty); it
	// is the pivot for seeks by hash. Never modified.
	minItem *item

	closed    atomic.Bool
	closeOnce sync.Once
	stop      chan struct{} // closed by Close to stop the sweeper
	sweepDone chan struct{} // closed by the sweeper when it returns

	shards [numShards]shard
}

type shard struct {
	mu    sync.RWMutex
	items map[string]*item
	tree  *btree.BTreeG[slot]
	// minExpire is a lower bound of the ExpireAt of the shard's records that
	// expire (math.MaxInt64 if none does); the sweeper skips the shard while
	// it is in the future. Written under mu, read atomically.
	minExpire atomic.Int64
	_         [64]byte // keep neighbouring shards' locks off one cache line
}

// item is one record. key and hash never change. The other fields change
// only under the shard's write lock, except access, which is atomic. value is
// never modified in place: an update installs a new slice.
type item struct {
	key       string
	hash      uint64
	value     []byte
	version   uint64
	expireAt  int64
	tombstone bool
	size      int64
	access    atomic.Int64 // Memory.seq at the last Get or Put
}

// slot is a B-tree element: the hash is stored inline so that comparisons
// need not follow the pointer except on (rare) hash ties.
type slot struct {
	hash uint64
	it   *item
}

func slotLess(a, b slot) bool {
	if a.hash != b.hash {
		return a.hash < b.hash
	}
	return a.it.key < b.it.key
}

// pivot returns the slot that sorts first among those with hash h.
func (m *Memory) pivot(h uint64) slot { return slot{hash: h, it: m.minItem} }

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store and starts its sweeper; call Close
// to stop it.
func NewMemory(opts MemoryOptions) *Memory {
	m := &Memory{
		maxBytes:  opts.MaxBytes,
		now:       opts.Now,
		stop:      make(chan struct{}),
		sweepDone: make(chan struct{}),
		minItem:   &item{},
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
		sh.items = make(map[string]*item)
		sh.tree = btree.NewG(btreeDegree, slotLess)
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
	var clk clock
	e, ok := m.get(key, &clk)
	return e, ok, nil
}

// clock reads Memory.now at most once, and only if asked.
type clock struct {
	ms  int64
	set bool
}

func (c *clock) nowMs(m *Memory) int64 {
	if !c.set {
		c.ms, c.set = m.now().UnixMilli(), true
	}
	return c.ms
}

func (m *Memory) get(key string, clk *clock) (Entry, bool) {
	sh := m.shardOf(xxhash.Sum64String(key))
	sh.mu.RLock()
	it, ok := sh.items[key]
	if !ok || (it.expireAt != 0 && it.expireAt <= clk.nowMs(m)) {
		sh.mu.RUnlock()
		return Entry{}, false
	}
	e := Entry{
		Key:       key,
		Version:   it.version,
		ExpireAt:  it.expireAt,
		Tombstone: it.tombstone,
	}
	value := it.value // immutable: safe to copy outside the lock
	if seq := m.seq.Load(); it.access.Load() < seq {
		it.access.Store(seq)
	}
	sh.mu.RUnlock()
	if !e.Tombstone {
		e.Value = make([]byte, len(value))
		copy(e.Value, value)
	}
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
	var clk clock
	for i, k := range keys {
		if i > 0 && i%ctxCheckEvery == 0 {
			if err := m.check(ctx, "get many"); err != nil {
				return nil, nil, err
			}
		}
		entries[i], found[i] = m.get(k, &clk)
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
	for i := range entries {
		if i > 0 && i%ctxCheckEvery == 0 {
			if err := m.check(ctx, "put"); err != nil {
				return nil, err
			}
		}
		out[i] = m.put(&entries[i])
		if m.used.Load() > m.maxBytes {
			m.evict()
		}
	}
	return out, nil
}

func entrySize(e *Entry) int64 {
	return int64(len(e.Key)) + int64(len(e.Value)) + MemoryEntryOverhead
}

func (m *Memory) put(e *Entry) Outcome {
	nowMs := m.now().UnixMilli()
	if !live(e.ExpireAt, nowMs) {
		return Expired
	}
	var value []byte
	if !e.Tombstone {
		// Copy outside the lock; an empty value is kept as a non-nil slice.
		value = make([]byte, len(e.Value))
		copy(value, e.Value)
	}
	size := entrySize(e)
	hash := xxhash.Sum64String(e.Key)
	sh := m.shardOf(hash)

	sh.mu.Lock()
	it, ok := sh.items[e.Key]
	if ok && live(it.expireAt, nowMs) && it.version >= e.Version {
		sh.mu.Unlock()
		return Stale
	}
	delta := size
	if ok {
		delta -= it.size
	} else {
		it = &item{key: e.Key, hash: hash}
		sh.items[e.Key] = it
		sh.tree.ReplaceOrInsert(slot{hash, it})
		m.count.Add(1)
	}
	it.value = value
	it.version = e.Version
	it.expireAt = e.ExpireAt
	it.tombstone = e.Tombstone
	it.size = size
	it.access.Store(m.seq.Add(1))
	if e.ExpireAt != 0 && e.ExpireAt < sh.minExpire.Load() {
		sh.minExpire.Store(e.ExpireAt)
	}
	sh.mu.Unlock()
	m.used.Add(delta)
	return Applied
}

// removeLocked drops it from its shard; the caller holds sh.mu for writing.
func (m *Memory) removeLocked(sh *shard, it *item) {
	delete(sh.items, it.key)
	sh.tree.Delete(slot{it.hash, it})
	m.used.Add(-it.size)
	m.count.Add(-1)
}

// evict removes records by sampled LRU until the store is within budget.
func (m *Memory) evict() {
	for m.used.Load() > m.maxBytes {
		if !m.evictOne() {
			return
		}
	}
}

// evictOne removes the least recently used of evictionSamples random records
// (or the first expired one sampled). It returns false if the store is empty.
func (m *Memory) evictOne() bool {
	nowMs := m.now().UnixMilli()
	var victim *item
	var victimAccess int64
	for range evictionSamples {
		it, expireAt, access := m.sample(rand.Uint64())
		if it == nil {
			return false
		}
		if !live(expireAt, nowMs) {
			victim = it
			break
		}
		if victim == nil || access < victimAccess {
			victim, victimAccess = it, access
		}
	}
	sh := m.shardOf(victim.hash)
	sh.mu.Lock()
	if cur, ok := sh.items[victim.key]; ok && cur == victim {
		m.removeLocked(sh, victim)
	}
	sh.mu.Unlock()
	return true
}

// sample returns the first record at or after hash h in hash order, wrapping
// around, with a consistent snapshot of its expiry and access time; nil if
// the store is empty.
func (m *Memory) sample(h uint64) (it *item, expireAt, access int64) {
	start := int(h >> shardShift)
	for i := 0; i < numShards; i++ {
		sh := &m.shards[(start+i)%numShards]
		sh.mu.RLock()
		if i == 0 {
			sh.tree.AscendGreaterOrEqual(m.pivot(h), func(x slot) bool {
				it = x.it
				return false
			})
		} else {
			s, _ := sh.tree.Min()
			it = s.it
		}
		if it != nil {
			expireAt, access = it.expireAt, it.access.Load()
		}
		sh.mu.RUnlock()
		if it != nil {
			return it, expireAt, access
		}
	}
	// Only the part of the first shard before h is left.
	sh := &m.shards[start]
	sh.mu.RLock()
	s, _ := sh.tree.Min()
	if it = s.it; it != nil {
		expireAt, access = it.expireAt, it.access.Load()
	}
	sh.mu.RUnlock()
	return it, expireAt, access
}

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
		sh := m.shardOf(xxhash.Sum64String(k))
		sh.mu.Lock()
		if it, ok := sh.items[k]; ok && live(it.expireAt, nowMs) && it.version == versions[i] {
			m.removeLocked(sh, it)
			deleted[i] = true
		}
		sh.mu.Unlock()
	}
	return deleted, nil
}

// Scan returns about count live keys (tombstones included) from cursor on
// (see Store). Keys come in (xxhash64(key), key) order and the cursor is the
// next hash to visit; keys sharing a hash are never split across batches, so
// a batch may exceed count by the (rare) number of colliding keys.
func (m *Memory) Scan(ctx context.Context, cursor uint64, count int) ([]string, uint64, error) {
	if err := m.check(ctx, "scan"); err != nil {
		return nil, 0, err
	}
	if count <= 0 {
		count = defaultScanCount
	}
	nowMs := m.now().UnixMilli()
	keys := make([]string, 0, min(count, 4096))
	var last uint64
	full := false
	visit := func(s slot) bool {
		it := s.it
		if len(keys) >= count && it.hash != last {
			full = true
			return false
		}
		last = it.hash
		if live(it.expireAt, nowMs) {
			keys = append(keys, it.key)
		}
		return true
	}
	pivot, seek := m.pivot(cursor), true
	for si := int(cursor >> shardShift); si < numShards; si++ {
		if si%16 == 0 {
			if err := m.check(ctx, "scan"); err != nil {
				return nil, 0, err
			}
		}
		sh := &m.shards[si]
		sh.mu.RLock()
		if seek {
			sh.tree.AscendGreaterOrEqual(pivot, visit)
			seek = false
		} else {
			sh.tree.Ascend(visit)
		}
		sh.mu.RUnlock()
		if full {
			// The record that stopped the walk has a hash > last, so last+1
			// does not wrap to 0.
			return keys, last + 1, nil
		}
	}
	return keys, 0, nil
}

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
			sh.items = make(map[string]*item)
			sh.tree.Clear(false)
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
		for _, it := range sh.items {
			if it.expireAt == 0 {
				continue
			}
			if it.expireAt <= nowMs {
				m.removeLocked(sh, it)
			} else if it.expireAt < next {
				next = it.expireAt
			}
		}
		sh.minExpire.Store(next)
		sh.mu.Unlock()
	}
}
