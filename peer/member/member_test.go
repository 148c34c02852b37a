package member

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/store"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// dir is a Directory over a map of member names to addresses.
type dir map[string]string

func (d dir) PeerProto(string) int { return membership.ProtocolVersion } // this release

func (d dir) PeerAddr(name string) (string, bool) {
	a, ok := d[name]
	return a, ok && a != ""
}

// valueOf returns counter c's value.
func valueOf(t *testing.T, c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// What the client returned becomes the caller's error: not found, the
// peer's own error, a refusal, this node's leave, or no answer at all
// (Unreachable, counted).
func TestCallerErrorMapping(t *testing.T) {
	notOwner := &kv.Error{Status: 421, Owner: "n3", Retryable: true, Message: "not mine"}
	refused := &kv.Error{Status: 403, Message: "not a member"}
	noAnswer := fmt.Errorf("%w: 10.0.0.2:7947: connection lost: EOF", peer.ErrUnavailable)
	connRefused := fmt.Errorf("%w: %w: 10.0.0.2:7947: not a member", peer.ErrUnavailable, peer.ErrRefused)
	const left = "this node has left the cluster; retry on another node"
	cases := []struct {
		name        string
		err         error
		leaving     bool
		want        error  // returned as is
		msg         string // else: a retryable 503 with this message
		unreachable bool
	}{
		{"nil", nil, false, nil, "", false},
		{"not found", kv.ErrNotFound, false, kv.ErrNotFound, "", false},
		{"peer's error", notOwner, false, notOwner, "", false},
		{"peer's error while leaving", notOwner, true, notOwner, "", false},
		{"refusal", refused, false, nil, "n2 refused this node's request: not a member", false},
		{"refusal while leaving", refused, true, nil, left, false},
		{"no answer", noAnswer, false, nil, "owner n2 (10.0.0.2:7947) unreachable: " + noAnswer.Error(), true},
		{"connection refused", connRefused, false, nil, "owner n2 (10.0.0.2:7947) unreachable: " + connRefused.Error(), true},
		{"no answer while leaving", noAnswer, true, nil, left, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cnt := prometheus.NewCounter(prometheus.CounterOpts{Name: "unreachable"})
			m := New(Config{Timeout: time.Second, Unreachable: cnt,
				Leaving: func() bool { return c.leaving }})
			got := m.mapErr("n2", "10.0.0.2:7947", c.err)
			if c.msg == "" {
				if got != c.want {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			} else {
				var e *kv.Error
				if !errors.As(got, &e) || e.Status != 503 || !e.Retryable || e.Unreachable != c.unreachable ||
					e.Message != c.msg || !errors.Is(e, kv.ErrUnavailable) {
					t.Fatalf("got %#v, want a retryable 503 (unreachable %v) %q", got, c.unreachable, c.msg)
				}
			}
			want := 0.0
			if c.unreachable {
				want = 1
			}
			if n := valueOf(t, cnt); n != want {
				t.Fatalf("unreachable counted %v times, want %v", n, want)
			}
		})
	}
	// A write's or a batch's error is always a *kv.Error, even not found.
	if e := narrow(kv.ErrNotFound); e.Status != 500 || e.Message != kv.ErrNotFound.Error() || e.Retryable {
		t.Fatalf("narrow(ErrNotFound) = %#v", e)
	}
	if e := narrow(notOwner); e != notOwner {
		t.Fatalf("narrow(*kv.Error) = %#v", e)
	}
}

// A request is bounded by the timeout, unless the caller's deadline comes
// sooner: then the caller's context serves as it is.
func TestCallerTimeout(t *testing.T) {
	m := New(Config{Timeout: time.Minute})
	soon, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if ctx, done := m.bound(soon); ctx != soon {
		t.Error("a sooner deadline got a context of its own")
	} else {
		done()
		if soon.Err() != nil {
			t.Error("the cancel of a caller's own context cancelled it")
		}
	}
	later, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for name, parent := range map[string]context.Context{"no deadline": context.Background(), "later deadline": later} {
		ctx, done := m.bound(parent)
		d, ok := ctx.Deadline()
		if ctx == parent || !ok || time.Until(d) > time.Minute || time.Until(d) < 50*time.Second {
			t.Errorf("%s: deadline %v (%v)", name, d, ok)
		}
		done()
		if ctx.Err() == nil {
			t.Errorf("%s: cancel did not end the request's context", name)
		}
	}
}

// A member the directory does not know gets no request: a retryable 503,
// not Unreachable, and nothing is counted as unreachable.
func TestCallerUnknownMember(t *testing.T) {
	cnt := prometheus.NewCounter(prometheus.CounterOpts{Name: "unreachable"})
	gets := prometheus.NewCounter(prometheus.CounterOpts{Name: "gets"})
	puts := prometheus.NewCounter(prometheus.CounterOpts{Name: "puts"})
	d := dir{"n2": ""} // a member that advertises no address
	m := New(Config{Timeout: time.Second, Unreachable: cnt, ForwardedGets: gets, ForwardedPuts: puts,
		Current: func() Directory { return d }})
	ctx := ctxT(t)
	check := func(what string, err error, name string) {
		t.Helper()
		var e *kv.Error
		if !errors.As(err, &e) || e.Status != 503 || !e.Retryable || e.Unreachable ||
			e.Message != "owner "+name+" is not a known member" {
			t.Errorf("%s: %#v", what, err)
		}
	}
	_, _, err := m.Get(ctx, d, "n9", "k", false)
	check("Get", err, "n9")
	_, err = m.Write(ctx, d, "n2", "k", kv.Mutation{Value: []byte("v")})
	check("Write", err, "n2")
	_, _, err = m.Handoff(ctx, d, "n9", "k")
	check("Handoff", err, "n9")
	check("Invalidate", m.Invalidate(ctx, "n9", []string{"k"}), "n9")
	_, err = m.Status(ctx, d, "n9")
	check("Status", err, "n9")
	call := m.StartMany(ctx, d, "n9", []peer.Request{{Key: "k"}})
	_, err = call.WaitInto(nil)
	check("Many", err, "n9")
	_, err = m.Import(ctx, "n9", []store.Entry{{Key: "k", Version: 1}})
	if err == nil || err.Error() != "import to n9: owner n9 is not a known member" {
		t.Errorf("Import: %v", err)
	}
	if _, ok := m.Addr("n2"); ok {
		t.Error("Addr found a member that advertises no address")
	}
	if n := valueOf(t, cnt); n != 0 {
		t.Errorf("unreachable counted %v times", n)
	}
	// A read to an owner counts as forwarded whether or not it could be
	// sent; a write only once it is.
	if g, p := valueOf(t, gets), valueOf(t, puts); g != 1 || p != 0 {
		t.Errorf("forwarded gets %v, puts %v; want 1, 0", g, p)
	}
}

// record is what stubHandler holds of a key.
type record struct {
	value   []byte
	version uint64
}

// stubHandler is the peer.Handler of the round trips below: a map of
// records, "bad" owned by n9, Warm loading every key, Status naming the
// caller.
type stubHandler struct {
	mu   sync.Mutex
	recs map[string]record
}

func (h *stubHandler) Admit(from string) bool { return from == "client" }

func (h *stubHandler) Get(_ context.Context, _, key string, replica bool) (kv.Item, time.Duration, error) {
	if key == "bad" {
		return kv.Item{}, 0, &kv.Error{Status: 421, Owner: "n9", Retryable: true, Message: "not mine"}
	}
	h.mu.Lock()
	r, ok := h.recs[key]
	h.mu.Unlock()
	if !ok {
		return kv.Item{}, 0, kv.ErrNotFound
	}
	it := kv.Item{Key: key, Value: r.value, Version: r.version}
	if replica {
		it.Source = kv.SourceReplica
	}
	return it, 750 * time.Millisecond, nil
}

func (h *stubHandler) Write(_ context.Context, _, key string, m kv.Mutation) (kv.WriteResult, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, had := h.recs[key]
	if m.Delete {
		delete(h.recs, key)
	} else {
		h.recs[key] = record{value: slices.Clone(m.Value), version: uint64(len(h.recs) + 1)}
	}
	return kv.WriteResult{Applied: true, Existed: had}, nil
}

func (h *stubHandler) Handoff(_ context.Context, _, key string) (store.Entry, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.recs[key]
	return store.Entry{Key: key, Value: r.value, Version: r.version}, ok, nil
}

func (h *stubHandler) Import(_ context.Context, _ string, es []store.Entry) ([]kv.ImportResult, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	res := make([]kv.ImportResult, len(es))
	for i, e := range es {
		h.recs[e.Key] = record{value: slices.Clone(e.Value), version: e.Version}
		res[i] = kv.Acked
	}
	return res, nil
}

func (h *stubHandler) Invalidate(context.Context, string, []string) {}

func (h *stubHandler) Many(ctx context.Context, from string, reqs []peer.Request) []peer.Result {
	out := make([]peer.Result, len(reqs))
	for i, r := range reqs {
		if r.Write {
			out[i].WriteResult, out[i].Err = h.Write(ctx, from, r.Key, r.Mutation)
			continue
		}
		out[i].Item, out[i].NearTTL, out[i].Err = h.Get(ctx, from, r.Key, false)
	}
	return out
}

func (h *stubHandler) Multi(context.Context, string, kv.Multi) (kv.MultiResult, error) {
	return kv.MultiResult{Applied: true}, nil
}

func (h *stubHandler) Scan(context.Context, string, uint64, int) ([]string, uint64, error) {
	return nil, 0, nil
}

func (h *stubHandler) Warm(_ context.Context, _ string, keys []string) int { return len(keys) }

func (h *stubHandler) Status(_ context.Context, from string) ([]byte, error) {
	return []byte(`{"name":"` + from + `"}`), nil
}

// pair is a peer server over a stubHandler and a client named "client".
type pair struct {
	srv *peer.Server
	cli *peer.Client
}

func startPair(t *testing.T) pair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := peer.Limits{MaxKeyBytes: 64, MaxValueBytes: 1 << 16, MaxBatchBytes: 1 << 20}
	srv, err := peer.NewServer(ln, &stubHandler{recs: map[string]record{}},
		peer.ServerConfig{Name: "server", Label: "test", Metrics: peer.NewMetrics(nil), Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	cli, err := peer.NewClient(peer.ClientConfig{Name: "client", Label: "test", Metrics: peer.NewMetrics(nil), Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cli.Close)
	return pair{srv: srv, cli: cli}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Through a real client and server: members addressed by name, the item's
// owner and source set, the counters counted, and a member that does not
// answer is Unreachable.
func TestCallerRoundTrips(t *testing.T) {
	p := startPair(t)
	var gone string
	{
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gone = ln.Addr().String()
		ln.Close()
	}
	d := dir{"n2": p.srv.Addr().String(), "n3": gone}
	counter := func(name string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name})
	}
	unreach, gets, puts, dels, sent := counter("u"), counter("g"), counter("p"), counter("d"), counter("s")
	m := New(Config{Client: p.cli, Current: func() Directory { return d }, Timeout: 2 * time.Second,
		Unreachable: unreach, ForwardedGets: gets, ForwardedPuts: puts, ForwardedDeletes: dels, ImportsSent: sent})
	ctx := ctxT(t)

	if _, _, err := m.Get(ctx, d, "n2", "k", false); err != kv.ErrNotFound {
		t.Fatalf("Get of a missing key: %v", err)
	}
	res, err := m.Write(ctx, d, "n2", "k", kv.Mutation{Value: []byte("v1")})
	if err != nil || !res.Applied || res.Owner != "n2" || res.Source != kv.SourcePeer {
		t.Fatalf("Write: %+v %v", res, err)
	}
	it, nearTTL, err := m.Get(ctx, d, "n2", "k", false)
	if err != nil || string(it.Value) != "v1" || it.Owner != "n2" || it.Source != kv.SourcePeer || nearTTL != 750*time.Millisecond {
		t.Fatalf("Get: %+v %v %v", it, nearTTL, err)
	}
	if it, _, err = m.Get(ctx, d, "n2", "k", true); err != nil || it.Owner != "n2" || it.Source != kv.SourceReplica {
		t.Fatalf("replica Get: %+v %v", it, err)
	}
	if _, _, err = m.Get(ctx, d, "n2", "bad", false); !errors.Is(err, kv.ErrNotOwner) || err.(*kv.Error).Owner != "n9" {
		t.Fatalf("Get refused with 421: %v", err)
	}
	if _, err = m.Write(ctx, d, "n2", "k", kv.Mutation{Delete: true}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if en, found, err := m.Handoff(ctx, d, "n2", "k"); err != nil || found {
		t.Fatalf("Handoff of a deleted key: %+v %v %v", en, found, err)
	}
	ir, err := m.Import(ctx, "n2", []store.Entry{{Key: "a", Value: []byte("1"), Version: 5}, {Key: "b", Value: []byte("2"), Version: 5}})
	if err != nil || len(ir) != 2 || !ir[0].IsAcked() {
		t.Fatalf("Import: %v %v", ir, err)
	}
	if err := m.Invalidate(ctx, "n2", []string{"a", "b"}); err != nil {
		t.Fatalf("Invalidate: %v", err)
	}
	addr, ok := m.Addr("n2")
	if !ok || addr != p.srv.Addr().String() {
		t.Fatalf("Addr: %q %v", addr, ok)
	}
	if loaded, err := m.Warm(ctx, addr, []string{"a", "b"}); err != nil || loaded != 2 {
		t.Fatalf("Warm: %d %v", loaded, err)
	}
	if b, err := m.Status(ctx, d, "n2"); err != nil || string(b) != `{"name":"client"}` {
		t.Fatalf("Status: %q %v", b, err)
	}
	call := m.StartMany(ctx, d, "n2", []peer.Request{{Key: "a"}, {Key: "c", Write: true, Mutation: kv.Mutation{Value: []byte("3")}}})
	rs, err := call.WaitInto(nil)
	if err != nil || len(rs) != 2 || string(rs[0].Item.Value) != "1" || !rs[1].Applied {
		t.Fatalf("Many: %+v %v", rs, err)
	}

	// n3 does not answer.
	_, _, err = m.Get(ctx, d, "n3", "k", false)
	var e *kv.Error
	if !errors.As(err, &e) || !e.Unreachable || !e.Retryable || e.Status != 503 {
		t.Fatalf("Get from a member that does not answer: %#v", err)
	}
	call = m.StartMany(ctx, d, "n3", []peer.Request{{Key: "a"}})
	if _, err := call.WaitInto(nil); !errors.As(err, &e) || !e.Unreachable {
		t.Fatalf("Many to a member that does not answer: %#v", err)
	}
	if _, err := m.Import(ctx, "n3", []store.Entry{{Key: "a", Version: 1}}); !errors.As(err, &e) || !e.Unreachable {
		t.Fatalf("Import to a member that does not answer: %v", err)
	}

	for _, c := range []struct {
		name string
		c    prometheus.Counter
		want float64
	}{{"unreachable", unreach, 3}, {"forwarded gets", gets, 4}, {"forwarded puts", puts, 1}, {"forwarded deletes", dels, 1}, {"imports sent", sent, 2}} {
		if got := valueOf(t, c.c); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// oldDir is a Directory whose members all speak protocol 2.
type oldDir struct{ dir }

func (oldDir) PeerProto(string) int { return ProtoAbsoluteExpiry - 1 }

// TestAbsoluteExpiryForOlderMembers: a member of a release before
// ProtoAbsoluteExpiry gets an absolute expiry as a time to live (the only
// form it decodes); a current member gets it as it is, and the caller's
// requests are never changed.
func TestAbsoluteExpiryForOlderMembers(t *testing.T) {
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	for _, mu := range []kv.Mutation{{Value: []byte("v"), ExpireAt: at}, {Expire: true, ExpireAt: at}} {
		if got := forPeer(dir{}, "n", mu); !got.ExpireAt.Equal(at) || got.TTL != 0 {
			t.Errorf("current member: %+v", got)
		}
		got := forPeer(oldDir{}, "n", mu)
		if !got.ExpireAt.IsZero() || got.TTL < 59*time.Minute || got.TTL > time.Hour || got.Expire != mu.Expire {
			t.Errorf("older member: %+v", got)
		}
	}
	if got := forPeer(oldDir{}, "n", kv.Mutation{Op: kv.OpGetEx, ExpireAt: time.Now().Add(-time.Second)}); string(got.Value) != "1" || !got.ExpireAt.IsZero() {
		t.Errorf("GETEX with a past instant for an older member: %+v", got)
	}
	if got := forPeer(oldDir{}, "n", kv.Mutation{Value: []byte("v"), TTL: time.Second}); got.TTL != time.Second {
		t.Errorf("a time to live is sent as it is: %+v", got)
	}
}

// TestThisReleaseTakesAbsoluteExpiry: nodes of this release announce a
// protocol version that takes absolute expiries, so they send them to each
// other.
func TestThisReleaseTakesAbsoluteExpiry(t *testing.T) {
	if membership.ProtocolVersion < ProtoAbsoluteExpiry || membership.ProtocolVersion < ProtoConditions {
		t.Fatalf("membership.ProtocolVersion %d is below ProtoAbsoluteExpiry %d or ProtoConditions %d", membership.ProtocolVersion, ProtoAbsoluteExpiry, ProtoConditions)
	}
}

// v3Dir is a directory whose members run the release before conditions.
type v3Dir struct{ dir }

func (v3Dir) PeerProto(string) int { return ProtoConditions - 1 }

// TestConditionsNeedTheirRelease: a conditional expiry change and a
// GETSET with a set's options are refused for a member of an earlier
// release (ErrOwnerTooOld, never sent), and everything else passes.
func TestConditionsNeedTheirRelease(t *testing.T) {
	for _, c := range []struct {
		mu   kv.Mutation
		need bool
	}{
		{kv.Mutation{Expire: true, TTL: time.Second, ExpireIf: kv.ExpireGT}, true},
		{kv.Mutation{Expire: true, ExpireIf: kv.ExpireXX}, true},
		{kv.Mutation{Op: kv.OpGetSet, Value: []byte("v"), IfAbsent: true}, true},
		{kv.Mutation{Op: kv.OpGetSet, Value: []byte("v"), TTL: time.Second}, true},
		{kv.Mutation{Op: kv.OpGetSet, Value: []byte("v"), KeepTTL: true}, true},
		{kv.Mutation{Op: kv.OpGetSet, Value: []byte("v")}, false}, // GETSET itself is older
		{kv.Mutation{Expire: true, TTL: time.Second}, false},
		{kv.Mutation{Value: []byte("v"), IfAbsent: true}, false},
	} {
		if got := c.mu.NeedsConditions(); got != c.need {
			t.Errorf("%+v: NeedsConditions %v", c.mu, got)
		}
		e := tooOld(v3Dir{}, "n", c.mu)
		if (e != nil) != c.need || (e != nil && !errors.Is(e, kv.ErrOwnerTooOld)) {
			t.Errorf("%+v for an older member: %v", c.mu, e)
		}
		if e := tooOld(dir{}, "n", c.mu); e != nil {
			t.Errorf("%+v for a current member: %v", c.mu, e)
		}
	}
}
