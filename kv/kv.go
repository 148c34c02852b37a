// Package kv holds the values every layer of peercache exchanges about one
// key: what a read returns (Item), what a write asks for (Mutation) and
// what it did (WriteResult), the result of importing a copy (ImportResult),
// and the request error (Error, ErrNotFound). It is a leaf: node, peer,
// migrate and the client doors share these types without importing each
// other.
package kv

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Source says which tier answered a read.
type Source string

// Read sources, reported in the X-Peercache-Source header.
const (
	SourceLocal   Source = "local"   // the owner's local tier
	SourceShard   Source = "shard"   // the owner's shard
	SourceNear    Source = "near"    // this node's near cache (a copy of another owner's value)
	SourcePeer    Source = "peer"    // forwarded to the owner
	SourceOrigin  Source = "origin"  // loaded by the owner through its read-through origin
	SourceHandoff Source = "handoff" // the previous owner, while the key migrates
	SourceReplica Source = "replica" // a replica, while the primary is unreachable
)

// Item is a value read from the cache.
type Item struct {
	Key      string
	Value    []byte
	Version  uint64
	ExpireAt time.Time // zero: no expiry
	Owner    string
	Source   Source
}

// TTL returns the time the item has left (0 with ok=false for no expiry).
func (it Item) TTL() (time.Duration, bool) {
	if it.ExpireAt.IsZero() {
		return 0, false
	}
	return time.Until(it.ExpireAt), true
}

// Mutation is one write of a key, carried out atomically by the key's owner:
// a set (Value, TTL, KeepTTL), a delete, or an expiry change, each optionally
// conditional on the key being absent or present.
type Mutation struct {
	Value []byte
	// TTL is the new lifetime for sets and expiry changes; 0 means none.
	TTL time.Duration
	// ExpireAt, unless zero, is an absolute expiry (EXPIREAT, EXAT, PXAT;
	// millisecond precision) for a set, an expiry change or OpGetEx, used
	// instead of TTL (which must be 0 then): the owner stores this instant
	// as given rather than its own clock plus a lifetime, so that
	// PEXPIRETIME answers exactly what was asked. An instant already past
	// makes the key expire at once.
	ExpireAt time.Time
	// Delete removes the key (it leaves a tombstone).
	Delete bool
	// Expire changes only the expiry of an existing key to TTL (0: remove
	// the expiry, as Redis PERSIST does).
	Expire bool
	// ExpireIf, for an expiry change, makes it conditional on the key's
	// current expiry (Redis EXPIRE NX, XX, GT, LT), decided by the owner
	// under the key's lock with the change.
	ExpireIf ExpireCond
	// KeepTTL makes a set keep the key's current expiry.
	KeepTTL bool
	// IfAbsent / IfPresent make the mutation conditional (Redis NX / XX).
	IfAbsent, IfPresent bool
	// Op, unless OpSet, makes the owner compute the new value from the
	// current one (an absent key counts as empty), keeping the key's
	// expiry, with Value as the operand. TTL, Delete, Expire and KeepTTL
	// must be zero then.
	Op Op
}

// Relative returns m with its absolute expiry (ExpireAt) turned into a
// time to live from now (at least 1 ms), for a receiver that takes only
// lifetimes; m without one is returned as it is.
func (m Mutation) Relative(now time.Time) Mutation {
	if m.ExpireAt.IsZero() {
		return m
	}
	ttl := max(m.ExpireAt.Sub(now).Round(time.Millisecond), time.Millisecond)
	m.ExpireAt = time.Time{}
	if m.Op == OpGetEx {
		m.Value = strconv.AppendInt(nil, ttl.Milliseconds(), 10)
	} else {
		m.TTL = ttl
	}
	return m
}

// Op is a read-modify-write operation of a Mutation, carried out by the
// key's owner under the key's lock.
type Op uint8

