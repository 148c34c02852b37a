package rwmode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peercache/peercache/kv"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Mode{
		"read-only": ReadOnly, "readonly": ReadOnly, " RO ": ReadOnly,
		"read-write": ReadWrite, "ReadWrite": ReadWrite, "rw": ReadWrite,
	} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseMode("sleepy"); err == nil || err.Error() != `mode "sleepy": want "read-only" or "read-write"` {
		t.Errorf("ParseMode(sleepy): %v", err)
	}
	for in, want := range map[string]Scope{"node": Node, " Cluster": Cluster} {
		if got, err := ParseScope(in); err != nil || got != want {
			t.Errorf("ParseScope(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseScope("galaxy"); err == nil || err.Error() != `scope "galaxy": want "cluster" or "node"` {
		t.Errorf("ParseScope(galaxy): %v", err)
	}
}

func TestClusterModeEncoding(t *testing.T) {
	for _, c := range []ClusterMode{{ReadOnly, 1}, {ReadWrite, 1750000000000}} {
		s := c.Encode()
		got, ok := ParseClusterMode(s)
		if !ok || got != c {
			t.Errorf("%+v -> %q -> %+v %v", c, s, got, ok)
		}
	}
	if s := (ClusterMode{ReadOnly, 7}).Encode(); s != "ro@7" {
		t.Errorf("encoded %q, want ro@7", s)
	}
	for _, s := range []string{"", "ro", "ro@", "ro@0", "ro@-5", "xx@5", "rw@abc", "read-only@5"} {
		if c, ok := ParseClusterMode(s); ok {
			t.Errorf("%q parsed as %+v", s, c)
		}
	}
}

func TestNewer(t *testing.T) {
	ro5, rw5, rw6 := ClusterMode{ReadOnly, 5}, ClusterMode{ReadWrite, 5}, ClusterMode{ReadWrite, 6}
	for _, tc := range []struct {
		c, o ClusterMode
		want bool
	}{
		{rw6, ro5, true},  // larger stamp wins
		{ro5, rw6, false}, // smaller stamp loses, even read-only
		{ro5, rw5, true},  // tie: read-only wins
		{rw5, ro5, false},
		{ro5, ro5, false}, // equal: not newer
		{rw5, rw5, false},
		{rw5, ClusterMode{}, true}, // anything set beats never set
	} {
		if got := tc.c.Newer(tc.o); got != tc.want {
			t.Errorf("%+v.Newer(%+v) = %v, want %v", tc.c, tc.o, got, tc.want)
		}
	}
	if (ClusterMode{}).Effective() != ReadWrite || ro5.Effective() != ReadOnly || rw5.Effective() != ReadWrite {
		t.Error("effective: read-only only when set read-only")
	}
}

// recorder is a State with its publications and log lines kept.
type recorder struct {
	mu        sync.Mutex
	published map[string]string
	log       bytes.Buffer
}

func newState(t *testing.T, name string) (*State, *recorder) {
	t.Helper()
	r := &recorder{published: map[string]string{}}
	lw := &lockedWriter{mu: &r.mu, w: &r.log}
	s := NewState(name, slog.New(slog.NewTextHandler(lw, nil)), func(k, v string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if v == "" {
			delete(r.published, k)
		} else {
			r.published[k] = v
		}
	})
	return s, r
}

func (r *recorder) get(k string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.published[k]
}

func (r *recorder) logged() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestSet(t *testing.T) {
	s, r := newState(t, "a")
	if mi := s.Info(); mi != (Info{Node: "a", Mode: ReadWrite, NodeMode: ReadWrite, ClusterMode: ReadWrite}) {
		t.Fatalf("initial info %+v", mi)
	}
	if err := s.Set(ReadOnly, Node); err != nil {
		t.Fatal(err)
	}
	if mi := s.Info(); mi.Mode != ReadOnly || mi.NodeMode != ReadOnly || mi.ClusterMode != ReadWrite || !mi.ClusterModeSetAt.IsZero() {
		t.Fatalf("after node read-only: %+v", mi)
	}
	if r.get(KeyNode) != "ro" || !NodeReadOnly(map[string]string{KeyNode: r.get(KeyNode)}) {
		t.Fatalf("published node mode %q, want ro", r.get(KeyNode))
	}
	if !strings.Contains(r.logged(), `msg="node mode changed" mode=read-only scope=node`) {
		t.Errorf("log: %s", r.logged())
	}
	if err := s.Set(ReadWrite, Node); err != nil || r.get(KeyNode) != "" || s.Info().Mode != ReadWrite {
		t.Fatalf("back to read-write: %v, published %q, %+v", err, r.get(KeyNode), s.Info())
	}

	if err := s.Set(ReadOnly, Cluster); err != nil {
		t.Fatal(err)
	}
	c := s.Cluster()
	if c.Mode != ReadOnly || c.Stamp <= 0 || r.get(KeyCluster) != c.Encode() || s.Encoded() != c.Encode() {
		t.Fatalf("cluster %+v, published %q", c, r.get(KeyCluster))
	}
	if mi := s.Info(); mi.Mode != ReadOnly || mi.NodeMode != ReadWrite || mi.ClusterMode != ReadOnly || mi.ClusterModeSetAt.UnixMilli() != c.Stamp {
		t.Fatalf("after cluster read-only: %+v", mi)
	}
	// A change within the same millisecond still supersedes the previous one.
	if err := s.Set(ReadWrite, Cluster); err != nil {
		t.Fatal(err)
	}
	if c2 := s.Cluster(); c2.Mode != ReadWrite || c2.Stamp <= c.Stamp || !c2.Newer(c) {
		t.Fatalf("second cluster change %+v after %+v", c2, c)
	}
	if !strings.Contains(r.logged(), `msg="cluster mode changed" mode=read-write scope=cluster previous=read-only stamp=`) {
		t.Errorf("log: %s", r.logged())
	}

	before := maps.Clone(r.published)
	if err := s.Set("sleepy", Node); err == nil || err.Error() != `mode "sleepy": want "read-only" or "read-write"` {
		t.Errorf("bad mode: %v", err)
	}
	if err := s.Set(ReadOnly, "galaxy"); err == nil || err.Error() != `scope "galaxy": want "cluster" or "node"` {
		t.Errorf("bad scope: %v", err)
	}
	if !maps.Equal(before, r.published) || s.Info().Mode != ReadWrite {
		t.Errorf("a refused change changed something: %v -> %v, %+v", before, r.published, s.Info())
	}
}

// members is the member list Adopt reads: name and gossiped Extra.
func members(ms map[string]map[string]string) func(func(string, map[string]string) bool) {
	return func(yield func(string, map[string]string) bool) {
		for name, extra := range ms {
			if !yield(name, extra) {
				return
			}
		}
	}
}

func TestAdopt(t *testing.T) {
	s, r := newState(t, "a")
	// Nothing set anywhere, or only garbage and the node's own entry: no change.
	s.Adopt(members(map[string]map[string]string{
		"a": {KeyCluster: "ro@99"}, // itself: skipped
		"b": nil,
		"c": {KeyCluster: "nonsense"},
	}))
	if s.Cluster() != (ClusterMode{Mode: ReadWrite}) || r.get(KeyCluster) != "" {
		t.Fatalf("adopted from nothing: %+v, published %q", s.Cluster(), r.get(KeyCluster))
	}
	// The newest stamp wins; a tie goes to read-only.
	s.Adopt(members(map[string]map[string]string{
		"b": {KeyCluster: "rw@10"},
		"c": {KeyCluster: "ro@20"},
		"d": {KeyCluster: "rw@20"},
	}))
	if got := s.Cluster(); got != (ClusterMode{ReadOnly, 20}) || r.get(KeyCluster) != "ro@20" {
		t.Fatalf("adopted %+v, published %q; want ro@20", got, r.get(KeyCluster))
	}
	if l := r.logged(); !strings.Contains(l, `msg="cluster mode adopted from gossip" mode=read-only from=c set_at=1970-01-01T00:00:00.020Z previous=read-write`) {
		t.Errorf("log: %s", l)
	}
	// Older news is ignored.
	s.Adopt(members(map[string]map[string]string{"b": {KeyCluster: "rw@19"}}))
	if got := s.Cluster(); got != (ClusterMode{ReadOnly, 20}) {
		t.Fatalf("older mode adopted: %+v", got)
	}
	// A local change is newer than what it replaced, and is kept.
	if err := s.Set(ReadWrite, Cluster); err != nil {
		t.Fatal(err)
	}
	local := s.Cluster()
	s.Adopt(members(map[string]map[string]string{"c": {KeyCluster: "ro@20"}}))
	if s.Cluster() != local || r.get(KeyCluster) != local.Encode() {
		t.Fatalf("local change lost to stale gossip: %+v", s.Cluster())
	}
}

func TestCheckWritable(t *testing.T) {
	s, _ := newState(t, "a")
	for _, fw := range []bool{false, true} {
		if e := s.CheckWritable(fw); e != nil {
			t.Fatalf("read-write, forwarded=%v: %v", fw, e)
		}
	}
	refused := func(e *kv.Error, why string) {
		t.Helper()
		if e == nil || e.Status != 503 || !e.ReadOnly || !errors.Is(e, kv.ErrReadOnly) || errors.Is(e, kv.ErrUnavailable) ||
			!strings.Contains(e.Message, "node a is read-only ("+why+")") {
			t.Fatalf("got %+v, want a 503 read-only refusal naming %s", e, why)
		}
	}
	if err := s.Set(ReadOnly, Node); err != nil {
		t.Fatal(err)
	}
	refused(s.CheckWritable(false), "node mode")
	if e := s.CheckWritable(true); e != nil {
		t.Fatalf("node mode refused a forwarded write: %v", e)
	}
	if err := s.Set(ReadOnly, Cluster); err != nil {
		t.Fatal(err)
	}
	refused(s.CheckWritable(false), "cluster mode")
	refused(s.CheckWritable(true), "cluster mode")
	if err := s.Set(ReadWrite, Node); err != nil {
		t.Fatal(err)
	}
	refused(s.CheckWritable(true), "cluster mode")
}

// Concurrent changes, adoptions and reads are race-free, and every change's
// publication follows the change: the last published cluster field is the
// state's own.
func TestConcurrent(t *testing.T) {
	s, r := newState(t, "a")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				mode := ReadWrite
				if (i+j)%2 == 0 {
					mode = ReadOnly
				}
				_ = s.Set(mode, Cluster)
				_ = s.Set(mode, Node)
				s.Adopt(members(map[string]map[string]string{"b": {KeyCluster: s.Encoded()}}))
				_ = s.Info()
				_ = s.CheckWritable(j%2 == 0)
			}
		})
	}
	wg.Wait()
	if got := r.get(KeyCluster); got != s.Encoded() {
		t.Fatalf("published %q, state %q", got, s.Encoded())
	}
}

