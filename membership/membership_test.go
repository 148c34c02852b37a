package membership

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// ---- helpers ----

// syncWriter writes to the test's output until the test is over.
type syncWriter struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return len(p), nil
	}
	return s.w.Write(p)
}

// recordHandler keeps the messages of warnings and errors for assertions.
type recordHandler struct {
	slog.Handler
	rec *records
}

type records struct {
	mu   sync.Mutex
	msgs []string
}

func (h recordHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.rec.mu.Lock()
		h.rec.msgs = append(h.rec.msgs, r.Level.String()+" "+r.Message)
		h.rec.mu.Unlock()
	}
	return h.Handler.Handle(ctx, r)
}

func (h recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return recordHandler{h.Handler.WithAttrs(as), h.rec}
}

func (h recordHandler) WithGroup(name string) slog.Handler {
	return recordHandler{h.Handler.WithGroup(name), h.rec}
}

func (r *records) contains(level, substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if strings.HasPrefix(m, level+" ") && strings.Contains(m, substr) {
			return true
		}
	}
	return false
}

// testLogger logs to the test output (debug level with MEMBERSHIP_DEBUG=1).
func testLogger(t *testing.T) (*slog.Logger, *records) {
	t.Helper()
	w := &syncWriter{w: t.Output()}
	t.Cleanup(func() { // registered first, runs last
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	level := slog.LevelInfo
	if os.Getenv("MEMBERSHIP_DEBUG") != "" {
		level = slog.LevelDebug
	}
	rec := &records{}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(recordHandler{h, rec}), rec
}

func testConfig(t *testing.T, name string, seeds ...string) Config {
	t.Helper()
	lg, _ := testLogger(t)
	return Config{
		Name:           name,
		BindAddr:       "127.0.0.1",
		Seeds:          seeds,
		Timing:         TimingFast,
		Debounce:       50 * time.Millisecond,
		RejoinInterval: -1,
		JoinTimeout:    5 * time.Second,
		Logger:         lg,
		Meta:           Meta{HTTPAddr: "127.0.0.1:" + strconv.Itoa(8000+len(name)), State: StateActive},
	}
}

// newNode creates a Membership (shut down at the end of the test).
func newNode(t *testing.T, cfg Config) *Membership {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		if err := m.Shutdown(); err != nil {
			t.Errorf("Shutdown(%s): %v", cfg.Name, err)
		}
	})
	return m
}

// startNode creates and starts a Membership.
func startNode(t *testing.T, cfg Config) *Membership {
	t.Helper()
	m := newNode(t, cfg)
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start(%s): %v", cfg.Name, err)
	}
	return m
}

// recorder drains a Membership's Updates channel.
type recorder struct {
	mu   sync.Mutex
	sets [][]Member
	done chan struct{}
}

func record(m *Membership) *recorder {
	r := &recorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for set := range m.Updates() {
			r.mu.Lock()
			r.sets = append(r.sets, set)
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *recorder) snapshot() [][]Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sets)
}

