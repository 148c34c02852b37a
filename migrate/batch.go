package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/peercache/peercache/store"
)

// errRefused is recorded for entries a receiver refused.
var errRefused = errors.New("receiver refused: it does not own the key in its view yet")

// group collects keys that go to the same targets with the same fate.
type group struct {
	to   []string
	keep bool
	keys []string
}

// grouper batches keys by (targets, keep) and dispatches full batches.
type grouper struct {
	m        *Migrator
	g        *errgroup.Group
	bufs     map[string]*group
	dispatch func(gr group)
}

func (m *Migrator) newGrouper(ctx context.Context, rs *runState, pend *pending, retry bool) *grouper {
	gp := &grouper{m: m, g: &errgroup.Group{}, bufs: map[string]*group{}}
	gp.g.SetLimit(m.opts.Workers)
	gp.dispatch = func(gr group) {
		gp.g.Go(func() error {
			m.moveBatch(ctx, rs, pend, gr.to, gr.keep, gr.keys, retry)
			return nil
		})
	}
	return gp
}

func (gp *grouper) add(to []string, keep bool, key string) {
	sig := strings.Join(to, "\x00")
	if keep {
		sig += "\x00+keep"
	}
	gr := gp.bufs[sig]
	if gr == nil {
		gr = &group{to: to, keep: keep}
		gp.bufs[sig] = gr
	}
	gr.keys = append(gr.keys, key)
	if len(gr.keys) >= gp.m.batch {
		gp.dispatch(*gr)
		gr.keys = nil
	}
}

// flush dispatches what is left and waits for every batch.
func (gp *grouper) flush() {
	for _, gr := range gp.bufs {
		if len(gr.keys) > 0 {
			gp.dispatch(*gr)
			gr.keys = nil
		}
	}
	_ = gp.g.Wait()
}

