//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// keyState is what the suite knows about one key: the outcome of the last
// acknowledged operation, plus every operation that was never acknowledged
// (it may or may not have taken effect, at any later time).
type keyState struct {
	present  bool   // the last acknowledged operation was a PUT
	value    string // its value
	version  uint64 // its version (X-Peercache-Version)
	acked    bool   // some operation was acknowledged
	maybe    map[string]bool
	maybeDel bool
	written  map[string]bool // every value ever sent for the key
	owner    string          // X-Peercache-Owner of the last read that found it

	// For the partition scenario: every acknowledged operation, so that the
	// outcome can be judged by version (last writer wins).
	track bool
	acks  []ackRec
}

type ackRec struct {
	side    string // "majority" or "minority"
	deleted bool
	value   string
	version uint64
}

func (k *keyState) sent(value string) {
	if k.written == nil {
		k.written = map[string]bool{}
	}
	k.written[value] = true
}

func (k *keyState) ack(del bool, value string, version uint64, side string) {
	k.acked = true
	k.present, k.value, k.version = !del, value, version
	if del {
		k.value = ""
	}
	if k.track {
		k.acks = append(k.acks, ackRec{side: side, deleted: del, value: value, version: version})
	}
}

func (k *keyState) unacked(del bool, value string) {
	if del {
		k.maybeDel = true
		return
	}
	if k.maybe == nil {
		k.maybe = map[string]bool{}
	}
	k.maybe[value] = true
}

func (k *keyState) uncertain() bool { return k.maybeDel || len(k.maybe) > 0 }

// model holds every key the suite wrote. Keys are added before a workload
// starts (never while it runs), and each key is written by one worker at a
// time, so keyStates need no lock.
type model struct {
	mu   sync.Mutex
	keys map[string]*keyState
	seq  atomic.Uint64 // makes every value unique
}

func newModel() *model { return &model{keys: map[string]*keyState{}} }

func (m *model) state(key string) *keyState {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.keys[key]
	if k == nil {
		k = &keyState{}
		m.keys[key] = k
	}
	return k
}

func (m *model) allKeys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.keys))
	for k := range m.keys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (m *model) newValue(key string) string {
	return fmt.Sprintf("%s.%d", key, m.seq.Add(1))
}

// targets is the set of nodes a workload sends requests to; the scenario
// swaps it as nodes come and go.
type targets struct{ p atomic.Pointer[[]container] }

func (t *targets) set(cs []container) { t.p.Store(&cs) }
func (t *targets) get() []container {
	if p := t.p.Load(); p != nil {
		return *p
	}
	return nil
}

// figures are the counters a workload reports.
type figures struct {
	ops, writes, acked, failed, retries  atomic.Int64
	reads, misses, stale, wrong, readErr atomic.Int64

	mu        sync.Mutex
	failures  map[string]int // last answer of writes never acknowledged, and of failed reads
	anomalies []string       // the first stale and wrong reads, in detail
}

func (f *figures) fail(what string, r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures == nil {
		f.failures = map[string]int{}
	}
	f.failures[what+": "+r.outcome()]++
}

func (f *figures) anomaly(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.anomalies) < 10 {
		f.anomalies = append(f.anomalies, fmt.Sprintf(format, args...))
	}
}

func (f *figures) String() string {
	s := fmt.Sprintf("ops=%d writes=%d acknowledged=%d failed=%d retries=%d reads=%d misses=%d stale_reads=%d wrong_reads=%d read_errors=%d",
		f.ops.Load(), f.writes.Load(), f.acked.Load(), f.failed.Load(), f.retries.Load(),
		f.reads.Load(), f.misses.Load(), f.stale.Load(), f.wrong.Load(), f.readErr.Load())
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.failures) > 0 {
		s += fmt.Sprintf(" failures=%v", f.failures)
	}
	return s
}

