package migrate

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peercache/peercache/store"
)

type count struct{ n atomic.Int64 }

func (c *count) Add(v float64) { c.n.Add(int64(v)) }

// A Receiver writes owned entries with sane versions only if newer, and
// refuses the others; versions from the future are counted apart.
func TestReceiverImport(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	var acked, refused, future count
	var observed atomic.Uint64
	var applied []string
	r := NewReceiver(ReceiverConfig{
		Store: st, MaxSkew: time.Minute,
		Owns:    func(key string) bool { return !strings.HasPrefix(key, "theirs") },
		Observe: func(v uint64) { observed.Store(v) },
		Applied: func(key string) { applied = append(applied, key) },
		Acked:   &acked, Refused: &refused, Future: &future,
	})
	now := uint64(time.Now().UnixNano())
	if _, err := st.Put(ctx, []store.Entry{{Key: "older", Value: []byte("new"), Version: now}}); err != nil {
		t.Fatal(err)
	}
	res, err := r.Import(ctx, "b", []store.Entry{
		{Key: "mine", Value: []byte("v"), Version: now},
		{Key: "theirs", Value: []byte("v"), Version: now},
		{Key: "older", Value: []byte("old"), Version: now - 1},
		{Key: "future", Value: []byte("v"), Version: ^uint64(0)},
	})
	want := []ImportResult{Acked, Refused, AckedStale, Refused}
	if err != nil || len(res) != len(want) {
		t.Fatalf("Import = %v, %v", res, err)
	}
	for i := range want {
		if res[i] != want[i] {
			t.Errorf("entry %d: %v, want %v", i, res[i], want[i])
		}
	}
	if acked.n.Load() != 2 || refused.n.Load() != 2 || future.n.Load() != 1 {
		t.Errorf("counted acked %d refused %d future %d, want 2, 2, 1", acked.n.Load(), refused.n.Load(), future.n.Load())
	}
	if observed.Load() != now || len(applied) != 1 || applied[0] != "mine" {
		t.Errorf("observed %d (want %d), applied %v (want [mine])", observed.Load(), now, applied)
	}
	if r.Sane("b", store.Entry{Key: "x", Version: ^uint64(0)}) || !r.Sane("b", store.Entry{Key: "x", Version: now}) {
		t.Error("Sane disagrees with the version limit")
	}
}

// Barrier waits for an import that passed its ownership check and has not
// written yet.
func TestReceiverBarrier(t *testing.T) {
	bp := &blockingPut{Store: newTestStore(t), entered: make(chan struct{}, 1), release: make(chan struct{})}
	var c count
	r := NewReceiver(ReceiverConfig{Store: bp, MaxSkew: time.Minute, Owns: func(string) bool { return true },
		Observe: func(uint64) {}, Applied: func(string) {}, Acked: &c, Refused: &c, Future: &c})
	done := make(chan error, 1)
	go func() {
		_, err := r.Import(context.Background(), "b", []store.Entry{{Key: "k", Value: []byte("v"), Version: 1}})
		done <- err
	}()
	<-bp.entered
	barrier := make(chan struct{})
	go func() { r.Barrier(); close(barrier) }()
	select {
	case <-barrier:
		t.Fatal("Barrier returned while an accepted import had not written")
	case <-time.After(50 * time.Millisecond):
	}
	close(bp.release)
	<-barrier
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