func (r *recorder) last() []Member {
	s := r.snapshot()
	if len(s) == 0 {
		return nil
	}
	return s[len(s)-1]
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func names(set []Member) []string { return memberNames(set) }

func hasNames(set []Member, want ...string) bool {
	return slices.Equal(names(set), want)
}

// cluster starts n nodes named prefix-1..n, all seeded with the first.
func cluster(t *testing.T, prefix string, n int, mod func(*Config)) []*Membership {
	t.Helper()
	var ms []*Membership
	for i := 1; i <= n; i++ {
		var seeds []string
		if i > 1 {
			seeds = []string{ms[0].LocalAddr()}
		}
		cfg := testConfig(t, fmt.Sprintf("%s-%d", prefix, i), seeds...)
		if mod != nil {
			mod(&cfg)
		}
		ms = append(ms, startNode(t, cfg))
	}
	all := make([]string, n)
	for i := range all {
		all[i] = fmt.Sprintf("%s-%d", prefix, i+1)
	}
	for _, m := range ms {
		waitFor(t, 5*time.Second, "cluster "+prefix+" to converge", func() bool {
			return hasNames(m.Members(), all...)
		})
	}
	return ms
}

// freePort returns a port that was free for both TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// ---- cluster behaviour ----

func TestThreeMembersJoinViaOneSeed(t *testing.T) {
	t.Parallel()
	n1 := startNode(t, testConfig(t, "a-1"))
	r1 := record(n1)
	n2 := startNode(t, testConfig(t, "a-2", n1.LocalAddr()))
	cfg3 := testConfig(t, "a-3", n1.LocalAddr())
	cfg3.Meta.State = "" // defaults to joining
	n3 := startNode(t, cfg3)

	want := map[string]Meta{
		"a-1": {HTTPAddr: "127.0.0.1:8003", State: StateActive, Proto: ProtocolVersion},
		"a-2": {HTTPAddr: "127.0.0.1:8003", State: StateActive, Proto: ProtocolVersion},
		"a-3": {HTTPAddr: "127.0.0.1:8003", State: StateJoining, Proto: ProtocolVersion},
	}
	addrs := map[string]string{"a-1": n1.LocalAddr(), "a-2": n2.LocalAddr(), "a-3": n3.LocalAddr()}
	for _, m := range []*Membership{n1, n2, n3} {
		waitFor(t, 5*time.Second, m.Self().Name+" to see 3 members", func() bool {
			set := m.Members()
			if !hasNames(set, "a-1", "a-2", "a-3") {
				return false
			}
			for _, mb := range set {
				if !mb.Meta.Equal(want[mb.Name]) || mb.Addr != addrs[mb.Name] || mb.Suspect {
					return false
				}
			}
			return true
		})
	}
	waitFor(t, 2*time.Second, "a-1's last update to hold 3 members", func() bool {
		return hasNames(r1.last(), "a-1", "a-2", "a-3")
	})
	if first := r1.snapshot()[0]; len(first) == 0 || first[0].Name != "a-1" {
		t.Errorf("first update = %v, want to contain a-1", names(first))
	}
	if s := n3.Self(); s.Name != "a-3" || s.Addr != n3.LocalAddr() || s.Meta.State != StateJoining {
		t.Errorf("Self() = %+v", s)
	}
	if !strings.HasPrefix(n1.LocalAddr(), "127.0.0.1:") || n1.BindPort() == 0 {
		t.Errorf("LocalAddr = %q, BindPort = %d", n1.LocalAddr(), n1.BindPort())
	}
	if h := n1.Health(); h < 0 {
		t.Errorf("Health = %d", h)
	}
}

func TestSetMetaPropagates(t *testing.T) {
	t.Parallel()
	ms := cluster(t, "m", 3, nil)
	r1 := record(ms[0])
	meta := ms[1].Self().Meta
	meta.State = StateLeaving
	meta.Migrating = true
	meta.Extra = map[string]string{"mode": "rf2"}
	start := time.Now()
	if err := ms[1].SetMeta(meta); err != nil {
		t.Fatalf("SetMeta: %v", err)
	}
	for _, m := range []*Membership{ms[0], ms[2]} {
		waitFor(t, 5*time.Second, "meta change to reach "+m.Self().Name, func() bool {
			for _, mb := range m.Members() {
				if mb.Name == "m-2" {
					return mb.Meta.State == StateLeaving && mb.Meta.Migrating && mb.Meta.Extra["mode"] == "rf2"
				}
			}
			return false
		})
	}
	t.Logf("meta change seen by all after %s", time.Since(start))
	waitFor(t, 2*time.Second, "update carrying the new meta", func() bool {
		for _, mb := range r1.last() {
			if mb.Name == "m-2" && mb.Meta.State == StateLeaving {
				return true
			}
		}
		return false
	})
	if got := ms[1].Self().Meta; got.State != StateLeaving || got.Proto != ProtocolVersion {
		t.Errorf("Self().Meta = %+v", got)
	}

	// Invalid metadata is rejected and changes nothing.
	if err := ms[1].SetMeta(Meta{State: "bogus"}); err == nil || !strings.Contains(err.Error(), "State") {
		t.Errorf("SetMeta(bad state) = %v, want error naming State", err)
	}
	big := Meta{State: StateActive, Extra: map[string]string{"x": strings.Repeat("y", 600)}}
	if err := ms[1].SetMeta(big); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("SetMeta(oversize) = %v, want size error", err)
	}
	if got := ms[1].Self().Meta; got.State != StateLeaving {
		t.Errorf("meta changed by a rejected SetMeta: %+v", got)
	}
}

