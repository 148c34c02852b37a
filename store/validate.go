package store

import (
	"errors"
	"fmt"
)

// ErrClosed is returned (wrapped) by every method of a store after Close.
var ErrClosed = errors.New("store: closed")

// MaxExpireAt is the largest ExpireAt (Unix milliseconds, about the year
// 287,000) a store accepts. It keeps expiry times exact wherever they are
// handled as float64, such as inside Redis Lua scripts.
const MaxExpireAt = 1<<53 - 1

// validateEntry reports why e can never be stored, wrapping ErrInvalid, or
// returns nil. Both implementations apply the same rules:
//   - the key is not empty and the version is not 0;
//   - 0 <= ExpireAt <= MaxExpireAt;
//   - a tombstone has an ExpireAt and no value.
func validateEntry(e *Entry) error {
	switch {
	case e.Key == "":
		return fmt.Errorf("%w: empty key", ErrInvalid)
	case e.Version == 0:
		return fmt.Errorf("%w: key %q: zero version", ErrInvalid, e.Key)
	case e.ExpireAt < 0 || e.ExpireAt > MaxExpireAt:
		return fmt.Errorf("%w: key %q: ExpireAt %d out of range [0, %d]", ErrInvalid, e.Key, e.ExpireAt, int64(MaxExpireAt))
	case e.Tombstone && e.ExpireAt == 0:
		return fmt.Errorf("%w: key %q: tombstone without ExpireAt", ErrInvalid, e.Key)
	case e.Tombstone && len(e.Value) != 0:
		return fmt.Errorf("%w: key %q: tombstone with a value", ErrInvalid, e.Key)
	}
	return nil
}

// validateKeys rejects empty keys, wrapping ErrInvalid.
func validateKeys(keys []string) error {
	for i, k := range keys {
		if k == "" {
			return fmt.Errorf("%w: empty key at index %d", ErrInvalid, i)
		}
	}
	return nil
}

// validateDeletes checks the arguments of DeleteIfVersion, wrapping ErrInvalid.
func validateDeletes(keys []string, versions []uint64) error {
	if len(keys) != len(versions) {
		return fmt.Errorf("%w: %d keys but %d versions", ErrInvalid, len(keys), len(versions))
	}
	for i, v := range versions {
		if v == 0 {
			return fmt.Errorf("%w: key %q: zero version", ErrInvalid, keys[i])
		}
	}
	return validateKeys(keys)
}

// live reports whether a record with the given expiry is visible at nowMs.
// A record expires at its ExpireAt millisecond (ExpireAt <= now is gone).
func live(expireAt, nowMs int64) bool {
	return expireAt == 0 || expireAt > nowMs
}
