package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peercache/peercache/internal/testredis"
	"github.com/peercache/peercache/store"
)

// TestRedisCoalesceConcurrent: many goroutines writing and reading their own
// keys through a coalescing store see exactly their own writes, and the
// calls really were batched (Redis counts MGET calls and fewer script calls
// than writes).
func TestRedisCoalesceConcurrent(t *testing.T) {
	srv := testredis.Start(t)
	r := newRedis(t, store.RedisOptions{Addr: srv.Addr(), Coalesce: true})
	ctx := context.Background()
	const workers, rounds = 64, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			key := fmt.Sprintf("w%d", w)
			for i := 1; i <= rounds; i++ {
				v := []byte(fmt.Sprintf("%s-%d", key, i))
				out, err := r.Put(ctx, []store.Entry{{Key: key, Value: v, Version: uint64(i)}})
				if err != nil || out[0] != store.Applied {
					errs <- fmt.Errorf("put %s #%d: %v %v", key, i, out, err)
					return
				}
				// An older version is refused, inside a batch as alone.
				if i > 1 {
					if out, err := r.Put(ctx, []store.Entry{{Key: key, Value: []byte("old"), Version: uint64(i - 1)}}); err != nil || out[0] != store.Stale {
						errs <- fmt.Errorf("stale put %s #%d: %v %v", key, i, out, err)
						return
					}
				}
				e, found, err := r.Get(ctx, key)
				if err != nil || !found || string(e.Value) != string(v) || e.Version != uint64(i) {
					errs <- fmt.Errorf("get %s #%d: %q v%d %v %v", key, i, e.Value, e.Version, found, err)
					return
				}
				if _, found, err := r.Get(ctx, key+"-missing"); found || err != nil {
					errs <- fmt.Errorf("get missing: %v %v", found, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	stats := srv.Client().Info(ctx, "commandstats").Val()
	if !strings.Contains(stats, "cmdstat_mget:calls=") {
		t.Fatalf("no MGET: concurrent Gets were not batched\n%s", stats)
	}
	calls := 0
	for _, line := range strings.Split(stats, "\n") {
		if strings.HasPrefix(line, "cmdstat_evalsha:calls=") {
			fmt.Sscanf(strings.TrimPrefix(line, "cmdstat_evalsha:calls="), "%d", &calls)
		}
	}
	if writes := workers * (2*rounds - 1); calls == 0 || calls >= writes {
		t.Fatalf("%d script calls for %d writes: Puts were not batched\n%s", calls, writes, stats)
	}
}

// TestRedisCoalesceCancelAndClose: a call whose context ends returns at
// once, and Close answers calls still waiting.
func TestRedisCoalesceCancelAndClose(t *testing.T) {
	srv := testredis.Start(t)
	r, err := store.NewRedis(store.RedisOptions{Addr: srv.Addr(), Coalesce: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := r.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Go(func() {
			for j := 0; j < 100; j++ {
				if _, _, err := r.Get(context.Background(), "k"); err != nil {
					if !errors.Is(err, store.ErrClosed) {
						t.Errorf("Get during Close: %v", err)
					}
					return
				}
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	done := make(chan struct{})
	go func() { r.Close(); wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close with calls in flight hung")
	}
}
