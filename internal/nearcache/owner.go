// Package nearcache is the owner's side of the near cache: which members
// fetched which keys recently (and may hold a copy), and the invalidations
// that reach those members when a key changes. The invalidations travel
// through a send function the node passes in (the peer protocol); the
// package knows nothing of the network, the ring or the store. With the
// near cache off, New returns an Owner that tracks nothing and sends
// nothing, so callers need no checks.
package nearcache

import (
	"context"
	"log/slog"
	"time"
)

// Config is what an Owner needs.
type Config struct {
	// Self is this node's name: its own reads are never tracked.
	Self string
	// TTL is how long a member may keep a copy of a value it fetched (the
	// permission a read answers with); 0 or less: near cache off.
	TTL time.Duration
	// MaxKeys bounds the keys tracked at once; beyond it, reads get no
	// permission (so nothing untracked is ever cached).
	MaxKeys int
	// Wait is how long a write waits for the members holding copies to
	// acknowledge their invalidation (0: it does not wait).
	Wait time.Duration
	// Send delivers one batch of invalidated keys to member peer.
	Send func(ctx context.Context, peer string, keys []string) error
	// Member reports whether name is still a member; a sender whose member
	// left stops and forgets its queue.
	Member func(name string) bool
	// Logger receives the debug lines of undelivered batches.
	Logger *slog.Logger
}

// Owner tracks the members that fetched keys from this node and
// invalidates their copies when a key changes.
type Owner interface {
	// Track records that member from is about to read key (call it before
	// the read) and returns how long from may keep a copy (0: none).
	Track(key, from string) time.Duration
	// Invalidate queues key's invalidation for every member that fetched
	// it recently (call it once the change is in the shard). With wait it
	// returns once they acknowledged, or after Config.Wait at most.
	Invalidate(ctx context.Context, key string, wait bool)
	// InvalidateKeys is Invalidate with wait for several keys, waiting
	// Config.Wait at most in all.
	InvalidateKeys(ctx context.Context, keys []string)
	// Copied reports whether some member fetched key recently and may
	// hold a copy (a write of it then waits for their acknowledgement, up
	// to Config.Wait). A member's read may start right after it answers
	// false.
	Copied(key string) bool
	// Received counts invalidations this node received from owners.
	Received(n int)
	// Stats returns the counters.
	Stats() Stats
	// Stop stops the background work (tracker rotation, senders) and
	// waits for it.
	Stop()
}

// Stats are an Owner's counters.
type Stats struct {
	// Sent, Batches: invalidated keys delivered, in how many requests.
	Sent, Batches uint64
	// Received: invalidations received from owners (Received).
	Received uint64
	// Dropped: keys not queued because a member's queue was full.
	Dropped uint64
	// Failed: keys whose batch was not delivered (after one retry).
	Failed uint64
	// WaitTimeouts: writes that stopped waiting after Config.Wait.
	WaitTimeouts uint64
	// Refused: reads answered without permission (the tracker was full).
	Refused uint64
}

// New returns the Owner of cfg: one that tracks and invalidates, or with
// cfg.TTL <= 0 one that does nothing (and counts nothing).
// Its senders stop when ctx ends (or on Stop).
func New(ctx context.Context, cfg Config) Owner {
	if cfg.TTL <= 0 {
		return off{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &owner{cfg: cfg, tr: newTracker(cfg.TTL, cfg.MaxKeys), iv: newInvalidator(ctx, cfg)}
}

type owner struct {
	cfg Config
	tr  *tracker
	iv  *invalidator
}

func (o *owner) Track(key, from string) time.Duration {
	if from == "" || from == o.cfg.Self || !o.tr.track(key, from) {
		return 0
	}
	return o.cfg.TTL
}

func (o *owner) Invalidate(ctx context.Context, key string, wait bool) {
	o.wait(ctx, o.queue(key, wait))
}

func (o *owner) InvalidateKeys(ctx context.Context, keys []string) {
	var done []chan struct{}
	for _, k := range keys {
		done = append(done, o.queue(k, true)...)
	}
	o.wait(ctx, done)
}

// queue queues key's invalidation for every member that fetched it and
// returns, with wait, what to wait for.
func (o *owner) queue(key string, wait bool) []chan struct{} {
	ids := o.tr.take(key)
	if len(ids) == 0 {
		return nil
	}
	wait = wait && o.cfg.Wait > 0
	var done []chan struct{}
	for _, id := range ids {
		var ch chan struct{}
		if wait {
			ch = make(chan struct{})
			done = append(done, ch)
		}
		o.iv.enqueue(o.tr.name(id), key, ch)
	}
	return done
}

// wait waits until every queued invalidation in done was acknowledged, or
// Config.Wait passed.
func (o *owner) wait(ctx context.Context, done []chan struct{}) {
	if len(done) == 0 {
		return
	}
	timer := time.NewTimer(o.cfg.Wait)
	defer timer.Stop()
	for _, ch := range done {
		select {
		case <-ch:
		case <-timer.C:
			o.iv.waitTimeouts.Add(1)
			return
		case <-ctx.Done():
			return
		}
	}
}

func (o *owner) Copied(key string) bool { return o.tr.tracked(key) }

func (o *owner) Received(n int) { o.iv.received.Add(uint64(n)) }

func (o *owner) Stats() Stats {
	iv := o.iv
	return Stats{Sent: iv.sent.Load(), Batches: iv.batches.Load(), Received: iv.received.Load(),
		Dropped: iv.dropped.Load(), Failed: iv.failed.Load(), WaitTimeouts: iv.waitTimeouts.Load(),
		Refused: o.tr.refused.Load()}
}

func (o *owner) Stop() {
	o.iv.stop()
	o.tr.stop()
}

// off is the Owner of a node without a near cache.
type off struct{}

func (off) Track(string, string) time.Duration       { return 0 }
func (off) Invalidate(context.Context, string, bool) {}
func (off) InvalidateKeys(context.Context, []string) {}
func (off) Copied(string) bool                       { return false }
func (off) Received(int)                             {}
func (off) Stats() Stats                             { return Stats{} }
func (off) Stop()                                    {}
