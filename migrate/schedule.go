package migrate

import (
	"context"
	"strconv"
	"time"
)

// RunKind says why Loop starts a migration run.
type RunKind int

const (
	// RingChange is a run after a trigger: the ring changed, or something
	// else asks for every key to be planned again against the ring as it
	// is now. It cancels the run in progress, if any.
	RingChange RunKind = iota + 1
	// Sweep is the periodic run that catches keys left behind. It starts
	// only when no run is in progress: a run in progress does its job.
	Sweep
)

// String returns the reason a run of this kind is logged, counted and
// shown under ("ring-change", "sweep"): the reason to pass to
// Migrator.Run.
func (k RunKind) String() string {
	switch k {
	case RingChange:
		return "ring-change"
	case Sweep:
		return "sweep"
	}
	return "RunKind(" + strconv.Itoa(int(k)) + ")"
}

// LoopConfig is what Loop schedules migration runs by.
type LoopConfig struct {
	// Triggers starts a RingChange run for every value received. A run
	// still in progress is cancelled first, and Loop waits for it to
	// return: the new run re-plans from the shard as it is, and runs never
	// overlap.
	Triggers <-chan struct{}
	// Sweep is how often a Sweep run starts while no run is in progress;
	// 0 or less: never.
	Sweep time.Duration
	// Run does one run of the given kind. Its ctx is cancelled when a
	// trigger replaces the run or Loop's ctx is done; Loop never calls Run
	// again before the previous call has returned.
	Run func(ctx context.Context, kind RunKind)
}

// Loop starts migration runs as cfg says until ctx is done; then it
// cancels the run in progress, waits for it to return, and returns. Each
// run executes on a goroutine of its own, which Loop owns.
func Loop(ctx context.Context, cfg LoopConfig) {
	var sweep <-chan time.Time
	if cfg.Sweep > 0 {
		t := time.NewTicker(cfg.Sweep)
		defer t.Stop()
		sweep = t.C
	}
	loop(ctx, cfg, sweep)
}

// loop is Loop with the sweep ticks coming from sweep (nil: no sweeps).
func loop(ctx context.Context, cfg LoopConfig, sweep <-chan time.Time) {
	var (
		cancel context.CancelFunc
		done   chan struct{} // closed when the run in progress (if any) returns
	)
	stopRun := func() {
		if cancel != nil {
			cancel()
			<-done
			cancel, done = nil, nil
		}
	}
	start := func(kind RunKind) {
		stopRun()
		rctx, c := context.WithCancel(ctx)
		d := make(chan struct{})
		cancel, done = c, d
		go func() {
			defer close(d)
			cfg.Run(rctx, kind)
		}()
	}
	for {
		select {
		case <-ctx.Done():
			stopRun()
			return
		case <-cfg.Triggers:
			start(RingChange)
		case <-sweep:
			if done == nil {
				start(Sweep)
				continue
			}
			select {
			case <-done:
				start(Sweep)
			default: // a run is in progress: it does the sweep's job
			}
		}
	}
}
