// Package migrate moves keys out of a node's shard when the ring changes.
//
// A Migrator is given the target placement (who owns each key under the new
// ring), the node's own name and its shard. Run scans only the local shard
// (store.Scan in batches, never anything like KEYS), picks the keys whose
// target owner is another node, reads them in batches (store.GetMany, one
// round trip per batch), drops locally the ones that are already expired,
// groups the rest by new owner and ships them through a Transport to the new
// owner's import endpoint with bounded concurrency. The receiver writes each
// entry only if it is newer than what it holds and acknowledges it; the
// Migrator then deletes locally only what was acknowledged, and only if the
// local version is still the one that was sent (store.DeleteIfVersion), so a
// key rewritten locally meanwhile is never lost: a later pass moves the new
// version. Tombstones are moved like values, so a delete cannot be undone by
// an older copy arriving at the new owner.
//
// Run repeats full passes until one finds nothing left to move, which catches
// writes that landed behind the scanner. When every write of the shard goes
// through the store TrackWrites returns, the Migrator knows whether any key
// it moves was written during a pass; when none was, the pass that moved the
// keys is the last one, and the local copies of a batch nobody rewrote are
// deleted without the version check. Refused entries (the receiver does
// not own the key in its own view yet) and failed sends are retried with
// exponential backoff until they are moved or the context is canceled.
//
// A Receiver is the other end: it writes the entries other members send
// (only keys this node owns, only versions not too far ahead of its clock,
// only if newer) and lets a run wait for the imports accepted before it
// (Barrier).
//
// Loop decides when runs happen: a RingChange run after every trigger (a
// ring change; it cancels the run still in progress, and the new run
// re-plans from the shard as it is) and a Sweep run every interval while
// no run is in progress. What a run does is the caller's function.
//
// The package holds no package-level mutable state; several Migrators (one
// per node) may live in one process.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/store"
)

// Defaults used for zero (or negative) Options fields.
const (
	// DefaultBatchSize is the number of keys per import batch.
	DefaultBatchSize = 512
	// DefaultWorkers is the number of batches in flight at once: with 8,
	// a join moving 500k keys between two Redis shards on a 2-core machine
	// ran at 98k-144k keys/s (five runs) against 103k-115k with 4 (three
	// runs on the same machine, docs/benchmarks.md).
	DefaultWorkers = 8
	// DefaultScanCount is the COUNT hint passed to store.Scan.
	DefaultScanCount = 1000
	// DefaultProgressInterval is how often a long run logs its progress.
	DefaultProgressInterval = 5 * time.Second
)

// Retry backoff between rounds that left keys unmoved.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
	// maxPending bounds the keys remembered for a targeted retry; beyond it
	// the next attempt is a full pass over the shard instead.
	maxPending = 100_000
	// ackDeleteTimeout bounds the local delete of acknowledged keys, which
	// runs even if the run's context was canceled meanwhile (the receiver
	// already holds them).
	ackDeleteTimeout = 5 * time.Second
)

// Placement answers who owns a key in the target ring. Owner returns "" when
// the ring is empty; such keys are left alone.
type Placement interface {
	Owner(key string) string
}

// TargetPlacement is a Placement that also knows about copies, for
// replication: Targets returns the members that must receive key from this
// node and whether this node keeps its own copy afterwards. A key with
// keep == true is copied (never deleted locally); a key with keep == false
// is moved: deleted locally once every target acknowledged it. Owner is
// still used for logs. With a plain Placement, a key whose owner is another
// node is moved to that owner.
type TargetPlacement interface {
	Placement
	Targets(key string) (to []string, keep bool)
}

// targetsOf applies p to key for the node self.
func targetsOf(p Placement, self, key string) (to []string, keep bool) {
	if tp, ok := p.(TargetPlacement); ok {
		return tp.Targets(key)
	}
	owner := p.Owner(key)
	if owner == "" || owner == self {
		return nil, true
	}
	return []string{owner}, false
}

