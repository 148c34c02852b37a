package nearcache

import (
	"context"
	"sync"
	"sync/atomic"
)

// Invalidations travel over the peer protocol, not gossip (memberlist
// carries about one 1.4 KB packet per gossip interval, far too little for a
// write stream): one invalidate request with a batch of keys. Each peer has
// a bounded queue and one sender: a batch leaves as soon as the previous one
// was answered (at once when idle), so under load keys batch up by
// themselves ("group commit") without a timer adding latency when idle.
const (
	invalidateBatchMax = 1024  // keys per message
	invalidateQueueMax = 65536 // keys waiting per peer; more are dropped (the near-cache TTL still bounds them)
)

// invalidator sends invalidations to the members that hold near copies:
// one queue and one sender goroutine per member, started on its first key.
type invalidator struct {
	cfg    Config
	mu     sync.Mutex
	peers  map[string]*invalQueue
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sent, batches, received, dropped, failed, waitTimeouts atomic.Uint64
}

type invalQueue struct {
	name    string
	mu      sync.Mutex
	keys    []string
	waiters []invalWaiter
	queued  uint64 // keys ever queued
	flushed uint64 // keys ever taken into a batch
	wake    chan struct{}
}

// invalWaiter is a write waiting until the key it queued as number upto
// has been delivered.
type invalWaiter struct {
	upto uint64
	ch   chan struct{}
}

func newInvalidator(ctx context.Context, cfg Config) *invalidator {
	ctx, cancel := context.WithCancel(ctx)
	return &invalidator{cfg: cfg, peers: map[string]*invalQueue{}, ctx: ctx, cancel: cancel}
}

func (iv *invalidator) stop() {
	iv.mu.Lock() // no sender starts after this (enqueue checks ctx under mu)
	iv.cancel()
	iv.mu.Unlock()
	iv.wg.Wait()
}

// enqueue queues key for peer; done (if not nil) is closed once the batch
// holding it was answered or given up.
func (iv *invalidator) enqueue(peer, key string, done chan struct{}) {
	iv.mu.Lock()
	q := iv.peers[peer]
	if q == nil {
		if iv.ctx.Err() != nil {
			iv.mu.Unlock()
			if done != nil {
				close(done)
			}
			return
		}
		q = &invalQueue{name: peer, wake: make(chan struct{}, 1)}
		iv.peers[peer] = q
		iv.wg.Add(1)
		go iv.run(q)
	}
	iv.mu.Unlock()
	q.mu.Lock()
	if len(q.keys) >= invalidateQueueMax {
		q.mu.Unlock()
		iv.dropped.Add(1)
		if done != nil {
			close(done)
		}
		return
	}
	q.keys = append(q.keys, key)
	q.queued++
	if done != nil {
		q.waiters = append(q.waiters, invalWaiter{upto: q.queued, ch: done})
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run sends q's keys until the node stops or the peer is no member.
func (iv *invalidator) run(q *invalQueue) {
	defer iv.wg.Done()
	for {
		select {
		case <-iv.ctx.Done():
			q.release(^uint64(0))
			return
		case <-q.wake:
		}
		for {
			q.mu.Lock()
			if len(q.keys) == 0 {
				q.mu.Unlock()
				break
			}
			k := min(len(q.keys), invalidateBatchMax)
			batch := q.keys[:k:k]
			q.keys = append([]string(nil), q.keys[k:]...)
			q.flushed += uint64(k)
			upto := q.flushed
			q.mu.Unlock()
			err := iv.send(q.name, batch)
			if err != nil && iv.ctx.Err() == nil {
				err = iv.send(q.name, batch) // one retry: a pooled connection may have gone stale
			}
			if err != nil {
				iv.failed.Add(uint64(len(batch)))
				iv.cfg.Logger.Debug("invalidation batch not delivered", "peer", q.name, "keys", len(batch), "err", err)
			} else {
				iv.sent.Add(uint64(len(batch)))
				iv.batches.Add(1)
			}
			q.release(upto)
			if !iv.cfg.Member(q.name) {
				// Gone: forget the queue (a later fetch from a node of that
				// name starts a new one).
				iv.mu.Lock()
				if iv.peers[q.name] == q {
					delete(iv.peers, q.name)
				}
				iv.mu.Unlock()
				q.mu.Lock()
				q.keys = nil
				q.mu.Unlock()
				q.release(^uint64(0))
				return
			}
		}
	}
}

// release wakes the writers whose keys are in batches up to upto.
func (q *invalQueue) release(upto uint64) {
	q.mu.Lock()
	i := 0
	for ; i < len(q.waiters) && q.waiters[i].upto <= upto; i++ {
		close(q.waiters[i].ch)
	}
	q.waiters = append(q.waiters[:0], q.waiters[i:]...)
	q.mu.Unlock()
}

func (iv *invalidator) send(peer string, keys []string) error {
	return iv.cfg.Send(iv.ctx, peer, keys)
}
