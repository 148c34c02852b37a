package migrate

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/peercache/peercache/store"
)

// tracker lets a run know whether a key it would move was written to the
// shard after its pass began: the write may have landed behind the scanner,
// and only then is another full pass needed (see Migrator.TrackWrites).
//
// Every Put through the tracked store holds gate for reading for its whole
// duration; a run installs its watch under the write lock, so each Put in
// flight then has finished (it landed before the first scan starts, which
// therefore sees it) and each later Put sees the watch.
type tracker struct {
	gate sync.RWMutex
	cur  atomic.Pointer[watch]
}

// watch counts the Puts of keys a run would move (foreign keys), from its
// installation until the run ends.
type watch struct {
	foreign func(key string) bool
	// writes is held for reading by each foreign Put while it runs, and for
	// writing by deleteMoved around its check and its delete, so that no
	// foreign write lands in between.
	writes sync.RWMutex
	// inflight is the number of foreign Puts in progress; landed the number
	// finished. A Put adds to landed before it leaves inflight, and clean
	// reads inflight before landed, so a Put is never missed by both.
	inflight, landed atomic.Int64
}

// anyForeign reports whether any entry is a key the run would move.
func (w *watch) anyForeign(entries []store.Entry) bool {
	for i := range entries {
		if w.foreign(entries[i].Key) {
			return true
		}
	}
	return false
}

// clean reports whether no foreign Put is in progress and none finished
// since landed read since.
func (w *watch) clean(since int64) bool {
	return w.inflight.Load() == 0 && w.landed.Load() == since
}

// install makes w the watch every later Put reports to, once the Puts in
// progress have finished.
func (t *tracker) install(w *watch) {
	t.gate.Lock()
	t.cur.Store(w)
	t.gate.Unlock()
}

// remove stops the reports to w (Puts already counted in it finish as they
// are; the next install waits for them).
func (t *tracker) remove(w *watch) {
	t.cur.CompareAndSwap(w, nil)
}

// trackedStore is the shard as writers must use it once TrackWrites was
// called: Put reports to the running migration's watch.
type trackedStore struct {
	store.Store
	t *tracker
}

// Put writes through the wrapped store, counted by the current watch when
// any entry is a key the running migration would move.
func (s *trackedStore) Put(ctx context.Context, entries []store.Entry) ([]store.Outcome, error) {
	s.t.gate.RLock()
	defer s.t.gate.RUnlock()
	w := s.t.cur.Load()
	if w == nil || !w.anyForeign(entries) {
		return s.Store.Put(ctx, entries)
	}
	w.writes.RLock()
	w.inflight.Add(1)
	defer func() {
		w.landed.Add(1)
		w.inflight.Add(-1)
		w.writes.RUnlock()
	}()
	return s.Store.Put(ctx, entries)
}

// TrackWrites returns the shard wrapped so that every write through it is
// seen by the running migration, and from then on lets Run end after a pass
// behind whose scanner no key it would move was written, instead of always
// scanning the whole shard once more to find such keys. The caller must
// send every write of the shard through the returned store (reads and
// deletes may use either); a write that bypasses it could be left behind
// until the next run. Call it once, before the first Run.
func (m *Migrator) TrackWrites(st store.Store) store.Store {
	m.track = &tracker{}
	return &trackedStore{Store: st, t: m.track}
}

// startWatch installs a watch of the keys the run for p would move, or
// returns nil when writes are not tracked.
func (m *Migrator) startWatch(p Placement) *watch {
	if m.track == nil {
		return nil
	}
	w := &watch{foreign: func(key string) bool {
		to, keep := targetsOf(p, m.self, key)
		return len(to) > 0 && !keep
	}}
	m.track.install(w)
	return w
}

// deleteMoved deletes the local copies of keys whose receivers acknowledged
// them at versions. mark is rs.watch.landed as read before the keys were:
// when no key the run moves has been written since, each key still holds
// the version read, and a plain Delete (under the watch's lock, so that none
// lands meanwhile) removes exactly what DeleteIfVersion would, without
// reading the records again. Otherwise, or without tracking, it is
// DeleteIfVersion.
func (m *Migrator) deleteMoved(ctx context.Context, rs *runState, mark int64, keys []string, versions []uint64) error {
	if w := rs.watch; w != nil {
		w.writes.Lock()
		if w.landed.Load() == mark {
			err := m.st.Delete(ctx, keys)
			w.writes.Unlock()
			return err
		}
		w.writes.Unlock()
	}
	_, err := m.st.DeleteIfVersion(ctx, keys, versions)
	return err
}

// mark is the count of foreign writes a batch's later deleteMoved compares
// with; 0 without tracking.
func (rs *runState) mark() int64 {
	if rs.watch == nil {
		return 0
	}
	return rs.watch.landed.Load()
}
