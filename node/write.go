package node

import (
	"context"
	"math"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/peercache/peercache/internal/hlc"
	"github.com/peercache/peercache/internal/redisnum"
	"github.com/peercache/peercache/internal/replica"
	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/store"
)

// The write path, top to bottom: Set/Delete/Write -> write (route: the
// owner here, or a forward to it) -> ownerWrite -> ownerApply (under the
// key's lock: stamp, shard, local tier) -> spread (near-cache
// invalidations, write-through to previous owners, replica copies). A
// write another node forwarded enters at serveForwardedWrite.

// Set writes key through its owner. ttl 0 means no expiry.
func (n *Node) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	_, err := n.write(ctx, key, Mutation{Value: value, TTL: ttl})
	return err
}

// Delete removes key through its owner (deleting a missing key succeeds).
func (n *Node) Delete(ctx context.Context, key string) error {
	_, err := n.write(ctx, key, Mutation{Delete: true})
	return err
}

// Write applies m to key through its owner. A mutation whose condition does
// not hold returns Applied == false and no error.
func (n *Node) Write(ctx context.Context, key string, m Mutation) (WriteResult, error) {
	return n.write(ctx, key, m)
}

// write applies m to key at its owner, through route: the owner stamps and
// stores, every other node forwards to the owner.
func (n *Node) write(ctx context.Context, key string, m Mutation) (WriteResult, error) {
	if err := n.checkWrite(key, m, false); err != nil {
		return WriteResult{}, err
	}
	return route(ctx, n, n.views.cur.Load(), key,
		func(*view) (WriteResult, error) { return n.ownerWrite(ctx, key, m) },
		func(v *view, owner string) (WriteResult, error) {
			res, err := n.peer.members.Write(ctx, v, owner, key, m)
			n.reads.tier.Invalidate(key) // this node's near copy goes before the write is acknowledged
			return res, err
		}, nil)
}

// StartWrite begins a write of key that goes to its owner, another
// member, with no goroutine waiting for the answer, as StartGet begins a
// read: done gets the result once, and retry means the write was not
// carried out as far as this node knows (a refusal because views differ,
// or no answer: a write that did land is harmless to repeat, its version
// newer) and is to be made again through Write. This node's near copy of
// key goes before done is called.
func (n *Node) StartWrite(key string, m Mutation, now bool, done func(res WriteResult, err error, retry bool)) bool {
	if m.IfAbsent || m.IfPresent || m.Op != kv.OpSet || m.Expire || n.checkWrite(key, m, false) != nil {
		return false // a condition's or an operation's answer may not be repeated
	}
	v := n.views.cur.Load()
	owner := v.Ring.Owner(key)
	if owner == "" || owner == n.cfg.Name {
		return false
	}
	return n.peer.members.GoWrite(v, owner, key, m, now, func(res WriteResult, err error) {
		n.reads.tier.Invalidate(key) // before the write is acknowledged
		done(res, err, !settledRemotely(err))
	})
}

// serveForwardedWrite applies a write another node forwarded: this node
// owns the key in its view and writes it as ownerWrite does, or it refuses
// (421, naming the owner in its view), never forwarding again. Only the
// cluster's read-only mode refuses it (the sender checked its own node
// mode).
func (n *Node) serveForwardedWrite(ctx context.Context, key string, m Mutation) (WriteResult, error) {
	if err := n.checkWrite(key, m, true); err != nil {
		return WriteResult{}, err
	}
	if _, err := n.forwardedView(key); err != nil {
		return WriteResult{}, err
	}
	return n.ownerWrite(ctx, key, m)
}

// checkWrite refuses a write that can never be carried out: bad key, TTL
// or value, or a node or cluster in read-only mode.
func (n *Node) checkWrite(key string, m Mutation, forwarded bool) *Error {
	if err := n.checkKey(key); err != nil {
		return err
	}
	if m.IfAbsent && m.IfPresent {
		return kv.Errorf(http.StatusBadRequest, "a write cannot require the key to be both absent and present")
	}
	if m.ExpireIf&^kv.ExpireConds != 0 || (m.ExpireIf != 0 && !m.Expire) {
		return kv.Errorf(http.StatusBadRequest, "an expiry condition goes only with an expiry change")
	}
	if m.Op != kv.OpSet {
		if err := n.checkOp(m); err != nil {
			return err
		}
	}
	if !m.Delete {
		if err := n.checkTTL(m.TTL); err != nil {
			return err
		}
		if err := n.checkExpireAt(m); err != nil {
			return err
		}
		if len(m.Value) > n.cfg.Limits.MaxValueBytes {
			return kv.Errorf(http.StatusRequestEntityTooLarge, "value is %d bytes; the limit is %d", len(m.Value), n.cfg.Limits.MaxValueBytes)
		}
	}
	return n.ops.mode.CheckWritable(forwarded) // read-only mode
}