func TestGracefulLeave(t *testing.T) {
	t.Parallel()
	ms := cluster(t, "l", 3, nil)
	start := time.Now()
	if err := ms[2].Leave(2 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := ms[2].Leave(time.Second); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if err := ms[2].SetMeta(Meta{State: StateLeaving}); err == nil {
		t.Error("SetMeta after Leave succeeded")
	}
	for _, m := range ms[:2] {
		waitFor(t, 3*time.Second, m.Self().Name+" to drop l-3", func() bool {
			return hasNames(m.Members(), "l-1", "l-2")
		})
	}
	t.Logf("graceful leave seen by all after %s", time.Since(start))
	if err := ms[2].Shutdown(); err != nil {
		t.Fatalf("Shutdown after Leave: %v", err)
	}
	if err := ms[2].Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := ms[2].Leave(time.Second); err == nil {
		t.Error("Leave after Shutdown succeeded")
	}
}

func TestCrashDetection(t *testing.T) {
	t.Parallel()
	ms := cluster(t, "c", 3, nil)
	recs := []*recorder{record(ms[0]), record(ms[1])}
	start := time.Now()
	if err := ms[2].Shutdown(); err != nil { // no Leave: looks like a crash
		t.Fatal(err)
	}
	var took []time.Duration
	for i, m := range ms[:2] {
		waitFor(t, 10*time.Second, m.Self().Name+" to drop crashed c-3", func() bool {
			return hasNames(recs[i].last(), "c-1", "c-2")
		})
		took = append(took, time.Since(start))
	}
	t.Logf("crashed member removed from the published sets after %v (c-1) and %v (c-2)", took[0], took[1])
}

func TestCoalescing(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "k-1")
	cfg.Debounce = 200 * time.Millisecond
	n1 := startNode(t, cfg)
	r1 := record(n1)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 2; i <= 5; i++ {
		c := testConfig(t, fmt.Sprintf("k-%d", i), n1.LocalAddr())
		c.Debounce = 200 * time.Millisecond
		m := newNode(t, c)
		wg.Go(func() {
			if err := m.Start(context.Background()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := []string{"k-1", "k-2", "k-3", "k-4", "k-5"}
	waitFor(t, 5*time.Second, "k-1 to publish all 5", func() bool { return hasNames(r1.last(), want...) })
	time.Sleep(3 * cfg.Debounce) // let any trailing update through
	sets := r1.snapshot()
	for i, s := range sets {
		t.Logf("update %d: %v", i+1, names(s))
	}
	if !hasNames(sets[len(sets)-1], want...) {
		t.Errorf("last update = %v, want %v", names(sets[len(sets)-1]), want)
	}
	// Without coalescing there would be at least 5 (self + 4 joins).
	if len(sets) > 3 {
		t.Errorf("%d updates for 5 nodes starting together; want at most 3", len(sets))
	}
}

func TestWrongClusterLabel(t *testing.T) {
	t.Parallel()
	ms := cluster(t, "lb", 2, func(c *Config) { c.ClusterLabel = "prod" })
	cfg := testConfig(t, "lb-bad", ms[0].LocalAddr())
	cfg.ClusterLabel = "staging"
	cfg.JoinTimeout = time.Second
	bad := newNode(t, cfg)
	err := bad.Start(context.Background())
	if err == nil {
		t.Fatal("Start with a wrong cluster label succeeded")
	}
	t.Logf("Start with wrong label: %v", err)
	// An unlabeled node cannot join either.
	cfg2 := testConfig(t, "lb-none", ms[0].LocalAddr())
	cfg2.JoinTimeout = 500 * time.Millisecond
	if err := newNode(t, cfg2).Start(context.Background()); err == nil {
		t.Fatal("Start without a cluster label succeeded")
	}
	checkUndisturbed(t, ms, bad, "lb-1", "lb-2")
}

func TestWrongGossipKey(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef")
	ms := cluster(t, "gk", 2, func(c *Config) { c.SecretKey = key })
	cfg := testConfig(t, "gk-bad", ms[0].LocalAddr())
	cfg.SecretKey = []byte("fedcba9876543210")
	cfg.JoinTimeout = time.Second
	bad := newNode(t, cfg)
	err := bad.Start(context.Background())
	if err == nil {
		t.Fatal("Start with a wrong gossip key succeeded")
	}
	t.Logf("Start with wrong key: %v", err)
	cfg2 := testConfig(t, "gk-none", ms[0].LocalAddr())
	cfg2.JoinTimeout = 500 * time.Millisecond
	if err := newNode(t, cfg2).Start(context.Background()); err == nil {
		t.Fatal("Start without a gossip key succeeded")
	}
	checkUndisturbed(t, ms, bad, "gk-1", "gk-2")
}

// checkUndisturbed asserts that the cluster keeps exactly its members for a
// while and that the rejected node saw no one.
func checkUndisturbed(t *testing.T, ms []*Membership, bad *Membership, want ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		for _, m := range ms {
			if got := m.Members(); !hasNames(got, want...) {
				t.Fatalf("%s sees %v, want %v", m.Self().Name, names(got), want)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := bad.Members(); len(got) != 1 || got[0].Name != bad.Self().Name {
		t.Errorf("rejected node sees %v", names(got))
	}
}

func TestSeedAsDNSName(t *testing.T) {
	t.Parallel()
	n1 := startNode(t, testConfig(t, "d-1"))
	seed := "localhost:" + strconv.Itoa(n1.BindPort())
	n2 := startNode(t, testConfig(t, "d-2", seed))
	for _, m := range []*Membership{n1, n2} {
		waitFor(t, 5*time.Second, m.Self().Name+" to see both", func() bool {
			return hasNames(m.Members(), "d-1", "d-2")
		})
	}
}

// Cluster B = {b-1, b-2}; b-1 lists b-2 and a-1's address as seeds, but a-1
// is down when b-1 starts. Once A = {a-1, a-2} is up, b-1's re-join loop
// merges the clusters.
func TestRejoinMergesClusters(t *testing.T) {
	t.Parallel()
	portA := freePort(t)
	addrA := "127.0.0.1:" + strconv.Itoa(portA)

	b2 := startNode(t, testConfig(t, "rb-2"))
	cfg := testConfig(t, "rb-1", b2.LocalAddr(), addrA)
	cfg.RejoinInterval = 300 * time.Millisecond
	b1 := startNode(t, cfg) // b-2 answers, a-1 does not: Start succeeds
	rb := record(b1)
	waitFor(t, 5*time.Second, "cluster B", func() bool { return hasNames(b1.Members(), "rb-1", "rb-2") })

	cfgA := testConfig(t, "ra-1")
	cfgA.BindPort = portA
	a1 := startNode(t, cfgA)
	a2 := startNode(t, testConfig(t, "ra-2", a1.LocalAddr()))
	start := time.Now()
	all := []string{"ra-1", "ra-2", "rb-1", "rb-2"}
	for _, m := range []*Membership{a1, a2, b1, b2} {
		waitFor(t, 10*time.Second, m.Self().Name+" to see the merged cluster", func() bool {
			return hasNames(m.Members(), all...)
		})
	}
	t.Logf("clusters merged %s after A started", time.Since(start))
	waitFor(t, 2*time.Second, "rb-1's update with all", func() bool { return hasNames(rb.last(), all...) })
}

// A node whose only seed was down at Start (JoinTimeout 0) keeps trying in
// the background and joins once the seed is up.
func TestBackgroundJoinAfterSeedComesUp(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	cfg := testConfig(t, "bg-2", "127.0.0.1:"+strconv.Itoa(port))
	cfg.JoinTimeout = 0
	start := time.Now()
	n2 := startNode(t, cfg)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Start with JoinTimeout 0 took %s", d)
	}
	time.Sleep(300 * time.Millisecond)
	cfg1 := testConfig(t, "bg-1")
	cfg1.BindPort = port
	n1 := startNode(t, cfg1)
	for _, m := range []*Membership{n1, n2} {
		waitFor(t, 5*time.Second, m.Self().Name+" to see both", func() bool {
			return hasNames(m.Members(), "bg-1", "bg-2")
		})
	}
}

func TestNameConflictIsLogged(t *testing.T) {
	t.Parallel()
	lg, rec := testLogger(t)
	cfg := testConfig(t, "dup")
	cfg.Logger = lg
	n1 := startNode(t, cfg)
	cfg2 := testConfig(t, "dup", n1.LocalAddr())
	cfg2.Logger = lg
	cfg2.JoinTimeout = 0
	_ = startNode(t, cfg2)
	waitFor(t, 5*time.Second, "name conflict to be logged", func() bool {
		return rec.contains("ERROR", "name conflict")
	})
}

// ---- Start edge cases ----

func TestStartWithoutSeedsOrOnlySelf(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t, "solo"))
	r := record(n)
	waitFor(t, 2*time.Second, "first update with self", func() bool { return hasNames(r.last(), "solo") })

	port := freePort(t)
	cfg := testConfig(t, "self-seeded", "127.0.0.1:"+strconv.Itoa(port), "localhost:"+strconv.Itoa(port))
	cfg.BindPort = port
	cfg.JoinTimeout = 10 * time.Second
	start := time.Now()
	startNode(t, cfg)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Start with only itself as seed took %s", d)
	}
	if err := n.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
}

func TestStartFailsAfterJoinTimeout(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	cfg := testConfig(t, "to", "127.0.0.1:"+strconv.Itoa(port))
	cfg.JoinTimeout = 700 * time.Millisecond
	m := newNode(t, cfg)
	start := time.Now()
	err := m.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "JoinTimeout") {
		t.Fatalf("Start = %v, want JoinTimeout error", err)
	}
	if d := time.Since(start); d < 600*time.Millisecond || d > 3*time.Second {
		t.Errorf("Start gave up after %s, want about 700ms", d)
	}

	cfg2 := testConfig(t, "ctx", "127.0.0.1:"+strconv.Itoa(port))
	cfg2.JoinTimeout = time.Minute
	m2 := newNode(t, cfg2)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := m2.Start(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start with expiring ctx = %v, want DeadlineExceeded", err)
	}
}

// ---- units ----

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	base := func() Config { return Config{Name: "v", BindAddr: "127.0.0.1", BindPort: 0} }
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no name", func(c *Config) { c.Name = "" }, "Name"},
		{"bind host", func(c *Config) { c.BindAddr = "example.com" }, "BindAddr"},
		{"bind port", func(c *Config) { c.BindPort = 70000 }, "BindPort"},
		{"adv port without bind port", func(c *Config) { c.AdvertisePort = 7000 }, "AdvertisePort"},
		{"key length", func(c *Config) { c.SecretKey = []byte("short") }, "SecretKey"},
		{"label length", func(c *Config) { c.ClusterLabel = strings.Repeat("l", 256) }, "ClusterLabel"},
		{"bad seed port", func(c *Config) { c.Seeds = []string{"host:99999"} }, "Seeds[0]"},
		{"empty seed", func(c *Config) { c.Seeds = []string{"a:1", " "} }, "Seeds[1]"},
		{"bad state", func(c *Config) { c.Meta.State = "sleeping" }, "Meta.State"},
		{"bad http addr", func(c *Config) { c.Meta.HTTPAddr = "nohostport" }, "Meta.HTTPAddr"},
		{"big meta", func(c *Config) { c.Meta.Extra = map[string]string{"k": strings.Repeat("v", 600)} }, "Meta"},
		{"debounce", func(c *Config) { c.Debounce = -time.Second }, "Debounce"},
		{"join timeout", func(c *Config) { c.JoinTimeout = -time.Second }, "JoinTimeout"},
		{"timing", func(c *Config) { c.Timing = 7 }, "Timing"},
		{"adv unspecified", func(c *Config) { c.AdvertiseAddr = "0.0.0.0" }, "AdvertiseAddr"},
	}
	for _, tc := range cases {
		cfg := base()
		tc.mod(&cfg)
		m, err := New(cfg)
		if err == nil {
			m.Shutdown()
			t.Errorf("%s: New succeeded", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not name %s", tc.name, err, tc.want)
		}
	}
}

