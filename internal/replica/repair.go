package replica

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
)

// Repair of copies that failed. A primary applies a write and then copies
// it to the key's replicas; when a copy fails (the replica did not answer,
// or refused because its view lagged), the write stays on fewer than RF
// owners, and a crash of the primary before the next full re-replication
// run (a ring change or the sweep) would lose it. The repairer closes that
// window: it remembers every key whose copy failed and copies it again,
// with backoff, as soon as the owners answer, so a key is back to RF
// copies within seconds of the cluster settling.
//
// The set is bounded (RepairConfig.MaxKeys); past it the repairer forgets
// the keys and asks for a full re-replication run instead (FullCopy),
// which copies every key the member holds to all its owners. Each attempt
// re-plans against the current ring: a key the member no longer owns is
// dropped (the ring-change migration moves it to all its new owners), and
// a key's new co-owners are the targets. Copies are ordinary versioned
// imports, so a copy that races a newer write of the key can never replace
// it.
const (
	// DefaultMaxRepairKeys is RepairConfig.MaxKeys when it is 0.
	DefaultMaxRepairKeys = 100_000
	repairBatch          = 512
	repairMinBackoff     = 50 * time.Millisecond
	repairMaxBackoff     = time.Second
	repairSendTimeout    = 5 * time.Second
)

// ShardReader reads a batch of keys from the member's shard (store.Store
// is one).
type ShardReader interface {
	GetMany(ctx context.Context, keys []string) ([]store.Entry, []bool, error)
}

// RepairConfig is what a Repairer needs from the member it runs in.
type RepairConfig struct {
	// Self is the member's name.
	Self string
	// RF is the replication factor, the primary included.
	RF int
	// Store is the member's shard, read for the current value of each key.
	Store ShardReader
	// Ring returns the member's current ring; each round plans against it.
	Ring func() *ring.Ring
	// Import ships entries to one owner's import.
	Import SendFunc
	// FullCopy asks for a run that copies every key the member holds to
	// all its owners; it is called when the set overflowed.
	FullCopy func()
	// Logger logs overflows (WARN) and failed rounds (DEBUG).
	Logger *slog.Logger
	// Repaired counts the keys whose copies were made again (nil: not
	// counted).
	Repaired prometheus.Counter
	// MaxKeys bounds the set of keys waiting for a copy (0:
	// DefaultMaxRepairKeys).
	MaxKeys int
}

// Repairer is one member's set of keys whose copies must be made again,
// and the loop (Run) that makes them.
type Repairer struct {
	cfg  RepairConfig
	wake chan struct{} // capacity 1

	mu       sync.Mutex
	keys     map[string]uint64 // key -> generation of its latest failure
	gen      uint64
	overflow bool // keys were forgotten: a full re-replication run is due
	repaired uint64
	dropped  uint64
	rounds   uint64
}

// NewRepairer returns an empty Repairer for cfg; it copies nothing until
// Run is called.
func NewRepairer(cfg RepairConfig) *Repairer {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxRepairKeys
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Repairer{cfg: cfg, wake: make(chan struct{}, 1), keys: map[string]uint64{}}
}

// Add records that a copy of key failed.
func (r *Repairer) Add(key string) {
	r.mu.Lock()
	r.gen++
	if _, ok := r.keys[key]; ok || len(r.keys) < r.cfg.MaxKeys {
		r.keys[strings.Clone(key)] = r.gen
	} else {
		r.overflow = true
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Pending returns how many keys wait for a copy.
func (r *Repairer) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys)
}

// RepairStats are a Repairer's counters.
type RepairStats struct {
	// Pending is the number of keys waiting for a copy.
	Pending int
	// Repaired counts the keys whose copies were made again; Dropped the
	// keys forgotten because they needed no copy any more (gone, expired,
	// or no longer the member's).
	Repaired, Dropped uint64
	// Rounds counts the attempts.
	Rounds uint64
}

// Stats returns the counters.
func (r *Repairer) Stats() RepairStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RepairStats{Pending: len(r.keys), Repaired: r.repaired, Dropped: r.dropped, Rounds: r.rounds}
}