// ownerWrite applies m as the key's owner and spreads it.
func (n *Node) ownerWrite(ctx context.Context, key string, m Mutation) (WriteResult, error) {
	res, e, applied, err := n.ownerApply(ctx, key, m)
	if err != nil {
		return res, err
	}
	if !applied {
		return res, nil
	}
	if err := n.spread(ctx, []store.Entry{e}, true)[0]; err != nil {
		return WriteResult{}, err
	}
	return res, nil
}

// ownerApply carries out m on this node's shard and local tier, as the
// key's owner, and returns the record written (applied: the shard took
// it); spread then makes it known beyond this node.
func (n *Node) ownerApply(ctx context.Context, key string, m Mutation) (res WriteResult, e store.Entry, applied bool, err *Error) {
	// One owner write of a key at a time: conditions and read-modify-write
	// mutations must see the write before them.
	mu := &n.writes.keyLocks[n.keyLockIndex(key)]
	mu.Lock()
	defer mu.Unlock()

	var cur store.Entry
	exists := false
	if m.NeedsCurrent() {
		var cerr *Error
		// An increment from nothing would outvote a copy in transit; a
		// delete or a condition decided without it loses nothing that a
		// retry would keep.
		if cur, exists, cerr = n.current(ctx, key, m.Op != kv.OpSet); cerr != nil {
			return WriteResult{}, e, false, cerr
		}
	}
	if (m.IfAbsent && exists) || (m.IfPresent && !exists) || (m.Expire && !exists) {
		res := WriteResult{Item: Item{Key: key, Owner: n.cfg.Name, Source: SourceShard}, Existed: exists}
		if m.Op == kv.OpGetSet && exists {
			res.Value = cur.Value // SET NX GET answers the value it kept
		}
		return res, e, false, nil
	}
	if err := ctx.Err(); err != nil {
		// A forwarded write that arrives after its sender gave up must not
		// be applied: the client was told it failed and may have written
		// again since.
		return WriteResult{}, e, false, kv.Retryable(http.StatusServiceUnavailable, "write expired before it could be applied: %w", err)
	}
	e = store.Entry{Key: key, Value: m.Value}
	var reply []byte // what a read-modify-write answers with
	// expireAt is the Unix millisecond d from now, one clock read for the
	// whole write and only by a write that sets an expiry (a plain SET
	// reads no clock).
	var now time.Time
	expireAt := func(d time.Duration) int64 {
		if now.IsZero() {
			now = time.Now()
		}
		return now.Add(d).UnixMilli()
	}
	// expiry is when m asks the key to expire: its absolute ExpireAt, else
	// its TTL from now (0: never).
	expiry := func() int64 {
		switch {
		case !m.ExpireAt.IsZero():
			return m.ExpireAt.UnixMilli()
		case m.TTL > 0:
			return expireAt(m.TTL)
		}
		return 0
	}
	if m.Expire && !m.ExpireIf.Holds(cur.ExpireAt, expiry()) {
		return WriteResult{Item: Item{Key: key, Owner: n.cfg.Name, Source: SourceShard}, Existed: true}, e, false, nil
	}
	if m.Op != kv.OpSet {
		// Read-modify-write: the new value from the current one (checkOp
		// made sure m sets no expiry of its own, but for GETSET and GETEX).
		var curValue []byte
		if exists {
			curValue = cur.Value
		}
		v, r, write, oerr := applyOp(m.Op, curValue, exists, m.Value, n.cfg.Limits.MaxValueBytes)
		if oerr != nil || !write {
			return WriteResult{Item: Item{Key: key, Value: r, Owner: n.cfg.Name, Source: SourceShard}, Existed: exists}, e, false, oerr
		}
		e.Value, reply = v, r
		switch {
		case m.Op == kv.OpGetDel:
			e.Value, e.Tombstone = nil, true
			e.ExpireAt = expireAt(n.cfg.Migration.TombstoneTTL)
		case m.Op == kv.OpGetEx && !m.ExpireAt.IsZero():
			e.ExpireAt = expiry()
		case m.Op == kv.OpGetEx:
			if ms, _ := strconv.ParseInt(string(m.Value), 10, 64); ms > 0 {
				e.ExpireAt = expireAt(time.Duration(ms) * time.Millisecond)
			}
		case m.Op != kv.OpGetSet && exists:
			e.ExpireAt = cur.ExpireAt // changed in place: the expiry stays (GETSET drops it, as SET)
		}
	}
	switch {
	case m.Delete:
		e.Value, e.Tombstone = nil, true
		e.ExpireAt = expireAt(n.cfg.Migration.TombstoneTTL)
	case m.Expire:
		e.Value, e.ExpireAt = cur.Value, expiry() // 0 removes the expiry
	case m.KeepTTL && exists:
		e.ExpireAt = cur.ExpireAt
	case m.Op == kv.OpSet || m.Op == kv.OpGetSet:
		e.ExpireAt = expiry()
	}
	if e.ExpireAt != 0 && !e.Tombstone && e.ExpireAt <= nowMs(now) {
		// An expiry already past (an instant asked for, or a lifetime that
		// ran out on its way here): the key ends absent, as in Redis, where
		// a shard would refuse the record and keep the one before.
		e.Value, e.Tombstone = nil, true
		e.ExpireAt = expireAt(n.cfg.Migration.TombstoneTTL)
	}
	if e.Value == nil && !e.Tombstone {
		e.Value = []byte{}
	}
	written, perr := n.putOwned(ctx, &e)
	if perr != nil {
		return WriteResult{}, e, false, perr
	}
	res = WriteResult{Item: itemOf(e, n.cfg.Name, SourceShard), Applied: !m.Delete || exists, Existed: exists}
	if m.Op != kv.OpSet {
		res.Value = reply
	}
	return res, e, written, nil
}

