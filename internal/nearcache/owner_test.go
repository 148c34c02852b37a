package nearcache

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// sink records the batches an Owner sends, and can hold them back.
type sink struct {
	mu      sync.Mutex
	batches map[string][][]string
	hold    chan struct{} // nil: answer at once
	fail    bool
}

func (s *sink) send(ctx context.Context, peer string, keys []string) error {
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("unreachable")
	}
	if s.batches == nil {
		s.batches = map[string][][]string{}
	}
	s.batches[peer] = append(s.batches[peer], slices.Clone(keys))
	return nil
}

func (s *sink) keys(peer string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.batches[peer] {
		out = append(out, b...)
	}
	return out
}

func newOwner(t *testing.T, s *sink, cfg Config) Owner {
	t.Helper()
	cfg.Self, cfg.Send = "self", s.send
	if cfg.TTL == 0 {
		cfg.TTL = time.Minute
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = 100
	}
	if cfg.Member == nil {
		cfg.Member = func(string) bool { return true }
	}
	o := New(context.Background(), cfg)
	t.Cleanup(o.Stop)
	return o
}

// A member that read a key gets its invalidation when the key changes,
// once; this node's own reads and anonymous ones are never tracked.
func TestOwnerInvalidatesWhoFetched(t *testing.T) {
	s := &sink{}
	o := newOwner(t, s, Config{Wait: 5 * time.Second})
	if got := o.Track("k", "a"); got != time.Minute {
		t.Fatalf("Track: permission %s, want the TTL", got)
	}
	o.Track("k", "b")
	o.Track("k", "a") // again: one record
	if o.Track("k", "self") != 0 || o.Track("k", "") != 0 {
		t.Fatal("own or anonymous reads got a permission")
	}
	o.Invalidate(context.Background(), "k", true) // waits for both acknowledgements
	if !slices.Equal(s.keys("a"), []string{"k"}) || !slices.Equal(s.keys("b"), []string{"k"}) {
		t.Fatalf("sent %v", s.batches)
	}
	o.Invalidate(context.Background(), "k", true) // nobody fetched it since
	if len(s.keys("a")) != 1 {
		t.Fatalf("second invalidation sent again: %v", s.batches)
	}
	if st := o.Stats(); st.Sent != 2 || st.Batches != 2 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// When full, the tracker refuses permission (nothing untracked is cached).
func TestOwnerTrackerIsBounded(t *testing.T) {
	o := newOwner(t, &sink{}, Config{MaxKeys: 2})
	o.Track("a", "m")
	o.Track("b", "m")
	if o.Track("c", "m") != 0 {
		t.Fatal("a third key got a permission beyond MaxKeys")
	}
	if o.Track("a", "n") == 0 {
		t.Fatal("a tracked key refused for another member")
	}
	if st := o.Stats(); st.Refused != 1 {
		t.Fatalf("refused %d, want 1", st.Refused)
	}
}

// A write stops waiting after Config.Wait; keys queued meanwhile leave
// together in one batch once the member answers.
func TestOwnerWaitIsBoundedAndKeysBatch(t *testing.T) {
	s := &sink{hold: make(chan struct{})}
	o := newOwner(t, s, Config{Wait: 20 * time.Millisecond})
	for _, k := range []string{"k1", "k2", "k3"} {
		o.Track(k, "a")
	}
	start := time.Now()
	o.Invalidate(context.Background(), "k1", true)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("waited %s", d)
	}
	o.InvalidateKeys(context.Background(), []string{"k2", "k3"})
	close(s.hold)
	deadline := time.Now().Add(5 * time.Second)
	for len(s.keys("a")) < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	s.mu.Lock()
	got := s.batches["a"]
	s.mu.Unlock()
	if len(got) != 2 || !slices.Equal(got[1], []string{"k2", "k3"}) {
		t.Fatalf("batches %v, want [k1] then [k2 k3]", got)
	}
	if st := o.Stats(); st.WaitTimeouts != 2 {
		t.Fatalf("wait timeouts %d, want 2", st.WaitTimeouts)
	}
}

// An undelivered batch is counted as failed, after one retry.
func TestOwnerCountsFailedBatches(t *testing.T) {
	s := &sink{fail: true}
	o := newOwner(t, s, Config{Wait: 5 * time.Second})
	o.Track("k", "a")
	o.Invalidate(context.Background(), "k", true)
	if st := o.Stats(); st.Failed != 1 || st.Sent != 0 {
		t.Fatalf("stats %+v, want 1 failed", st)
	}
}

// With the near cache off, nothing is tracked, sent or counted.
func TestOwnerOff(t *testing.T) {
	s := &sink{}
	o := New(context.Background(), Config{TTL: 0, Send: s.send})
	defer o.Stop()
	if o.Track("k", "a") != 0 {
		t.Fatal("permission with the near cache off")
	}
	o.Invalidate(context.Background(), "k", true)
	o.Received(3)
	if len(s.batches) != 0 || o.Stats() != (Stats{}) {
		t.Fatalf("off owner sent %v, stats %+v", s.batches, o.Stats())
	}
}
