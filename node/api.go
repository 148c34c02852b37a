package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/store"
)

// The request and response types live in package kv (shared with the peer
// protocol and the client doors); these aliases keep them at hand here.
type (
	// Error is a request failure with the HTTP status it maps to (kv.Error).
	Error = kv.Error
	// Item is a value read from the cache (kv.Item).
	Item = kv.Item
	// Mutation is one write of a key (kv.Mutation).
	Mutation = kv.Mutation
	// WriteResult tells what a mutation did (kv.WriteResult).
	WriteResult = kv.WriteResult
	// Source says which tier answered a read (kv.Source).
	Source = kv.Source
)

// ErrNotFound is returned by Get for a key that is absent, expired or deleted.
var ErrNotFound = kv.ErrNotFound

// Read sources, reported in the X-Peercache-Source header.
const (
	SourceLocal   = kv.SourceLocal
	SourceShard   = kv.SourceShard
	SourceNear    = kv.SourceNear
	SourcePeer    = kv.SourcePeer
	SourceOrigin  = kv.SourceOrigin
	SourceHandoff = kv.SourceHandoff
	SourceReplica = kv.SourceReplica
)

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

func retryable(status int, format string, args ...any) *Error {
	e := errorf(status, format, args...)
	e.Retryable = true
	return e
}

func (n *Node) checkKey(key string) *Error {
	if key == "" {
		return errorf(http.StatusBadRequest, "key must not be empty")
	}
	if len(key) > n.cfg.MaxKeyBytes {
		return errorf(http.StatusBadRequest, "key is %d bytes; the limit is %d", len(key), n.cfg.MaxKeyBytes)
	}
	return nil
}

// CheckKey returns an *Error (400) for a key the node refuses: empty, or
// longer than MaxKeyBytes. A door calls it before it reads the value.
func (n *Node) CheckKey(key string) error {
	if e := n.checkKey(key); e != nil {
		return e
	}
	return nil
}

func (n *Node) checkTTL(ttl time.Duration) *Error {
	if ttl < 0 {
		return errorf(http.StatusBadRequest, "ttl must not be negative")
	}
	if ttl > 0 && ttl < time.Millisecond {
		return errorf(http.StatusBadRequest, "ttl must be at least 1ms")
	}
	if n.cfg.MaxTTL > 0 && ttl > n.cfg.MaxTTL {
		return errorf(http.StatusBadRequest, "ttl %s exceeds the limit of %s", ttl, n.cfg.MaxTTL)
	}
	return nil
}

// Get reads key through the cluster: from this node's shard when it owns the
// key, else from the owner. A missing key returns ErrNotFound.
func (n *Node) Get(ctx context.Context, key string) (Item, error) {
	it, err := n.get(ctx, key, false)
	if err != nil {
		return Item{}, err
	}
	return it, nil
}

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

// get implements reads. forwarded marks a request that came over the peer
// API: it is answered here or refused with 421, never forwarded again.
func (n *Node) get(ctx context.Context, key string, forwarded bool) (Item, error) {
	if err := n.checkKey(key); err != nil {
		return Item{}, err
	}
	ep := n.tierEpoch() // before the view (tier.go)
	v := n.views.cur.Load()
	owner := v.ring.Owner(key)
	if !forwarded && owner != "" && owner != n.cfg.Name {
		if it, ok := n.nearGet(key, owner); ok { // near cache (nearcache.go)
			return it, nil
		}
	}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		if owner == "" {
			return Item{}, retryable(http.StatusServiceUnavailable, "no active member owns keys yet (the cluster is forming)")
		}
		if owner == n.cfg.Name {
			return n.ownerGet(ctx, v, key)
		}
		if forwarded {
			return Item{}, n.notOwner(owner)
		}
		it, err := n.forwardGet(ctx, v, owner, key, ep) // peerGet, collapsed, near-cached (nearcache.go)
		var e *Error
		if !errors.As(err, &e) || !retryMore(ctx, start) {
			return it, err
		}
		switch {
		case e.Status == http.StatusMisdirectedRequest:
			v, owner = n.retarget(ctx, v, owner, e.Owner, key, attempt)
		case e.Unreachable:
			if n.cfg.Replicas > 1 {
				if rit, rerr, ok := n.readFromReplicas(ctx, v, owner, key); ok {
					return rit, rerr
				}
			}
			var ok bool
			if v, owner, ok = n.awaitNewOwner(ctx, v, owner, key); !ok {
				return it, err
			}
		default:
			return it, err
		}
	}
}