// nowMs is now in Unix milliseconds, reading the clock only if now is
// zero.
func nowMs(now time.Time) int64 {
	if now.IsZero() {
		now = time.Now()
	}
	return now.UnixMilli()
}

// plainPut reports whether m is a plain write: a SET that needs no current
// record (no condition, no KEEPTTL, not a delete or read-modify-write),
// which ownerPutMany can apply together with others.
func plainPut(m Mutation) bool { return !m.NeedsCurrent() }

// putBatch is a batch of plain writes of distinct keys for ownerPutMany,
// with its working space; a Many call keeps one for its rounds.
type putBatch struct {
	entries []store.Entry   // Key, Value and an absolute ExpireAt added; stamped and written by ownerPutMany
	ttls    []time.Duration // each entry's expiry from now (0: none, or ExpireAt as added)
	written []bool          // the shard took entries[j] (to spread)
	errs    []*Error        // entries[j] was not written, and why
	guards  []uint64
	locks   []int
}

// add appends the plain write m of key.
func (pb *putBatch) add(key string, m Mutation) {
	v := m.Value
	if v == nil {
		v = []byte{}
	}
	e := store.Entry{Key: key, Value: v}
	if !m.ExpireAt.IsZero() {
		e.ExpireAt = m.ExpireAt.UnixMilli()
	}
	pb.entries = append(pb.entries, e)
	pb.ttls = append(pb.ttls, m.TTL)
}

// result is the WriteResult of entries[j] once written, as ownerApply
// answers a plain write.
func (pb *putBatch) result(n *Node, j int) WriteResult {
	return WriteResult{Item: itemOf(pb.entries[j], n.cfg.Name, SourceShard), Applied: true}
}

// results hands each write's outcome to set (i: idx[j], the caller's
// index of entries[j]; err nil when it was carried out) and returns applied
// and appliedIdx extended by the writes the shard took, to spread.
func (pb *putBatch) results(n *Node, idx []int, applied []store.Entry, appliedIdx []int, set func(i int, res WriteResult, err *Error)) ([]store.Entry, []int) {
	for j, i := range idx {
		if err := pb.errs[j]; err != nil {
			set(i, WriteResult{}, err)
			continue
		}
		set(i, pb.result(n, j), nil)
		if pb.written[j] {
			applied, appliedIdx = append(applied, pb.entries[j]), append(appliedIdx, i)
		}
	}
	return applied, appliedIdx
}