func TestChangeJSON(t *testing.T) {
	b, err := json.Marshal(Change{ModeInfo: Info{Node: "a", Mode: ReadOnly, NodeMode: ReadWrite, ClusterMode: ReadOnly}, Scope: Cluster, Acknowledged: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"node":"a","mode":"read-only","node_mode":"read-write","cluster_mode":"read-only","scope":"cluster","acknowledged":["a"]}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

// Await reports who carries this node's cluster mode, waiting until all do
// or ctx ends.
func TestAwait(t *testing.T) {
	s, _ := newState(t, "a")
	if err := s.Set(ReadOnly, Cluster); err != nil {
		t.Fatal(err)
	}
	var bCarries atomic.Bool
	members := func() iter.Seq2[string, map[string]string] {
		return func(yield func(string, map[string]string) bool) {
			b := map[string]string{}
			if bCarries.Load() {
				b[KeyCluster] = s.Encoded()
			}
			_ = yield("a", nil) && yield("b", b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	acked, pending := s.Await(ctx, members)
	cancel()
	if !slices.Equal(acked, []string{"a"}) || !slices.Equal(pending, []string{"b"}) {
		t.Fatalf("before b carries the mode: acked %v, pending %v", acked, pending)
	}
	bCarries.Store(true)
	if acked, pending := s.Await(context.Background(), members); len(acked) != 2 || pending != nil {
		t.Fatalf("once b carries it: acked %v, pending %v", acked, pending)
	}
}
