package load

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/peercache/peercache/bench/baseline"
	"github.com/peercache/peercache/internal/testredis"
)

func TestHTTPAgainstBareAndProxy(t *testing.T) {
	bare := httptest.NewServer(baseline.NewBare("bench:", 0, nil).Handler())
	defer bare.Close()
	proxy := httptest.NewServer(baseline.NaiveProxy(strings.TrimPrefix(bare.URL, "http://"), 8))
	defer proxy.Close()
	for _, addr := range []string{bare.URL, proxy.URL} {
		res, err := Run(context.Background(), Config{
			Target: TargetHTTP, Addrs: []string{strings.TrimPrefix(addr, "http://")},
			Ops: 2000, Concurrency: 8, Keys: 100, ValueSize: 16, ReadRatio: 0.8,
			Dist: DistZipf, ZipfS: 1.2, Preload: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Preload == nil || res.Preload.Ops != 100 || res.Preload.Writes != 100 || res.Preload.Errors != 0 {
			t.Fatalf("preload: %+v", res.Preload)
		}
		if res.Ops != 2000 || res.Errors != 0 || res.Hits != res.Reads || res.Reads < 1400 || res.Reads > 1800 {
			t.Fatalf("run: ops %d reads %d hits %d writes %d errors %d %v", res.Ops, res.Reads, res.Hits, res.Writes, res.Errors, res.ErrorSamples)
		}
		if res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 || res.OpsPerSec <= 0 {
			t.Fatalf("latency: %+v", res.Latency)
		}
	}
}

func TestRESPAgainstRedis(t *testing.T) {
	rs := testredis.Start(t)
	for _, p := range []int{1, 16} {
		res, err := Run(context.Background(), Config{
			Target: TargetRESP, Addrs: []string{rs.Addr()}, Ops: 3000, Concurrency: 4,
			Keys: 200, ValueSize: 8, ReadRatio: 0.5, Pipeline: p, Preload: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors != 0 || res.Ops != 3000 || res.Hits != res.Reads || res.Preload.Errors != 0 {
			t.Fatalf("pipeline %d: %+v", p, res)
		}
	}
	// Misses are counted as misses, not errors.
	res, err := Run(context.Background(), Config{Target: TargetRESP, Addrs: []string{rs.Addr()}, Ops: 100,
		Concurrency: 2, Keys: 10, KeyPrefix: "absent:", ReadRatio: 1})
	if err != nil || res.Misses != 100 || res.Errors != 0 {
		t.Fatalf("misses: %+v %v", res.Phase, err)
	}
}

func TestErrorsAreCounted(t *testing.T) {
	res, err := Run(context.Background(), Config{Target: TargetHTTP, Addrs: []string{"127.0.0.1:1"}, Ops: 20, Concurrency: 2, Keys: 5})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 20 || res.ErrorKinds["connection refused"] != 20 {
		t.Fatalf("errors: %d %v", res.Errors, res.ErrorKinds)
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []Config{
		{Target: "udp", Addrs: []string{"x:1"}, Ops: 1, Concurrency: 1, Keys: 1},
		{Target: TargetHTTP, Ops: 1, Concurrency: 1, Keys: 1},
		{Target: TargetHTTP, Addrs: []string{"x:1"}, Ops: 1, Concurrency: 1, Keys: 1, Pipeline: 4},
		{Target: TargetHTTP, Addrs: []string{"x:1"}, Ops: 1, Concurrency: 1, Keys: 1, Dist: DistZipf, ZipfS: 1},
		{Target: TargetRESP, Addrs: []string{"x:1"}, Ops: 1, Concurrency: 1, Keys: 1, RemoteOnly: true},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}
