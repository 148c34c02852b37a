package gctune

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, roots, floor uint64
		want               int
	}{
		{2 * mib, 0, 32 * mib, 800},         // bounded by the runtime's minimum heap: 4 MiB * 8 = 32 MiB
		{2 * mib, 0, 128 * mib, 3200},       // 126*100/2 = 6300, bounded by 128/4*100
		{2 * mib, 1 * mib, 128 * mib, 3200}, // 126*100/3 = 4200, bounded the same
		{20 * mib, 1 * mib, 128 * mib, 514}, // goal 20 + 21*5.14 = 128 MiB
		{16 * mib, 0, 32 * mib, 100},        // half the floor: the default
		{15 * mib, 1 * mib, 32 * mib, 106},  // 15 + 16*1.06 = 32 MiB
		{17 * mib, 0, 32 * mib, 100},        // 17 + 17*0.88: the default
		{300 * mib, 0, 32 * mib, 100},       // above the floor: the default
		{0, 0, 32 * mib, 800},               // nothing live yet: the minimum heap's bound
		{0, 0, 1 << 40, MaxPercent},         // bounded
		{10 * mib, 0, 0, 100},               // no floor
	} {
		if got := Percent(c.live, c.roots, c.floor); got != c.want {
			t.Errorf("Percent(%d, %d, %d) = %d, want %d", c.live, c.roots, c.floor, got, c.want)
		}
	}
	// The goal is never under the default's, and never above the floor
	// when raised.
	for live := uint64(1); live < 1<<34; live = live*3 + 7 {
		for _, roots := range []uint64{0, 100 << 10, 4 << 20} {
			p := uint64(Percent(live, roots, 32<<20))
			goal := max(live+(live+roots)*p/100, 4<<20*p/100) // as the runtime sets it
			if p < DefaultPercent || p > MaxPercent || goal < 2*live+roots || (p > DefaultPercent && goal > 32<<20) {
				t.Fatalf("Percent(%d, %d, 32 MiB) = %d: goal %d", live, roots, p, goal)
			}
		}
	}
}

// gogc reads the GOGC in force (debug.SetGCPercent can only read it by
// changing it).
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitGOGC collects until GOGC is want (the Tuner acts after each
// collection), for up to 10 s.
func waitGOGC(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for gogc() != want {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d after 10 s, want %d", gogc(), want)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunFollowsTheLiveHeapAndRestores(t *testing.T) {
	orig := debug.SetGCPercent(DefaultPercent)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		New(64<<20, slog.New(slog.NewTextHandler(io.Discard, nil))).Run(ctx)
	}()
	raised := 64 * 100 / 4 // this test's heap is far under the floor: bounded by the minimum heap's rule
	waitGOGC(t, raised)
	held := make([][]byte, 48)
	for i := range held { // 48 MiB live, over half the floor
		held[i] = make([]byte, 1<<20)
	}
	waitGOGC(t, DefaultPercent)
	runtime.KeepAlive(held)
	held = nil
	waitGOGC(t, raised) // let go: raised again
	cancel()
	<-done
	if p := gogc(); p != DefaultPercent {
		t.Fatalf("GOGC is %d after Run returned, want the %d it started with", p, DefaultPercent)
	}
	for range 3 {
		runtime.GC()
	}
	time.Sleep(20 * time.Millisecond)
	if p := gogc(); p != DefaultPercent {
		t.Fatalf("GOGC became %d after Run returned", p)
	}
}
