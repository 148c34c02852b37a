// Package load is peercache's load generator (`cachenode bench`): a fixed
// number of operations (optionally capped in time) against peercache nodes
// or baselines, over HTTP (GET/PUT /v1/keys/{key}) or the Redis protocol
// (GET/SET, optionally pipelined), with latency recorded in HDR histograms.
//
// Operations are spread over the target addresses round robin, per batch
// (a batch is one operation, or one pipeline of Pipeline operations, whose
// latency every operation in it is charged, as redis-benchmark does).
package load

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Targets.
const (
	TargetHTTP = "http"
	TargetRESP = "resp"
)

// Key distributions.
const (
	DistUniform = "uniform"
	DistZipf    = "zipf"
)

// Config describes one run.
type Config struct {
	// Target is TargetHTTP or TargetRESP.
	Target string
	// User and Password authenticate to the nodes (HTTP Basic; RESP AUTH)
	// when Password is set; User "" means "default".
	User, Password string
	// Addrs are the host:port of the nodes (or baselines) to load.
	Addrs []string
	// Ops is the number of operations (0 with Preload: only preload).
	Ops int
	// Duration, if positive, stops the run early once elapsed.
	Duration time.Duration
	// Concurrency is the number of workers (each one request or pipeline
	// at a time).
	Concurrency int
	// Keys is the size of the key set; keys are KeyPrefix + 0..Keys-1
	// (with RemoteOnly, the first Keys such names the node does not own).
	Keys int
	// KeyPrefix prefixes key names (default "bench:").
	KeyPrefix string
	// ValueSize is the size of written values in bytes.
	ValueSize int
	// ReadRatio is the fraction of operations that are reads (0..1).
	ReadRatio float64
	// Dist is DistUniform or DistZipf; ZipfS is the zipf exponent (> 1).
	Dist  string
	ZipfS float64
	// Pipeline is the number of operations per round trip (RESP only).
	Pipeline int
	// Preload writes every key once before the measured run.
	Preload bool
	// Timeout bounds each request (default 5s).
	Timeout time.Duration
	// RemoteOnly uses only keys that the (single) addressed node does not
	// own, so that every read is forwarded to another node. HTTP only: the
	// ring is computed from the node's GET /v1/cluster.
	RemoteOnly bool
	// Seed makes the key sequence reproducible (0: a fixed default).
	Seed uint64
	// Progress, if set, is called about four times a second.
	Progress func(done, total int64, elapsed time.Duration)
}

