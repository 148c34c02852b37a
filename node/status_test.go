package node_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peercache/peercache/node"
)

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// /v1/status reports a node's own figures; /v1/cluster adds every member's,
// gathered in parallel, with an unreachable member marked as such; /v1/ring
// samples owners; the dashboard is at exactly "/"; membership changes are
// logged one line each.
func TestStatusClusterRingDashboard(t *testing.T) {
	logs := &syncBuf{}
	nodes := startCluster(t, 3, false, func(c *node.Config) {
		if c.Name == "n0" {
			c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}
	})
	for i := 0; i < 90; i++ {
		if r := nodes[i%3].put(t, fmt.Sprintf("s%d", i), "value"); r.status != http.StatusNoContent {
			t.Fatalf("put: %s", r)
		}
	}

	var st node.NodeStatus
	r := do(t, http.MethodGet, nodes[1].base+"/v1/status", nil)
	if r.status != http.StatusOK || json.Unmarshal(r.body, &st) != nil {
		t.Fatalf("/v1/status: %s", r)
	}
	if st.Name != "n1" || st.State != "active" || !st.Ready || st.Mode != node.ModeReadWrite || st.Keys == 0 ||
		st.MemoryBytes == 0 || st.RingShare <= 0 || st.UptimeSeconds <= 0 || st.HitRatio == nil || st.HTTPAddr == "" {
		t.Errorf("/v1/status: %+v", st)
	}
	if st.Requests < 30 || st.RequestRate <= 0 {
		t.Errorf("key requests %d at %.1f/s, want the 30 puts sent to n1", st.Requests, st.RequestRate)
	}
	if r := do(t, http.MethodGet, nodes[1].base+"/v1/status?x=1", nil); r.status != http.StatusBadRequest {
		t.Errorf("/v1/status?x=1: %s", r)
	}

	var rep node.ClusterReport
	r = do(t, http.MethodGet, nodes[0].base+"/v1/cluster", nil)
	if r.status != http.StatusOK || json.Unmarshal(r.body, &rep) != nil {
		t.Fatalf("/v1/cluster: %s", r)
	}
	// The fields that were there before stay.
	var raw map[string]json.RawMessage
	json.Unmarshal(r.body, &raw)
	for _, f := range []string{"self", "state", "ready", "ring", "members", "handoff_active", "migration", "nodes", "cluster_mode"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("/v1/cluster lacks %q", f)
		}
	}
	if rep.Self != "n0" || len(rep.Members) != 3 || len(rep.Ring.Members) != 3 || len(rep.Nodes) != 3 {
		t.Fatalf("/v1/cluster: %s", r)
	}
	var keys int64
	for i, nr := range rep.Nodes {
		if nr.Name != fmt.Sprintf("n%d", i) || !nr.Reachable || nr.NodeStatus == nil || nr.State != "active" {
			t.Fatalf("nodes[%d]: %+v", i, nr)
		}
		keys += nr.Keys
	}
	if keys < 90 {
		t.Errorf("keys over all nodes %d, want >= 90", keys)
	}

	// A member whose peer port does not answer is reported unreachable,
	// quickly, while the others still report.
	nodes[2].PeerServerForTest().Close()
	start := time.Now()
	rep = nodes[0].ClusterReport(t.Context())
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("/v1/cluster took %s with one member down", d)
	}
	if nr := rep.Nodes[2]; nr.Name != "n2" || nr.Reachable || nr.Error == "" || nr.NodeStatus != nil {
		t.Errorf("unreachable member: %+v", nr)
	}
	if !rep.Nodes[1].Reachable {
		t.Errorf("n1 should still answer: %+v", rep.Nodes[1])
	}

	// Ring sampling.
	var rs node.RingSegments
	r = do(t, http.MethodGet, nodes[0].base+"/v1/ring?segments=12", nil)
	if r.status != http.StatusOK || json.Unmarshal(r.body, &rs) != nil || len(rs.Owners) != 12 || len(rs.Members) != 3 || rs.Segments != 12 {
		t.Fatalf("/v1/ring: %s", r)
	}
	for i, o := range rs.Owners {
		if o < 0 || o >= 3 {
			t.Fatalf("owner %d of segment %d", o, i)
		}
	}
	if len(nodes[0].RingSegments(360).Owners) != 360 {
		t.Fatal("default segments")
	}
	for _, q := range []string{"segments=0", "segments=5000", "segments=x", "foo=1"} {
		if r := do(t, http.MethodGet, nodes[0].base+"/v1/ring?"+q, nil); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"error"`) {
			t.Errorf("/v1/ring?%s: %s", q, r)
		}
	}

	// Dashboard: "/" only; everything else keeps the JSON 404.
	r = do(t, http.MethodGet, nodes[0].base+"/", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !bytes.Contains(r.body, []byte("/ui/app.js")) {
		t.Fatalf("GET /: %d %s", r.status, r.header)
	}
	for _, asset := range []string{"app.js", "style.css", "icon.svg"} {
		if r := do(t, http.MethodGet, nodes[0].base+"/ui/"+asset, nil); r.status != http.StatusOK || len(r.body) == 0 {
			t.Errorf("GET /ui/%s: %d", asset, r.status)
		}
	}
	for _, p := range []string{"/nope", "/ui/nope.js", "/ui/", "/index.html", "/ui/../node.go"} {
		r := do(t, http.MethodGet, nodes[0].base+p, nil)
		if r.status != http.StatusNotFound || !strings.Contains(string(r.body), `"error"`) {
			t.Errorf("GET %s: %s, want a JSON 404", p, r)
		}
	}
	if r := do(t, http.MethodPost, nodes[0].base+"/", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %s", r)
	}

	// One log line per member that joined (n0 saw n1 and n2 join).
	joined := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "member joined" {
			joined[fmt.Sprint(line["member"])] = true
		}
	}
	if !joined["n1"] || !joined["n2"] {
		t.Errorf("member joined lines for %v, want n1 and n2; logs:\n%s", joined, logs)
	}
}

func TestRateCounter(t *testing.T) {
	var c node.RateCounter
	start := time.Unix(1000, 0)
	for i := 0; i < 100; i++ {
		c.AddForTest(start.Add(time.Duration(i) * 50 * time.Millisecond)) // 20/s for 5 s
	}
	now := start.Add(5 * time.Second)
	if r := c.RateForTest(now, start.Add(-time.Hour)); r < 15 || r > 25 {
		t.Errorf("rate %.1f, want about 20", r)
	}
	if r := c.RateForTest(start.Add(time.Minute), start.Add(-time.Hour)); r != 0 {
		t.Errorf("rate a minute later %.1f, want 0", r)
	}
	if c.TotalForTest() != 100 {
		t.Errorf("total %d", c.TotalForTest())
	}
}
