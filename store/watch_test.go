package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

type flakyPing struct {
	Store
	down atomic.Bool
}

func (f *flakyPing) Ping(ctx context.Context) error {
	if f.down.Load() {
		return errors.New("down")
	}
	return nil
}

// Watch reports the first answer, then each change of health, once.
func TestWatch(t *testing.T) {
	st := &flakyPing{Store: NewMemory(MemoryOptions{})}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan error, 10)
	done := make(chan struct{})
	go func() { defer close(done); Watch(ctx, st, time.Millisecond, func(err error) { changes <- err }) }()
	next := func() error {
		select {
		case err := <-changes:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("no change reported")
			return nil
		}
	}
	if err := next(); err != nil {
		t.Fatalf("first answer reported as %v", err)
	}
	st.down.Store(true)
	if err := next(); err == nil {
		t.Fatal("an outage reported as healthy")
	}
	st.down.Store(false)
	if err := next(); err != nil {
		t.Fatalf("the shard back reported as %v", err)
	}
	cancel()
	<-done
	if len(changes) != 0 {
		t.Fatalf("%d changes reported beyond the three", len(changes))
	}
}