func (c *Config) normalize() error {
	if c.KeyPrefix == "" {
		c.KeyPrefix = "bench:"
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Pipeline <= 0 {
		c.Pipeline = 1
	}
	if c.Dist == "" {
		c.Dist = DistUniform
	}
	if c.Seed == 0 {
		c.Seed = 0x9e3779b97f4a7c15
	}
	switch {
	case c.Target != TargetHTTP && c.Target != TargetRESP:
		return fmt.Errorf("target %q: want http or resp", c.Target)
	case len(c.Addrs) == 0:
		return errors.New("no addresses")
	case c.Ops < 0:
		return errors.New("ops must not be negative")
	case c.Ops == 0 && !c.Preload:
		return errors.New("ops must be positive (or 0 with preload)")
	case c.Concurrency <= 0:
		return errors.New("concurrency must be positive")
	case c.Keys <= 0:
		return errors.New("keys must be positive")
	case c.ValueSize < 0:
		return errors.New("value size must not be negative")
	case c.ReadRatio < 0 || c.ReadRatio > 1:
		return errors.New("read ratio must be within 0..1")
	case c.Dist != DistUniform && c.Dist != DistZipf:
		return fmt.Errorf("dist %q: want uniform or zipf", c.Dist)
	case c.Dist == DistZipf && c.ZipfS <= 1:
		return errors.New("zipf-s must be greater than 1")
	case c.Pipeline > 1 && c.Target != TargetRESP:
		return errors.New("pipeline applies to the resp target only")
	case c.RemoteOnly && (c.Target != TargetHTTP || len(c.Addrs) != 1):
		return errors.New("remote-only needs the http target and exactly one address")
	}
	return nil
}

// Latency summarises a histogram, in microseconds.
type Latency struct {
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
	Mean float64 `json:"mean_us"`
}

// Phase is the outcome of one phase (preload or the measured run).
type Phase struct {
	Ops       int64   `json:"ops"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	Reads     int64   `json:"reads"`
	Hits      int64   `json:"hits"`
	Misses    int64   `json:"misses"`
	Writes    int64   `json:"writes"`
	Errors    int64   `json:"errors"`
	// ErrorKinds counts failed operations by kind ("timeout", "http 503",
	// "TRYAGAIN", ...); ErrorSamples holds one message of each kind.
	ErrorKinds   map[string]int64  `json:"error_kinds,omitempty"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	Latency      Latency           `json:"latency"`
}

// Result is a whole run.
type Result struct {
	Target      string   `json:"target"`
	Addrs       []string `json:"addrs"`
	Concurrency int      `json:"concurrency"`
	Pipeline    int      `json:"pipeline"`
	Keys        int      `json:"keys"`
	ValueSize   int      `json:"value_size"`
	ReadRatio   float64  `json:"read_ratio"`
	Dist        string   `json:"dist"`
	ZipfS       float64  `json:"zipf_s,omitempty"`
	RemoteOnly  bool     `json:"remote_only,omitempty"`
	Preload     *Phase   `json:"preload,omitempty"`
	Phase
}

type op struct {
	key  string
	read bool
}

type outcome uint8

const (
	written outcome = iota + 1
	hit
	miss
	failed
)

type opResult struct {
	out outcome
	err error
}

// driver runs batches of operations against one target kind.
type driver interface {
	// do runs ops against Addrs[addr] and fills res (parallel to ops).
	do(ctx context.Context, addr int, ops []op, res []opResult)
	close()
}

// Run executes cfg. It returns an error only for bad configuration or a
// failed set-up; failed operations are counted in the result.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.normalize(); err != nil {
		return Result{}, err
	}
	keys, err := keySet(ctx, &cfg)
	if err != nil {
		return Result{}, err
	}
	value := make([]byte, cfg.ValueSize)
	vr := rand.New(rand.NewPCG(cfg.Seed, 1))
	for i := range value {
		value[i] = 'a' + byte(vr.IntN(26))
	}
	var d driver
	switch cfg.Target {
	case TargetHTTP:
		d = newHTTPDriver(cfg, value)
	default:
		d = newRESPDriver(cfg, value)
	}
	defer d.close()

	res := Result{Target: cfg.Target, Addrs: cfg.Addrs, Concurrency: cfg.Concurrency, Pipeline: cfg.Pipeline,
		Keys: len(keys), ValueSize: cfg.ValueSize, ReadRatio: cfg.ReadRatio, Dist: cfg.Dist, RemoteOnly: cfg.RemoteOnly}
	if cfg.Dist == DistZipf {
		res.ZipfS = cfg.ZipfS
	}
	if cfg.Preload {
		batch := 1
		if cfg.Target == TargetRESP {
			batch = 64
		}
		p := runPhase(ctx, cfg, d, keys, len(keys), batch, 0, true)
		res.Preload = &p
	}
	if cfg.Ops > 0 {
		res.Phase = runPhase(ctx, cfg, d, keys, cfg.Ops, cfg.Pipeline, cfg.Duration, false)
	}
	return res, nil
}

// keyName is the name of key i.
func keyName(prefix string, i int) string { return prefix + strconv.Itoa(i) }

func keySet(ctx context.Context, cfg *Config) ([]string, error) {
	if cfg.RemoteOnly {
		return remoteKeys(ctx, cfg)
	}
	keys := make([]string, cfg.Keys)
	for i := range keys {
		keys[i] = keyName(cfg.KeyPrefix, i)
	}
	return keys, nil
}

// worker state: its own histogram, counters and random source.
type worker struct {
	hist        *hdrhistogram.Histogram
	reads, hits int64
	misses, wrs int64
	errs        int64
	errKinds    map[string]int64
	errSamples  map[string]string
	rng         *rand.Rand
	zipf        *rand.Zipf
	ops         []op
	res         []opResult
}

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, 60_000_000, 3) // 1 µs .. 60 s, 3 significant digits
}

