package node

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/peercache/peercache/store"
	"github.com/peercache/peercache/tier"
)

// The write path, top to bottom: Set/Delete/Write -> write (route: the
// owner here, or a forward to it) -> ownerWrite -> ownerApply (under the
// key's lock: stamp, shard, local tier) -> spread (near-cache
// invalidations, write-through to previous owners, replica copies).

// Set writes key through its owner. ttl 0 means no expiry.
func (n *Node) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	_, err := n.write(ctx, key, Mutation{Value: value, TTL: ttl}, false)
	return errOrNil(err)
}

// Delete removes key through its owner (deleting a missing key succeeds).
func (n *Node) Delete(ctx context.Context, key string) error {
	_, err := n.write(ctx, key, Mutation{Delete: true}, false)
	return errOrNil(err)
}

// Write applies m to key through its owner. A mutation whose condition does
// not hold returns Applied == false and no error.
func (n *Node) Write(ctx context.Context, key string, m Mutation) (WriteResult, error) {
	res, err := n.write(ctx, key, m, false)
	return res, errOrNil(err)
}

func errOrNil(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

// write implements PUT and DELETE: the owner stamps and stores, everyone
// else forwards to the owner.
func (n *Node) write(ctx context.Context, key string, m Mutation, forwarded bool) (WriteResult, *Error) {
	if err := n.checkWrite(key, m, forwarded); err != nil {
		return WriteResult{}, err
	}
	v := n.views.cur.Load()
	owner := v.ring.Owner(key)
	start := time.Now()
	for attempt := 0; ; attempt++ {
		if owner == "" {
			return WriteResult{}, retryable(http.StatusServiceUnavailable, "no active member owns keys yet (the cluster is forming)")
		}
		if owner == n.cfg.Name {
			return n.ownerWrite(ctx, key, m, false)
		}
		if forwarded {
			return WriteResult{}, n.notOwner(owner)
		}
		it, err := n.peerWrite(ctx, v, owner, key, m)
		n.tierInvalidate(key) // this node's near copy goes before the write is acknowledged
		if err == nil || !retryMore(ctx, start) {
			return it, err
		}
		switch {
		case errors.Is(err, ErrNotOwner):
			v, owner = n.retarget(ctx, v, owner, err.Owner, key, attempt)
		case err.Unreachable:
			var ok bool
			if v, owner, ok = n.awaitNewOwner(ctx, v, owner, key); !ok {
				return it, err
			}
		default:
			return it, err
		}
	}
}

// checkWrite refuses a write that can never be carried out: bad key, TTL
// or value, or a node or cluster in read-only mode.
func (n *Node) checkWrite(key string, m Mutation, forwarded bool) *Error {
	if err := n.checkKey(key); err != nil {
		return err
	}
	if m.IfAbsent && m.IfPresent {
		return errorf(http.StatusBadRequest, "a write cannot require the key to be both absent and present")
	}
	if !m.Delete {
		if err := n.checkTTL(m.TTL); err != nil {
			return err
		}
		if len(m.Value) > n.cfg.MaxValueBytes {
			return errorf(http.StatusRequestEntityTooLarge, "value is %d bytes; the limit is %d", len(m.Value), n.cfg.MaxValueBytes)
		}
	}
	return n.checkWritable(forwarded) // read-only mode
}

// ownerWrite applies m as the key's owner. loaded marks a read-through load
// of an absent key: no node can hold a near copy of it, so none is
// invalidated.
func (n *Node) ownerWrite(ctx context.Context, key string, m Mutation, loaded bool) (WriteResult, *Error) {
	res, e, applied, err := n.ownerApply(ctx, key, m)
	if err != nil || !applied {
		return res, err
	}
	if err := n.spread(ctx, []store.Entry{e}, !loaded)[0]; err != nil {
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
	mu := &n.writes.keyLocks[xxhash.Sum64String(key)%uint64(len(n.writes.keyLocks))]
	mu.Lock()
	defer mu.Unlock()

	var cur store.Entry
	exists := false
	if m.NeedsCurrent() {
		c, found, gerr := n.st.Get(ctx, key)
		if gerr != nil {
			return WriteResult{}, e, false, retryable(http.StatusServiceUnavailable, "shard read failed: %v", gerr)
		}
		cur, exists = c, found && !c.Tombstone
	}
	if (m.IfAbsent && exists) || (m.IfPresent && !exists) || (m.Expire && !exists) {
		return WriteResult{Item: Item{Key: key, Owner: n.cfg.Name, Source: SourceShard}, Existed: exists}, e, false, nil
	}
	if err := ctx.Err(); err != nil {
		// A forwarded write that arrives after its sender gave up must not
		// be applied: the client was told it failed and may have written
		// again since.
		return WriteResult{}, e, false, retryable(http.StatusServiceUnavailable, "write expired before it could be applied: %v", err)
	}
	e = store.Entry{Key: key, Value: m.Value}
	now := time.Now()
	switch {
	case m.Delete:
		e.Value, e.Tombstone = nil, true
		e.ExpireAt = now.Add(n.cfg.TombstoneTTL).UnixMilli()
	case m.Expire:
		e.Value, e.ExpireAt = cur.Value, 0
		if m.TTL > 0 {
			e.ExpireAt = now.Add(m.TTL).UnixMilli()
		}
	case m.KeepTTL && exists:
		e.ExpireAt = cur.ExpireAt
	case m.TTL > 0:
		e.ExpireAt = now.Add(m.TTL).UnixMilli()
	}
	if e.Value == nil && !e.Tombstone {
		e.Value = []byte{}
	}
	for attempt := 0; attempt < 3; attempt++ {
		e.Version = n.clock.Now()
		g := n.ownerGuard(key)
		out, perr := n.st.Put(ctx, []store.Entry{e})
		if perr != nil {
			n.tierInvalidate(key) // the write may have landed
			return WriteResult{}, e, false, retryable(http.StatusServiceUnavailable, "shard write failed: %v", perr)
		}
		if out[0] != store.Stale {
			if out[0] == store.Applied {
				n.ownerPublish(key, e, g) // the local tier, under the key's lock
			}
			res := WriteResult{Item: itemOf(e, n.cfg.Name, SourceShard), Applied: !m.Delete || exists, Existed: exists}
			return res, e, out[0] == store.Applied, nil
		}
		// The shard holds a newer version (stamped by another node's clock,
		// e.g. imported during a migration): move past it and retry.
		if c, found, gerr := n.st.Get(ctx, key); gerr == nil && found && c.Version <= n.versionLimit() {
			n.clock.Observe(c.Version)
		}
	}
	return WriteResult{}, e, false, retryable(http.StatusServiceUnavailable, "write lost a race with newer versions three times; retry")
}

// ownerApplyForwarded is ownerApply for a write another node forwarded:
// refused (421, naming the owner in this node's view) unless this node
// owns the key.
func (n *Node) ownerApplyForwarded(ctx context.Context, key string, m Mutation) (WriteResult, store.Entry, bool, *Error) {
	if err := n.checkWrite(key, m, true); err != nil {
		return WriteResult{}, store.Entry{}, false, err
	}
	if owner := n.views.cur.Load().ring.Owner(key); owner != n.cfg.Name {
		return WriteResult{}, store.Entry{}, false, n.notOwner(owner)
	}
	return n.ownerApply(ctx, key, m)
}

// ownerGuard returns key's guard before an owner write (0 without a tier).
func (n *Node) ownerGuard(key string) uint64 {
	if n.reads.tier == nil {
		return 0
	}
	return n.reads.tier.guard(key).Load()
}

// ownerPublish brings the local tier in line with a write the owner just
// applied to its shard (called with the key's write lock held). g is the
// key's guard before the write. A later change, or a read that began
// before this write, can then never leave an older value behind.
func (n *Node) ownerPublish(key string, e store.Entry, g uint64) {
	t := n.reads.tier
	if t == nil {
		return
	}
	gd := t.guard(key)
	if gd.Add(1) != g+1 || e.Tombstone {
		// Another change of this stripe came in between (or a delete):
		// drop rather than reason about the order.
		t.drop(key)
		return
	}
	if !t.owned {
		// No copies of owned records (the write above bumped the guard, so
		// a negative entry's fill that raced it fails); drop a negative entry.
		t.drop(key)
		return
	}
	// A copy: e.Value may alias the request's buffer, which the tier must
	// not keep alive (nor see reused).
	te := tier.Entry{Value: bytes.Clone(e.Value), Version: e.Version, Tag: tagOf(t.epoch.Load(), 0)}
	if e.ExpireAt != 0 {
		te.Expires = time.UnixMilli(e.ExpireAt)
	}
	if !t.fill(key, te, g+1) {
		if old, ok := t.c.Get(key); !ok || old.Version < e.Version || old.Tag != te.Tag {
			t.c.Delete(key)
		}
	}
}

// spread makes writes the owner applied known beyond its shard: near
// copies on other nodes are invalidated (invalidate: unless a read-through
// load of an absent key, of which no copy can exist), previous owners get
// a copy while a ring change settles, and replicas get theirs. It returns
// one error per entry: a write whose required replica copies were not
// acknowledged.
func (n *Node) spread(ctx context.Context, es []store.Entry, invalidate bool) []*Error {
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
			n.writeThroughPrevious(ctx, e)
		}
	}
	if n.cfg.Replicas > 1 {
		return n.copier.Copy(ctx, v.ring, es)
	}
	return make([]*Error, len(es))
}

