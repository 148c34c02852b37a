package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Coalescing (RedisOptions.Coalesce) turns concurrent single-key calls into
// batched round trips: Gets that wait at the same time become one MGET, and
// single-entry Puts one call of the conditional-write script with many keys.
//
// A fixed set of workers per kind takes the first waiting call and whatever
// else is already queued (up to coalesceMaxBatch), makes one round trip and
// answers each caller. Nothing waits for a batch to fill: at low load every
// call goes alone, as without coalescing; under load, calls that arrive while
// the workers are busy share the next round trip. Per-key semantics do not
// change (each key is still read or conditionally written atomically); a
// node's writes of one key are serialised before they reach the store, so a
// batch never holds two writes of a key that depend on each other's order.
const (
	// coalesceWorkers bounds the batches in flight per kind (each holds one
	// connection of the pool while it runs).
	coalesceWorkers = 8
	// coalesceMaxBatch bounds the keys of one batch.
	coalesceMaxBatch = 128
)

type coalescer struct {
	r    *Redis
	gets chan *getCall
	puts chan *putCall
	stop chan struct{}
	wg   sync.WaitGroup
	// timeout bounds one batched round trip (the callers' contexts do not
	// apply to a batch shared by several of them).
	timeout time.Duration

	getPool, putPool sync.Pool
}

type getCall struct {
	key   string
	e     Entry
	found bool
	err   error
	done  chan struct{}
}

type putCall struct {
	e    Entry
	out  Outcome
	err  error
	done chan struct{}
}

func newCoalescer(r *Redis, timeout time.Duration) *coalescer {
	c := &coalescer{
		r:       r,
		gets:    make(chan *getCall, coalesceMaxBatch*coalesceWorkers),
		puts:    make(chan *putCall, coalesceMaxBatch*coalesceWorkers),
		stop:    make(chan struct{}),
		timeout: timeout,
	}
	c.getPool.New = func() any { return &getCall{done: make(chan struct{}, 1)} }
	c.putPool.New = func() any { return &putCall{done: make(chan struct{}, 1)} }
	for i := 0; i < coalesceWorkers; i++ {
		c.wg.Add(2)
		go func() { defer c.wg.Done(); c.getLoop() }()
		go func() { defer c.wg.Done(); c.putLoop() }()
	}
	return c
}

func (c *coalescer) close() {
	close(c.stop)
	c.wg.Wait()
}

// get reads key through the next Get batch.
func (c *coalescer) get(ctx context.Context, key string) (Entry, bool, error) {
	if err := ctx.Err(); err != nil {
		// Checked first: select below picks at random among ready cases.
		return Entry{}, false, fmt.Errorf("store: redis get: %w", err)
	}
	call := c.getPool.Get().(*getCall)
	call.key = key
	select {
	case c.gets <- call:
	case <-ctx.Done():
		c.getPool.Put(call)
		return Entry{}, false, fmt.Errorf("store: redis get: %w", ctx.Err())
	case <-c.stop:
		c.getPool.Put(call)
		return Entry{}, false, fmt.Errorf("store: redis get: %w", ErrClosed)
	}
	select {
	case <-call.done:
		e, found, err := call.e, call.found, call.err
		*call = getCall{done: call.done}
		c.getPool.Put(call)
		return e, found, err
	case <-ctx.Done():
		// The worker still owns call: leave it to the garbage collector.
		return Entry{}, false, fmt.Errorf("store: redis get: %w", ctx.Err())
	case <-c.stop:
		return Entry{}, false, fmt.Errorf("store: redis get: %w", ErrClosed)
	}
}

// put writes one (validated) entry through the next Put batch.
func (c *coalescer) put(ctx context.Context, e Entry) (Outcome, error) {
	if err := ctx.Err(); err != nil {
		// A call whose context has ended writes nothing (select below
		// picks at random among ready cases).
		return 0, fmt.Errorf("store: redis put: %w", err)
	}
	call := c.putPool.Get().(*putCall)
	call.e = e
	select {
	case c.puts <- call:
	case <-ctx.Done():
		c.putPool.Put(call)
		return 0, fmt.Errorf("store: redis put: %w", ctx.Err())
	case <-c.stop:
		c.putPool.Put(call)
		return 0, fmt.Errorf("store: redis put: %w", ErrClosed)
	}
	select {
	case <-call.done:
		out, err := call.out, call.err
		*call = putCall{done: call.done}
		c.putPool.Put(call)
		return out, err
	case <-ctx.Done():
		// The write may still land, as an uncoalesced one whose context
		// ends while the script runs may.
		return 0, fmt.Errorf("store: redis put: %w", ctx.Err())
	case <-c.stop:
		return 0, fmt.Errorf("store: redis put: %w", ErrClosed)
	}
}

// nextBatch waits for the first call on ch, then takes whatever else is
// already queued, up to coalesceMaxBatch; it reuses batch's array. ok is
// false once stop is closed.
func nextBatch[T any](ch <-chan T, stop <-chan struct{}, batch []T) ([]T, bool) {
	select {
	case call := <-ch:
		batch = append(batch[:0], call)
	case <-stop:
		return batch, false
	}
	for len(batch) < coalesceMaxBatch {
		select {
		case call := <-ch:
			batch = append(batch, call)
		default:
			return batch, true
		}
	}
	return batch, true
}

func (c *coalescer) getLoop() {
	batch := make([]*getCall, 0, coalesceMaxBatch)
	keys := make([]string, 0, coalesceMaxBatch)
	for {
		var ok bool
		if batch, ok = nextBatch(c.gets, c.stop, batch); !ok {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		if len(batch) == 1 {
			b := batch[0]
			b.e, b.found, b.err = c.r.getOne(ctx, b.key)
			b.done <- struct{}{}
		} else {
			keys = keys[:0]
			for _, b := range batch {
				keys = append(keys, b.key)
			}
			es, found, err := c.r.getMany(ctx, keys)
			for i, b := range batch {
				if err != nil {
					b.err = fmt.Errorf("store: redis get: %w", err)
				} else {
					b.e, b.found = es[i], found[i]
				}
				b.done <- struct{}{}
			}
		}
		cancel()
		clear(batch)
	}
}

func (c *coalescer) putLoop() {
	batch := make([]*putCall, 0, coalesceMaxBatch)
	entries := make([]Entry, 0, coalesceMaxBatch)
	for {
		var ok bool
		if batch, ok = nextBatch(c.puts, c.stop, batch); !ok {
			return
		}
		entries = entries[:0]
		for _, b := range batch {
			entries = append(entries, b.e)
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		outs, err := c.r.putValidated(ctx, entries)
		cancel()
		for i, b := range batch {
			if err != nil {
				b.err = err
			} else {
				b.out = outs[i]
			}
			b.done <- struct{}{}
		}
		clear(batch)
		clear(entries)
	}
}