// PlacementFunc adapts a function to Placement.
type PlacementFunc func(key string) string

// Owner calls f(key).
func (f PlacementFunc) Owner(key string) string { return f(key) }

// Transport ships a batch of entries to a peer's import endpoint. The peer
// writes each entry only if it is newer than what it holds (store.Put
// semantics) and only if it owns the key in its own view. On success the
// results are parallel to entries; an error means nothing is known about the
// batch and every entry of it is retried later.
type Transport interface {
	Import(ctx context.Context, peer string, entries []store.Entry) ([]ImportResult, error)
}

// ImportResult is the receiver's answer for one imported entry (see
// kv.ImportResult). The zero value is not an acknowledgement: an entry is
// deleted locally only after an explicit ack.
type ImportResult = kv.ImportResult

// Import results (kv's).
const (
	Acked        = kv.Acked
	AckedStale   = kv.AckedStale
	AckedExpired = kv.AckedExpired
	Refused      = kv.Refused
)

// FromOutcome is the result a receiver sends for the outcome of its
// store.Put: the same value (store.Outcome is ImportResult), except that
// the zero value, or any value a store should not return, is Refused, so
// that the sender keeps its copy and retries.
func FromOutcome(o store.Outcome) ImportResult {
	switch o {
	case Acked, AckedStale, AckedExpired:
		return o
	default:
		return Refused
	}
}

// Options tunes a Migrator. Zero values select the defaults.
type Options struct {
	// BatchSize is the number of keys per read and import batch
	// (DefaultBatchSize if <= 0). With a RateLimit below BatchSize, batches
	// are shrunk to the rate so that sends are spread evenly.
	BatchSize int
	// Workers is the number of batches in flight at once (DefaultWorkers
	// if <= 0).
	Workers int
	// ScanCount is the COUNT hint for store.Scan (DefaultScanCount if <= 0).
	ScanCount int
	// RateLimit is the maximum number of keys sent per second; 0 means
	// unlimited.
	RateLimit float64
	// ProgressInterval is how often a running migration logs a progress
	// line (DefaultProgressInterval if <= 0).
	ProgressInterval time.Duration
	// Logger receives the migration's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock used to decide whether an entry has expired
	// (time.Now if nil).
	Now func() time.Time
}

// Result summarizes a run.
type Result struct {
	// Reason is the label the run was started with.
	Reason string `json:"reason"`
	// Passes is the number of full scans of the shard.
	Passes int `json:"passes"`
	// Retries is the number of targeted retry rounds for keys that were
	// refused or whose send failed.
	Retries int `json:"retries"`
	// Scanned is the number of keys returned by the scans (all passes).
	Scanned int64 `json:"scanned"`
	// Planned is the number of scanned keys whose owner is another node.
	Planned int64 `json:"planned"`
	// Moved is the number of entries the receivers wrote (moves and copies).
	Moved int64 `json:"moved"`
	// CopyPlanned is the number of keys this node keeps that needed copies
	// on other owners (replication); Copied of them are done.
	CopyPlanned int64 `json:"copy_planned"`
	// Copied is the number of keys whose copies every target acknowledged
	// while this node kept its own (replication).
	Copied int64 `json:"copied"`
	// Stale is the number of entries acknowledged by receivers that
	// already held the same or a newer version; the local copy was deleted.
	Stale int64 `json:"stale"`
	// Dropped is the number of entries that had expired: deleted locally
	// without sending, or acknowledged as expired by the receiver.
	Dropped int64 `json:"dropped"`
	// Failed is the number of keys known not to be moved when the run
	// ended (0 for a completed run).
	Failed int64 `json:"failed"`
	// Bytes is the key+value bytes of the entries receivers acknowledged.
	Bytes int64 `json:"bytes"`
	// Duration is the run's wall time.
	Duration time.Duration `json:"duration_ns"`
	// Error is the error Run returned, "" if it completed.
	Error string `json:"error,omitempty"`
}

