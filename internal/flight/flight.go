// Package flight collapses concurrent calls for the same key into one
// (as golang.org/x/sync/singleflight), with two differences the read path
// needs: the first caller runs the call on its own goroutine (no goroutine
// is started per call, whose stack would grow on every call), and the
// callers that join may stop waiting when their context ends.
package flight

import (
	"context"
	"sync"
)

// Group collapses calls by key. The zero value is ready to use.
type Group[T any] struct {
	mu    sync.Mutex
	calls map[string]*call[T]
}

type call[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// Do runs fn once for all callers that ask for key while it runs: the
// first caller runs it; the others wait for its result (shared is true for
// them) or until their ctx ends (then err is ctx.Err()). fn must not
// depend on the first caller's ctx being alive for the others' sake: give
// it a context of its own.
func (g *Group[T]) Do(ctx context.Context, key string, fn func() (T, error)) (v T, shared bool, err error) {
	g.mu.Lock()
	if c, ok := g.calls[key]; ok {
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.val, true, c.err
		case <-ctx.Done():
			var zero T
			return zero, true, ctx.Err()
		}
	}
	if g.calls == nil {
		g.calls = map[string]*call[T]{}
	}
	c := &call[T]{done: make(chan struct{})}
	g.calls[key] = c
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(c.done)
	}()
	c.val, c.err = fn()
	return c.val, false, c.err
}
