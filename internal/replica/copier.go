package replica

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
)

// statusUnavailable is the status of a write whose copies were not
// acknowledged: retryable, the kind kv.ErrUnavailable.
const statusUnavailable = 503

// Results of a copy, the label values of CopierConfig.Results.
const (
	ResultAcked   = "acked"   // the replica wrote the copy (or held it already)
	ResultRefused = "refused" // the replica does not own the key in its view
	ResultError   = "error"   // the replica did not answer
)

// SendFunc ships entries to peer's import and returns one result per entry.
type SendFunc func(ctx context.Context, peer string, es []store.Entry) ([]migrate.ImportResult, error)

// CopierConfig is what a Copier needs from the member it runs in.
type CopierConfig struct {
	// Self is the member's name: the primary of the keys it copies.
	Self string
	// RF is the replication factor, the primary included.
	RF int
	// Acks is the write-acknowledgement policy.
	Acks Acks
	// Timeout bounds each send (the member's peer timeout).
	Timeout time.Duration
	// Send ships a batch of copies to one replica.
	Send SendFunc
	// Failed is told each key whose copy a replica refused or did not
	// answer (nil: nobody), so that it can be copied again later.
	Failed func(key string)
	// Results counts the copies by result (ResultAcked, ResultRefused,
	// ResultError) in its one label (nil: not counted).
	Results *prometheus.CounterVec
}

// Copier sends the writes a primary applied to the keys' replicas.
type Copier struct {
	cfg CopierConfig
}

// NewCopier returns a Copier for cfg.
func NewCopier(cfg CopierConfig) *Copier {
	return &Copier{cfg: cfg}
}

// count records one copy's result.
func (c *Copier) count(result string) {
	if c.cfg.Results != nil {
		c.cfg.Results.WithLabelValues(result).Inc()
	}
}

// failed records that a copy of key must be made again.
func (c *Copier) failed(key string) {
	if c.cfg.Failed != nil {
		c.cfg.Failed(key)
	}
}

// unacked is the error of an entry whose copies were not acknowledged.
func unacked(format string, args ...any) *kv.Error {
	return &kv.Error{Status: statusUnavailable, Message: fmt.Sprintf(format, args...), Retryable: true}
}

// Copy sends writes the primary applied to their replicas in r and waits
// for the acknowledgements the policy asks for; the other copies finish in
// the background (bounded by Timeout). Each replica gets one import with
// all the entries it holds a copy of. It returns one error per entry: a
// write with too few copies acknowledged (retryable 503; the write is on
// the primary, and Failed is told so that it is copied again).
func (c *Copier) Copy(ctx context.Context, r *ring.Ring, es []store.Entry) []*kv.Error {
	errs := make([]*kv.Error, len(es))
	required := make([]int, len(es)) // replica acks entry i needs
	acked := make([]int, len(es))
	spare := make([]int, len(es)) // replicas of entry i that may still answer
	byPeer := map[string][]int{}  // replica -> entries it gets
	for i, e := range es {
		var buf [MaxReplicas]string
		for _, o := range Owners(r, e.Key, c.cfg.RF, &buf) {
			if o != c.cfg.Self {
				byPeer[o] = append(byPeer[o], i)
				spare[i]++
			}
		}
		required[i] = Required(c.cfg.Acks, spare[i], c.cfg.RF)
	}
	if len(byPeer) == 0 {
		return errs
	}
	if len(byPeer) == 1 && slices.Equal(required, spare) {
		// One replica, and every copy must be acknowledged (rf 2, acks
		// all): send on this goroutine, no fan-out needed.
		for p, idx := range byPeer {
			batch := make([]store.Entry, len(idx))
			for j, i := range idx {
				batch[j] = es[i]
			}
			sctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
			res, err := c.cfg.Send(sctx, p, batch)
			cancel()
			for j, i := range idx {
				if err == nil && res[j].IsAcked() {
					c.count(ResultAcked)
					continue
				}
				why, label := fmt.Sprintf("%s refused the copy (it does not own the key in its view yet)", p), ResultRefused
				if err != nil {
					why, label = err.Error(), ResultError
				}
				c.count(label)
				c.failed(batch[j].Key) // copied again as soon as the replica answers
				errs[i] = unacked("write applied on the primary but its replica copy was not acknowledged: %s", why)
			}
		}
		return errs
	}
	type answer struct {
		peer string
		idx  []int
		res  []migrate.ImportResult
		err  error
	}
	answers := make(chan answer, len(byPeer))
	// Sends outlive the call when the policy does not wait for them (or
	// the caller gives up), and a value may alias the caller's buffer (a
	// client door's read buffer, reused for the next request): the sends
	// get their own copy.
	es = slices.Clone(es)
	for i := range es {
		es[i].Value = bytes.Clone(es[i].Value)
	}
	// Sends outlive the call when the policy does not wait for them.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	var wg sync.WaitGroup
	for p, idx := range byPeer {
		batch := make([]store.Entry, len(idx))
		for j, i := range idx {
			batch[j] = es[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.cfg.Send(sctx, p, batch)
			for j := range batch {
				if err == nil && !res[j].IsAcked() {
					c.count(ResultRefused)
				} else if err != nil {
					c.count(ResultError)
				} else {
					c.count(ResultAcked)
					continue
				}
				c.failed(batch[j].Key) // copied again as soon as the replica answers
			}
			answers <- answer{p, idx, res, err}
		}()
	}
	go func() { wg.Wait(); cancel() }()
	waiting := 0 // entries whose outcome is not known yet
	for i := range es {
		if required[i] > 0 {
			waiting++
		}
	}
	done := func(i int) bool { return acked[i] >= required[i] || errs[i] != nil }
	reasons := make([][]string, len(es))
	for got := 0; waiting > 0 && got < len(byPeer); got++ {
		var a answer
		select {
		case a = <-answers:
		case <-ctx.Done():
			for i := range es {
				if !done(i) {
					errs[i] = unacked("waiting for replica acknowledgements: %v", ctx.Err())
				}
			}
			return errs
		}
		for j, i := range a.idx {
			if done(i) {
				continue
			}
			spare[i]--
			if a.err == nil && a.res[j].IsAcked() {
				if acked[i]++; done(i) {
					waiting--
				}
				continue
			}
			why := fmt.Sprintf("%s refused the copy (it does not own the key in its view yet)", a.peer)
			if a.err != nil {
				why = a.err.Error()
			}
			reasons[i] = append(reasons[i], why)
			if acked[i]+spare[i] < required[i] {
				errs[i] = unacked("write applied on the primary but only %d of the %d replica copies required were acknowledged: %v",
					acked[i], required[i], reasons[i])
				waiting--
			}
		}
	}
	return errs
}
