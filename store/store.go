// Package store owns one node's shard: the durable-for-a-cache copy of the
// keys a node is responsible for. It knows nothing of other nodes.
//
// Every record carries a version (a hybrid-logical-clock stamp assigned by the
// key's owner) and an optional absolute expiry. Writes are conditional: a
// record is written only if it is newer than what the shard holds, so a late
// or migrated older copy can never overwrite a newer write or resurrect a
// delete (deletes are stored as tombstones with their own version and expiry).
//
// Two implementations share one contract (see the conformance suite in
// storetest): Redis (github.com/redis/go-redis/v9, one Redis per node) and
// Memory (the embedded default, byte-bounded, zero set-up).
package store

import (
	"context"
	"errors"

	"github.com/peercache/peercache/kv"
)

// Entry is one record of a shard.
type Entry struct {
	// Key is the user's key (without any store prefix).
	Key string
	// Value is the stored bytes; empty for tombstones.
	Value []byte
	// Version orders writes to one key: a larger version wins. 0 is never a
	// valid version for a stored entry.
	Version uint64
	// ExpireAt is the absolute expiry in Unix milliseconds; 0 means no expiry.
	ExpireAt int64
	// Tombstone marks a deleted key. Tombstones always have an ExpireAt.
	Tombstone bool
}

// Outcome is the result of a conditional write of one entry. It is
// kv.ImportResult, the answer the receiver of an imported entry sends
// back, so that one type carries that answer from the shard to the sender;
// Put never returns kv.Refused (the receiver decides that before it writes).
type Outcome = kv.ImportResult

// Outcomes of Put.
const (
	// Applied means the entry was written (kv.Acked).
	Applied = kv.Acked
	// Stale means the shard already holds the key with a version greater than
	// or equal to the entry's; nothing was written (kv.AckedStale).
	Stale = kv.AckedStale
	// Expired means the entry's ExpireAt was already in the past; nothing was
	// written, and any older stored copy was left untouched (kv.AckedExpired).
	Expired = kv.AckedExpired
)

// Stats describes a shard's size.
type Stats struct {
	// Keys is the number of records held, tombstones included (may be approximate).
	Keys int64
	// Bytes is the memory the shard uses (Redis used_memory, or the Memory
	// store's accounted bytes).
	Bytes int64
}

// ErrInvalid is returned (wrapped) for entries that can never be stored, such
// as an empty key or a zero version.
var ErrInvalid = errors.New("store: invalid entry")

// Store is one node's shard. All methods are safe for concurrent use.
type Store interface {
	// Get returns the live record for key, tombstones included. found is
	// false when the key is absent or expired.
	Get(ctx context.Context, key string) (e Entry, found bool, err error)

	// GetMany is a batch Get (one round trip for Redis). The result slices are
	// parallel to keys.
	GetMany(ctx context.Context, keys []string) (entries []Entry, found []bool, err error)

	// Put writes each entry only if it is newer (by Version) than the stored
	// record for its key, atomically per key. Tombstones are written the same
	// way. Outcomes are parallel to entries.
	Put(ctx context.Context, entries []Entry) ([]Outcome, error)

	// DeleteIfVersion removes each key only if its stored version equals the
	// given one (the record was not rewritten meanwhile). deleted is parallel
	// to keys.
	DeleteIfVersion(ctx context.Context, keys []string, versions []uint64) (deleted []bool, err error)

	// Delete removes each key whatever its record (an absent key is not an
	// error). It is for a caller that knows no write reached the keys since
	// it read them (the migration's tracker), where it saves the version
	// check.
	Delete(ctx context.Context, keys []string) error

	// Scan returns a batch of about count keys starting at cursor (0 starts a
	// new scan) and the cursor for the next call; next == 0 means the scan is
	// complete. Every key present for the whole scan is returned at least
	// once; keys added or removed meanwhile may or may not be. Cursors are
	// below ScanCursorLimit, so that a caller may keep other state in the
	// bits above (a scan over several nodes keeps the node's index there).
	Scan(ctx context.Context, cursor uint64, count int) (keys []string, next uint64, err error)

	// Stats reports the shard's size.
	Stats(ctx context.Context) (Stats, error)

	// Ping checks that the shard answers.
	Ping(ctx context.Context) error

	// Close releases the store's resources and stops its goroutines.
	Close() error
}

// ScanCursorLimit bounds every Store's scan cursors (2^54; a Redis cursor
// is a position in its hash table, far below).
const ScanCursorLimit = 1 << 54
