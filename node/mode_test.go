package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/node"
)

func setModeHTTP(t *testing.T, n *testNode, body string) (resp, node.ModeChange) {
	t.Helper()
	r := do(t, http.MethodPut, n.base+"/v1/mode", []byte(body))
	var mc node.ModeChange
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &mc); err != nil {
			t.Fatalf("PUT /v1/mode answer: %v: %s", err, r.body)
		}
	}
	return r, mc
}

// expectRefused checks that a PUT and a DELETE through n are refused with a
// 503 naming the mode.
func expectRefused(t *testing.T, n *testNode, key, why string) {
	t.Helper()
	for _, r := range []resp{n.put(t, key, "new value"), n.del(t, key)} {
		if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "read-only ("+why+")") ||
			!strings.Contains(string(r.body), `"error"`) {
			t.Fatalf("write through %s: %s, want 503 naming read-only (%s)", n.Name(), r, why)
		}
	}
}

// Acceptance (operator experience): with the cluster read-only, writes are
// refused on every node (HTTP and library), reads are served, a node that
// joins later inherits the mode (and still receives its keys by migration),
// and read-write comes back everywhere.
func TestReadOnlyClusterMode(t *testing.T) {
	nodes := startCluster(t, 3, false)
	const N = 200
	for i := 0; i < N; i++ {
		if r := nodes[i%3].put(t, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)); r.status != http.StatusNoContent {
			t.Fatalf("put: %s", r)
		}
	}

	r, mc := setModeHTTP(t, nodes[1], `{"mode":"read-only","scope":"cluster"}`)
	if r.status != http.StatusOK || mc.ClusterMode != node.ModeReadOnly || mc.Mode != node.ModeReadOnly || mc.Scope != node.ScopeCluster {
		t.Fatalf("set cluster read-only: %s", r)
	}
	if len(mc.Acknowledged) != 3 || len(mc.Pending) != 0 {
		t.Errorf("acknowledged %v pending %v, want all 3 members to carry the mode", mc.Acknowledged, mc.Pending)
	}
	waitFor(t, 5*time.Second, "every node is read-only", func() bool {
		for _, n := range nodes {
			if n.Mode().Mode != node.ModeReadOnly {
				return false
			}
		}
		return true
	})
	for i, n := range nodes {
		expectRefused(t, n, fmt.Sprintf("k%d", i), "cluster mode")
		var e *node.Error
		if err := n.Set(context.Background(), "lib", []byte("x"), 0); !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
			t.Fatalf("library Set on %s in read-only mode: %v, want a 503 *Error", n.Name(), err)
		}
		if err := n.Delete(context.Background(), "k1"); err == nil {
			t.Fatalf("library Delete on %s in read-only mode succeeded", n.Name())
		}
		for j := 0; j < N; j += 7 {
			if r := n.get(t, fmt.Sprintf("k%d", j)); r.status != http.StatusOK || string(r.body) != fmt.Sprintf("v%d", j) {
				t.Fatalf("read through %s in read-only mode: %s", n.Name(), r)
			}
		}
	}
	var mi node.ModeInfo
	if r := do(t, http.MethodGet, nodes[2].base+"/v1/mode", nil); r.status != http.StatusOK || json.Unmarshal(r.body, &mi) != nil ||
		mi.ClusterMode != node.ModeReadOnly || mi.NodeMode != node.ModeReadWrite || mi.ClusterModeSetAt.IsZero() {
		t.Fatalf("GET /v1/mode: %s", r)
	}

	// A node joining now inherits read-only before it serves a request, and
	// migration still moves its share of the keys to it.
	joiner := startNode(t, "n3", []string{nodes[0].GossipAddr()}, false)
	if got := joiner.Mode(); got.ClusterMode != node.ModeReadOnly {
		t.Fatalf("joiner's mode right after Start: %+v, want cluster read-only", got)
	}
	expectRefused(t, joiner, "k5", "cluster mode")
	all := append(nodes, joiner)
	waitRing(t, all, 4)
	waitFor(t, 10*time.Second, "the joiner receives keys by migration", func() bool {
		st, err := joiner.Store().Stats(context.Background())
		return err == nil && st.Keys > 0
	})
	for j := 0; j < N; j++ {
		if r := joiner.get(t, fmt.Sprintf("k%d", j)); r.status != http.StatusOK || string(r.body) != fmt.Sprintf("v%d", j) {
			t.Fatalf("read through the joiner: %s", r)
		}
	}

	// Back to read-write, set through the newest member.
	if r, mc := setModeHTTP(t, joiner, `{"mode":"read-write","scope":"cluster"}`); r.status != http.StatusOK || mc.ClusterMode != node.ModeReadWrite {
		t.Fatalf("set cluster read-write: %s", r)
	}
	waitFor(t, 5*time.Second, "every node is read-write", func() bool {
		for _, n := range all {
			if n.Mode().Mode != node.ModeReadWrite {
				return false
			}
		}
		return true
	})
	for i, n := range all {
		if r := n.put(t, fmt.Sprintf("k%d", i), "after"); r.status != http.StatusNoContent {
			t.Fatalf("write through %s after read-write: %s", n.Name(), r)
		}
	}
}