// runPhase runs total operations in batches of batch. A preload phase writes
// keys[0..total) in order; a measured phase draws keys from the
// distribution.
func runPhase(ctx context.Context, cfg Config, d driver, keys []string, total, batch int, capDur time.Duration, preload bool) Phase {
	var next, done atomic.Int64
	start := time.Now()
	var deadline time.Time
	if capDur > 0 {
		deadline = start.Add(capDur)
	}
	stopProgress := make(chan struct{})
	var progressWG sync.WaitGroup
	if cfg.Progress != nil && !preload {
		progressWG.Go(func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					cfg.Progress(done.Load(), int64(total), time.Since(start))
					return
				case <-t.C:
					cfg.Progress(done.Load(), int64(total), time.Since(start))
				}
			}
		})
	}
	workers := make([]*worker, cfg.Concurrency)
	var wg sync.WaitGroup
	for wi := range workers {
		w := &worker{hist: newHist(), rng: rand.New(rand.NewPCG(cfg.Seed, uint64(wi)+2)),
			ops: make([]op, batch), res: make([]opResult, batch)}
		if cfg.Dist == DistZipf {
			w.zipf = rand.NewZipf(w.rng, cfg.ZipfS, 1, uint64(len(keys)-1))
		}
		workers[wi] = w
		wg.Go(func() {
			for ctx.Err() == nil {
				if !deadline.IsZero() && time.Now().After(deadline) {
					return
				}
				first := int(next.Add(int64(batch))) - batch
				if first >= total {
					return
				}
				n := min(batch, total-first)
				ops := w.ops[:n]
				for i := range ops {
					switch {
					case preload:
						ops[i] = op{key: keys[first+i]}
					default:
						ops[i] = op{key: keys[w.pick(len(keys))], read: w.rng.Float64() < cfg.ReadRatio}
					}
				}
				res := w.res[:n]
				clear(res)
				t0 := time.Now()
				d.do(ctx, (first/batch)%len(cfg.Addrs), ops, res)
				us := max(time.Since(t0).Microseconds(), 1)
				w.hist.RecordValues(min(us, 60_000_000), int64(n))
				for i, r := range res {
					if ops[i].read {
						w.reads++
					} else {
						w.wrs++
					}
					switch r.out {
					case hit:
						w.hits++
					case miss:
						w.misses++
					case failed:
						w.fail(r.err)
					}
				}
				done.Add(int64(n))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProgress)
	progressWG.Wait()

	p := Phase{Seconds: elapsed.Seconds()}
	h := newHist()
	for _, w := range workers {
		h.Merge(w.hist)
		p.Reads += w.reads
		p.Hits += w.hits
		p.Misses += w.misses
		p.Writes += w.wrs
		p.Errors += w.errs
		for k, v := range w.errKinds {
			if p.ErrorKinds == nil {
				p.ErrorKinds, p.ErrorSamples = map[string]int64{}, map[string]string{}
			}
			p.ErrorKinds[k] += v
			if _, ok := p.ErrorSamples[k]; !ok {
				p.ErrorSamples[k] = w.errSamples[k]
			}
		}
	}
	p.Ops = p.Reads + p.Writes
	if elapsed > 0 {
		p.OpsPerSec = float64(p.Ops) / elapsed.Seconds()
	}
	if h.TotalCount() > 0 {
		p.Latency = Latency{
			P50: float64(h.ValueAtQuantile(50)), P90: float64(h.ValueAtQuantile(90)),
			P99: float64(h.ValueAtQuantile(99)), P999: float64(h.ValueAtQuantile(99.9)),
			Max: float64(h.Max()), Mean: h.Mean(),
		}
	}
	return p
}

func (w *worker) pick(n int) int {
	if w.zipf != nil {
		return int(w.zipf.Uint64())
	}
	return w.rng.IntN(n)
}

func (w *worker) fail(err error) {
	w.errs++
	k := errorKind(err)
	if w.errKinds == nil {
		w.errKinds, w.errSamples = map[string]int64{}, map[string]string{}
	}
	w.errKinds[k]++
	if _, ok := w.errSamples[k]; !ok && err != nil {
		w.errSamples[k] = err.Error()
	}
}
