package replica

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
)

// primaryKeys returns n keys whose primary in r is self.
func primaryKeys(r *ring.Ring, self string, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		if k := fmt.Sprint("k", i); r.Owner(k) == self {
			out = append(out, k)
		}
	}
	return out
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		panic(fmt.Sprint("gather: ", err))
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

func newResults() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "copies", Help: "copies"}, []string{"result"})
}

// One replica, acks all: the copy is sent on the caller's goroutine and a
// refusal is the write's error.
func TestCopierOneReplica(t *testing.T) {
	rg := ring.New([]string{"a", "b"}, ring.Options{})
	keys := primaryKeys(rg, "a", 3)
	var failed []string
	results := newResults()
	c := NewCopier(CopierConfig{Self: "a", RF: 2, Acks: AcksAll, Timeout: time.Second, Results: results,
		Failed: func(k string) { failed = append(failed, k) },
		Send: func(_ context.Context, peer string, es []store.Entry) ([]migrate.ImportResult, error) {
			if peer != "b" || len(es) != 3 {
				t.Errorf("send to %s of %d entries", peer, len(es))
			}
			return []migrate.ImportResult{kv.Acked, kv.Refused, kv.AckedStale}, nil
		}})
	es := make([]store.Entry, len(keys))
	for i, k := range keys {
		es[i] = store.Entry{Key: k, Value: []byte("v"), Version: 1}
	}
	errs := c.Copy(context.Background(), rg, es)
	if errs[0] != nil || errs[2] != nil || errs[1] == nil {
		t.Fatalf("errors %v, want only the refused entry's", errs)
	}
	if e := errs[1]; !e.Retryable || !errors.Is(e, kv.ErrUnavailable) ||
		!strings.Contains(e.Message, "b refused the copy (it does not own the key in its view yet)") {
		t.Errorf("error %+v", e)
	}
	if len(failed) != 1 || failed[0] != keys[1] {
		t.Errorf("failed %v, want [%s]", failed, keys[1])
	}
	if a, r := value(results.WithLabelValues(ResultAcked)), value(results.WithLabelValues(ResultRefused)); a != 2 || r != 1 {
		t.Errorf("acked %v refused %v, want 2 and 1", a, r)
	}
}

// rf 3, acks one: Copy returns at once, the copies finish in the
// background with values of their own, and a failed one is reported.
func TestCopierBackground(t *testing.T) {
	rg := ring.New([]string{"a", "b", "c"}, ring.Options{})
	keys := primaryKeys(rg, "a", 4)
	release := make(chan struct{})
	var (
		mu     sync.Mutex
		got    = map[string]string{}
		failed []string
	)
	var wg sync.WaitGroup // sends, and failures of keys
	wg.Add(2 + len(keys))
	results := newResults()
	c := NewCopier(CopierConfig{Self: "a", RF: 3, Acks: AcksOne, Timeout: time.Second, Results: results,
		Failed: func(k string) { mu.Lock(); failed = append(failed, k); mu.Unlock(); wg.Done() },
		Send: func(ctx context.Context, peer string, es []store.Entry) ([]migrate.ImportResult, error) {
			defer wg.Done()
			<-release
			if peer == "c" {
				return nil, errors.New("c is down")
			}
			mu.Lock()
			defer mu.Unlock()
			res := make([]migrate.ImportResult, len(es))
			for i, e := range es {
				got[e.Key] = string(e.Value)
				res[i] = kv.Acked
			}
			return res, nil
		}})
	buf := []byte("value")
	es := make([]store.Entry, len(keys))
	for i, k := range keys {
		es[i] = store.Entry{Key: k, Value: buf, Version: 1}
	}
	ctx, cancel := context.WithCancel(context.Background())
	errs := c.Copy(ctx, rg, es)
	cancel() // the request ends; the copies go on
	for i, e := range errs {
		if e != nil {
			t.Errorf("entry %d: %v (acks one waits for nothing)", i, e)
		}
	}
	copy(buf, "XXXXX") // the caller reuses its buffer
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, k := range keys {
		if got[k] != "value" {
			t.Errorf("%s copied as %q, want %q", k, got[k], "value")
		}
	}
	if len(failed) != len(keys) {
		t.Errorf("failed %v, want every key (c did not answer)", failed)
	}
}

// rf 3, acks quorum: one acknowledgement is enough; none is an error
// naming why.
func TestCopierQuorum(t *testing.T) {
	rg := ring.New([]string{"a", "b", "c"}, ring.Options{})
	keys := primaryKeys(rg, "a", 2)
	for _, down := range [][]string{{"c"}, {"b", "c"}} {
		c := NewCopier(CopierConfig{Self: "a", RF: 3, Acks: AcksQuorum, Timeout: time.Second,
			Send: func(_ context.Context, peer string, es []store.Entry) ([]migrate.ImportResult, error) {
				for _, d := range down {
					if peer == d {
						return nil, fmt.Errorf("%s is down", peer)
					}
				}
				res := make([]migrate.ImportResult, len(es))
				for i := range res {
					res[i] = kv.Acked
				}
				return res, nil
			}})
		es := []store.Entry{{Key: keys[0], Value: []byte("v")}, {Key: keys[1], Value: []byte("w")}}
		errs := c.Copy(context.Background(), rg, es)
		for i, e := range errs {
			if len(down) == 1 && e != nil {
				t.Errorf("one replica down: entry %d: %v", i, e)
			}
			if len(down) == 2 && (e == nil || !e.Retryable ||
				!strings.Contains(e.Message, "write applied on the primary but only 0 of the 1 replica copies required were acknowledged")) {
				t.Errorf("both replicas down: entry %d: %v", i, e)
			}
		}
	}
}
