// Package tier is the in-process cache a peercache node keeps in front of its
// shard (the local tier) and of other nodes (the near cache): byte-bounded,
// with per-entry expiry, under one of three eviction policies.
//
//   - LRU and FIFO: a map and an intrusive list per shard, behind one mutex
//     per shard (groupcache's lru, sharded by key hash). Each shard gets an
//     equal part of the byte budget; small budgets use a single shard, so
//     eviction order is then exactly the policy's.
//   - TinyLFU: W-TinyLFU (admission by a frequency sketch, a small LRU
//     window, a segmented LRU main space) from github.com/maypok86/otter/v2.
//
// The default policy was chosen by measurement (docs/benchmarks.md).
//
// Values are shared, not copied: callers must not modify a Value they put
// in or got out.
package tier

import (
	"fmt"
	"strings"
	"time"
)

// Policy selects the eviction policy.
type Policy string

// Policies.
const (
	LRU     Policy = "lru"
	FIFO    Policy = "fifo"
	TinyLFU Policy = "tinylfu"
)

// DefaultPolicy is the policy used when Options.Policy is empty.
const DefaultPolicy = TinyLFU

// ParsePolicy accepts lru, fifo or tinylfu (any case); "" is DefaultPolicy.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(strings.ToLower(strings.TrimSpace(s))); p {
	case "":
		return DefaultPolicy, nil
	case LRU, FIFO, TinyLFU:
		return p, nil
	default:
		return "", fmt.Errorf("tier policy %q: want lru, fifo or tinylfu", s)
	}
}

// EntryOverhead is the bookkeeping charged to every entry on top of the
// bytes of its key and value (map slot, list links, header).
const EntryOverhead = 128

// Entry is one cached value.
type Entry struct {
	// Value is the cached bytes (shared: never modify it).
	Value []byte
	// Version is the value's version (larger is newer).
	Version uint64
	// Expires is when the entry stops being served; zero: never. The cache
	// never returns an entry at or after Expires.
	Expires time.Time
	// Tag and Aux are opaque to the cache (the node keeps a ring epoch and
	// flags in Tag, and a near copy's own expiry in Aux).
	Tag uint64
	Aux int64
}

// Size is what an entry of key counts against the byte budget.
func Size(key string, valueLen int) int64 {
	return int64(len(key)+valueLen) + EntryOverhead
}

// Stats are a cache's counters.
type Stats struct {
	Entries   int64 // entries held (expired ones not yet removed included)
	Bytes     int64 // bytes charged (Size of every entry)
	MaxBytes  int64 // the budget
	Evictions uint64
}

// Cache is a byte-bounded in-process cache. All methods are safe for
// concurrent use.
type Cache interface {
	// Get returns the live entry of key.
	Get(key string) (Entry, bool)
	// Set stores e under key, replacing any entry. It returns false when
	// the entry is larger than the cache can hold (nothing stored then).
	Set(key string, e Entry) bool
	// SetIf stores e under key if keep returns true. keep runs under the
	// key's lock with the current live entry (found false if none), so a
	// Delete of the key is ordered either before it (keep sees its effect)
	// or after the store. keep must be quick and must not call the cache.
	SetIf(key string, e Entry, keep func(old Entry, found bool) bool) bool
	// Delete removes key.
	Delete(key string)
	// DeleteFunc removes every entry for which del returns true and
	// returns how many it removed. Entries added meanwhile may be missed.
	DeleteFunc(del func(key string, e Entry) bool) int
	// Hottest calls fn with entries from the most to the least valuable
	// to keep (the policy's order: W-TinyLFU's retention order; LRU most
	// recently used first; FIFO newest first, per shard in turn) until fn
	// returns false. Expired entries are skipped; an entry may come twice
	// when the cache changes meanwhile. fn must not call the cache.
	Hottest(fn func(key string, e Entry) bool)
	// Clear removes everything.
	Clear()
	// Stats returns the counters.
	Stats() Stats
	// Close releases background resources (the cache stays usable).
	Close()
}

// Options configure New.
type Options struct {
	// MaxBytes is the byte budget (Size of every entry). Required, > 0.
	MaxBytes int64
	// Policy is the eviction policy ("" = DefaultPolicy).
	Policy Policy
	// Shards splits LRU and FIFO caches into this many independently
	// locked parts (a power of two; 0 picks one: one shard per MinShardBytes
	// of budget, at most 64).
	Shards int
}

// MinShardBytes is the smallest budget per shard that New picks on its own.
const MinShardBytes = 1 << 20

// New returns a cache.
func New(o Options) (Cache, error) {
	if o.MaxBytes <= 0 {
		return nil, fmt.Errorf("tier: MaxBytes %d: must be positive", o.MaxBytes)
	}
	p, err := ParsePolicy(string(o.Policy))
	if err != nil {
		return nil, err
	}
	switch p {
	case TinyLFU:
		return newTinyLFU(o.MaxBytes), nil
	default:
		shards := o.Shards
		if shards <= 0 {
			shards = 1
			for shards < 64 && o.MaxBytes/int64(shards*2) >= MinShardBytes {
				shards *= 2
			}
		}
		if shards&(shards-1) != 0 {
			return nil, fmt.Errorf("tier: Shards %d: want a power of two", shards)
		}
		return newListCache(o.MaxBytes, shards, p == LRU), nil
	}
}

// clock measures deadlines on the monotonic clock (reading it costs about
// as much as a cache lookup's hashing, and wall-clock jumps do not matter).
type clock struct{ base time.Time }

func newClock() clock { return clock{base: time.Now()} }

// now returns nanoseconds since the clock's start (> 0).
func (c clock) now() int64 { return int64(time.Since(c.base)) + 1 }

// deadline converts an absolute expiry to the clock; 0 means none.
func (c clock) deadline(expires time.Time) int64 {
	if expires.IsZero() {
		return 0
	}
	d := int64(time.Until(expires)) + c.now()
	if d <= 0 {
		return 1 // already expired
	}
	return d
}
