package migrate

import (
	"context"
	"log/slog"
	"sync"
	"time"

	lograte "github.com/peercache/peercache/internal/rate"
	"github.com/peercache/peercache/store"
)

// Receiver is the receiving end of imports: the entries other members send
// this node (migration batches, replica copies and repairs, write-through
// from a new owner). Import writes only keys this node owns, only versions
// not too far ahead of its clock (a version from the future would win every
// later write of its key), and only if newer than what the shard holds.
// Barrier lets a migration run wait for every import accepted under an
// earlier view. A Receiver is safe for concurrent use.
type Receiver struct {
	cfg  ReceiverConfig
	gate sync.RWMutex // an import holds it (read) from its ownership check until its write landed
	warn lograte.Gate // the WARN line about versions from the future
}

// Adder is a counter (a prometheus.Counter).
type Adder interface{ Add(float64) }

// ReceiverConfig is what a Receiver works with; every field is required
// except Logger.
type ReceiverConfig struct {
	// Store is the shard accepted entries are written to.
	Store store.Store
	// Owns reports whether this node owns key (as primary or replica) in
	// its current view.
	Owns func(key string) bool
	// Observe moves this node's clock past a version it accepted.
	Observe func(version uint64)
	// MaxSkew is how far ahead of this node's clock a version may lie.
	MaxSkew time.Duration
	// Applied is called for every entry written (the node drops its cached
	// copies of the key).
	Applied func(key string)
	// Acked, Refused and Future count the entries received: written or
	// acknowledged without a write, refused, and (among the refused) those
	// whose version lay too far ahead.
	Acked, Refused, Future Adder
	// Logger receives the WARN line about versions from the future
	// (nil: slog.Default()).
	Logger *slog.Logger
}

// NewReceiver returns a Receiver for cfg.
func NewReceiver(cfg ReceiverConfig) *Receiver {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Receiver{cfg: cfg}
}

// Import writes the entries from member from that this node owns and whose
// versions are sane, and answers one result per entry (Refused for the
// others). An error is the shard's: nothing is acknowledged.
func (r *Receiver) Import(ctx context.Context, from string, entries []store.Entry) ([]ImportResult, error) {
	res := make([]ImportResult, len(entries))
	owned, idx, outs, err := r.write(ctx, from, entries, res)
	if err != nil {
		return nil, err
	}
	for j, o := range outs {
		res[idx[j]] = FromOutcome(o)
		if o == store.Applied {
			r.cfg.Applied(owned[j].Key)
		}
	}
	r.cfg.Acked.Add(float64(len(owned)))
	r.cfg.Refused.Add(float64(len(entries) - len(owned)))
	return res, nil
}

// write holds the gate from the ownership check until the write has
// landed, so that Barrier waits for it.
func (r *Receiver) write(ctx context.Context, from string, entries []store.Entry, res []ImportResult) (owned []store.Entry, idx []int, outs []store.Outcome, err error) {
	r.gate.RLock()
	defer r.gate.RUnlock()
	owned = make([]store.Entry, 0, len(entries))
	idx = make([]int, 0, len(entries))
	var maxVer uint64
	limit := r.Limit()
	future := 0
	for i, e := range entries {
		switch {
		case e.Version > limit:
			res[i] = Refused
			future++
		case !r.cfg.Owns(e.Key):
			res[i] = Refused
		default:
			owned = append(owned, e)
			idx = append(idx, i)
			maxVer = max(maxVer, e.Version)
		}
	}
	if future > 0 {
		r.refuseFuture(from, future, entries)
	}
	if len(owned) == 0 {
		return owned, idx, nil, nil
	}
	r.cfg.Observe(maxVer)
	outs, err = r.cfg.Store.Put(ctx, owned)
	return owned, idx, outs, err
}

// Limit is the largest version this node accepts from another member: its
// clock's now plus MaxSkew.
func (r *Receiver) Limit() uint64 {
	return uint64(time.Now().Add(r.cfg.MaxSkew).UnixNano())
}

// Sane reports whether an entry member from handed over outside an import
// (a handoff read) has a version this node may accept; one that does not
// is counted and logged as Import would.
func (r *Receiver) Sane(from string, e store.Entry) bool {
	if e.Version <= r.Limit() {
		return true
	}
	r.refuseFuture(from, 1, []store.Entry{e})
	return false
}

// refuseFuture counts, and logs at most once a second, entries refused
// because their versions lie too far ahead of this node's clock.
func (r *Receiver) refuseFuture(from string, count int, entries []store.Entry) {
	r.cfg.Future.Add(float64(count))
	if !r.warn.Allow(time.Now()) {
		return
	}
	var newest uint64
	for _, e := range entries {
		newest = max(newest, e.Version)
	}
	ahead := (float64(newest) - float64(time.Now().UnixNano())) / 1e9
	r.cfg.Logger.Warn("refused entries whose versions lie too far in the future (clock skew beyond --max-clock-skew, or forged)",
		"from", from, "entries", count, "max_clock_skew", r.cfg.MaxSkew, "ahead_seconds", int64(ahead))
}

// Barrier returns once every import accepted before it was called has
// written its keys. A migration run calls it before its first pass:
// otherwise an import accepted under an earlier view could land after the
// run's last pass had scanned past its key, which would then stay on a
// node that no longer owns it until the next sweep.
func (r *Receiver) Barrier() {
	r.gate.Lock()
	r.gate.Unlock() // a barrier: nothing to guard in between
}