func TestBindPortInUse(t *testing.T) {
	t.Parallel()
	n := newNode(t, testConfig(t, "busy-1"))
	cfg := testConfig(t, "busy-2")
	cfg.BindPort = n.BindPort()
	if m, err := New(cfg); err == nil {
		m.Shutdown()
		t.Fatal("New on a port in use succeeded")
	} else if !strings.Contains(err.Error(), "BindPort") {
		t.Errorf("error %q does not name BindPort", err)
	}
}

func TestParseSeed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		host string
		ip   string
		port uint16
	}{
		{"cachenode", "cachenode", "", DefaultSeedPort},
		{"cachenode:9000", "cachenode", "", 9000},
		{"10.0.0.1", "", "10.0.0.1", DefaultSeedPort},
		{"10.0.0.1:7000", "", "10.0.0.1", 7000},
		{"::1", "", "::1", DefaultSeedPort},
		{"[::1]", "", "::1", DefaultSeedPort},
		{"[::1]:7000", "", "::1", 7000},
	}
	for _, tc := range cases {
		sa, err := parseSeed(tc.in)
		if err != nil {
			t.Errorf("parseSeed(%q): %v", tc.in, err)
			continue
		}
		ip := ""
		if sa.ip.IsValid() {
			ip = sa.ip.String()
		}
		if sa.host != tc.host || ip != tc.ip || sa.port != tc.port {
			t.Errorf("parseSeed(%q) = host %q ip %q port %d", tc.in, sa.host, ip, sa.port)
		}
	}
	for _, bad := range []string{"", "host:", "host:0", "host:x", ":7000"} {
		if _, err := parseSeed(bad); err == nil {
			t.Errorf("parseSeed(%q) succeeded", bad)
		}
	}
}