// fullPass scans the whole shard once, moving every key whose owner under p
// is another node (and, on the first pass of a run, copying keys this node
// keeps to the co-owners that need them). It returns how many keys to move
// the scan found. A scan error ends the pass early (after the batches
// already started finish); failures of single batches are recorded in pend
// instead.
func (m *Migrator) fullPass(ctx context.Context, p Placement, rs *runState, pend *pending, copies bool) (found int64, err error) {
	gp := m.newGrouper(ctx, rs, pend, false)
	scans, stop := m.scanAhead(ctx)
	defer stop()
	for sc := range scans {
		if sc.err != nil {
			err = sc.err
			break
		}
		rs.scanned.Add(int64(len(sc.keys)))
		for _, k := range sc.keys {
			to, keep := targetsOf(p, m.self, k)
			if len(to) == 0 || (keep && !copies) {
				continue
			}
			if !keep {
				found++
			} else {
				rs.copyPlanned.Add(1)
			}
			rs.planned.Add(1)
			gp.add(to, keep, k)
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	// Ship what was collected even if the scan stopped early: those keys
	// were found and are worth moving (or, if ctx is done, counting as
	// failed).
	gp.flush()
	return found, err
}

// scanResult is one store.Scan call of scanAhead: its keys, or the error
// that ended the scan.
type scanResult struct {
	keys []string
	err  error
}

// scanAheadDepth is how many Scan results scanAhead may hold that the pass
// has not taken yet.
const scanAheadDepth = 2

// scanAhead scans the whole shard in a goroutine of its own, a few calls
// ahead of the pass that reads the channel, so that the next keys are
// ready when a worker frees up instead of waiting for a Scan round trip
// (the scan is one cursor, one call at a time). The channel is closed after
// the last keys, after an error (sent as the last result) or when ctx is
// done. stop ends the goroutine and waits for it; the pass calls it before
// it returns.
func (m *Migrator) scanAhead(ctx context.Context) (results <-chan scanResult, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan scanResult, scanAheadDepth)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		var cursor uint64
		for ctx.Err() == nil {
			keys, next, err := m.st.Scan(ctx, cursor, m.opts.ScanCount)
			if err != nil {
				err = fmt.Errorf("scan shard at cursor %d: %w", cursor, err)
			}
			select {
			case out <- scanResult{keys: keys, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil || next == 0 {
				return
			}
			cursor = next
		}
	}()
	return out, func() {
		cancel()
		<-done
	}
}

// retryRound tries again to move (or copy) keys that an earlier attempt did
// not finish.
func (m *Migrator) retryRound(ctx context.Context, p Placement, rs *runState, pend *pending, keys []string) {
	gp := m.newGrouper(ctx, rs, pend, true)
	for _, k := range keys {
		to, keep := targetsOf(p, m.self, k)
		if len(to) == 0 {
			rs.failed.Add(-1) // nothing to do any more; keep the count right
			continue
		}
		gp.add(to, keep, k)
	}
	gp.flush()
}

// moveBatch moves keys (all owned by owner under the target placement): it
// reads them, drops the expired ones, sends the rest and deletes locally
// what the receiver acknowledged, if the local version is still the one sent.
// Keys that could not be moved are recorded in pend. retry tells whether the
// keys come from pend (they are already counted in rs.failed).
func (m *Migrator) moveBatch(ctx context.Context, rs *runState, pend *pending, targets []string, keep bool, keys []string, retry bool) {
	owner := strings.Join(targets, ",")
	// fail records keys that were not moved; resolved records keys that
	// need no more work from this attempt.
	fail := func(keys []string, err error) {
		pend.add(keys, err)
		if !retry {
			rs.failed.Add(int64(len(keys)))
		}
	}
	resolved := func(n int) {
		if retry && n > 0 {
			rs.failed.Add(-int64(n))
		}
	}
	if err := ctx.Err(); err != nil {
		fail(keys, err)
		return
	}

	mark := rs.mark() // before the read: see deleteMoved
	entries, found, err := m.st.GetMany(ctx, keys)
	if err == nil && (len(entries) != len(keys) || len(found) != len(keys)) {
		err = fmt.Errorf("store returned %d entries for %d keys", len(entries), len(keys))
	}
	if err != nil {
		fail(keys, fmt.Errorf("read batch for %s: %w", owner, err))
		return
	}

	now := m.opts.Now().UnixMilli()
	send := make([]store.Entry, 0, len(keys))
	var expKeys []string
	var expVers []uint64
	gone := 0
	for i, e := range entries {
		switch {
		case !found[i]:
			gone++ // deleted or expired since the scan
		case e.ExpireAt != 0 && e.ExpireAt <= now:
			expKeys = append(expKeys, e.Key)
			expVers = append(expVers, e.Version)
		default:
			if e.Key == "" {
				e.Key = keys[i]
			}
			send = append(send, e)
		}
	}
	resolved(gone)

	if len(expKeys) > 0 {
		deleted, err := m.st.DeleteIfVersion(ctx, expKeys, expVers)
		if err != nil {
			fail(expKeys, fmt.Errorf("drop expired keys: %w", err))
		} else {
			// A key not deleted was rewritten meanwhile: the next full
			// pass finds its new version.
			rs.dropped.Add(countTrue(deleted))
			resolved(len(expKeys))
		}
	}
	if len(send) == 0 {
		return
	}

	if err := m.lim.wait(ctx, len(send)); err != nil {
		fail(entryKeys(send), err)
		return
	}
	// Every target must acknowledge a key before it counts as done.
	acks := make([]int, len(send))
	var refused []string
	refusedSet := map[string]bool{}
	var moved, stale, dropped int64
	for _, target := range targets {
		results, err := m.tr.Import(ctx, target, send)
		if err == nil && len(results) != len(send) {
			err = fmt.Errorf("%d results for %d entries", len(results), len(send))
		}
		if err != nil {
			fail(entryKeys(send), fmt.Errorf("import to %s: %w", target, err))
			return
		}
		for i, r := range results {
			if !r.IsAcked() {
				if !refusedSet[send[i].Key] {
					refusedSet[send[i].Key] = true
					refused = append(refused, send[i].Key)
				}
				continue
			}
			acks[i]++
			switch r {
			case Acked:
				moved++
			case AckedStale:
				stale++
			case AckedExpired:
				dropped++
			}
		}
	}
	ackKeys := make([]string, 0, len(send))
	ackVers := make([]uint64, 0, len(send))
	var bytes, copied int64
	for i := range send {
		e := &send[i]
		if acks[i] < len(targets) {
			continue
		}
		bytes += int64(len(e.Key) + len(e.Value))
		if keep {
			copied++
			continue
		}
		ackKeys = append(ackKeys, e.Key)
		ackVers = append(ackVers, e.Version)
	}
	rs.moved.Add(moved)
	rs.copied.Add(copied)
	rs.stale.Add(stale)
	rs.dropped.Add(dropped)
	rs.bytes.Add(bytes)
	if len(refused) > 0 {
		fail(refused, fmt.Errorf("import to %s: %d of %d entries: %w", owner, len(refused), len(send), errRefused))
	}
	if keep {
		resolved(int(copied))
		return
	}
	if len(ackKeys) == 0 {
		return
	}

	// The receiver holds these versions now: delete the local copies even
	// if ctx was canceled meanwhile, but never a copy rewritten since it
	// was read (deleteMoved); the next full pass moves that one.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackDeleteTimeout)
	defer cancel()
	if err := m.deleteMoved(dctx, rs, mark, ackKeys, ackVers); err != nil {
		fail(ackKeys, fmt.Errorf("delete acknowledged keys: %w", err))
		return
	}
	resolved(len(ackKeys))
}

func countTrue(bs []bool) int64 {
	var n int64
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func entryKeys(es []store.Entry) []string {
	keys := make([]string, len(es))
	for i := range es {
		keys[i] = es[i].Key
	}
	return keys
}