// reset empties pb for the next batch, keeping its buffers unless a huge
// batch grew them past maxKept.
func (pb *putBatch) reset(maxKept int) {
	if cap(pb.entries) > maxKept {
		*pb = putBatch{}
		return
	}
	clear(pb.entries)
	clear(pb.errs)
	pb.entries, pb.ttls, pb.written, pb.errs = pb.entries[:0], pb.ttls[:0], pb.written[:0], pb.errs[:0]
	pb.guards, pb.locks = pb.guards[:0], pb.locks[:0]
}

// ownerPutMany applies pb's plain writes, of distinct keys this node owns,
// as ownerApply applies each (the same records, versions, tier updates and
// refusals), but under all their key locks at once, with one reading of
// the clocks for the lot (one version range, one expiry base) and one
// shard put. A write the shard finds stale (a newer version stamped by
// another node's clock) is stamped again through putOwned, and when the
// shard refuses the batch every write is tried alone there.
func (n *Node) ownerPutMany(ctx context.Context, pb *putBatch) {
	count := len(pb.entries)
	pb.written = slices.Grow(pb.written[:0], count)[:count]
	pb.errs = slices.Grow(pb.errs[:0], count)[:count]
	clear(pb.written)
	clear(pb.errs)
	locks := pb.locks[:0]
	for j := range pb.entries {
		locks = append(locks, n.keyLockIndex(pb.entries[j].Key))
	}
	pb.locks = n.lockIndexes(locks)
	defer n.unlockIndexes(pb.locks)

	if err := ctx.Err(); err != nil {
		// As ownerApply: a forwarded write that arrives after its sender
		// gave up must not be applied.
		e := kv.Retryable(http.StatusServiceUnavailable, "write expired before it could be applied: %w", err)
		for j := range pb.errs {
			pb.errs[j] = e
		}
		return
	}
	var now time.Time
	first := n.clock.Reserve(count)
	guards := pb.guards[:0]
	for j := range pb.entries {
		e := &pb.entries[j]
		e.Version = hlc.Offset(first, j)
		if d := pb.ttls[j]; d > 0 {
			if now.IsZero() {
				now = time.Now()
			}
			e.ExpireAt = now.Add(d).UnixMilli()
		}
		guards = append(guards, n.reads.tier.Guard(e.Key))
	}
	pb.guards = guards
	outs, perr := n.st.Put(ctx, pb.entries)
	for j := range pb.entries {
		e := &pb.entries[j]
		switch {
		case perr != nil:
			// The shard refused the batch (one entry over the memory
			// budget, the shard full part-way, Redis unreachable): each
			// write is tried alone, so that one cannot fail the others.
			pb.written[j], pb.errs[j] = n.putOwned(ctx, e)
		case outs[j] == store.Applied:
			n.reads.tier.Publish(e.Key, *e, guards[j]) // the local tier, under the key's lock
			pb.written[j] = true
		case outs[j] == store.Stale:
			n.observeStored(ctx, e.Key)
			pb.written[j], pb.errs[j] = n.putOwned(ctx, e)
		case outs[j] == store.Expired:
			// An instant already past (PXAT a moment ahead that arrived
			// late): the key ends absent, as ownerApply makes it.
			e.Value, e.Tombstone = nil, true
			e.ExpireAt = time.Now().Add(n.cfg.Migration.TombstoneTTL).UnixMilli()
			pb.written[j], pb.errs[j] = n.putOwned(ctx, e)
		}
	}
}

// keyLockIndex is the index of key's owner-write lock.
func (n *Node) keyLockIndex(key string) int {
	return int(xxhash.Sum64String(key) % uint64(len(n.writes.keyLocks)))
}

// current reads key's entry for an owner's write, under the key's lock
// (exists: live, not a tombstone). While a ring change settles, a miss
// asks the key's previous owner, whose copy handoffGet imports into this
// shard, and then looks here again: the previous owner may have handed the
// key over (and deleted its copy) between the two reads. strict refuses,
// as retryable, a key found nowhere while a previous owner did not answer:
// a write computed from nothing (an increment, a rename's source) would
// outvote the copy in transit.
func (n *Node) current(ctx context.Context, key string, strict bool) (cur store.Entry, exists bool, err *Error) {
	c, found, gerr := n.st.Get(ctx, key)
	if gerr != nil {
		return cur, false, kv.Retryable(http.StatusServiceUnavailable, "shard read failed: %w", gerr)
	}
	if v := n.views.cur.Load(); !found && n.handoffActive(v) {
		var unanswered bool
		if c, found, unanswered = n.handoffGet(ctx, v, key); !found {
			if c, found, gerr = n.st.Get(ctx, key); gerr != nil {
				return cur, false, kv.Retryable(http.StatusServiceUnavailable, "shard read failed: %w", gerr)
			}
			if !found && unanswered && strict {
				return cur, false, kv.Retryable(http.StatusServiceUnavailable,
					"the key's previous owner did not answer while the key may be moving; retry")
			}
		}
	}
	return c, found && !c.Tombstone, nil
}

