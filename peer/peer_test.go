package peer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/store"
)

// memHandler is a Handler over a map, recording what it was asked.
type memHandler struct {
	mu       sync.Mutex
	data     map[string]store.Entry
	members  map[string]bool
	invalid  []string
	writes   atomic.Int64
	block    chan struct{} // when set, Get waits for it (or its deadline)
	stall    chan struct{} // when set, Get waits for it, deadline or not
	froms    map[string]int
	imported int
}

func newMemHandler(members ...string) *memHandler {
	h := &memHandler{data: map[string]store.Entry{}, members: map[string]bool{}, froms: map[string]int{}}
	for _, m := range members {
		h.members[m] = true
	}
	return h
}

func (h *memHandler) Admit(from string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.members[from]
}

func (h *memHandler) Get(ctx context.Context, from, key string, replica bool) (kv.Item, time.Duration, error) {
	if h.stall != nil {
		<-h.stall
	}
	if h.block != nil {
		select {
		case <-h.block:
		case <-ctx.Done():
			return kv.Item{}, 0, ctx.Err()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.froms[from]++
	if key == "bad" {
		return kv.Item{}, 0, &kv.Error{Status: 421, Owner: "n9", Retryable: true, Message: "not mine"}
	}
	if key == "boom" {
		return kv.Item{}, 0, errors.New("secret internal detail")
	}
	e, ok := h.data[key]
	if !ok {
		return kv.Item{}, 0, kv.ErrNotFound
	}
	it := kv.Item{Key: key, Value: e.Value, Version: e.Version}
	if e.ExpireAt != 0 {
		it.ExpireAt = time.UnixMilli(e.ExpireAt)
	}
	if replica {
		it.Source = kv.SourceReplica
	}
	return it, 750 * time.Millisecond, nil
}

func (h *memHandler) Write(ctx context.Context, from, key string, m kv.Mutation) (kv.WriteResult, error) {
	h.writes.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	_, existed := h.data[key]
	if m.IfAbsent && existed {
		return kv.WriteResult{Existed: true}, nil
	}
	if m.Delete {
		delete(h.data, key)
		return kv.WriteResult{Applied: existed, Existed: existed, Item: kv.Item{Version: 9}}, nil
	}
	e := store.Entry{Key: key, Value: bytes.Clone(m.Value), Version: uint64(len(h.data) + 100)}
	if m.TTL > 0 {
		e.ExpireAt = time.Now().Add(m.TTL).UnixMilli()
	}
	h.data[key] = e
	return kv.WriteResult{Applied: true, Existed: existed, Item: kv.Item{Version: e.Version}}, nil
}

func (h *memHandler) Handoff(ctx context.Context, from, key string) (store.Entry, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.data[key]
	return e, ok, nil
}

func (h *memHandler) Import(ctx context.Context, from string, es []store.Entry) ([]kv.ImportResult, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]kv.ImportResult, len(es))
	for i, e := range es {
		h.imported++
		if old, ok := h.data[e.Key]; ok && old.Version >= e.Version {
			out[i] = kv.AckedStale
			continue
		}
		e.Value = bytes.Clone(e.Value)
		h.data[e.Key] = e
		out[i] = kv.Acked
	}
	return out, nil
}

func (h *memHandler) Many(ctx context.Context, from string, reqs []Request) []Result {
	out := make([]Result, len(reqs))
	for i, r := range reqs {
		if r.Write {
			out[i].WriteResult, out[i].Err = h.Write(ctx, from, r.Key, r.Mutation)
		} else {
			out[i].Item, out[i].NearTTL, out[i].Err = h.Get(ctx, from, r.Key, false)
		}
	}
	return out
}

// Multi renames (the only kind these tests send): Keys[0] to Keys[1].
func (h *memHandler) Multi(ctx context.Context, from string, m kv.Multi) (kv.MultiResult, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.data[m.Keys[0]]
	if !ok {
		return kv.MultiResult{}, nil
	}
	delete(h.data, m.Keys[0])
	h.data[m.Keys[1]] = v
	return kv.MultiResult{Applied: true, SourceExisted: true}, nil
}

