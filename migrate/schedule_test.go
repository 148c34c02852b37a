package migrate

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// fakeRun is one call of the Run function a test gives Loop.
type fakeRun struct {
	kind    RunKind
	ctx     context.Context
	release chan struct{} // closed by the test: the run ends on its own
	ended   chan struct{} // closed once Run has returned
}

// fakeRuns records the runs Loop starts; each blocks until its ctx is
// cancelled or the test releases it.
type fakeRuns struct {
	started chan *fakeRun // buffered: a run Loop should not have started never blocks
	active  atomic.Int32
	overlap atomic.Bool // two runs were in progress at once
}

func newFakeRuns() *fakeRuns { return &fakeRuns{started: make(chan *fakeRun, 16)} }

func (f *fakeRuns) run(ctx context.Context, kind RunKind) {
	r := &fakeRun{kind: kind, ctx: ctx, release: make(chan struct{}), ended: make(chan struct{})}
	defer close(r.ended)
	if f.active.Add(1) > 1 {
		f.overlap.Store(true)
	}
	defer f.active.Add(-1)
	f.started <- r
	select {
	case <-ctx.Done():
	case <-r.release:
	}
}

// next returns the next run Loop started, of the kind wanted.
func (f *fakeRuns) next(t *testing.T, want RunKind) *fakeRun {
	t.Helper()
	select {
	case r := <-f.started:
		if r.kind != want {
			t.Fatalf("run of kind %v started, want %v", r.kind, want)
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("no %v run started", want)
		return nil
	}
}

// none fails if Loop started a run the test did not expect.
func (f *fakeRuns) none(t *testing.T) {
	t.Helper()
	select {
	case r := <-f.started:
		t.Fatalf("unexpected %v run", r.kind)
	default:
	}
	if f.overlap.Load() {
		t.Fatal("two runs were in progress at once")
	}
}

// loopUnderTest runs loop with channels the test sends triggers and sweep
// ticks on (unbuffered: a send returns once loop has received it, and the
// next send once loop has handled it).
type loopUnderTest struct {
	triggers chan struct{}
	ticks    chan time.Time
	runs     *fakeRuns
	cancel   context.CancelFunc
	done     chan struct{} // closed once loop has returned
}

func startLoop(t *testing.T) *loopUnderTest {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &loopUnderTest{triggers: make(chan struct{}), ticks: make(chan time.Time), runs: newFakeRuns(),
		cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		loop(ctx, LoopConfig{Triggers: l.triggers, Run: l.runs.run}, l.ticks)
	}()
	t.Cleanup(l.stop)
	return l
}

func (l *loopUnderTest) trigger() { l.triggers <- struct{}{} }
func (l *loopUnderTest) tick()    { l.ticks <- time.Now() }

// tickUntilSweep sends sweep ticks until one starts a Sweep run. Run
// returning and loop seeing the run as ended are not one step, so a tick
// right after a run returned may still find it in progress.
func (l *loopUnderTest) tickUntilSweep(t *testing.T) *fakeRun {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		l.tick()
		select {
		case r := <-l.runs.started:
			if r.kind != Sweep {
				t.Fatalf("run of kind %v started, want %v", r.kind, Sweep)
			}
			return r
		case <-time.After(time.Millisecond):
		}
	}
	t.Fatal("no sweep started after the last run had ended")
	return nil
}

// stop cancels loop's ctx and waits for it to return.
func (l *loopUnderTest) stop() {
	l.cancel()
	<-l.done
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestRunKindString(t *testing.T) {
	for k, want := range map[RunKind]string{RingChange: "ring-change", Sweep: "sweep", 0: "RunKind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("RunKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestLoopTriggerStartsRun(t *testing.T) {
	l := startLoop(t)
	l.trigger()
	r := l.runs.next(t, RingChange)
	if r.ctx.Err() != nil {
		t.Fatal("a new run's ctx is already done")
	}
	close(r.release) // the run ends on its own; the next trigger starts another
	<-r.ended
	l.trigger()
	r2 := l.runs.next(t, RingChange)
	if r2.ctx.Err() != nil {
		t.Fatal("the second run's ctx is already done")
	}
	l.stop()
	l.runs.none(t)
}

func TestLoopTriggerCancelsRunningRun(t *testing.T) {
	l := startLoop(t)
	l.trigger()
	r1 := l.runs.next(t, RingChange)
	l.trigger()
	r2 := l.runs.next(t, RingChange)
	if !isDone(r1.ended) {
		t.Fatal("the second run started before the first had returned")
	}
	if r1.ctx.Err() == nil {
		t.Fatal("the first run's ctx was not cancelled")
	}
	if r2.ctx.Err() != nil {
		t.Fatal("the second run's ctx is already done")
	}
	// A trigger also replaces a sweep in progress.
	close(r2.release)
	<-r2.ended
	s := l.tickUntilSweep(t)
	l.trigger()
	r3 := l.runs.next(t, RingChange)
	if !isDone(s.ended) || s.ctx.Err() == nil {
		t.Fatal("the sweep in progress was not cancelled and waited for")
	}
	if r3.ctx.Err() != nil {
		t.Fatal("the third run's ctx is already done")
	}
	l.stop()
	l.runs.none(t)
}

func TestLoopSweepOnlyWhenIdle(t *testing.T) {
	l := startLoop(t)
	l.tick() // no run ever started
	s1 := l.runs.next(t, Sweep)
	l.tick() // s1 is in progress: it does the sweep's job
	l.tick() // received: loop has handled the tick before it
	if s1.ctx.Err() != nil {
		t.Fatal("a sweep tick cancelled the run in progress")
	}
	l.runs.none(t)

	close(s1.release)
	<-s1.ended
	s2 := l.tickUntilSweep(t) // the last run has ended

	// A ring-change run in progress also does the sweep's job.
	l.trigger()
	r := l.runs.next(t, RingChange)
	if !isDone(s2.ended) {
		t.Fatal("the ring-change run started before the sweep had returned")
	}
	l.tick()
	l.tick()
	if r.ctx.Err() != nil {
		t.Fatal("a sweep tick cancelled the ring-change run in progress")
	}
	l.runs.none(t)
	close(r.release)
	<-r.ended
	l.tickUntilSweep(t)
	l.stop()
	l.runs.none(t)
}

func TestLoopStopCancelsAndWaitsForTheRun(t *testing.T) {
	l := startLoop(t)
	l.trigger()
	r := l.runs.next(t, RingChange)
	l.stop()
	if r.ctx.Err() == nil {
		t.Fatal("stopping the loop did not cancel the run in progress")
	}
	if !isDone(r.ended) {
		t.Fatal("the loop returned before the run in progress had returned")
	}
	l.runs.none(t)
}

func TestLoopStopsWhenIdle(t *testing.T) {
	l := startLoop(t)
	l.stop()
	l.runs.none(t)
}

// TestLoopSweepsEveryInterval runs Loop itself: its ticker starts sweeps.
func TestLoopSweepsEveryInterval(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	runs := newFakeRuns()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Loop(ctx, LoopConfig{Sweep: time.Millisecond, Run: runs.run})
	}()
	s := runs.next(t, Sweep)
	close(s.release)
	runs.next(t, Sweep)
	cancel()
	<-done
	if runs.overlap.Load() {
		t.Fatal("two runs were in progress at once")
	}
}
