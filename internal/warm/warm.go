// Package warm owns the warm-up of a node's local tier after a ring change.
// A ring change drops every copy in the tier, so the keys a new owner
// receives would make its tier start cold. At the change (before the tier's
// epoch moves on) the previous owner notes the hottest of its local copies
// whose key another member now owns, in its tier's order, bounded by a
// number of keys and of bytes (Planner.Plan); once its migration to the new
// ring has finished, it sends each new owner its list, keys only
// (Planner.Send). The new owner reads those keys from its own shard, where
// the migration has just put them, and fills its tier with them through the
// same guards as any read, so that a write racing the warm-up wins (Fill).
//
// It also counts the warm-up an operator asks for before traffic is
// switched on (Keys: a list of keys read in batches through their owners,
// which load the missing ones from the read-through origin).
//
// The package must not know the node that composes it, the peer protocol or
// membership: the tier's hottest copies arrive through a function, the
// lists leave through functions that find a member's address and deliver
// keys to it, and the receiving side is handed functions that say which
// keys are its own, read them from its shard and fill its tier (and Keys
// is handed the function that reads a batch). Whether
// there is anything to warm at all (a shard kept in process leaves the tier
// no copies of owned keys) is the caller's to decide. It has no
// package-level mutable state; the goroutines of a Send end before Send
// returns.
package warm

import (
	"context"
	"log/slog"
	"sync"

	"github.com/peercache/peercache/ring"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the warm-up's bounds.
const (
	DefaultKeys  = 10_000
	DefaultBytes = 16 << 20
)

// scanPerKey is how many tier entries a plan looks at per key it may note.
const scanPerKey = 8

// Bounds bound the plan of one ring change.
type Bounds struct {
	// Keys is the most keys a plan notes (0 or less: no warm-up); it looks
	// at no more than 8 times as many tier entries.
	Keys int
	// Bytes: a plan stops noting keys once their keys and values reach it.
	Bytes int64
}

// Hottest walks a tier's local copies from the hottest, calling fn with
// each key and its size (key and value bytes) until fn returns false or
// maxScan entries were looked at (localtier.Tier.HottestLocal).
type Hottest func(maxScan int, fn func(key string, size int) bool)

// Delivery is how Send reaches the new owners.
type Delivery struct {
	// Addr returns the address of member owner, false if it is not known
	// (its keys are then not sent).
	Addr func(owner string) (string, bool)
	// Send delivers keys to the member at addr and returns how many it
	// loaded into its tier.
	Send func(ctx context.Context, addr string, keys []string) (loaded int, err error)
	// Sent counts the keys sent, delivered or not (nil: not counted).
	Sent prometheus.Counter
	// Logger receives a line per owner sent to (nil: slog.Default()).
	Logger *slog.Logger
}

// plan is the keys to send, by new owner, for one ring.
type plan struct {
	ring *ring.Ring
	keys map[string][]string
}

// Planner holds a node's warm-up plan of its latest ring change and the
// latest ring whose warm-up it finished. The zero Planner is ready to use;
// its methods may be called concurrently.
type Planner struct {
	mu   sync.Mutex
	plan *plan
	done *ring.Ring // the latest ring whose warm-up was sent (or had none to send)
}

// Plan notes, for ring r, the hottest local copies whose key another member
// than self owns in r, within b, replacing the plan of the previous change
// (with nothing to note, there is no plan). Call it at a ring change, before
// the tier's epoch moves on. With no bounds or an empty ring it does
// nothing.
func (p *Planner) Plan(r *ring.Ring, self string, b Bounds, hottest Hottest) {
	if b.Keys <= 0 || r.Len() == 0 {
		return
	}
	next := &plan{ring: r, keys: map[string][]string{}}
	count := 0
	var bytes int64
	hottest(scanPerKey*b.Keys, func(key string, size int) bool {
		if o := r.Owner(key); o != "" && o != self {
			next.keys[o] = append(next.keys[o], key)
			count++
			bytes += int64(size)
		}
		return count < b.Keys && bytes < b.Bytes
	})
	p.mu.Lock()
	if count > 0 {
		p.plan = next
	} else {
		p.plan = nil
	}
	p.mu.Unlock()
}

// Send sends the plan made for ring r, if that is still the latest plan,
// to the new owners, all at once, and returns once each has answered. Call
// it once the migration to r has finished. Afterwards Done(r) is true,
// whether or not there was anything to send.
func (p *Planner) Send(ctx context.Context, r *ring.Ring, d Delivery) {
	defer func() {
		p.mu.Lock()
		p.done = r
		p.mu.Unlock()
	}()
	p.mu.Lock()
	pl := p.plan
	if pl == nil || !pl.ring.Equal(r) {
		p.mu.Unlock()
		return
	}
	p.plan = nil
	p.mu.Unlock()
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	var wg sync.WaitGroup
	for owner, keys := range pl.keys {
		addr, ok := d.Addr(owner)
		if !ok {
			continue
		}
		wg.Go(func() {
			loaded, err := d.Send(ctx, addr, keys)
			if d.Sent != nil {
				d.Sent.Add(float64(len(keys)))
			}
			if err != nil {
				log.Debug("warm-up not delivered", "peer", owner, "keys", len(keys), "err", err)
				return
			}
			log.Info("warm-up sent", "peer", owner, "keys", len(keys), "loaded", loaded)
		})
	}
	wg.Wait()
}

// Done reports whether the warm-up of ring r was sent (each new owner
// answered, having filled its tier) or had nothing to send: r is the ring
// of the latest Send.
func (p *Planner) Done(r *ring.Ring) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done != nil && p.done.Equal(r)
}