// fakeResolver answers like Docker's DNS for a compose service name.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if ips, ok := f[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestResolveSeedsJoinsAllAddressesAndSkipsSelf(t *testing.T) {
	t.Parallel()
	res := fakeResolver{
		"cachenode": {
			netip.MustParseAddr("172.20.0.2"), netip.MustParseAddr("172.20.0.3"),
			netip.MustParseAddr("172.20.0.4"), netip.MustParseAddr("fd00::4"),
		},
		"me": {netip.MustParseAddr("172.20.0.3")},
	}
	cfg := testConfig(t, "res", "cachenode", "me:7946", "172.20.0.2:7946", "gone:7946")
	cfg.AdvertiseAddr = "172.20.0.3"
	cfg.BindAddr = "127.0.0.1"
	cfg.BindPort = freePort(t)
	cfg.AdvertisePort = 7946
	cfg.Resolver = res
	m := newNode(t, cfg)
	got, err := m.resolveSeeds(context.Background())
	want := []netip.AddrPort{
		netip.MustParseAddrPort("172.20.0.2:7946"),
		netip.MustParseAddrPort("172.20.0.4:7946"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("resolveSeeds = %v, want %v", got, want)
	}
	if err == nil || !strings.Contains(err.Error(), `"gone:7946"`) {
		t.Errorf("resolveSeeds error = %v, want one naming the unresolvable seed", err)
	}
	if m.LocalAddr() != "172.20.0.3:7946" {
		t.Errorf("LocalAddr = %q", m.LocalAddr())
	}
}