// Status is a snapshot of a Migrator for /v1/cluster.
type Status struct {
	// Active reports whether a run is in progress; the fields up to
	// LastError describe it and are zero otherwise.
	Active    bool      `json:"active"`
	Reason    string    `json:"reason,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	Passes    int       `json:"passes"`
	Scanned   int64     `json:"scanned"`
	Planned   int64     `json:"planned"`
	Moved     int64     `json:"moved"`
	Copied    int64     `json:"copied"`
	// CopyPlanned counts keys found needing copies on other owners; the
	// difference to Copied is the run's estimate of under-replicated keys.
	CopyPlanned int64 `json:"copy_planned"`
	Stale       int64 `json:"stale"`
	Dropped     int64 `json:"dropped"`
	// Failed is the number of keys currently waiting for a retry.
	Failed int64 `json:"failed"`
	Bytes  int64 `json:"bytes"`
	// KeysPerSec is (Moved+Stale) per second of the run so far.
	KeysPerSec float64 `json:"keys_per_sec"`
	// LastError is the most recent error the run retried after.
	LastError string `json:"last_error,omitempty"`
	// Last is the result of the last finished run, nil before the first.
	Last *Result `json:"last,omitempty"`
}

// UnderReplicated estimates the keys whose copies are not confirmed yet:
// those the running run planned copies for and has not copied, or, with
// no run in progress, those the last run left uncopied when it failed.
func (s Status) UnderReplicated() int64 {
	if s.Active {
		return max(0, s.CopyPlanned-s.Copied)
	}
	if s.Last != nil && s.Last.Error != "" {
		return max(0, s.Last.CopyPlanned-s.Last.Copied)
	}
	return 0
}

// Migrator moves the keys of one shard to their owners. Status is safe for
// concurrent use; Run executes one run at a time (a second call waits until
// the first returns). The node is expected to cancel a running migration's
// context and wait for Run to return before starting one for a newer ring.
type Migrator struct {
	self  string
	st    store.Store
	tr    Transport
	opts  Options
	batch int
	log   *slog.Logger
	lim   *limiter

	sem   chan struct{} // holds a token while a run is active
	track *tracker      // set by TrackWrites; nil: every run ends with a pass that finds nothing

	mu   sync.Mutex
	cur  *runState
	last *Result
}

// New returns a Migrator for the shard st of the node named self, shipping
// entries through tr.
func New(self string, st store.Store, tr Transport, opts Options) *Migrator {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.ScanCount <= 0 {
		opts.ScanCount = DefaultScanCount
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = DefaultProgressInterval
	}
	if opts.RateLimit < 0 {
		opts.RateLimit = 0
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	batch := opts.BatchSize
	if opts.RateLimit > 0 && float64(batch) > opts.RateLimit {
		batch = max(1, int(opts.RateLimit))
	}
	return &Migrator{
		self:  self,
		st:    st,
		tr:    tr,
		opts:  opts,
		batch: batch,
		log:   opts.Logger.With("component", "migrate", "self", self),
		lim:   newLimiter(opts.RateLimit),
		sem:   make(chan struct{}, 1),
	}
}

// runState holds the live counters of one run.
type runState struct {
	reason  string
	started time.Time
	watch   *watch // the run's write watch; nil without TrackWrites

	passes, retries                                                atomic.Int64
	scanned, planned, moved, copied, stale, dropped, failed, bytes atomic.Int64
	copyPlanned                                                    atomic.Int64

	errMu   sync.Mutex
	lastErr error
}

func (rs *runState) setErr(err error) {
	rs.errMu.Lock()
	rs.lastErr = err
	rs.errMu.Unlock()
}

func (rs *runState) errString() string {
	rs.errMu.Lock()
	defer rs.errMu.Unlock()
	if rs.lastErr == nil {
		return ""
	}
	return rs.lastErr.Error()
}

func (rs *runState) result() Result {
	return Result{
		Reason:      rs.reason,
		Passes:      int(rs.passes.Load()),
		Retries:     int(rs.retries.Load()),
		Scanned:     rs.scanned.Load(),
		Planned:     rs.planned.Load(),
		Moved:       rs.moved.Load(),
		Copied:      rs.copied.Load(),
		CopyPlanned: rs.copyPlanned.Load(),
		Stale:       rs.stale.Load(),
		Dropped:     rs.dropped.Load(),
		Failed:      rs.failed.Load(),
		Bytes:       rs.bytes.Load(),
		Duration:    time.Since(rs.started),
	}
}

// Status returns a snapshot of the running migration (if any) and the last
// finished run's result. It is safe to call concurrently with Run.
func (m *Migrator) Status() Status {
	m.mu.Lock()
	rs, last := m.cur, m.last
	m.mu.Unlock()
	var s Status
	if last != nil {
		l := *last
		s.Last = &l
	}
	if rs == nil {
		return s
	}
	r := rs.result()
	s.Active = true
	s.Reason = r.Reason
	s.StartedAt = rs.started
	s.Passes = r.Passes
	s.Scanned, s.Planned, s.Moved, s.Copied, s.Stale = r.Scanned, r.Planned, r.Moved, r.Copied, r.Stale
	s.CopyPlanned = r.CopyPlanned
	s.Dropped, s.Failed, s.Bytes = r.Dropped, r.Failed, r.Bytes
	s.KeysPerSec = rate(r.Moved+r.Stale, r.Duration)
	s.LastError = rs.errString()
	return s
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Run moves every local key whose owner under p is not self (keys whose
// owner is "" are left alone). reason is a short label for logs and Status,
// such as "ring-change" or "drain".
//
// Run returns nil once a full pass over the shard finds nothing left to move.
// Refused entries, failed sends and store errors are retried with backoff
// (100ms doubling to 2s) for as long as ctx lives; when ctx is done Run
// returns the partial result and an error wrapping ctx.Err(), with Failed
// counting the keys known not to be moved. Only one Run executes at a time:
// a concurrent call waits for the running one (or for its own ctx).
func (m *Migrator) Run(ctx context.Context, p Placement, reason string) (Result, error) {
	if p == nil {
		return Result{Reason: reason}, errors.New("migrate: nil placement")
	}
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return Result{Reason: reason}, fmt.Errorf("migrate %s: waiting for the previous run: %w", reason, ctx.Err())
	}
	defer func() { <-m.sem }()

	rs := &runState{reason: reason, started: time.Now()}
	m.mu.Lock()
	m.cur = rs
	m.mu.Unlock()

	log := m.log.With("reason", reason)
	log.Info("migration started", "batch_size", m.batch, "workers", m.opts.Workers, "rate_limit", m.opts.RateLimit)

	stopProgress := m.startProgress(log, rs)
	err := m.loop(ctx, p, rs, log)
	stopProgress()

	res := rs.result()
	if err != nil {
		err = fmt.Errorf("migrate %s: %w", reason, err)
		res.Error = err.Error()
	}
	m.mu.Lock()
	m.cur = nil
	m.last = &res
	m.mu.Unlock()

	attrs := []any{
		"passes", res.Passes, "retries", res.Retries, "scanned", res.Scanned, "planned", res.Planned,
		"moved", res.Moved, "copied", res.Copied, "stale", res.Stale, "dropped", res.Dropped, "failed", res.Failed,
		"bytes", res.Bytes, "duration", res.Duration, "keys_per_sec", int64(rate(res.Moved+res.Stale, res.Duration)),
	}
	switch {
	case errors.Is(err, context.Canceled):
		// Cancelled by the caller: a newer ring replaced this run, or the
		// node is stopping. Not a failure.
		log.Info("migration cancelled", append(attrs, "err", err)...)
	case err != nil:
		log.Warn("migration stopped", append(attrs, "err", err)...)
	default:
		log.Info("migration finished", attrs...)
	}
	return res, err
}

// startProgress logs a progress line every ProgressInterval until the
// returned function is called.
func (m *Migrator) startProgress(log *slog.Logger, rs *runState) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(m.opts.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r := rs.result()
				log.Info("migration progress",
					"passes", r.Passes, "retries", r.Retries, "scanned", r.Scanned, "planned", r.Planned,
					"moved", r.Moved, "stale", r.Stale, "dropped", r.Dropped, "failed", r.Failed,
					"bytes", r.Bytes, "elapsed", r.Duration, "keys_per_sec", int64(rate(r.Moved+r.Stale, r.Duration)),
					"last_error", rs.errString())
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// loop runs full passes and targeted retry rounds until the run is done or
// ctx is.
//
// Without write tracking, the run ends only when a full pass finds nothing
// to move. With it (TrackWrites), the run also ends when everything the last
// complete pass found has been moved and no key the run would move was
// written since that pass began: nothing can have landed behind its scanner.
func (m *Migrator) loop(ctx context.Context, p Placement, rs *runState, log *slog.Logger) error {
	w := m.startWatch(p)
	if w != nil {
		defer m.track.remove(w)
	}
	rs.watch = w
	var since int64  // w.landed when the last full pass began
	scanned := false // the last full pass scanned the whole shard
	// done: once nothing is pending, the run may end without another pass.
	done := func() bool { return w != nil && scanned && w.clean(since) }
	pend := &pending{}
	backoff := minBackoff
	wait := false    // sleep before the next attempt
	failing := false // the previous attempt left work undone (log only on change)
	for {
		if wait {
			if err := sleep(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, maxBackoff)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var attemptErr error
		if keys := pend.take(); keys != nil {
			rs.retries.Add(1)
			m.retryRound(ctx, p, rs, pend, keys)
		} else {
			// A full pass starts from a clean slate: whatever is still
			// to move will be found by the scan.
			pend.reset()
			rs.failed.Store(0)
			pass := rs.passes.Add(1)
			if w != nil {
				since = w.landed.Load()
			}
			found, err := m.fullPass(ctx, p, rs, pend, pass == 1)
			scanned = err == nil
			if err != nil {
				attemptErr = err
			} else if pend.len() == 0 && (found == 0 || done()) {
				return nil
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if attemptErr == nil {
			attemptErr = pend.error()
		}
		if attemptErr == nil && pend.len() == 0 {
			if done() {
				return nil // the retries finished the last full pass's work
			}
			wait, failing, backoff = false, false, minBackoff
			continue
		}
		wait = true
		if attemptErr != nil {
			rs.setErr(attemptErr)
		}
		if !failing {
			failing = true
			log.Warn("migration: keys not moved yet, retrying with backoff",
				"failed", rs.failed.Load(), "err", attemptErr)
		}
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pending collects the keys of an attempt that were not moved, for a
// targeted retry. Beyond maxPending keys it only remembers that it
// overflowed, and the next attempt is a full pass.
type pending struct {
	mu       sync.Mutex
	keys     map[string]struct{}
	overflow bool
	n        int
	err      error
}

// add records keys that were not moved because of err.
func (p *pending) add(keys []string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.err = err
	}
	p.n += len(keys)
	if p.overflow {
		return
	}
	if p.keys == nil {
		p.keys = make(map[string]struct{}, len(keys))
	}
	for _, k := range keys {
		p.keys[k] = struct{}{}
	}
	if len(p.keys) > maxPending {
		p.overflow, p.keys = true, nil
	}
}

// take returns the keys to retry and empties the set, or nil when there are
// none or when the set overflowed (then a full pass is due).
func (p *pending) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.overflow || len(p.keys) == 0 {
		return nil
	}
	keys := make([]string, 0, len(p.keys))
	for k := range p.keys {
		keys = append(keys, k)
	}
	p.keys, p.n, p.err = nil, 0, nil
	return keys
}

func (p *pending) reset() {
	p.mu.Lock()
	p.keys, p.overflow, p.n, p.err = nil, false, 0, nil
	p.mu.Unlock()
}

func (p *pending) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *pending) error() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