// Operations. The operand is Value.
const (
	// OpSet writes Value (a plain set).
	OpSet Op = iota
	// OpIncrBy adds the decimal int64 in Value to the integer value
	// (Redis INCRBY); an absent key counts as 0.
	OpIncrBy
	// OpIncrByFloat adds the decimal float in Value (Redis INCRBYFLOAT).
	OpIncrByFloat
	// OpAppend appends Value (Redis APPEND).
	OpAppend
	// OpSetRange overwrites part of the value (Redis SETRANGE, padding
	// with zero bytes); Value is SetRangeValue(offset, data).
	OpSetRange
	// OpGetDel deletes the key and answers with the value it had (Redis
	// GETDEL).
	OpGetDel
	// OpGetSet writes Value and answers with the value it replaced (Redis
	// GETSET, and SET ... GET): without an expiry unless TTL, ExpireAt or
	// KeepTTL asks for one, and only if IfAbsent or IfPresent holds when
	// given; the old value is answered either way.
	OpGetSet
	// OpGetEx changes the expiry of a live key and answers with its value
	// (Redis GETEX): Value is the new time to live in decimal
	// milliseconds, "0" to remove the expiry; or, with ExpireAt set, Value
	// is empty and the key expires then.
	OpGetEx
	// NumOps is the number of operations (for decoders' bounds checks).
	NumOps
)

// ExpireCond is a set of conditions on a key's current expiry for an
// expiry change (Mutation.ExpireIf), all of which must hold, as Redis
// EXPIRE's NX, XX, GT and LT options combine. A key without an expiry
// counts as expiring never.
type ExpireCond uint8

// Expiry conditions.
const (
	// ExpireNX: only if the key has no expiry.
	ExpireNX ExpireCond = 1 << iota
	// ExpireXX: only if the key has an expiry (also PERSIST, which answers
	// 0 for a key without one).
	ExpireXX
	// ExpireGT: only if the new expiry is later than the current one
	// (never for a key without an expiry).
	ExpireGT
	// ExpireLT: only if the new expiry is sooner than the current one
	// (always for a key without an expiry).
	ExpireLT
	// ExpireConds holds every condition (for decoders).
	ExpireConds = ExpireNX | ExpireXX | ExpireGT | ExpireLT
)

// Holds reports whether every condition of c allows changing an expiry of
// cur to next (Unix milliseconds; 0: none), with Redis' rules.
func (c ExpireCond) Holds(cur, next int64) bool {
	switch {
	case c&ExpireNX != 0 && cur != 0, c&ExpireXX != 0 && cur == 0:
		return false
	case c&ExpireGT != 0 && (cur == 0 || next <= cur):
		return false
	case c&ExpireLT != 0 && cur != 0 && next >= cur:
		return false
	}
	return true
}

// SetRangeValue is the operand of OpSetRange: the decimal offset, a colon,
// then the data.
func SetRangeValue(offset int, data []byte) []byte {
	return append(append(strconv.AppendInt(nil, int64(offset), 10), ':'), data...)
}

// MaxSetRangeOffset bounds OpSetRange's offset (Redis: 512 MiB).
const MaxSetRangeOffset = 512<<20 - 1

// SetRangeOperand splits an OpSetRange operand; ok is false when it is
// malformed or the offset is negative or beyond MaxSetRangeOffset.
func SetRangeOperand(v []byte) (offset int, data []byte, ok bool) {
	i := bytes.IndexByte(v, ':')
	if i <= 0 || i > 10 {
		return 0, nil, false
	}
	n, err := strconv.Atoi(string(v[:i]))
	if err != nil || n < 0 || n > MaxSetRangeOffset {
		return 0, nil, false
	}
	return n, v[i+1:], true
}

// NeedsConditions reports whether m needs an owner of peer protocol 4 or
// later: an expiry change with a condition, or a GETSET with a set's
// expiry or condition.
func (m Mutation) NeedsConditions() bool {
	return m.ExpireIf != 0 ||
		(m.Op == OpGetSet && (m.TTL != 0 || !m.ExpireAt.IsZero() || m.KeepTTL || m.IfAbsent || m.IfPresent))
}

// NeedsCurrent reports whether the owner must read the key first.
func (m Mutation) NeedsCurrent() bool {
	return m.IfAbsent || m.IfPresent || m.Expire || m.KeepTTL || m.Delete || m.Op != OpSet
}

// WriteResult tells what a mutation did.
type WriteResult struct {
	Item
	// Applied is false when a condition did not hold (or an expiry change
	// found no key); nothing was written then.
	Applied bool
	// Existed tells whether the key was live before the mutation.
	Existed bool
}

// ErrNotFound is returned by reads of a key that is absent, expired or
// deleted.
var ErrNotFound = errors.New("node: key not found")