// writeThroughPrevious copies a fresh write to the key's previous owners
// while a ring change settles. A previous owner that has not learned of the
// change yet still believes it owns the key and serves reads from its shard;
// the copy (an ordinary versioned import, applied only if newer and only if
// the receiver believes it owns the key) keeps those reads from returning
// the value this write replaced. Owners that already know the new ring
// refuse the import, which is fine: they forward reads instead. Failures are
// ignored: they only widen the stale-read window, never lose the write.
//
// Only members whose gossiped ring checksum differs from this node's get the
// copy: one that announces the same ring already forwards reads of the key.
// In a settled cluster that is nobody, so writes pay nothing.
func (n *Node) writeThroughPrevious(ctx context.Context, e store.Entry) {
	v := n.views.cur.Load()
	var wg sync.WaitGroup
	for _, p := range n.previousOwners(v, e.Key) {
		m, ok := v.members[p]
		if !ok || m.Meta.Extra[metaRing] == v.checksum {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := peerTransport{n}.send(ctx, p, []store.Entry{e})
			switch {
			case err != nil:
				n.metrics.writeThrough.WithLabelValues("error").Inc()
				n.log.Debug("write-through to previous owner failed", "peer", p, "key", e.Key, "err", err)
			case res[0].IsAcked():
				n.metrics.writeThrough.WithLabelValues("applied").Inc()
			default:
				n.metrics.writeThrough.WithLabelValues("refused").Inc()
			}
		}()
	}
	wg.Wait()
}