// notOwner refuses a forwarded request for a key this node does not own
// (421): views of the ring differ for a moment; owner is this node's.
func (n *Node) notOwner(owner string) *Error {
	return &Error{Status: http.StatusMisdirectedRequest, Owner: owner, Retryable: true,
		Message: fmt.Sprintf("this node does not own the key; %s does in its view", owner)}
}

// forwardRetryBudget bounds how long a node keeps re-targeting a forwarded
// request that was refused (421) or found its owner unreachable while views
// of the ring differ; gossip settles such differences well within it.
const forwardRetryBudget = 2 * time.Second

// retryMore reports whether another forwarding attempt fits the budget.
func retryMore(ctx context.Context, start time.Time) bool {
	return ctx.Err() == nil && time.Since(start) < forwardRetryBudget
}

// retarget picks where to retry after the owner refused a forwarded request
// (421) because its view of the ring differs from this node's. First the
// owner the refuser named, if that is another known member; after that, the
// owner in this node's own view, once it changes or after a short backoff
// (the refuser's view may be the stale one and catch up meanwhile).
func (n *Node) retarget(ctx context.Context, v *view, refused, hint, key string, attempt int) (*view, string) {
	n.metrics.misdirected.Inc()
	n.log.Debug("forward refused: views differ", "key", key, "refused_by", refused, "their_owner", hint, "attempt", attempt, "ring_version", v.version)
	if attempt == 0 && hint != "" && hint != refused && hint != n.cfg.Name {
		if _, ok := v.members[hint]; ok {
			return v, hint
		}
	}
	wait := min(time.Duration(25<<attempt)*time.Millisecond, 400*time.Millisecond)
	nv, _ := n.waitView(ctx, wait, func(nv *view) bool { return nv.version != v.version })
	return nv, nv.ring.Owner(key)
}

// awaitNewOwner waits briefly, after the owner could not be reached, for
// this node's view to name another owner (the unreachable one left or was
// declared dead). It is safe to retry a write there: the first attempt got
// no answer, and versions order the two if both landed.
func (n *Node) awaitNewOwner(ctx context.Context, v *view, failed, key string) (*view, string, bool) {
	nv, ok := n.waitView(ctx, 500*time.Millisecond, func(nv *view) bool {
		return nv.version != v.version && nv.ring.Owner(key) != failed
	})
	if !ok {
		return v, failed, false
	}
	return nv, nv.ring.Owner(key), true
}

// waitView polls this node's view until done accepts it, for at most d (or
// until ctx ends). It returns the last view seen and whether done accepted it.
func (n *Node) waitView(ctx context.Context, d time.Duration, done func(*view) bool) (*view, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		nv := n.views.cur.Load()
		if done(nv) {
			return nv, true
		}
		select {
		case <-ctx.Done():
			return nv, false
		case <-deadline.C:
			return nv, false
		case <-tick.C:
		}
	}
}

func (n *Node) ownerGet(ctx context.Context, v *view, key string) (Item, error) {
	return n.tieredOwnerGet(ctx, v, key) // local tier, singleflight, loader (tier.go)
}

