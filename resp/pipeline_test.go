package resp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/node"
)

// slowBackend is a Backend whose reads take a while (as forwarded reads
// do) and that records how many run at once.
type slowBackend struct {
	delay   time.Duration
	mu      sync.Mutex
	vals    map[string][]byte
	running atomic.Int32
	maxRun  atomic.Int32
}

func (b *slowBackend) Get(ctx context.Context, key string) (node.Item, error) {
	r := b.running.Add(1)
	defer b.running.Add(-1)
	for {
		m := b.maxRun.Load()
		if r <= m || b.maxRun.CompareAndSwap(m, r) {
			break
		}
	}
	select {
	case <-time.After(b.delay):
	case <-ctx.Done():
		return node.Item{}, ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.vals[key]
	if !ok {
		return node.Item{}, node.ErrNotFound
	}
	return node.Item{Key: key, Value: v}, nil
}

func (b *slowBackend) Write(ctx context.Context, key string, m node.Mutation) (node.WriteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, existed := b.vals[key]
	switch {
	case m.Delete:
		delete(b.vals, key)
	default:
		b.vals[key] = append([]byte(nil), m.Value...)
	}
	return node.WriteResult{Applied: true, Existed: existed}, nil
}

func (b *slowBackend) WriteMulti(ctx context.Context, m kv.Multi) (kv.MultiResult, error) {
	return kv.MultiResult{}, kv.Errorf(400, "not supported by this test backend")
}

func (b *slowBackend) ScanAll(context.Context, uint64, int) ([]string, uint64, error) {
	return nil, 0, nil
}

// ManyInto runs the ops in parallel, as a node does for keys on other nodes.
func (b *slowBackend) ManyInto(ctx context.Context, ops []node.Op, _ []node.OpResult) []node.OpResult {
	out := make([]node.OpResult, len(ops))
	var wg sync.WaitGroup
	for i, op := range ops {
		wg.Go(func() {
			if op.Write {
				out[i].WriteResult, out[i].Err = b.Write(ctx, op.Key, op.Mutation)
			} else {
				out[i].Item, out[i].Err = b.Get(ctx, op.Key)
			}
		})
	}
	wg.Wait()
	return out
}

func (b *slowBackend) Status(ctx context.Context) node.NodeStatus {
	return node.NodeStatus{Name: "fake"}
}

func startFake(t *testing.T, b Backend) string {
	t.Helper()
	return listenExtra(t, b, Options{})
}

// TestPipelinedSlowReadsRunInParallel: GETs pipelined behind a slow GET
// are read concurrently, and every reply still comes in order, with a
// write in the middle of the pipeline ordered before the reads after it.
func TestPipelinedSlowReadsRunInParallel(t *testing.T) {
	b := &slowBackend{delay: 2 * time.Millisecond, vals: map[string][]byte{}}
	for i := 0; i < 64; i++ {
		b.vals[fmt.Sprint("k", i)] = []byte(fmt.Sprint("v", i))
	}
	c := redis.NewClient(&redis.Options{Addr: startFake(t, b), Protocol: 2, PoolSize: 1})
	defer c.Close()
	ctx := context.Background()

	p := c.Pipeline()
	var first []*redis.StringCmd
	for i := 0; i < 40; i++ {
		first = append(first, p.Get(ctx, fmt.Sprint("k", i)))
	}
	missing := p.Get(ctx, "nope")
	set := p.Set(ctx, "k0", "new", 0)
	after := p.Get(ctx, "k0")
	var second []*redis.StringCmd
	for i := 40; i < 64; i++ {
		second = append(second, p.Get(ctx, fmt.Sprint("k", i)))
	}
	ping := p.Ping(ctx)
	start := time.Now()
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	took := time.Since(start)
	for i, g := range first {
		if g.Val() != fmt.Sprint("v", i) {
			t.Fatalf("reply %d = %q, %v", i, g.Val(), g.Err())
		}
	}
	for i, g := range second {
		if g.Val() != fmt.Sprint("v", i+40) {
			t.Fatalf("reply %d = %q, %v", i+40, g.Val(), g.Err())
		}
	}
	if !errors.Is(missing.Err(), redis.Nil) || set.Val() != "OK" || after.Val() != "new" || ping.Val() != "PONG" {
		t.Fatalf("missing=%v set=%q after=%q ping=%q", missing.Err(), set.Val(), after.Val(), ping.Val())
	}
	if b.maxRun.Load() < 4 {
		t.Fatalf("at most %d reads ran at once; pipelined slow reads should overlap", b.maxRun.Load())
	}
	// 66 reads of 2 ms one after the other would take 132 ms; overlap is
	// asserted above (maxRun), the time only reported.
	t.Logf("pipeline of 66 slow reads took %v", took)

	// MGET reads its keys in parallel too.
	b.maxRun.Store(0)
	keys := []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "nope", "k1"}
	vals, err := c.MGet(ctx, keys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	if vals[0] != "v1" || vals[7] != "v8" || vals[8] != nil || vals[9] != "v1" {
		t.Fatalf("MGET = %v", vals)
	}
	if b.maxRun.Load() < 2 {
		t.Fatalf("MGET read one key at a time")
	}
}

func TestParseHelpers(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "-1": -1, "42": 42, "9223372036854775807": 1<<63 - 1, "-9223372036854775808": -1 << 63} {
		if got, ok := parseInt([]byte(in)); !ok || got != want {
			t.Errorf("parseInt(%q) = %d, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "-", "+1", "01", "1.5", " 1", "9223372036854775808", "abc", "1e3"} {
		if _, ok := parseInt([]byte(in)); ok {
			t.Errorf("parseInt(%q) accepted", in)
		}
	}
	now := time.Unix(1_000_000, 0)
	if d, ok := ttlOf(10, time.Second, false, now); !ok || d != 10*time.Second {
		t.Errorf("ttlOf 10s = %v %v", d, ok)
	}
	if d, ok := ttlOf(1_000_010, time.Second, true, now); !ok || d != 10*time.Second {
		t.Errorf("ttlOf EXAT +10s = %v %v", d, ok)
	}
	if d, ok := ttlOf(999_000, time.Second, true, now); !ok || d > 0 {
		t.Errorf("ttlOf EXAT past = %v %v", d, ok)
	}
	if _, ok := ttlOf(1<<62, time.Second, false, now); ok {
		t.Error("ttlOf accepted an overflowing TTL")
	}
	if got := unknownCommand(bs("FOO", "a", "b")); got != "ERR unknown command 'FOO', with args beginning with: 'a' 'b' " {
		t.Errorf("unknownCommand = %q", got)
	}
	for err, want := range map[error]string{
		node.ErrNotFound: "ERR node: key not found",
		&node.Error{Status: 503, Message: "owner n2 unreachable", Retryable: true}:                                   "TRYAGAIN owner n2 unreachable",
		&node.Error{Status: 503, ReadOnly: true, Message: "node n1 is read-only (node mode): writes are refused"}:    "READONLY node n1 is read-only (node mode): writes are refused",
		&node.Error{Status: 503, ReadOnly: true, Message: "node n1 is read-only (cluster mode): x", Retryable: true}: "READONLY node n1 is read-only (cluster mode): x",
		&node.Error{Status: 413, Message: "value is 3 bytes; the limit is 2"}:                                        "ERR value is 3 bytes; the limit is 2",
		context.DeadlineExceeded: "TRYAGAIN command timed out",
	} {
		if got := nodeErrMessage(err); got != want {
			t.Errorf("nodeErrMessage(%v) = %q, want %q", err, got, want)
		}
	}
}

func TestMaxClients(t *testing.T) {
	s, err := Listen(&slowBackend{vals: map[string][]byte{}}, testOptions(Options{Addr: "127.0.0.1:0", MaxClients: 1, Logger: testLogger()}))
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Close(context.Background())
	ctx := context.Background()
	first := redis.NewClient(&redis.Options{Addr: s.Addr().String(), Protocol: 2, PoolSize: 1, MaxRetries: -1})
	defer first.Close()
	if err := first.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// The second connection is told why, then closed (as Redis does).
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, _ := io.ReadAll(conn)
	if string(reply) != "-ERR max number of clients reached\r\n" {
		t.Fatalf("second client got %q", reply)
	}
	if err := first.Ping(ctx).Err(); err != nil {
		t.Fatalf("first client after the refusal: %v", err)
	}
	info := s.info(map[string]bool{"clients": true, "stats": true})
	if !strings.Contains(info, "connected_clients:1") || !strings.Contains(info, "rejected_connections:1") {
		t.Fatalf("INFO:\n%s", info)
	}
}

// TestPipelinedExpiryVariants sends EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT,
// TTL and PTTL of distinct keys in one pipeline, as the first commands of
// a connection: the commands of such a run are served together, so each
// must read its variant (seconds or ms, relative or absolute) from its own
// request. Before, they read the connection's latest command: nil on a
// connection whose first request was such a pipeline (a nil dereference on
// a goroutine of the run, which ended the process: FuzzServer's seed
// e5d51f94fb88807b), and otherwise another command's (here the CLIENT
// SETINFO go-redis sends first: "ERR invalid expire time in 'client'
// command"; after an EXPIRE, a PEXPIRE k 5000 set 5000 s).
func TestPipelinedExpiryVariants(t *testing.T) {
	n := startNode(t, "expvar", nil)
	ctx := context.Background()
	setup := redis.NewClient(&redis.Options{Addr: n.addr, Protocol: 2})
	defer setup.Close()
	for _, k := range []string{"e1", "e2", "e3", "e4"} {
		if err := setup.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Now().Add(1000 * time.Second)
	for round := 0; round < 20; round++ {
		c := redis.NewClient(&redis.Options{Addr: n.addr, Protocol: 2, PoolSize: 1})
		p := c.Pipeline()
		p.Do(ctx, "EXPIRE", "e1", 1000)
		p.Do(ctx, "PEXPIRE", "e2", 5000)
		p.Do(ctx, "PEXPIREAT", "e3", at.UnixMilli())
		p.Do(ctx, "EXPIREAT", "e4", at.Unix())
		ttl1 := p.Do(ctx, "TTL", "e1")
		pttl2 := p.Do(ctx, "PTTL", "e2")
		ttl3 := p.Do(ctx, "TTL", "e3")
		pttl4 := p.Do(ctx, "PTTL", "e4")
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		c.Close()
		in := func(cmd *redis.Cmd, lo, hi int64) {
			t.Helper()
			v, err := cmd.Int64()
			if err != nil || v < lo || v > hi {
				t.Fatalf("round %d: %v = %d, %v; want %d..%d", round, cmd.Args(), v, err, lo, hi)
			}
		}
		in(ttl1, 990, 1000)
		in(pttl2, 4000, 5000)
		in(ttl3, 990, 1000)
		in(pttl4, 990_000, 1_000_000)
	}
}
