package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/peercache/peercache/store"
)

// Error is a request failure with the HTTP status it maps to. Library calls
// (Get, Set, Delete) return it; the HTTP API renders it as JSON
// {"error": Message} (plus "owner" when a peer names the owner it believes in).
type Error struct {
	Status    int
	Message   string
	Owner     string // for 421: the owner in the answering node's view
	Retryable bool   // the same request may succeed shortly (ring changing, owner unreachable)
}

func (e *Error) Error() string { return e.Message }

// ErrNotFound is returned by Get for a key that is absent, expired or deleted.
var ErrNotFound = errors.New("node: key not found")

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

func retryable(status int, format string, args ...any) *Error {
	e := errorf(status, format, args...)
	e.Retryable = true
	return e
}

// Source says which tier answered a read.
type Source string

// Read sources, reported in the X-Peercache-Source header.
const (
	SourceShard   Source = "shard"   // this node's shard (it owns the key)
	SourcePeer    Source = "peer"    // forwarded to the owner
	SourceHandoff Source = "handoff" // the previous owner, while the key migrates
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

func (n *Node) checkKey(key string) *Error {
	if key == "" {
		return errorf(http.StatusBadRequest, "key must not be empty")
	}
	if len(key) > n.cfg.MaxKeyBytes {
		return errorf(http.StatusBadRequest, "key is %d bytes; the limit is %d", len(key), n.cfg.MaxKeyBytes)
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
	_, err := n.write(ctx, key, value, ttl, false, false)
	return errOrNil(err)
}

// Delete removes key through its owner (deleting a missing key succeeds).
func (n *Node) Delete(ctx context.Context, key string) error {
	_, err := n.write(ctx, key, nil, 0, true, false)
	return errOrNil(err)
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
	v := n.view.Load()
	owner := v.ring.Owner(key)
	for attempt := 0; ; attempt++ {
		if owner == "" {
			return Item{}, retryable(http.StatusServiceUnavailable, "no active member owns keys yet (the cluster is forming)")
		}
		if owner == n.cfg.Name {
			return n.ownerGet(ctx, v, key)
		}
		if forwarded {
			return Item{}, &Error{Status: http.StatusMisdirectedRequest, Owner: owner, Retryable: true,
				Message: fmt.Sprintf("this node does not own the key; %s does in its view", owner)}
		}
		it, err := n.peerGet(ctx, v, owner, key)
		var e *Error
		if attempt >= maxForwardAttempts-1 || !errors.As(err, &e) || e.Status != http.StatusMisdirectedRequest {
			return it, err
		}
		v, owner = n.retarget(ctx, v, owner, e.Owner, key, attempt)
	}
}

// maxForwardAttempts bounds how often a node re-targets a forwarded request
// that was refused with 421 while views of the ring differ.
const maxForwardAttempts = 4

// retarget picks where to retry after the owner refused a forwarded request
// (421) because its view of the ring differs from this node's. First the
// owner the refuser named, if that is another known member; after that, the
// owner in this node's view once it changes (waiting a little longer each
// time for gossip to spread the change).
func (n *Node) retarget(ctx context.Context, v *view, refused, hint, key string, attempt int) (*view, string) {
	n.metrics.misdirected.Inc()
	if attempt == 0 && hint != "" && hint != refused && hint != n.cfg.Name {
		if _, ok := v.members[hint]; ok {
			return v, hint
		}
	}
	wait := time.Duration(100<<attempt) * time.Millisecond
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		nv := n.view.Load()
		if nv.version != v.version {
			return nv, nv.ring.Owner(key)
		}
		select {
		case <-ctx.Done():
			return nv, nv.ring.Owner(key)
		case <-deadline.C:
			if hint != "" && hint != n.cfg.Name {
				if _, ok := nv.members[hint]; ok {
					return nv, hint
				}
			}
			return nv, nv.ring.Owner(key)
		case <-tick.C:
		}
	}
}

func (n *Node) ownerGet(ctx context.Context, v *view, key string) (Item, error) {
	e, found, err := n.st.Get(ctx, key)
	if err != nil {
		return Item{}, retryable(http.StatusServiceUnavailable, "shard read failed: %v", err)
	}
	src := SourceShard
	if !found && n.handoffActive(v) {
		if he, ok := n.handoffGet(ctx, v, key); ok {
			e, found, src = he, true, SourceHandoff
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
	return len(v.prev) > 0 && (v.migrating || time.Since(v.changedAt) < n.cfg.HandoffWindow)
}

// handoffGet asks the key's previous owners (newest ring first) for their
// copy and imports it into this node's shard (only if newer).
func (n *Node) handoffGet(ctx context.Context, v *view, key string) (store.Entry, bool) {
	tried := map[string]bool{n.cfg.Name: true}
	for _, r := range v.prev {
		prev := r.Owner(key)
		if prev == "" || tried[prev] {
			continue
		}
		tried[prev] = true
		m, ok := v.members[prev]
		if !ok {
			continue // gone: nothing to ask
		}
		e, found, err := n.peerHandoff(ctx, m.Meta.HTTPAddr, key)
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
		n.clock.Observe(e.Version)
		if _, err := n.st.Put(ctx, []store.Entry{e}); err != nil {
			n.log.Warn("storing a handed-off key failed", "key", key, "err", err)
		}
		return e, true
	}
	return store.Entry{}, false
}

// write implements PUT and DELETE: the owner stamps and stores, everyone
// else forwards to the owner.
func (n *Node) write(ctx context.Context, key string, value []byte, ttl time.Duration, del, forwarded bool) (Item, *Error) {
	if err := n.checkKey(key); err != nil {
		return Item{}, err
	}
	if !del {
		if err := n.checkTTL(ttl); err != nil {
			return Item{}, err
		}
		if len(value) > n.cfg.MaxValueBytes {
			return Item{}, errorf(http.StatusRequestEntityTooLarge, "value is %d bytes; the limit is %d", len(value), n.cfg.MaxValueBytes)
		}
	}
	v := n.view.Load()
	owner := v.ring.Owner(key)
	for attempt := 0; ; attempt++ {
		if owner == "" {
			return Item{}, retryable(http.StatusServiceUnavailable, "no active member owns keys yet (the cluster is forming)")
		}
		if owner == n.cfg.Name {
			return n.ownerWrite(ctx, key, value, ttl, del)
		}
		if forwarded {
			return Item{}, &Error{Status: http.StatusMisdirectedRequest, Owner: owner, Retryable: true,
				Message: fmt.Sprintf("this node does not own the key; %s does in its view", owner)}
		}
		it, err := n.peerWrite(ctx, v, owner, key, value, ttl, del)
		if attempt >= maxForwardAttempts-1 || err == nil || err.Status != http.StatusMisdirectedRequest {
			return it, err
		}
		v, owner = n.retarget(ctx, v, owner, err.Owner, key, attempt)
	}
}

func (n *Node) ownerWrite(ctx context.Context, key string, value []byte, ttl time.Duration, del bool) (Item, *Error) {
	e := store.Entry{Key: key, Value: value, Tombstone: del}
	now := time.Now()
	switch {
	case del:
		e.Value = nil
		e.ExpireAt = now.Add(n.cfg.TombstoneTTL).UnixMilli()
	case ttl > 0:
		e.ExpireAt = now.Add(ttl).UnixMilli()
	}
	for attempt := 0; attempt < 3; attempt++ {
		e.Version = n.clock.Now()
		out, err := n.st.Put(ctx, []store.Entry{e})
		if err != nil {
			return Item{}, retryable(http.StatusServiceUnavailable, "shard write failed: %v", err)
		}
		if out[0] != store.Stale {
			if out[0] == store.Applied && n.handoffActive(n.view.Load()) {
				n.writeThroughPrevious(ctx, e)
			}
			return itemOf(e, n.cfg.Name, SourceShard), nil
		}
		// The shard holds a newer version (stamped by another node's clock,
		// e.g. imported during a migration): move past it and retry.
		if cur, found, err := n.st.Get(ctx, key); err == nil && found {
			n.clock.Observe(cur.Version)
		}
	}
	return Item{}, retryable(http.StatusServiceUnavailable, "write lost a race with newer versions three times; retry")
}

// writeThroughPrevious copies a fresh write to the key's previous owners
// while a ring change settles. A previous owner that has not learned of the
// change yet still believes it owns the key and serves reads from its shard;
// the copy (an ordinary versioned import, applied only if newer and only if
// the receiver believes it owns the key) keeps those reads from returning
// the value this write replaced. Owners that already know the new ring
// refuse the import, which is fine: they forward reads instead. Failures are
// ignored: they only widen the stale-read window, never lose the write.
func (n *Node) writeThroughPrevious(ctx context.Context, e store.Entry) {
	v := n.view.Load()
	tried := map[string]bool{n.cfg.Name: true}
	for _, r := range v.prev {
		p := r.Owner(e.Key)
		if p == "" || tried[p] {
			continue
		}
		tried[p] = true
		if _, ok := v.members[p]; !ok {
			continue
		}
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
	}
}
