package migrate

import (
	"context"
	"sync"
	"time"
)

// limiter paces sends to at most rate keys per second. Each call reserves
// the next n/rate seconds of a virtual schedule and waits for the start of
// its slot, so over any span T at most rate*T + one batch is sent. The
// schedule does not bank unused time: after an idle spell the next batch
// starts at once, not in a burst of several.
type limiter struct {
	rate float64 // keys per second; 0 = unlimited

	mu   sync.Mutex
	next time.Time // when the next reservation may start
}

func newLimiter(rate float64) *limiter {
	return &limiter{rate: rate}
}

// wait blocks until n keys may be sent or ctx is done.
func (l *limiter) wait(ctx context.Context, n int) error {
	if l.rate <= 0 || n <= 0 {
		return ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	at := l.next
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	l.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	return sleep(ctx, d)
}