// putOwned stamps e with a new version and writes it to the shard, and to
// the local tier when the shard took it (written), under the key's lock.
// When the shard holds a newer version (stamped by another node's clock,
// imported during a migration, say), the clock moves past it and the
// write is stamped again, at most three times.
func (n *Node) putOwned(ctx context.Context, e *store.Entry) (written bool, err *Error) {
	for attempt := 0; attempt < 3; attempt++ {
		e.Version = n.clock.Now()
		g := n.reads.tier.Guard(e.Key)
		out, perr := n.st.Put(ctx, []store.Entry{*e})
		if perr != nil {
			n.reads.tier.Invalidate(e.Key) // the write may have landed
			return false, kv.Retryable(http.StatusServiceUnavailable, "shard write failed: %w", perr)
		}
		if out[0] != store.Stale {
			if out[0] == store.Applied {
				n.reads.tier.Publish(e.Key, *e, g) // the local tier, under the key's lock
			}
			return out[0] == store.Applied, nil
		}
		n.observeStored(ctx, e.Key)
	}
	return false, kv.Retryable(http.StatusServiceUnavailable, "write lost a race with newer versions three times; retry")
}

// observeStored moves the clock past the version the shard holds for key,
// after a write of it was found stale, unless that version lies beyond
// what this node accepts from other clocks.
func (n *Node) observeStored(ctx context.Context, key string) {
	if c, found, err := n.st.Get(ctx, key); err == nil && found && c.Version <= n.writes.imports.Limit() {
		n.clock.Observe(c.Version)
	}
}

// ownerApplyForwarded is ownerApply for a write another node forwarded:
// refused as serveForwardedWrite refuses it unless this node owns the key.
func (n *Node) ownerApplyForwarded(ctx context.Context, key string, m Mutation) (WriteResult, store.Entry, bool, *Error) {
	if err := n.checkWrite(key, m, true); err != nil {
		return WriteResult{}, store.Entry{}, false, err
	}
	if _, err := n.forwardedView(key); err != nil {
		return WriteResult{}, store.Entry{}, false, err
	}
	return n.ownerApply(ctx, key, m)
}

// spread makes writes the owner applied known beyond its shard: near
// copies on other nodes are invalidated (invalidate: unless a read-through
// load of an absent key, of which no copy can exist), previous owners get
// a copy while a ring change settles, and replicas get theirs. It returns
// one error per entry: a write whose required replica copies were not
// acknowledged (none for an empty batch).
func (n *Node) spread(ctx context.Context, es []store.Entry, invalidate bool) []*Error {
	if len(es) == 0 {
		return nil
	}
	if invalidate {
		keys := make([]string, len(es))
		for i, e := range es {
			keys[i] = e.Key
		}
		n.reads.near.InvalidateKeys(ctx, keys)
	}
	v := n.views.cur.Load()
	if n.handoffActive(v) {
		for _, e := range es {
			replica.WriteThrough(ctx, v, n.cfg.Name, e, n.peer.members.Import, n.metrics.WriteThrough, n.log)
		}
	}
	if n.cfg.Replication.Factor > 1 {
		return n.copier.Copy(ctx, v.Ring, es)
	}
	return make([]*Error, len(es))
}