func TestAdvertiseAddrHostName(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "advname")
	cfg.AdvertiseAddr = "node-a"
	cfg.Resolver = fakeResolver{"node-a": {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.1.2.3")}}
	m := newNode(t, cfg)
	if !strings.HasPrefix(m.LocalAddr(), "10.1.2.3:") {
		t.Errorf("LocalAddr = %q, want the non-loopback address", m.LocalAddr())
	}
	cfg2 := testConfig(t, "advname2")
	cfg2.AdvertiseAddr = "unknown-host"
	cfg2.Resolver = fakeResolver{}
	if _, err := New(cfg2); err == nil || !strings.Contains(err.Error(), "AdvertiseAddr") {
		t.Errorf("New with unresolvable AdvertiseAddr = %v", err)
	}
}

func TestMetaEncoding(t *testing.T) {
	t.Parallel()
	in := Meta{HTTPAddr: "10.0.0.1:8080", State: StateActive, Proto: 1, Migrating: true, Extra: map[string]string{"mode": "rf2"}}
	b, err := EncodeMeta(in)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("encoded meta (%d bytes): %s", len(b), b)
	out, err := DecodeMeta(b)
	if err != nil || !out.Equal(in) {
		t.Fatalf("round trip = %+v, %v", out, err)
	}
	small, _ := EncodeMeta(Meta{HTTPAddr: "a:1", State: StateJoining, Proto: 1})
	if strings.Contains(string(small), `"x"`) || len(small) > 40 {
		t.Errorf("minimal meta encodes to %s", small)
	}
	if _, err := DecodeMeta([]byte("\x00garbage")); err == nil {
		t.Error("DecodeMeta(garbage) succeeded")
	}
	if _, err := DecodeMeta(nil); err == nil {
		t.Error("DecodeMeta(nil) succeeded")
	}
	// Unknown fields from newer versions are ignored.
	if m, err := DecodeMeta([]byte(`{"h":"a:1","s":"active","p":2,"future":true}`)); err != nil || m.Proto != 2 {
		t.Errorf("DecodeMeta with unknown field = %+v, %v", m, err)
	}
}

func TestUndecodableMetaIsUnknownState(t *testing.T) {
	t.Parallel()
	m := newNode(t, testConfig(t, "dec"))
	ev := (*events)(m)
	ev.NotifyJoin(&memberlist.Node{Name: "peer", Addr: net.IPv4(127, 0, 0, 1), Port: 9999, Meta: []byte("not json")})
	var found bool
	for _, mb := range m.Members() {
		if mb.Name == "peer" {
			found = true
			if mb.Meta.State != "" || mb.Addr != "127.0.0.1:9999" {
				t.Errorf("peer with garbage meta = %+v", mb)
			}
		}
	}
	if !found {
		t.Fatal("peer with garbage meta missing from Members")
	}
	ev.NotifyLeave(&memberlist.Node{Name: "peer", Addr: net.IPv4(127, 0, 0, 1), Port: 9999})
	if got := m.Members(); !hasNames(got, "dec") {
		t.Errorf("after leave Members = %v", names(got))
	}
}

func TestPublishLatestWins(t *testing.T) {
	t.Parallel()
	m := newNode(t, testConfig(t, "lw"))
	for i := range 5 { // nobody reads: must never block
		m.publish([]Member{{Name: strconv.Itoa(i)}})
	}
	got := <-m.Updates()
	if len(got) != 1 || got[0].Name != "4" {
		t.Errorf("got %v, want the newest set", got)
	}
	select {
	case s := <-m.Updates():
		t.Errorf("stale set left in channel: %v", s)
	default:
	}
}

func TestMemberlistLogsRoutedToSlog(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	var mu sync.Mutex
	w := &memberlistLogWriter{log: slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.WriteString(string(p))
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))}
	fmt.Fprintf(w, "[WARN] memberlist: Refuting a suspect message (from: x)\n")
	w.closed.Store(true)
	fmt.Fprintf(w, "[ERR] memberlist: after close\n")
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, `msg="Refuting a suspect message (from: x)"`) ||
		!strings.Contains(out, "memberlist_level=WARN") || strings.Contains(out, "after close") {
		t.Errorf("routed log = %q", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// loopbackOnly resolves every host name to 127.0.0.1, as on a machine
// whose /etc/hosts maps its own name to loopback only.
type loopbackOnly struct{}

func (loopbackOnly) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// With AdvertiseAddr empty and an unspecified bind address: a node without
// seeds whose host name resolves only to loopback advertises loopback (and
// says so); with seeds it advertises the address of the route to the first
// seed; when that route cannot be found either, New fails with
// ErrNoAdvertiseAddr in plain words.
func TestAdvertiseAddrChoice(t *testing.T) {
	t.Parallel()
	base := func(name string, seeds ...string) Config {
		cfg := testConfig(t, name, seeds...)
		cfg.BindAddr = "0.0.0.0"
		cfg.Resolver = loopbackOnly{}
		return cfg
	}

	lone := base("lone")
	var logs strings.Builder
	sw := &syncWriter{w: &logs}
	lone.Logger = slog.New(slog.NewTextHandler(sw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := newNode(t, lone)
	if !strings.HasPrefix(m.LocalAddr(), "127.0.0.1:") {
		t.Errorf("lone node: LocalAddr = %q, want loopback", m.LocalAddr())
	}
	sw.mu.Lock()
	logged := logs.String()
	sw.mu.Unlock()
	if !strings.Contains(logged, "advertising loopback") {
		t.Errorf("lone node: no INFO line about advertising loopback in:\n%s", logged)
	}

	routed := base("routed", "10.9.8.7:7946")
	routed.route = func(dst netip.AddrPort) (netip.Addr, error) {
		if dst != netip.MustParseAddrPort("10.9.8.7:7946") {
			t.Errorf("route asked for %s, want the first seed", dst)
		}
		return netip.MustParseAddr("10.9.8.1"), nil
	}
	m = newNode(t, routed)
	if !strings.HasPrefix(m.LocalAddr(), "10.9.8.1:") {
		t.Errorf("node with seeds: LocalAddr = %q, want the address routing to the seed", m.LocalAddr())
	}

	named := base("named", "cachenode:7946")
	named.Resolver = fakeResolver{"cachenode": {netip.MustParseAddr("fd00::9"), netip.MustParseAddr("172.20.0.9")}}
	named.route = func(dst netip.AddrPort) (netip.Addr, error) {
		if dst.Addr() != netip.MustParseAddr("172.20.0.9") {
			t.Errorf("route asked for %s, want the seed name's IPv4 address", dst)
		}
		return netip.MustParseAddr("172.20.0.5"), nil
	}
	m = newNode(t, named)
	if !strings.HasPrefix(m.LocalAddr(), "172.20.0.5:") {
		t.Errorf("node with a seed name: LocalAddr = %q", m.LocalAddr())
	}

	stuck := base("stuck", "10.9.8.7:7946")
	stuck.route = func(netip.AddrPort) (netip.Addr, error) { return netip.Addr{}, errors.New("network is unreachable") }
	_, err := New(stuck)
	if !errors.Is(err, ErrNoAdvertiseAddr) {
		t.Fatalf("New without any usable address = %v, want ErrNoAdvertiseAddr", err)
	}
	for _, want := range []string{"10.9.8.7:7946", "network is unreachable", "resolves only to"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Count(err.Error(), "membership:") > 1 {
		t.Errorf("error %q repeats its prefix", err)
	}
}

// TestShutdownEndsSetMeta: a SetMeta waiting for its broadcast to go out
// (its only other member crashed, not yet declared dead) returns as soon as
// Shutdown begins, with ErrShutdown, instead of waiting out memberlist's
// timeout: a node that stops while it updates its metadata stops at once.
func TestShutdownEndsSetMeta(t *testing.T) {
	t.Parallel()
	ms := cluster(t, "s", 2, nil)
	if err := ms[1].Shutdown(); err != nil { // a crash: no Leave
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- ms[0].SetMeta(Meta{HTTPAddr: "127.0.0.1:1", State: StateActive}) }()
	time.Sleep(100 * time.Millisecond) // SetMeta is waiting for the broadcast
	start := time.Now()
	if err := ms[0].Shutdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, ErrShutdown) {
			t.Fatalf("SetMeta: %v, want nil or ErrShutdown", err)
		}
		t.Logf("SetMeta returned %v after Shutdown began: %v", time.Since(start), err)
	case <-time.After(metaUpdateTimeout - time.Second):
		t.Fatalf("SetMeta still waiting %v after Shutdown", metaUpdateTimeout-time.Second)
	}
}