// Kinds of request failure. An *Error matches one of them with errors.Is
// (by its Status and flags), so that callers and the doors decide by kind,
// never by message text.
var (
	// ErrInvalid: the request is malformed (bad key, TTL or condition).
	ErrInvalid = errors.New("invalid request")
	// ErrTooLarge: a value or a list exceeds its limit.
	ErrTooLarge = errors.New("request too large")
	// ErrNotOwner: the answering node does not own the key in its view
	// (Error.Owner names the owner it believes in).
	ErrNotOwner = errors.New("not the key's owner")
	// ErrUnavailable: the request could not be served now (cluster
	// forming, owner unreachable, shard down); Retryable says whether a
	// retry may succeed.
	ErrUnavailable = errors.New("unavailable")
	// ErrReadOnly: a write refused because the node or the cluster is in
	// read-only mode.
	ErrReadOnly = errors.New("read-only")
	// ErrRefused: the caller is not allowed (not a member of the cluster).
	ErrRefused = errors.New("refused")
	// ErrOwnerTooOld: the key's owner runs an earlier release that cannot
	// carry out this write as asked (Mutation.NeedsConditions); it was not
	// sent. Found with errors.Is through the *Error's cause.
	ErrOwnerTooOld = errors.New("the key's owner runs an older release")
)

// Error is a request failure. Status is the HTTP status it maps to (the
// doors render it; the peer protocol carries it between nodes); errors.Is
// tells its kind (ErrInvalid, ErrTooLarge, ErrNotOwner, ErrUnavailable,
// ErrReadOnly, ErrRefused).
type Error struct {
	Status  int
	Message string
	// ReadOnly marks a write refused by read-only mode (ErrReadOnly).
	ReadOnly bool
	// Owner, for 421 (misdirected), is the owner in the answering node's
	// view.
	Owner string
	// Retryable: the same request may succeed shortly (ring changing,
	// owner unreachable).
	Retryable bool
	// Unreachable: the node asked gave no answer at all (not connected,
	// connection lost, timed out), so the request may or may not have been
	// carried out there.
	Unreachable bool

	cause error // what Errorf's %w wrapped (errors.Unwrap); never sent to a peer
}

// Errorf is a request failure answered with status. An error its format
// wraps with %w stays reachable through errors.Is and errors.As (a shard's
// context.DeadlineExceeded, say); only the message crosses to a peer or a
// client.
func Errorf(status int, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Status: status, Message: err.Error(), cause: errors.Unwrap(err)}
}

// Retryable is Errorf for a failure the same request may not meet shortly
// (a ring change, an owner that does not answer).
func Retryable(status int, format string, args ...any) *Error {
	e := Errorf(status, format, args...)
	e.Retryable = true
	return e
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the error Errorf wrapped, if any.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether e is of the kind target (see ErrInvalid and the
// other kinds).
func (e *Error) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return e.Status == 400
	case ErrTooLarge:
		return e.Status == 413
	case ErrNotOwner:
		return e.Status == 421
	case ErrRefused:
		return e.Status == 403
	case ErrReadOnly:
		return e.ReadOnly
	case ErrUnavailable:
		return e.Status == 503 && !e.ReadOnly
	}
	return false
}

// ImportResult is a receiver's answer for one imported entry (a migrated
// key, a replica copy, a repair). The zero value is not an
// acknowledgement: a sender deletes its copy only after an explicit ack.
type ImportResult uint8

// Import results.
const (
	// Acked means the receiver wrote the entry.
	Acked ImportResult = iota + 1
	// AckedStale means the receiver already holds this version or a newer
	// one; nothing was written.
	AckedStale
	// AckedExpired means the entry had expired when it arrived; nothing was
	// written.
	AckedExpired
	// Refused means the receiver does not own the key in its current view
	// (its ring is not updated yet), or the entry's version lies too far in
	// the receiver's future; the sender keeps its copy and retries.
	Refused
)

// String returns the result's name.
func (r ImportResult) String() string {
	switch r {
	case Acked:
		return "acked"
	case AckedStale:
		return "acked-stale"
	case AckedExpired:
		return "acked-expired"
	case Refused:
		return "refused"
	default:
		return "unknown"
	}
}

// IsAcked reports whether the receiver holds this version or a newer one (or
// the entry expired), so the sender may delete its copy.
func (r ImportResult) IsAcked() bool {
	return r == Acked || r == AckedStale || r == AckedExpired
}
