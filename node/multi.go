package node

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
)

// The path of a change of several keys of one slot (MSETNX, RENAME,
// RENAMENX, COPY), top to bottom: WriteMulti -> route on the slot (its
// owner here, or a forward to it) -> ownerMulti (under every key's lock:
// read each key, decide, stamp and store each write, destination before
// source) -> spread, as for any write. A change another node forwarded
// enters at peerHandler.Multi. All keys hash to one slot, so one owner
// holds them all in every view of the ring; a change of keys of several
// slots is refused (400), as Redis Cluster refuses it (CROSSSLOT).

// WriteMulti carries out m atomically at the owner of its keys' slot.
func (n *Node) WriteMulti(ctx context.Context, m kv.Multi) (kv.MultiResult, error) {
	if err := n.checkMulti(m, false); err != nil {
		return kv.MultiResult{}, err
	}
	return route(ctx, n, n.views.cur.Load(), m.Keys[0],
		func(*view) (kv.MultiResult, error) { return n.ownerMulti(ctx, m) },
		func(v *view, owner string) (kv.MultiResult, error) {
			res, err := n.peer.members.Multi(ctx, v, owner, m)
			for _, k := range m.Keys { // near copies go before the change is acknowledged
				n.reads.tier.Invalidate(k)
			}
			return res, err
		}, nil)
}

// Multi serves a change another node forwarded: carried out here if this
// node owns the keys' slot in its view, else refused (421), never
// forwarded again.
func (h peerHandler) Multi(ctx context.Context, from string, m kv.Multi) (kv.MultiResult, error) {
	n := h.n
	if err := h.refused(); err != nil {
		return kv.MultiResult{}, err
	}
	if ctx.Err() != nil {
		n.metrics.ExpiredWrites.Inc()
		return kv.MultiResult{}, kv.Retryable(http.StatusServiceUnavailable, "forwarded write arrived after its deadline; not applied")
	}
	if err := n.checkMulti(m, true); err != nil {
		return kv.MultiResult{}, err
	}
	if _, err := n.forwardedView(m.Keys[0]); err != nil {
		return kv.MultiResult{}, err
	}
	return n.ownerMulti(ctx, m)
}

// checkMulti refuses a change that can never be carried out: unknown
// kind, wrong number of keys or values, a bad key or value, keys of
// several slots, a copy onto itself, or a node or cluster in read-only
// mode.
func (n *Node) checkMulti(m kv.Multi, forwarded bool) *Error {
	switch {
	case m.Kind == 0 || m.Kind >= kv.NumMultiKinds:
		return kv.Errorf(http.StatusBadRequest, "unknown multi-key change %d", m.Kind)
	case m.Pairs() && (len(m.Keys) != 2 || len(m.Values) != 0):
		return kv.Errorf(http.StatusBadRequest, "a rename or copy takes a source and a destination key")
	case !m.Pairs() && (len(m.Keys) == 0 || len(m.Values) != len(m.Keys)):
		return kv.Errorf(http.StatusBadRequest, "a multi-key set takes one value per key")
	case (m.Kind == kv.MultiCopy || m.Kind == kv.MultiCopyReplace) && m.Keys[0] == m.Keys[1]:
		return kv.Errorf(http.StatusBadRequest, "source and destination objects are the same")
	}
	slot := ring.Slot(m.Keys[0])
	for i, k := range m.Keys {
		if err := n.checkKey(k); err != nil {
			return err
		}
		if ring.Slot(k) != slot {
			return kv.Errorf(http.StatusBadRequest, "the keys of one multi-key change must hash to one slot (give them a common {hash tag})")
		}
		if !m.Pairs() && len(m.Values[i]) > n.cfg.Limits.MaxValueBytes {
			return tooLarge(n.cfg.Limits.MaxValueBytes)
		}
	}
	return n.ops.mode.CheckWritable(forwarded)
}