// retryable says whether a reply is worth another attempt (on another node).
func retryable(r reply) bool {
	if r.Err != nil {
		return true
	}
	switch r.Status {
	case http.StatusMisdirectedRequest, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// write performs one PUT (or DELETE) with retries on other nodes, and
// records the outcome in the key's state.
func write(ctx context.Context, c *client, m *model, f *figures, nodes func() []container, start int, key string, del bool, side string) {
	k := m.state(key)
	value := ""
	method := http.MethodDelete
	if !del {
		value = m.newValue(key)
		method = http.MethodPut
		k.sent(value)
	}
	f.writes.Add(1)
	backoff := 50 * time.Millisecond
	var last reply
	for attempt := 0; attempt < 8; attempt++ {
		ns := nodes()
		if len(ns) == 0 {
			break
		}
		last = c.do(ctx, method, ns[(start+attempt)%len(ns)].Base(), key, value)
		if last.Err == nil && last.Status == http.StatusNoContent {
			k.ack(del, value, last.Version, side)
			if last.Owner != "" {
				k.owner = last.Owner
			}
			f.acked.Add(1)
			return
		}
		if !retryable(last) || ctx.Err() != nil {
			break
		}
		f.retries.Add(1)
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
	k.unacked(del, value)
	f.failed.Add(1)
	f.fail(method, last)
}

// readCheck performs one GET during a workload and judges it against the
// key's state: a 404 for a key that must exist is a miss, an older value a
// stale read, a value never written for the key a wrong read.
func readCheck(ctx context.Context, c *client, m *model, f *figures, nodes func() []container, start int, key string) {
	k := m.state(key)
	f.reads.Add(1)
	var r reply
	for attempt := 0; attempt < 3; attempt++ {
		ns := nodes()
		if len(ns) == 0 {
			break
		}
		r = c.do(ctx, http.MethodGet, ns[(start+attempt)%len(ns)].Base(), key, "")
		if !retryable(r) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.Err == nil && r.Status == http.StatusOK && r.Owner != "" {
		k.owner = r.Owner
	}
	switch {
	case r.Err != nil || (r.Status != http.StatusOK && r.Status != http.StatusNotFound):
		f.readErr.Add(1)
		f.fail("GET", r)
	case r.Status == http.StatusNotFound:
		if k.present && !k.maybeDel {
			f.misses.Add(1)
		}
	case (k.present && r.Body == k.value) || k.maybe[r.Body]:
	case k.written[r.Body]:
		f.stale.Add(1)
		f.anomaly("stale read of %s: got %q (owner %s, source %s, version %d), last acknowledged %q (version %d, present %v)",
			key, r.Body, r.Owner, r.Source, r.Version, k.value, k.version, k.present)
	default:
		f.wrong.Add(1)
		f.anomaly("wrong read of %s: got %q (owner %s, source %s)", key, r.Body, r.Owner, r.Source)
	}
}

// workload runs workers concurrent workers over keys (each key belongs to
// one worker, so each key sees one operation at a time) until stop is
// closed, the op budget is spent or maxDur passes. The mix is 30% reads,
// 60% puts, 10% deletes (writeOnly: 6 puts to 1 delete).
type workload struct {
	c         *client
	m         *model
	nodes     *targets
	workers   int
	budget    int64
	maxDur    time.Duration
	side      string // recorded with acknowledged writes (partition scenario)
	writeOnly bool
	f         figures
}

func (w *workload) run(ctx context.Context, keys []string, stop <-chan struct{}) {
	for _, k := range keys {
		w.m.state(k) // create every state before the workers start
	}
	var wg sync.WaitGroup
	deadline := time.Now().Add(w.maxDur)
	for i := 0; i < w.workers; i++ {
		var mine []string
		for j := i; j < len(keys); j += w.workers {
			mine = append(mine, keys[j])
		}
		if len(mine) == 0 {
			continue
		}
		wg.Add(1)
		go func(i int, mine []string) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				if time.Now().After(deadline) || w.f.ops.Add(1) > w.budget {
					return
				}
				key := mine[rng.IntN(len(mine))]
				start := rng.IntN(1 << 20)
				p := rng.IntN(100)
				if w.writeOnly {
					p = 30 + rng.IntN(70) // 6 puts : 1 delete
				}
				switch {
				case p < 30:
					readCheck(ctx, w.c, w.m, &w.f, w.nodes.get, start, key)
				case p < 90:
					write(ctx, w.c, w.m, &w.f, w.nodes.get, start, key, false, w.side)
				default:
					write(ctx, w.c, w.m, &w.f, w.nodes.get, start, key, true, w.side)
				}
			}
		}(i, mine)
	}
	wg.Wait()
	if n := w.f.ops.Load(); n > w.budget {
		w.f.ops.Store(w.budget)
	}
}

// start runs the workload in the background; the returned function stops
// it and waits for the workers.
func (w *workload) start(ctx context.Context, keys []string) (stop func()) {
	ch := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx, keys, ch) }()
	var once sync.Once
	return func() {
		once.Do(func() { close(ch) })
		<-done
	}
}

// bulkWrite PUTs every key once through node i%len(nodes), with workers
// concurrent writers.
func bulkWrite(ctx context.Context, c *client, m *model, f *figures, nodes []container, keys []string, workers int) {
	for _, k := range keys {
		m.state(k)
	}
	get := func() []container { return nodes }
	var next atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1) - 1)
				if j >= len(keys) || ctx.Err() != nil {
					return
				}
				f.ops.Add(1)
				write(ctx, c, m, f, get, j, keys[j], false, "")
			}
		}()
	}
	wg.Wait()
}

// verdict is the read-back of every key at the end of a scenario.
type verdict struct {
	checked, ok, lost, resurrected, wrong, unavailable, uncertain int
	lostKeys                                                      []string // lost, resurrected, wrong
	samples                                                       []string
	observed                                                      map[string]observation
	sources                                                       map[string]int // X-Peercache-Source of the reads that found a value
	// Partition keys (tracked), judged by version: the acknowledged write
	// with the highest version must be what is read.
	lww struct {
		keys, bothSides, majorityWon, minorityWon, overwrittenAcks, violations int
	}
}

func (v *verdict) String() string {
	return fmt.Sprintf("checked=%d ok=%d lost=%d resurrected=%d wrong=%d unavailable=%d uncertain_keys=%d sources=%v",
		v.checked, v.ok, v.lost, v.resurrected, v.wrong, v.unavailable, v.uncertain, v.sources)
}

