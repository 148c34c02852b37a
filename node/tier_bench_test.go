package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/node"
)

// BenchmarkHTTPGetLocalTier compares GETs answered from a node's local
// tier with a bare net/http handler serving the same values from a map
// (the ceiling): both behind httptest servers, driven in the same run by
// a keep-alive client with 32 concurrent requests, b.N requests each,
// alternating in 4 rounds. It reports each side's ns per request and the
// ratio of their throughputs (target: at least 0.85).
//
//	go test -run '^$' -bench BenchmarkHTTPGetLocalTier -benchtime 100000x ./node/
func BenchmarkHTTPGetLocalTier(b *testing.B) {
	const conc, nkeys = 32, 1000
	value := []byte(strings.Repeat("v", 100))
	keys := make([]string, nkeys)
	m := make(map[string][]byte, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench-%04d", i)
		m[keys[i]] = value
	}
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := m[strings.TrimPrefix(r.URL.Path, "/v1/keys/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(v)
	}))
	defer bare.Close()

	n := startCluster(b, 1, false)[0]
	for _, k := range keys {
		if err := n.Set(context.Background(), k, value, 0); err != nil {
			b.Fatal(err)
		}
	}
	pc := httptest.NewServer(n.web.Handler())
	defer pc.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: conc, MaxIdleConnsPerHost: conc}}
	run := func(base string, count int) (time.Duration, error) {
		var next atomic.Int64
		var wg sync.WaitGroup
		var firstErr atomic.Value
		start := time.Now()
		for c := 0; c < conc; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= count {
						return
					}
					resp, err := client.Get(base + "/v1/keys/" + keys[i%nkeys])
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						firstErr.CompareAndSwap(nil, fmt.Errorf("status %d", resp.StatusCode))
						return
					}
					// Served in this process: the local tier, or the embedded
					// Memory shard, of which the tier keeps no copies.
					if src := resp.Header.Get(httpapi.HeaderSource); base == pc.URL && src != string(node.SourceLocal) && src != string(node.SourceShard) {
						firstErr.CompareAndSwap(nil, fmt.Errorf("source %q, want local or shard", src))
						return
					}
				}
			}()
		}
		wg.Wait()
		if err, _ := firstErr.Load().(error); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	// Warm both (connections, tier).
	for _, base := range []string{bare.URL, pc.URL} {
		if _, err := run(base, 2*nkeys); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var tBare, tPC time.Duration
	const rounds = 4
	per := max(b.N/rounds, 1)
	for r := 0; r < rounds; r++ {
		d, err := run(bare.URL, per)
		if err != nil {
			b.Fatal(err)
		}
		tBare += d
		if d, err = run(pc.URL, per); err != nil {
			b.Fatal(err)
		}
		tPC += d
	}
	b.StopTimer()
	reqs := float64(per * rounds)
	b.ReportMetric(float64(tBare.Nanoseconds())/reqs, "map-ns/req")
	b.ReportMetric(float64(tPC.Nanoseconds())/reqs, "peercache-ns/req")
	b.ReportMetric(float64(tBare)/float64(tPC), "ratio")
}