// A node put read-only refuses its own clients' writes, while writes sent
// through other nodes still land on it as the owner.
func TestReadOnlyNodeMode(t *testing.T) {
	nodes := startCluster(t, 2, false)
	a, b := nodes[0], nodes[1]
	if err := a.SetMode(node.ModeReadOnly, node.ScopeNode); err != nil {
		t.Fatal(err)
	}
	if got := a.Mode(); got.Mode != node.ModeReadOnly || got.NodeMode != node.ModeReadOnly || got.ClusterMode != node.ModeReadWrite {
		t.Fatalf("mode %+v", got)
	}
	if b.Mode().Mode != node.ModeReadWrite {
		t.Fatalf("node mode leaked to %s: %+v", b.Name(), b.Mode())
	}
	expectRefused(t, a, "x", "node mode")
	// A key a owns, written through b.
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("owned-%d", i); a.RingForTest().Owner(k) == a.Name() {
			key = k
		}
	}
	if r := b.put(t, key, "via b"); r.status != http.StatusNoContent || r.header.Get(httpapi.HeaderOwner) != a.Name() {
		t.Fatalf("write through b to a read-only owner: %s", r)
	}
	if r := a.get(t, key); r.status != http.StatusOK || string(r.body) != "via b" {
		t.Fatalf("read through the read-only node: %s", r)
	}
	// Gossip shows the node mode to others.
	waitFor(t, 5*time.Second, "b sees a's node mode", func() bool {
		return b.MembersForTest()[a.Name()].Meta.Extra[node.ExtraNodeMode] == "ro"
	})
	if r, mc := setModeHTTP(t, a, `{"mode":"rw","scope":"node"}`); r.status != http.StatusOK || mc.Mode != node.ModeReadWrite || mc.Scope != node.ScopeNode {
		t.Fatalf("back to read-write: %s", r)
	}
	if r := a.put(t, "x", "y"); r.status != http.StatusNoContent {
		t.Fatalf("write after read-write: %s", r)
	}
}

func TestModeEndpointBadInput(t *testing.T) {
	n := startNode(t, "solo", nil, false)
	for _, tc := range []struct {
		method, body string
		want         int
	}{
		{http.MethodPut, `{"mode":"sleepy"}`, http.StatusBadRequest},
		{http.MethodPut, `{"mode":"read-only","scope":"galaxy"}`, http.StatusBadRequest},
		{http.MethodPut, `{"mode":"read-only","extra":1}`, http.StatusBadRequest},
		{http.MethodPut, `not json`, http.StatusBadRequest},
		{http.MethodPut, strings.Repeat(" ", 5000), http.StatusRequestEntityTooLarge},
		{http.MethodDelete, ``, http.StatusMethodNotAllowed},
	} {
		r := do(t, tc.method, n.base+"/v1/mode", []byte(tc.body))
		if r.status != tc.want || !strings.Contains(string(r.body), `"error"`) {
			t.Errorf("%s /v1/mode %q: %s, want %d with a JSON error", tc.method, tc.body, r, tc.want)
		}
	}
	if n.Mode().Mode != node.ModeReadWrite {
		t.Fatalf("bad requests changed the mode: %+v", n.Mode())
	}
	if err := n.SetMode("sleepy", node.ScopeNode); err == nil {
		t.Fatal("SetMode accepted a bad mode")
	}
	// The scope defaults to cluster.
	if r, mc := setModeHTTP(t, n, `{"mode":"read-only"}`); r.status != http.StatusOK || mc.Scope != node.ScopeCluster || mc.ClusterMode != node.ModeReadOnly {
		t.Fatalf("default scope: %s", r)
	}
}

func TestClusterModeEncoding(t *testing.T) {
	for _, s := range []string{"ro@1", "rw@1750000000000"} {
		c, ok := node.ParseClusterMode(s)
		if !ok || c.EncodeForTest() != s {
			t.Errorf("%q: %+v %v", s, c, ok)
		}
	}
	for _, s := range []string{"", "ro", "ro@", "ro@-5", "xx@5", "rw@abc"} {
		if _, ok := node.ParseClusterMode(s); ok {
			t.Errorf("%q parsed", s)
		}
	}
	ro, rw := node.NewClusterModeForTest(node.ModeReadOnly, 5), node.NewClusterModeForTest(node.ModeReadWrite, 5)
	if !ro.NewerForTest(rw) || rw.NewerForTest(ro) || !(node.NewClusterModeForTest(node.ModeReadWrite, 6)).NewerForTest(ro) {
		t.Error("newer: larger stamp wins, read-only wins ties")
	}
}