// ownerMulti carries out m as the owner of its keys, under all their locks
// (taken in one order, so that two changes never wait for each other).
// The destination is written before the source is deleted: a shard
// failure between the two leaves both keys, never neither.
func (n *Node) ownerMulti(ctx context.Context, m kv.Multi) (kv.MultiResult, error) {
	defer n.lockKeys(m.Keys)()

	cur := make([]store.Entry, len(m.Keys))
	live := make([]bool, len(m.Keys))
	for i, k := range m.Keys {
		if i > 0 && k == m.Keys[0] && m.Pairs() {
			cur[i], live[i] = cur[0], live[0]
			continue
		}
		var err *Error
		// strict: a source or a condition decided without a copy in
		// transit would be wrong, and a retry costs little.
		if cur[i], live[i], err = n.current(ctx, k, true); err != nil {
			return kv.MultiResult{}, err
		}
	}

	var writes []store.Entry
	res := kv.MultiResult{SourceExisted: m.Pairs() && live[0]}
	now := time.Now()
	switch m.Kind {
	case kv.MultiMSetNX:
		if slices.Contains(live, true) {
			return res, nil
		}
		for i, k := range m.Keys {
			if slices.Contains(m.Keys[i+1:], k) {
				continue // named again later: the last value wins, as in Redis
			}
			v := m.Values[i]
			if v == nil {
				v = []byte{}
			}
			writes = append(writes, store.Entry{Key: k, Value: v})
		}
	case kv.MultiRename, kv.MultiRenameNX:
		src, dst := m.Keys[0], m.Keys[1]
		switch {
		case !live[0]:
			return res, nil // the door answers "no such key"
		case src == dst:
			res.Applied = m.Kind == kv.MultiRename // RENAME answers OK, RENAMENX 0
			return res, nil
		case m.Kind == kv.MultiRenameNX && live[1]:
			return res, nil
		}
		writes = append(writes,
			store.Entry{Key: dst, Value: cur[0].Value, ExpireAt: cur[0].ExpireAt},
			store.Entry{Key: src, Tombstone: true, ExpireAt: now.Add(n.cfg.Migration.TombstoneTTL).UnixMilli()})
	case kv.MultiCopy, kv.MultiCopyReplace:
		if !live[0] || (m.Kind == kv.MultiCopy && live[1]) {
			return res, nil
		}
		writes = append(writes, store.Entry{Key: m.Keys[1], Value: cur[0].Value, ExpireAt: cur[0].ExpireAt})
	}
	if err := ctx.Err(); err != nil {
		// As ownerApply: a change its sender gave up on is not applied late.
		return kv.MultiResult{}, kv.Retryable(http.StatusServiceUnavailable, "write expired before it could be applied: %w", err)
	}
	written := writes[:0:0]
	for i := range writes {
		if writes[i].Value == nil && !writes[i].Tombstone {
			writes[i].Value = []byte{}
		}
		ok, err := n.putOwned(ctx, &writes[i])
		if err != nil {
			n.spread(ctx, written, true) // what was written is made known even so
			return kv.MultiResult{}, err
		}
		if ok {
			written = append(written, writes[i])
		}
	}
	for _, err := range n.spread(ctx, written, true) {
		if err != nil {
			return kv.MultiResult{}, err
		}
	}
	res.Applied = true
	return res, nil
}

// lockKeys takes the owner-write locks of keys, in index order and each
// once, and returns the function that releases them.
func (n *Node) lockKeys(keys []string) func() {
	var buf [8]int
	idx := buf[:0]
	for _, k := range keys {
		idx = append(idx, n.keyLockIndex(k))
	}
	idx = n.lockIndexes(idx)
	return func() { n.unlockIndexes(idx) }
}

// lockIndexes takes the owner-write locks of idx (key lock indexes, in any
// order, repeats allowed) in index order and each once: the one order every
// holder of several takes them in. It returns the indexes taken, for
// unlockIndexes.
func (n *Node) lockIndexes(idx []int) []int {
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		n.writes.keyLocks[i].Lock()
	}
	return idx
}

// unlockIndexes releases the locks lockIndexes took.
func (n *Node) unlockIndexes(idx []int) {
	for _, i := range slices.Backward(idx) {
		n.writes.keyLocks[i].Unlock()
	}
}
