package peer

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/tidwall/redcon"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/store"
)

// The wire comparison behind the peer protocol's design (docs/benchmarks.md,
// "Peer protocol: choice of wire"): the same forwarded GET of a 32-byte
// value, 64 callers in parallel, over loopback, through
//
//   - binary: this package (multiplexed frames, answers in any order);
//   - resp-rueidis: a redcon server and a rueidis client, the
//     library-first candidate (RESP, auto-pipelined, answers in order);
//   - http: net/http on both sides, the previous peer hop (one HTTP/1.1
//     request per operation on a pooled keep-alive connection).
//
// Client and server share the process, so the CPU per op reported
// (getrusage of the process) is both sides together.
//
//	go test -run '^$' -bench BenchmarkWire -benchtime 200000x -count 3 ./peer/

type wireValues struct{ v []byte }

func (w wireValues) Admit(string) bool { return true }
func (w wireValues) Get(context.Context, string, string, bool) (kv.Item, time.Duration, error) {
	return kv.Item{Value: w.v, Version: 1}, 0, nil
}
func (w wireValues) Write(context.Context, string, string, kv.Mutation) (kv.WriteResult, error) {
	return kv.WriteResult{}, nil
}
func (w wireValues) Handoff(context.Context, string, string) (store.Entry, bool, error) {
	return store.Entry{}, false, nil
}
func (w wireValues) Import(context.Context, string, []store.Entry) ([]kv.ImportResult, error) {
	return nil, nil
}
func (w wireValues) Invalidate(context.Context, string, []string) {}
func (w wireValues) Multi(context.Context, string, kv.Multi) (kv.MultiResult, error) {
	return kv.MultiResult{}, nil
}
func (w wireValues) Scan(context.Context, string, uint64, int) ([]string, uint64, error) {
	return nil, 0, nil
}

func (w wireValues) Warm(context.Context, string, []string) int       { return 0 }
func (w wireValues) Status(context.Context, string) ([]byte, error)   { return nil, nil }
func (w wireValues) Many(context.Context, string, []Request) []Result { return nil }

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runWire calls get from 64 goroutines, b.N calls in all, and reports the
// process CPU per call.
func runWire(b *testing.B, get func(ctx context.Context, key string) error) {
	b.Helper()
	ctx := context.Background()
	for i := 0; i < 100; i++ { // warm up connections
		if err := get(ctx, "k"); err != nil {
			b.Fatal(err)
		}
	}
	b.SetParallelism(32) // 64 goroutines on 2 cores
	c0 := cpuNow()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := get(ctx, "key"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuNow()-c0).Microseconds())/float64(b.N), "cpu-µs/op")
}

func BenchmarkWire(b *testing.B) {
	value := make([]byte, 32)
	binary := func(auth Auth) func(b *testing.B) {
		return func(b *testing.B) {
			s, _ := startServer(b, wireValues{value}, auth, "")
			c := newClient(b, "client", auth, "")
			addr := s.Addr().String()
			runWire(b, func(ctx context.Context, key string) error {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				_, _, err := c.Get(ctx, addr, key, false)
				return err
			})
		}
	}
	b.Run("binary", binary(Auth{}))
	b.Run("binary-tls", binary(Auth{Secret: []byte("0123456789abcdef0123456789abcdef")}))
	b.Run("resp-rueidis", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := redcon.NewServer(ln.Addr().String(), func(conn redcon.Conn, cmd redcon.Command) {
			switch string(cmd.Args[0]) {
			case "GET", "get":
				conn.WriteBulk(value)
			default:
				conn.WriteString("OK")
			}
		}, nil, nil)
		go srv.Serve(ln)
		b.Cleanup(func() { srv.Close() })
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{ln.Addr().String()}, ForceSingleClient: true,
			DisableCache: true, AlwaysRESP2: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		runWire(b, func(ctx context.Context, key string) error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return c.Do(ctx, c.B().Get().Key(key).Build()).Error()
		})
	})
	b.Run("http", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Peercache-Version", "1")
			w.Write(value)
		})}
		go hs.Serve(ln)
		b.Cleanup(func() { hs.Close() })
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
		url := fmt.Sprintf("http://%s/internal/v1/keys/", ln.Addr())
		runWire(b, func(ctx context.Context, key string) error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+key, nil)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			return resp.Body.Close()
		})
	})
}