func (v *verdict) sample(format string, args ...any) {
	if len(v.samples) < 10 {
		v.samples = append(v.samples, fmt.Sprintf(format, args...))
	}
}

// check reads every key back (key i through node (i+offset)%len(nodes),
// so through another node than the one that wrote it) and judges it.
func check(ctx context.Context, c *client, m *model, nodes []container, keys []string, offset, workers int) *verdict {
	v := &verdict{observed: map[string]observation{}, sources: map[string]int{}}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1) - 1)
				if j >= len(keys) || ctx.Err() != nil {
					return
				}
				key := keys[j]
				k := m.state(key)
				var r reply
				backoff := 100 * time.Millisecond
				for attempt := 0; attempt < 6; attempt++ {
					r = c.do(ctx, http.MethodGet, nodes[(j+offset+attempt)%len(nodes)].Base(), key, "")
					if !retryable(r) {
						break
					}
					time.Sleep(backoff)
					backoff = min(2*backoff, 2*time.Second)
				}
				mu.Lock()
				judge(v, k, key, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return v
}

func judge(v *verdict, k *keyState, key string, r reply) {
	v.checked++
	if k.uncertain() {
		v.uncertain++
	}
	if r.Err != nil || (r.Status != http.StatusOK && r.Status != http.StatusNotFound) {
		v.unavailable++
		v.sample("%s: unavailable: %d %v %s", key, r.Status, r.Err, strings.TrimSpace(r.Body))
		return
	}
	found := r.Status == http.StatusOK
	if found {
		k.owner = r.Owner
		v.sources[r.Source]++
	}
	v.observed[key] = observation{found: found, value: r.Body, version: r.Version}
	if k.track {
		judgeLWW(v, k, key, found, r.Body)
		return
	}
	switch {
	case !found && (!k.present || k.maybeDel):
		v.ok++
	case !found:
		v.lost++
		v.lostKeys = append(v.lostKeys, key)
		v.sample("%s: lost: want %q, got 404 (last owner seen %s)", key, k.value, k.owner)
	case (k.present && r.Body == k.value) || k.maybe[r.Body]:
		v.ok++
	case !k.written[r.Body]:
		v.wrong++
		v.lostKeys = append(v.lostKeys, key)
		v.sample("%s: wrong value %q (never written to this key)", key, r.Body)
	case k.present:
		v.lost++
		v.lostKeys = append(v.lostKeys, key)
		v.sample("%s: lost: want %q, got the older %q", key, k.value, r.Body)
	default:
		v.resurrected++
		v.lostKeys = append(v.lostKeys, key)
		v.sample("%s: resurrected: deleted, got %q", key, r.Body)
	}
}

// judgeLWW checks a key written on both sides of a partition: what is read
// must be the acknowledged write with the highest version (or a write that
// was never acknowledged).
func judgeLWW(v *verdict, k *keyState, key string, found bool, body string) {
	v.lww.keys++
	var best *ackRec
	sides := map[string]bool{}
	for i := range k.acks {
		a := &k.acks[i]
		sides[a.side] = true
		if best == nil || a.version > best.version {
			best = a
		}
	}
	if sides["majority"] && sides["minority"] {
		v.lww.bothSides++
		switch best.side {
		case "majority":
			v.lww.majorityWon++
		case "minority":
			v.lww.minorityWon++
		}
		for _, a := range k.acks {
			if a.side != best.side && a.side != "before" {
				v.lww.overwrittenAcks++
			}
		}
	}
	okRead := false
	switch {
	case best == nil: // nothing acknowledged: anything written, or nothing
		okRead = !found || k.written[body]
	case best.deleted:
		okRead = !found || k.maybe[body]
	default:
		okRead = (found && body == best.value) || (found && k.maybe[body]) || (!found && k.maybeDel)
	}
	switch {
	case okRead:
		v.ok++
	case found && !k.written[body]:
		v.wrong++
		v.lostKeys = append(v.lostKeys, key)
		v.sample("%s: wrong value %q", key, body)
	default:
		v.lww.violations++
		v.lost++
		v.lostKeys = append(v.lostKeys, key)
		want := "deleted"
		if best != nil && !best.deleted {
			want = fmt.Sprintf("%q (version %d, %s side)", best.value, best.version, best.side)
		}
		got := "404"
		if found {
			got = fmt.Sprintf("%q", body)
		}
		v.sample("%s: last writer lost: want %s, got %s; acknowledged: %v", key, want, got, k.acks)
	}
}

// observation is what the read-back found for a key.
type observation struct {
	found   bool
	value   string
	version uint64
}

// accept makes what the read-back found the known state of every key it
// read, once a scenario has reported: a later scenario then counts only
// its own losses, and keys judged by version (partition) return to the
// ordinary judgement.
func (m *model) accept(v *verdict) {
	for key, o := range v.observed {
		k := m.state(key)
		k.acked = true
		k.present, k.value, k.version = o.found, o.value, o.version
		if !o.found {
			k.value = ""
		}
		k.maybe, k.maybeDel = nil, false
		k.track, k.acks = false, nil
	}
}
