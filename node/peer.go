package node

import (
	"context"
	"net/http"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/peer/member"
	"github.com/peercache/peercache/store"
)

// The node's side of the peer protocol. Package peer carries requests
// between members over their peer ports (authenticated, multiplexed) and
// addresses them by name (member.Caller: addresses, timeouts, errors); the
// node decides whom to ask and what, and how to answer (peerHandler, the
// server side).

// initPeerClient builds the peer client from cfg and the members it
// addresses by name, in the current view unless a call names a view of
// its own (called by New).
func (n *Node) initPeerClient(cfg peer.ClientConfig) error {
	c, err := peer.NewClient(cfg)
	if err != nil {
		return err
	}
	n.peer.client = c
	n.peer.members = member.New(member.Config{
		Client:           c,
		Current:          func() member.Directory { return n.views.cur.Load() },
		Timeout:          n.cfg.Peer.Timeout,
		Leaving:          func() bool { return n.phase().leaving() },
		Unreachable:      n.metrics.PeerErrors,
		ForwardedGets:    n.metrics.FwdGet,
		ForwardedPuts:    n.metrics.FwdPut,
		ForwardedDeletes: n.metrics.FwdDelete,
		ImportsSent:      n.metrics.ImportsSent,
	})
	return nil
}

// member.Caller ships migration's batches to the peers' imports.
var _ migrate.Transport = (*member.Caller)(nil)

// ---- server side ----

// peerHandler answers the peer requests of other members (peer.Handler).
type peerHandler struct{ n *Node }

var _ peer.AtOnceHandler = peerHandler{}

// AnswersAtOnce lets the peer server answer the reads and writes this node
// carries out in place on the goroutine that reads their connection
// (Node.AnswersAtOnce).
func (h peerHandler) AnswersAtOnce(key string, write bool) bool {
	return !h.n.peer.refuse.Load() && h.n.AnswersAtOnce(key, write)
}

// ImportsAtOnce lets the peer server write small imports (a replica's copy
// of a write) on the goroutine that reads their connection when the shard
// is this process's: an import waits on nothing else (migrate.Receiver).
func (h peerHandler) ImportsAtOnce() bool {
	n := h.n
	return !n.peer.refuse.Load() && n.shard.inProcess && !n.shard.lost.Load()
}

// Admit accepts current members (the view may lag a fresh join by a
// moment: memberlist's own list is asked too).
func (h peerHandler) Admit(from string) bool {
	n := h.n
	if from == "" || from == n.cfg.Name {
		return false
	}
	if _, ok := n.views.cur.Load().Members[from]; ok {
		return true
	}
	for _, m := range n.ml.Members() {
		if m.Name == from {
			return true
		}
	}
	return false
}

// refused is the fault-injection check of tests (peerSide.refuse).
func (h peerHandler) refused() error {
	if h.n.peer.refuse.Load() {
		return kv.Retryable(http.StatusServiceUnavailable, "peer API unavailable (fault injection)")
	}
	return nil
}

// Get serves a forwarded read: this node answers it or refuses it with
// 421, never forwards it again. The reader is recorded before the read, so
// that a change after it reaches the copy the reader may keep.
func (h peerHandler) Get(ctx context.Context, from, key string, replica bool) (Item, time.Duration, error) {
	n := h.n
	if err := h.refused(); err != nil {
		return Item{}, 0, err
	}
	if replica {
		it, err := n.replicaGet(ctx, n.views.cur.Load(), key)
		return it, 0, err
	}
	nearTTL := n.reads.near.Track(key, from) // before the read
	it, err := n.serveForwardedGet(ctx, key)
	if err != nil {
		return Item{}, 0, err
	}
	return it, nearTTL, nil
}

// Write serves a forwarded write (never forwarded again).
func (h peerHandler) Write(ctx context.Context, from, key string, m Mutation) (WriteResult, error) {
	if err := h.refused(); err != nil {
		return WriteResult{}, err
	}
	if ctx.Err() != nil {
		h.n.metrics.ExpiredWrites.Inc()
		return WriteResult{}, kv.Retryable(http.StatusServiceUnavailable, "forwarded write arrived after its deadline; not applied")
	}
	res, err := h.n.serveForwardedWrite(ctx, key, m)
	if err != nil {
		return WriteResult{}, err
	}
	return res, nil
}

// Handoff serves this node's own copy of key, whoever owns it now.
func (h peerHandler) Handoff(ctx context.Context, from, key string) (store.Entry, bool, error) {
	if err := h.refused(); err != nil {
		return store.Entry{}, false, err
	}
	if e := h.n.checkKey(key); e != nil {
		return store.Entry{}, false, e
	}
	en, found, err := h.n.st.Get(ctx, key)
	if err != nil {
		return store.Entry{}, false, kv.Retryable(http.StatusServiceUnavailable, "shard read failed: %w", err)
	}
	return en, found, nil
}

// Scan serves one step of another member's scan of the whole cluster:
// the live keys this node owns (ScanKeys).
func (h peerHandler) Scan(ctx context.Context, from string, cursor uint64, count int) ([]string, uint64, error) {
	if err := h.refused(); err != nil {
		return nil, 0, err
	}
	if cursor >= store.ScanCursorLimit {
		return nil, 0, kv.Errorf(http.StatusBadRequest, "scan cursor out of range")
	}
	return h.n.ScanKeys(ctx, cursor, count)
}

// Import writes migrated and replicated entries (migrate.Receiver: only
// keys this node owns, only if newer, only versions not too far ahead).
func (h peerHandler) Import(ctx context.Context, from string, entries []store.Entry) ([]migrate.ImportResult, error) {
	if err := h.refused(); err != nil {
		return nil, err
	}
	res, err := h.n.writes.imports.Import(ctx, from, entries)
	if err != nil {
		return nil, kv.Retryable(http.StatusServiceUnavailable, "shard write failed: %w", err)
	}
	return res, nil
}

// Invalidate drops this node's copies of the keys an owner changed.
func (h peerHandler) Invalidate(ctx context.Context, from string, keys []string) {
	n := h.n
	if h.refused() != nil {
		return
	}
	for _, k := range keys {
		n.reads.tier.Invalidate(k)
	}
	n.reads.near.Received(len(keys))
}