// take returns up to repairBatch keys with their generations, and whether
// a full run is due (the set overflowed since the last take).
func (r *Repairer) take() (map[string]uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	full := r.overflow
	r.overflow = false
	out := make(map[string]uint64, min(len(r.keys), repairBatch))
	for k, g := range r.keys {
		if len(out) == repairBatch {
			break
		}
		out[k] = g
	}
	return out, full
}

// done forgets the keys whose copies are made (or that need none any more),
// unless a copy of one failed again since it was taken.
func (r *Repairer) done(taken map[string]uint64, keys []string, repaired bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if g, ok := r.keys[k]; ok && g == taken[k] {
			delete(r.keys, k)
			if repaired {
				r.repaired++
			} else {
				r.dropped++
			}
		}
	}
}

// Run copies the recorded keys until ctx ends: a round as soon as a key is
// added, then rounds with backoff (50 ms doubling to 1 s) while some fail.
// The caller owns the goroutine that runs it; it returns when ctx ends.
func (r *Repairer) Run(ctx context.Context) {
	backoff := repairMinBackoff
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		for {
			// Let the write that failed finish and the peer settle a
			// little before trying again.
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			taken, full := r.take()
			if full {
				r.cfg.Logger.Warn("repair: more keys with missing copies than it can track; re-replicating everything", "limit", r.cfg.MaxKeys)
				if r.cfg.FullCopy != nil {
					r.cfg.FullCopy()
				}
			}
			if len(taken) == 0 {
				backoff = repairMinBackoff
				break
			}
			if r.round(ctx, taken) {
				backoff = repairMinBackoff
			} else {
				backoff = min(2*backoff, repairMaxBackoff)
			}
		}
	}
}

// round copies taken to their other owners in the current ring and
// reports whether every copy was acknowledged.
func (r *Repairer) round(ctx context.Context, taken map[string]uint64) bool {
	r.mu.Lock()
	r.rounds++
	r.mu.Unlock()
	keys := make([]string, 0, len(taken))
	for k := range taken {
		keys = append(keys, k)
	}
	sctx, cancel := context.WithTimeout(ctx, repairSendTimeout)
	defer cancel()
	entries, found, err := r.cfg.Store.GetMany(sctx, keys)
	if err != nil {
		r.cfg.Logger.Debug("repair: reading the shard failed", "keys", len(keys), "err", err)
		return false
	}
	rg := r.cfg.Ring()
	var gone []string
	groups := map[string][]store.Entry{} // targets joined by "\x00" -> entries
	for i, k := range keys {
		var buf [MaxReplicas]string
		owners := Owners(rg, k, r.cfg.RF, &buf)
		if !found[i] || !slices.Contains(owners, r.cfg.Self) {
			// Expired or gone, or no longer this member's: the ring-change
			// migration sends what the member holds to all its new owners.
			gone = append(gone, k)
			continue
		}
		var to []string
		for _, o := range owners {
			if o != r.cfg.Self {
				to = append(to, o)
			}
		}
		if len(to) == 0 {
			gone = append(gone, k)
			continue
		}
		e := entries[i]
		e.Key = k
		sig := strings.Join(to, "\x00")
		groups[sig] = append(groups[sig], e)
	}
	r.done(taken, gone, false)
	ok := true
	for sig, es := range groups {
		acked := make([]int, len(es))
		targets := strings.Split(sig, "\x00")
		for _, p := range targets {
			res, err := r.cfg.Import(sctx, p, es)
			if err != nil {
				r.cfg.Logger.Debug("repair: copy not acknowledged", "peer", p, "keys", len(es), "err", err)
				continue
			}
			for i, x := range res {
				if x.IsAcked() {
					acked[i]++
				}
			}
		}
		var fixed []string
		for i, e := range es {
			if acked[i] == len(targets) {
				fixed = append(fixed, e.Key)
			} else {
				ok = false
			}
		}
		r.done(taken, fixed, true)
		if r.cfg.Repaired != nil {
			r.cfg.Repaired.Add(float64(len(fixed)))
		}
	}
	return ok
}
