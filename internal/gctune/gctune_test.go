package gctune

import (
	"context"
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		want        int
	}{
		{2 * mib, 96 * mib, 4700},  // goal 2 MiB * 48 = 96 MiB
		{48 * mib, 96 * mib, 100},  // half the floor: the default
		{40 * mib, 96 * mib, 100},  // 96/40 = 2 (integer): goal 80 MiB, still the default
		{300 * mib, 96 * mib, 100}, // above the floor: the default
		{0, 96 * mib, MaxPercent},  // nothing live yet: bounded
		{1, 96 * mib, MaxPercent},
		{10 * mib, 0, 100}, // no floor
	} {
		if got := Percent(c.live, c.floor); got != c.want {
			t.Errorf("Percent(%d, %d) = %d, want %d", c.live, c.floor, got, c.want)
		}
	}
	for live := uint64(1); live < 1<<34; live = live*3 + 7 { // the goal never falls under the default's, nor passes the floor by much
		p := Percent(live, 96<<20)
		goal := live + live*uint64(p)/100
		if p < DefaultPercent || p > MaxPercent || goal < 2*live || (p > DefaultPercent && goal > 96<<20) {
			t.Fatalf("Percent(%d, 96 MiB) = %d: goal %d", live, p, goal)
		}
	}
}

func TestRunRaisesAndRestores(t *testing.T) {
	orig := debug.SetGCPercent(DefaultPercent)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		New(1<<40, slog.New(slog.NewTextHandler(io.Discard, nil))).Run(ctx) // a floor far above this test's heap
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := debug.SetGCPercent(DefaultPercent) // reads it, and puts the default back: Run sets it again within Interval
		if p == MaxPercent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d after 10 s, want %d", p, MaxPercent)
		}
		time.Sleep(Interval / 4)
	}
	cancel()
	<-done
	if p := debug.SetGCPercent(DefaultPercent); p != DefaultPercent {
		t.Fatalf("GOGC is %d after Run returned, want the %d it started with", p, DefaultPercent)
	}
}