// checkOp refuses a read-modify-write mutation that asks for more than its
// operation, or whose operand is not a number where one is needed.
func (n *Node) checkOp(m Mutation) *Error {
	switch {
	case m.Op >= kv.NumOps:
		return kv.Errorf(http.StatusBadRequest, "unknown write operation %d", m.Op)
	case m.Delete || m.Expire:
		return kv.Errorf(http.StatusBadRequest, "a read-modify-write operation is no delete or expiry change")
	case m.Op == kv.OpGetSet:
		return nil // a set's expiry and condition, checked as a set's
	case m.KeepTTL || m.TTL != 0 || m.IfAbsent || m.IfPresent:
		return kv.Errorf(http.StatusBadRequest, "a read-modify-write operation takes no expiry or condition")
	case !m.ExpireAt.IsZero() && (m.Op != kv.OpGetEx || len(m.Value) != 0):
		return kv.Errorf(http.StatusBadRequest, "only GETEX takes an absolute expiry, and then no time to live")
	}
	switch m.Op {
	case kv.OpGetEx:
		if !m.ExpireAt.IsZero() {
			break // checked by checkExpireAt
		}
		ms, err := strconv.ParseInt(string(m.Value), 10, 64)
		if err != nil || ms < 0 {
			return kv.Errorf(http.StatusBadRequest, "invalid expire time in 'getex' command")
		}
		if ms > 0 {
			if err := n.checkTTL(time.Duration(ms) * time.Millisecond); err != nil {
				return err
			}
		}
	case kv.OpSetRange:
		if _, _, ok := kv.SetRangeOperand(m.Value); !ok {
			return kv.Errorf(http.StatusBadRequest, "offset is out of range")
		}
	case kv.OpIncrBy:
		if _, ok := redisnum.ParseInt(m.Value); !ok {
			return kv.Errorf(http.StatusBadRequest, "value is not an integer or out of range")
		}
	case kv.OpIncrByFloat:
		if _, ok := redisnum.ParseFloat(m.Value); !ok {
			return kv.Errorf(http.StatusBadRequest, "value is not a valid float")
		}
	}
	return nil
}

// applyOp computes a read-modify-write mutation's new value from the
// current one (exists: the key is live), with Redis' rules and error texts
// (internal/redisnum: integers as string2ll, floats in long double
// precision), and a result that fits in maxValue bytes. reply is what the
// command answers with: the new value, or for GETDEL and GETSET the old
// one. write is false when nothing is to be written (SETRANGE of nothing).
func applyOp(op kv.Op, cur []byte, exists bool, operand []byte, maxValue int) (v, reply []byte, write bool, err *Error) {
	switch op {
	case kv.OpIncrBy:
		by, _ := redisnum.ParseInt(operand)
		n := int64(0)
		if exists {
			var ok bool
			if n, ok = redisnum.ParseInt(cur); !ok {
				return nil, nil, false, kv.Errorf(http.StatusBadRequest, "value is not an integer or out of range")
			}
		}
		if (by > 0 && n > math.MaxInt64-by) || (by < 0 && n < math.MinInt64-by) {
			return nil, nil, false, kv.Errorf(http.StatusBadRequest, "increment or decrement would overflow")
		}
		v = strconv.AppendInt(nil, n+by, 10)
		return v, v, true, nil
	case kv.OpIncrByFloat:
		by, _ := redisnum.ParseFloat(operand)
		f := new(big.Float)
		if exists {
			var ok bool
			if f, ok = redisnum.ParseFloat(cur); !ok {
				return nil, nil, false, kv.Errorf(http.StatusBadRequest, "value is not a valid float")
			}
		}
		r, ok := redisnum.AddFloat(f, by)
		if !ok {
			return nil, nil, false, kv.Errorf(http.StatusBadRequest, "increment would produce NaN or Infinity")
		}
		v = redisnum.FormatFloat(r)
		return v, v, true, nil
	case kv.OpAppend:
		if len(cur)+len(operand) > maxValue {
			return nil, nil, false, tooLarge(maxValue)
		}
		v = append(append(make([]byte, 0, len(cur)+len(operand)), cur...), operand...)
		return v, v, true, nil
	case kv.OpSetRange:
		off, data, _ := kv.SetRangeOperand(operand)
		if len(data) == 0 {
			return nil, cur, false, nil // Redis: nothing to write, the length is the answer
		}
		if off+len(data) > maxValue {
			return nil, nil, false, tooLarge(maxValue)
		}
		v = make([]byte, max(len(cur), off+len(data)))
		copy(v, cur)
		copy(v[off:], data)
		return v, v, true, nil
	case kv.OpGetDel:
		if !exists {
			return nil, nil, false, nil
		}
		return nil, cur, true, nil
	case kv.OpGetSet:
		return operand, cur, true, nil
	case kv.OpGetEx:
		if !exists {
			return nil, nil, false, nil
		}
		return cur, cur, true, nil
	}
	return nil, nil, false, kv.Errorf(http.StatusBadRequest, "unknown write operation %d", op)
}

func tooLarge(maxValue int) *Error {
	return kv.Errorf(http.StatusRequestEntityTooLarge, "string exceeds maximum allowed size (%d bytes)", maxValue)
}