// Scan returns every key at once.
func (h *memHandler) Scan(ctx context.Context, from string, cursor uint64, count int) ([]string, uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	keys := make([]string, 0, len(h.data))
	for k := range h.data {
		keys = append(keys, k)
	}
	return keys, 0, nil
}

func (h *memHandler) Warm(ctx context.Context, from string, keys []string) int { return len(keys) }

func (h *memHandler) Status(ctx context.Context, from string) ([]byte, error) {
	return []byte(`{"name":"` + from + `"}`), nil
}

func (h *memHandler) Invalidate(ctx context.Context, from string, keys []string) {
	h.mu.Lock()
	h.invalid = append(h.invalid, keys...)
	h.mu.Unlock()
}

type testPair struct {
	srv *Server
	cli *Client
	h   *memHandler
	met *Metrics
}

func startServer(t testing.TB, h Handler, auth Auth, label string) (*Server, *Metrics) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	met := NewMetrics(nil)
	s, err := NewServer(ln, h, ServerConfig{Name: "server", Label: label, Auth: auth, Metrics: met,
		Limits: Limits{MaxKeyBytes: 64, MaxValueBytes: 1 << 16, MaxBatchBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return s, met
}

func newClient(t testing.TB, name string, auth Auth, label string) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{Name: name, Label: label, Auth: auth, Metrics: NewMetrics(nil),
		Limits: Limits{MaxKeyBytes: 64, MaxValueBytes: 1 << 16, MaxBatchBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func pair(t testing.TB, auth Auth) testPair {
	h := newMemHandler("client")
	s, met := startServer(t, h, auth, "prod")
	return testPair{srv: s, cli: newClient(t, "client", auth, "prod"), h: h, met: met}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRoundTrips(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	for _, auth := range []Auth{{}, {Secret: secret}} {
		t.Run(auth.Mode(), func(t *testing.T) {
			p := pair(t, auth)
			ctx, addr := ctxT(t), p.srv.Addr().String()
			if _, _, err := p.cli.Get(ctx, addr, "k", false); !errors.Is(err, kv.ErrNotFound) {
				t.Fatalf("Get of a missing key: %v", err)
			}
			res, err := p.cli.Write(ctx, addr, "k", kv.Mutation{Value: []byte("v1"), TTL: time.Minute})
			if err != nil || !res.Applied || res.Existed || res.Version == 0 {
				t.Fatalf("Write: %+v %v", res, err)
			}
			before := time.Now()
			it, nearTTL, err := p.cli.Get(ctx, addr, "k", false)
			if err != nil || string(it.Value) != "v1" || it.Version != res.Version || nearTTL != 750*time.Millisecond {
				t.Fatalf("Get: %+v %v %v", it, nearTTL, err)
			}
			if left := it.ExpireAt.Sub(before); left > time.Minute || left < 58*time.Second {
				t.Errorf("expiry %s away, want about a minute", left)
			}
			res, err = p.cli.Write(ctx, addr, "k", kv.Mutation{Value: []byte("v2"), IfAbsent: true})
			if err != nil || res.Applied || !res.Existed {
				t.Fatalf("conditional write: %+v %v", res, err)
			}
			var e *kv.Error
			if _, _, err := p.cli.Get(ctx, addr, "bad", false); !errors.As(err, &e) || e.Status != 421 || e.Owner != "n9" || !e.Retryable {
				t.Fatalf("error answer: %#v", err)
			}
			if _, _, err := p.cli.Get(ctx, addr, "boom", false); !errors.As(err, &e) || e.Status != 500 || e.Message != "internal error" {
				t.Fatalf("internal error answer (must not leak detail): %#v", err)
			}
			entry, found, err := p.cli.Handoff(ctx, addr, "k")
			if err != nil || !found || string(entry.Value) != "v1" {
				t.Fatalf("Handoff: %+v %v %v", entry, found, err)
			}
			if r, err := p.cli.Multi(ctx, addr, kv.Multi{Kind: kv.MultiRename, Keys: []string{"k", "k2"}}); err != nil || !r.Applied || !r.SourceExisted {
				t.Fatalf("Multi: %+v %v", r, err)
			}
			if r, err := p.cli.Multi(ctx, addr, kv.Multi{Kind: kv.MultiRename, Keys: []string{"k2", "k"}}); err != nil || !r.Applied {
				t.Fatalf("Multi back: %+v %v", r, err)
			}
			if r, err := p.cli.Multi(ctx, addr, kv.Multi{Kind: kv.MultiRename, Keys: []string{"nope", "k3"}}); err != nil || r.Applied || r.SourceExisted {
				t.Fatalf("Multi of a missing key: %+v %v", r, err)
			}
			if keys, next, err := p.cli.Scan(ctx, addr, 0, 100); err != nil || next != 0 || !slices.Contains(keys, "k") {
				t.Fatalf("Scan: %v %d %v", keys, next, err)
			}
			if _, found, err := p.cli.Handoff(ctx, addr, "nope"); err != nil || found {
				t.Fatalf("Handoff of a missing key: %v %v", found, err)
			}
			batch := make([]store.Entry, 3000)
			for i := range batch {
				batch[i] = store.Entry{Key: fmt.Sprintf("b%d", i), Value: bytes.Repeat([]byte{'x'}, 500), Version: 7}
			}
			rs, err := p.cli.Import(ctx, addr, batch) // 1.5 MB: split into batches of at most 1 MiB
			if err != nil || len(rs) != len(batch) || rs[0] != kv.Acked {
				t.Fatalf("Import: %d results, %v", len(rs), err)
			}
			if rs, _ := p.cli.Import(ctx, addr, batch[:1]); rs[0] != kv.AckedStale {
				t.Fatalf("re-import: %v", rs)
			}
			many, err := p.cli.Many(ctx, addr, []Request{
				{Key: "m1", Write: true, Mutation: kv.Mutation{Value: []byte("x")}},
				{Key: "k"}, {Key: "nope"}, {Key: "bad"},
				{Key: "m2", Write: true, Mutation: kv.Mutation{Value: bytes.Repeat([]byte("y"), 40000)}},
			})
			if err != nil || len(many) != 5 || !many[0].Applied || string(many[1].Item.Value) != "v1" ||
				!errors.Is(many[2].Err, kv.ErrNotFound) || !errors.As(many[3].Err, &e) || e.Status != 421 || !many[4].Applied {
				t.Fatalf("Many: %+v %v", many, err)
			}
			if it, _, _ := p.cli.Get(ctx, addr, "m2", false); len(it.Value) != 40000 {
				t.Fatalf("value written through Many: %d bytes", len(it.Value))
			}
			if err := p.cli.Invalidate(ctx, addr, []string{"a", "b"}); err != nil {
				t.Fatal(err)
			}
			p.h.mu.Lock()
			inval := fmt.Sprint(p.h.invalid)
			p.h.mu.Unlock()
			if inval != "[a b]" {
				t.Fatalf("invalidated %s", inval)
			}
		})
	}
}

// Many requests in flight on a few connections; slow answers do not hold
// up fast ones (answers come back in any order).
func TestMultiplexed(t *testing.T) {
	p := pair(t, Auth{})
	ctx, addr := ctxT(t), p.srv.Addr().String()
	if _, err := p.cli.Write(ctx, addr, "k", kv.Mutation{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			it, _, err := p.cli.Get(ctx, addr, "k", false)
			if err == nil && string(it.Value) != "v" {
				err = fmt.Errorf("value %q", it.Value)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := p.met.conns[sideServer].Load(); n > 2 {
		t.Errorf("%d server connections for one client, want at most 2", n)
	}
}

// A request whose deadline passes gets ErrUnavailable; one whose deadline
// has passed when it arrives is not carried out.
func TestDeadlines(t *testing.T) {
	p := pair(t, Auth{})
	addr := p.srv.Addr().String()
	p.h.block = make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// Either the client gives up first (no answer) or the server does
	// (its context carries the same deadline): a retryable 503.
	var e503 *kv.Error
	if _, _, err := p.cli.Get(ctx, addr, "k", false); !errors.Is(err, ErrUnavailable) && !(errors.As(err, &e503) && e503.Status == 503 && e503.Retryable) {
		t.Fatalf("Get past its deadline: %v", err)
	}
	close(p.h.block)
	// A write sent with a deadline already in the past (a clock ahead, or
	// a frame delayed in the network) is refused by the server.
	cc, err := p.cli.conn(ctxT(t), addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := &pendingCall{done: make(chan struct{})}
	id, _ := cc.register(cl)
	cc.w.enqueue(func(b []byte) []byte {
		s := len(b)
		b = appendHeader(b, opWrite, 0, id)
		b = appendDeadline(b, time.Now().Add(-time.Second))
		b = appendWrite(b, "late", kv.Mutation{Value: []byte("x")})
		finishFrame(b, s)
		return b
	})
	<-cl.done
	e, _ := decodeError(cl.payload)
	if cl.flags&flagError == 0 || e == nil || e.Status != 503 {
		t.Fatalf("late write answered %+v", e)
	}
	if p.h.writes.Load() != 0 {
		t.Fatalf("the late write was carried out")
	}
}

// A broken connection fails its requests in flight with ErrUnavailable;
// the next request dials again.
func TestBrokenConnection(t *testing.T) {
	p := pair(t, Auth{})
	addr := p.srv.Addr().String()
	p.h.block = make(chan struct{})
	done := make(chan error, 1)
	go func() { _, _, err := p.cli.Get(ctxT(t), addr, "k", false); done <- err }()
	time.Sleep(100 * time.Millisecond)
	p.srv.mu.Lock()
	for c := range p.srv.conns {
		c.Close()
	}
	p.srv.mu.Unlock()
	if err := <-done; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("request on a broken connection: %v", err)
	}
	close(p.h.block)
	time.Sleep(150 * time.Millisecond) // RetryDialAfter
	if err := p.cli.Ping(ctxT(t), addr); err != nil {
		t.Fatalf("after the break: %v", err)
	}
}

// Without the secret, with another secret, with another label, or under a
// name that is not a member: the connection is refused before any request
// is read, and nothing is carried out.
func TestRefusedConnections(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	h := newMemHandler("client")
	s, met := startServer(t, h, Auth{Secret: secret}, "prod")
	addr := s.Addr().String()
	cases := []struct {
		name        string
		cli, label  string
		auth        Auth
		wantRefused bool
	}{
		{"no secret", "client", "prod", Auth{}, false},
		{"other secret", "client", "prod", Auth{Secret: []byte("another secret, quite different")}, true},
		{"other label", "client", "test", Auth{Secret: secret}, true},
		{"not a member", "mallory", "prod", Auth{Secret: secret}, true},
	}
	for i, c := range cases {
		cli := newClient(t, c.cli, c.auth, c.label)
		_, err := cli.Write(ctxT(t), addr, "k", kv.Mutation{Value: []byte("evil")})
		if !errors.Is(err, ErrUnavailable) || (c.wantRefused && !errors.Is(err, ErrRefused)) {
			t.Errorf("%s: %v", c.name, err)
		}
		// The server counts the refusal when its side of the handshake
		// ends, which may be just after the client gave up.
		deadline := time.Now().Add(2 * time.Second)
		for met.AuthFailures.Load() < uint64(i+1) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := met.AuthFailures.Load(); got != uint64(i+1) {
			t.Errorf("%s: %d refusals counted, want %d", c.name, got, i+1)
		}
	}
	if h.writes.Load() != 0 {
		t.Fatalf("%d writes carried out for refused callers", h.writes.Load())
	}
	good := newClient(t, "client", Auth{Secret: secret}, "prod")
	if _, err := good.Write(ctxT(t), addr, "k", kv.Mutation{Value: []byte("ok")}); err != nil {
		t.Fatalf("member with the secret: %v", err)
	}
}

// Before its hello is accepted a caller cannot make the server read (or
// allocate) more than a small frame.
func TestHelloLimit(t *testing.T) {
	h := newMemHandler("client")
	s, met := startServer(t, h, Auth{}, "")
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b := appendHeader(nil, opHello, 0, 0)
	b[0], b[1], b[2], b[3] = 0x7f, 0xff, 0xff, 0xff // 2 GiB
	nc.Write(b)
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("the server answered an oversized hello")
	}
	if met.AuthFailures.Load() != 1 {
		t.Fatalf("refusals: %d", met.AuthFailures.Load())
	}
}

// A request's context without a timer: Err reads the clock, Done makes the
// timer on first use and closes at the deadline, release stops it.
func TestDeadlineCtx(t *testing.T) {
	c := &deadlineCtx{deadline: time.Now().Add(50 * time.Millisecond)}
	if d, ok := c.Deadline(); !ok || !d.Equal(c.deadline) || c.Err() != nil || c.Value("k") != nil {
		t.Fatalf("before the deadline: %v %v %v", d, ok, c.Err())
	}
	select {
	case <-c.Done():
		t.Fatal("Done closed before the deadline")
	case <-time.After(10 * time.Millisecond):
	}
	<-c.Done()
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("after the deadline: %v", c.Err())
	}
	c.release()
	past := &deadlineCtx{deadline: time.Now().Add(-time.Second)}
	if !errors.Is(past.Err(), context.DeadlineExceeded) {
		t.Fatalf("past deadline: %v", past.Err())
	}
	past.release() // no timer made
	var none *deadlineCtx
	none.release()
}

// TestWriteExpiryForms: a write carries a time to live or an absolute
// expiry, and each decodes as it was sent; an absolute expiry lies beyond
// every time to live, so a decoder that knows only lifetimes refuses it.
func TestWriteExpiryForms(t *testing.T) {
	at := time.UnixMilli(1800000000123)
	for _, m := range []kv.Mutation{
		{Value: []byte("v"), TTL: 1500 * time.Millisecond},
		{Value: []byte("v"), ExpireAt: at},
		{Expire: true, ExpireAt: at},
		{Op: kv.OpGetEx, ExpireAt: at},
	} {
		key, got, err := decodeWrite(appendWrite(nil, "k", m), 1024, 1<<20)
		if err != nil || key != "k" || got.TTL != m.TTL || !got.ExpireAt.Equal(m.ExpireAt) || got.Expire != m.Expire || got.Op != m.Op {
			t.Errorf("%+v decoded as %q %+v %v", m, key, got, err)
		}
		if f := expiryField(m); (f > maxTTLMillis) != !m.ExpireAt.IsZero() {
			t.Errorf("%+v: expiry field %d on the wrong side of %d", m, f, maxTTLMillis)
		}
	}
	if _, _, err := decodeWrite(appendWrite(nil, "k", kv.Mutation{Value: []byte("v"), ExpireAt: time.UnixMilli(-5)}), 1024, 1<<20); err != nil {
		t.Errorf("an expiry before 1970 is sent as 1 ms after it (and refused by the node): %v", err)
	}
	b := binary.AppendUvarint([]byte{0}, 2*maxTTLMillis+2)
	if _, _, err := decodeWrite(append(binary.AppendUvarint(b, 1), 'k'), 1024, 1<<20); err == nil {
		t.Error("an expiry field past the absolute range decoded")
	}
}

// TestWriteExpiryConditions: an expiry change's conditions travel as one
// byte where a value would be, which the previous release's decoder
// refuses (it takes no value on an expiry change); a byte that is no set
// of conditions is refused here.
func TestWriteExpiryConditions(t *testing.T) {
	for _, c := range []kv.ExpireCond{kv.ExpireNX, kv.ExpireXX, kv.ExpireGT, kv.ExpireLT, kv.ExpireXX | kv.ExpireLT} {
		m := kv.Mutation{Expire: true, TTL: time.Minute, ExpireIf: c}
		b := appendWrite(nil, "k", m)
		if _, got, err := decodeWrite(b, 1024, 1<<20); err != nil || got.ExpireIf != c || got.TTL != time.Minute || !got.Expire || got.Value != nil {
			t.Errorf("%+v decoded as %+v, %v", m, got, err)
		}
		if b[len(b)-1] != byte(c) || len(b) != len(appendWrite(nil, "k", kv.Mutation{Expire: true, TTL: time.Minute}))+1 {
			t.Errorf("conditions %d: not one byte after the key", c)
		}
	}
	base := appendWrite(nil, "k", kv.Mutation{Expire: true, TTL: time.Minute})
	for _, tail := range [][]byte{{0}, {16}, {0xff}, {1, 1}} {
		if _, m, err := decodeWrite(append(slices.Clip(base), tail...), 1024, 1<<20); err == nil {
			t.Errorf("expiry change with %v after the key decoded: %+v", tail, m)
		}
	}
	if _, m, err := decodeWrite(appendWrite(nil, "k", kv.Mutation{Value: []byte{1}, ExpireIf: kv.ExpireNX}), 1024, 1<<20); err != nil || m.ExpireIf != 0 || string(m.Value) != "\x01" {
		t.Errorf("a set carries no conditions, its value as it is: %+v, %v", m, err)
	}
}

// atOnceHandler answers keys that start with "fast" at once (AtOnceHandler)
// and holds reads of "slow" until release is closed.
type atOnceHandler struct {
	*memHandler
	started, release chan struct{}
}

func (h atOnceHandler) AnswersAtOnce(key string, write bool) bool {
	return strings.HasPrefix(key, "fast")
}

func (h atOnceHandler) ImportsAtOnce() bool { return true }

func (h atOnceHandler) Get(ctx context.Context, from, key string, replica bool) (kv.Item, time.Duration, error) {
	if key == "slow" {
		close(h.started)
		select {
		case <-h.release:
		case <-ctx.Done():
			return kv.Item{}, 0, ctx.Err()
		}
	}
	return h.memHandler.Get(ctx, from, key, replica)
}

// Requests the handler answers at once are served by the goroutine that
// reads the connection: with the only worker held by a slow read, reads,
// writes and Many calls of such keys, and small imports, still come back, many at once, and
// the slow read's answer follows when it is released.
func TestAtOnceServedByTheReader(t *testing.T) {
	h := atOnceHandler{memHandler: newMemHandler("client"), started: make(chan struct{}), release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(ln, h, ServerConfig{Name: "server", Label: "prod", Metrics: NewMetrics(nil), MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	cli := newClient(t, "client", Auth{}, "prod")
	ctx, addr := ctxT(t), s.Addr().String()

	slow := make(chan error, 1)
	go func() {
		_, _, err := cli.Get(ctx, addr, "slow", false)
		slow <- err
	}()
	<-h.started // the slow read holds the only worker
	var wg sync.WaitGroup
	errs := make(chan error, 300)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("fast%d", i)
			if _, err := cli.Write(ctx, addr, key, kv.Mutation{Value: []byte(key)}); err != nil {
				errs <- err
				return
			}
			if it, _, err := cli.Get(ctx, addr, key, false); err != nil || string(it.Value) != key {
				errs <- fmt.Errorf("get %s: %q %v", key, it.Value, err)
			}
			rs, err := cli.Many(ctx, addr, []Request{{Key: key}, {Key: key + "x", Write: true, Mutation: kv.Mutation{Value: []byte("y")}}})
			if err != nil || string(rs[0].Item.Value) != key || !rs[1].Applied {
				errs <- fmt.Errorf("many %s: %+v %v", key, rs, err)
			}
			if res, err := cli.Import(ctx, addr, []store.Entry{{Key: key + "i", Value: []byte("z"), Version: 5}}); err != nil || res[0] != kv.Acked {
				errs <- fmt.Errorf("import %s: %v %v", key, res, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case err := <-slow:
		t.Fatalf("the slow read ended before its release: %v", err)
	default:
	}
	close(h.release)
	if err := <-slow; !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("slow read: %v, want not found", err)
	}
}

// GoGet and GoWrite: the answer reaches done with no goroutine waiting;
// nothing is started without a live connection; a request with no answer
// within its timeout, or on a connection that breaks, gets ErrUnavailable.
func TestGoCalls(t *testing.T) {
	p := pair(t, Auth{})
	ctx, addr := ctxT(t), p.srv.Addr().String()
	if p.cli.GoGet(addr, "k", time.Second, false, func(kv.Item, time.Duration, error) { t.Error("done of a call not started") }) {
		t.Fatal("GoGet started a call with no connection up (it must not dial)")
	}
	if err := p.cli.Ping(ctx, addr); err != nil { // dials
		t.Fatal(err)
	}
	type answer struct {
		it  kv.Item
		res kv.WriteResult
		err error
	}
	got := make(chan answer, 4)
	if !p.cli.GoWrite(addr, "k", kv.Mutation{Value: []byte("v1")}, time.Second, false, func(res kv.WriteResult, err error) { got <- answer{res: res, err: err} }) {
		t.Fatal("GoWrite did not start")
	}
	p.cli.Flush()
	if a := <-got; a.err != nil || !a.res.Applied {
		t.Fatalf("GoWrite: %+v", a)
	}
	for _, key := range []string{"k", "nope"} {
		if !p.cli.GoGet(addr, key, time.Second, false, func(it kv.Item, _ time.Duration, err error) { got <- answer{it: it, err: err} }) {
			t.Fatal("GoGet did not start")
		}
	}
	p.cli.Flush()
	a, b := <-got, <-got
	if a.it.Key == "nope" || errors.Is(a.err, kv.ErrNotFound) {
		a, b = b, a
	}
	if a.err != nil || string(a.it.Value) != "v1" || !errors.Is(b.err, kv.ErrNotFound) {
		t.Fatalf("GoGet: %+v, %+v", a, b)
	}
	// With now the request leaves at once: no Flush.
	if !p.cli.GoGet(addr, "k", time.Second, true, func(it kv.Item, _ time.Duration, err error) { got <- answer{it: it, err: err} }) {
		t.Fatal("GoGet did not start")
	}
	if a := <-got; a.err != nil || string(a.it.Value) != "v1" {
		t.Fatalf("GoGet with now: %+v", a)
	}

	// Reads wait, past their deadline too: only the client's timer can
	// end the call (the server would answer its own deadline's error at
	// the same instant).
	p.h.stall = make(chan struct{})
	start := time.Now()
	if !p.cli.GoGet(addr, "k", 100*time.Millisecond, false, func(it kv.Item, _ time.Duration, err error) { got <- answer{it: it, err: err} }) {
		t.Fatal("GoGet did not start")
	}
	p.cli.Flush()
	if a := <-got; !errors.Is(a.err, ErrUnavailable) || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("a read with no answer: %+v after %v, want ErrUnavailable after its timeout", a, time.Since(start))
	}

	if err := p.cli.Ping(ctx, addr); err != nil { // the timeout closed the silent connection: dial again
		t.Fatal(err)
	}
	if !p.cli.GoGet(addr, "k", 5*time.Second, false, func(it kv.Item, _ time.Duration, err error) { got <- answer{it: it, err: err} }) {
		t.Fatal("GoGet did not start")
	}
	p.cli.Flush()
	time.Sleep(50 * time.Millisecond)
	p.cli.Forget(addr) // the connection goes with the read in flight
	if a := <-got; !errors.Is(a.err, ErrUnavailable) {
		t.Fatalf("a read on a broken connection: %+v, want ErrUnavailable", a)
	}
	close(p.h.stall)
}