// shardGet reads key from this node's shard (and, during a migration,
// from its previous owner).
func (n *Node) shardGet(ctx context.Context, v *view, key string) (Item, error) {
	e, found, err := n.st.Get(ctx, key)
	if err != nil {
		return Item{}, retryable(http.StatusServiceUnavailable, "shard read failed: %v", err)
	}
	src := SourceShard
	if !found && n.handoffActive(v) {
		if he, ok := n.handoffGet(ctx, v, key); ok {
			e, found, src = he, true, SourceHandoff
		} else {
			// The previous owner may have handed the key over (and deleted
			// its copy after this shard acknowledged it) between the first
			// read and the handoff read: look again.
			if e, found, err = n.st.Get(ctx, key); err != nil {
				return Item{}, retryable(http.StatusServiceUnavailable, "shard read failed: %v", err)
			}
		}
	}
	if !found || e.Tombstone {
		return Item{}, ErrNotFound
	}
	return itemOf(e, n.cfg.Name, src), nil
}

func itemOf(e store.Entry, owner string, src Source) Item {
	it := Item{Key: e.Key, Value: e.Value, Version: e.Version, Owner: owner, Source: src}
	if e.ExpireAt != 0 {
		it.ExpireAt = time.UnixMilli(e.ExpireAt)
	}
	return it
}

// handoffActive reports whether a key this node owns may still sit on its
// previous owner: shortly after a ring change, or while any member migrates.
func (n *Node) handoffActive(v *view) bool {
	if r := n.shard.resetAt.Load(); r != 0 && time.Since(time.Unix(0, r)) < n.cfg.HandoffWindow {
		return true // the shard came back after an outage, maybe empty
	}
	return len(v.prev) > 0 && (v.migrating || time.Since(v.changedAt) < n.cfg.HandoffWindow)
}

// handoffCandidates bounds how many members a handoff read asks.
const handoffCandidates = 3

// previousOwners lists the other members that may still hold key from
// before the latest ring changes: its owner in each earlier ring this node
// saw (newest first), then the next members in the key's rendezvous order,
// which is where the key lived before members that joined recently (even
// ones that joined before this node did, whose earlier rings it never saw).
func (n *Node) previousOwners(v *view, key string) []string {
	var out []string
	add := func(o string) {
		if o != "" && o != n.cfg.Name && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	for _, r := range v.prev {
		add(r.Owner(key))
	}
	var buf [handoffCandidates + 1]string
	for _, o := range v.ring.AppendOwners(buf[:0], key, handoffCandidates+1) {
		if len(out) >= handoffCandidates {
			break
		}
		add(o)
	}
	return out
}

// handoffGet asks the key's previous owners (newest ring first) for their
// copy and imports it into this node's shard (only if newer).
func (n *Node) handoffGet(ctx context.Context, v *view, key string) (store.Entry, bool) {
	for _, prev := range n.previousOwners(v, key) {
		if _, ok := v.members[prev]; !ok {
			continue // gone: nothing to ask
		}
		e, found, err := n.peerHandoff(ctx, v, prev, key)
		if err != nil {
			n.metrics.handoff.WithLabelValues("error").Inc()
			n.log.Debug("handoff read failed", "peer", prev, "key", key, "err", err)
			continue
		}
		if !found {
			n.metrics.handoff.WithLabelValues("miss").Inc()
			continue
		}
		n.metrics.handoff.WithLabelValues("hit").Inc()
		if e.Version > n.versionLimit() {
			n.futureVersions(prev, 1, []store.Entry{e})
			continue
		}
		n.clock.Observe(e.Version)
		if _, err := n.st.Put(ctx, []store.Entry{e}); err != nil {
			n.log.Warn("storing a handed-off key failed", "key", key, "err", err)
		}
		return e, true
	}
	n.log.Debug("handoff miss", "key", key, "asked", n.previousOwners(v, key), "ring_version", v.version)
	return store.Entry{}, false
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
		n.tierInvalidate(key) // this node's near copy goes before the write is acknowledged (tier.go)
		if err == nil || !retryMore(ctx, start) {
			return it, err
		}
		switch {
		case err.Status == http.StatusMisdirectedRequest:
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
	return n.checkWritable(forwarded) // read-only mode (mode.go)
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
				n.ownerPublish(key, e, g) // the local tier, under the key's lock (tier.go)
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
		return n.replicate(ctx, v, es)
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
