package status_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peercache/peercache/internal/clusterview"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/status"
)

// member returns a member with the given gossiped state and addresses
// derived from its name.
func member(name string, state membership.State) membership.Member {
	return membership.Member{Name: name, Addr: name + ":7946",
		Meta: membership.Meta{HTTPAddr: name + ":8080", State: state}}
}

// viewOf returns the view that follows an empty one for members ms, as the
// node self would build it.
func viewOf(t *testing.T, self string, ms ...membership.Member) *clusterview.View {
	t.Helper()
	opts := ring.Options{VNodes: 16}
	v, _ := clusterview.Next(clusterview.Empty(opts), ms, clusterview.Self{Name: self, State: membership.StateActive},
		opts, time.Unix(100, 0))
	return v
}

// Each segment names the owner of its middle; the segments each member
// owns add up to about its share; an empty ring has no owners.
func TestSegments(t *testing.T) {
	r := ring.New([]string{"c", "a", "b"}, ring.Options{VNodes: 16})
	const n = 3600
	rs := status.Segments(r, 7, n)
	if rs.Version != 7 || rs.Segments != n || len(rs.Owners) != n || rs.Partitions != r.Partitions() ||
		!slices.Equal(rs.Members, []string{"a", "b", "c"}) || len(rs.Shares) != 3 {
		t.Fatalf("segments: version %d, %d segments, %d owners, %d partitions, members %v, shares %v",
			rs.Version, rs.Segments, len(rs.Owners), rs.Partitions, rs.Members, rs.Shares)
	}
	step := ^uint64(0) / n
	count := make([]int, len(rs.Members))
	for i, o := range rs.Owners {
		if o < 0 || o >= len(rs.Members) || rs.Members[o] != r.OwnerOfHash(uint64(i)*step+step/2) {
			t.Fatalf("segment %d: owner %d, ring says %s", i, o, r.OwnerOfHash(uint64(i)*step+step/2))
		}
		count[o]++
	}
	for i, m := range rs.Members {
		if got := float64(count[i]) / n; math.Abs(got-rs.Shares[m]) > 0.05 {
			t.Errorf("%s owns %.3f of the segments, share %.3f", m, got, rs.Shares[m])
		}
	}

	empty := status.Segments(ring.New(nil, ring.Options{}), 0, 4)
	if !slices.Equal(empty.Owners, []int{-1, -1, -1, -1}) || empty.Shares == nil || len(empty.Members) != 0 {
		t.Fatalf("empty ring: %+v", empty)
	}
	b, _ := json.Marshal(empty)
	if !strings.Contains(string(b), `"shares":{}`) {
		t.Errorf("empty ring's JSON: %s, want shares {}", b)
	}
}

// MembersOf lists a view's members sorted by name, whatever their state,
// each marked in the ring or not; RingOf describes the view's ring.
func TestMembersOfRingOf(t *testing.T) {
	v := viewOf(t, "b", member("c", membership.StateJoining), member("b", membership.StateActive),
		member("a", membership.StateActive))
	v.Members["a"] = func(m membership.Member) membership.Member {
		m.Meta.Migrating = true
		return m
	}(v.Members["a"])
	got := status.MembersOf(v)
	want := []status.Member{
		{Name: "a", GossipAddr: "a:7946", HTTPAddr: "a:8080", State: "active", Migrating: true, InRing: true},
		{Name: "b", GossipAddr: "b:7946", HTTPAddr: "b:8080", State: "active", InRing: true},
		{Name: "c", GossipAddr: "c:7946", HTTPAddr: "c:8080", State: "joining"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("members:\n got %+v\nwant %+v", got, want)
	}
	ri := status.RingOf(v)
	if ri.Version != 1 || !slices.Equal(ri.Members, []string{"a", "b"}) || ri.Checksum != v.Checksum ||
		ri.Checksum == "" || ri.VNodes != 16 {
		t.Fatalf("ring: %+v", ri)
	}

	// No members: an empty list, which is [] in JSON (not null).
	none := status.MembersOf(clusterview.Empty(ring.Options{}))
	if b, _ := json.Marshal(none); string(b) != "[]" {
		t.Fatalf("members of an empty view: %s", b)
	}
}

// Gather reports every member sorted by name, this node first when it is
// not a member; it asks the others in parallel, and one that does not
// answer within the bound is reported unreachable, as is one that fails.
func TestGather(t *testing.T) {
	v := viewOf(t, "self", member("d", membership.StateActive), member("b", membership.StateActive),
		member("slow", membership.StateActive), member("fail", membership.StateActive))
	local := func(context.Context) status.Node {
		return status.Node{Name: "self", HTTPAddr: "self:8080", State: "joining", Keys: 1}
	}
	fetch := func(ctx context.Context, name string) (*status.Node, error) {
		dl, ok := ctx.Deadline()
		if !ok || time.Until(dl) > 500*time.Millisecond {
			t.Errorf("fetch %s: deadline %v (set %v), want within 500 ms", name, time.Until(dl), ok)
		}
		switch name {
		case "slow":
			<-ctx.Done()
			return nil, ctx.Err()
		case "fail":
			return nil, errors.New("connection refused")
		}
		time.Sleep(200 * time.Millisecond) // the others wait in parallel
		return &status.Node{Name: name, State: "active", Keys: 10}, nil
	}
	start := time.Now()
	reps := status.Gather(t.Context(), v, "self", local, fetch)
	took := time.Since(start)
	if took < 500*time.Millisecond || took > 2*time.Second {
		t.Errorf("gather took %s, want about the 500 ms bound", took)
	}

	var names []string
	for _, r := range reps {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"self", "b", "d", "fail", "slow"}) {
		t.Fatalf("order %v", names)
	}
	if r := reps[0]; !r.Reachable || r.NodeStatus == nil || r.HTTPAddr != "self:8080" || r.State != "joining" {
		t.Errorf("self: %+v", r)
	}
	for _, r := range reps[1:3] {
		if !r.Reachable || r.NodeStatus == nil || r.Keys != 10 || r.HTTPAddr != r.Name+":8080" || r.Error != "" {
			t.Errorf("%s: %+v", r.Name, r)
		}
	}
	if r := reps[3]; r.Reachable || r.NodeStatus != nil || r.Error != "connection refused" || r.HTTPAddr != "fail:8080" {
		t.Errorf("failing member: %+v", r)
	}
	if r := reps[4]; r.Reachable || r.NodeStatus != nil || !strings.Contains(r.Error, "deadline exceeded") {
		t.Errorf("slow member: %+v", r)
	}

	// This node in the member list takes its place by name.
	v = viewOf(t, "c", member("d", membership.StateActive), member("c", membership.StateActive),
		member("a", membership.StateActive))
	reps = status.Gather(t.Context(), v, "c", local, func(ctx context.Context, name string) (*status.Node, error) {
		return &status.Node{Name: name}, nil
	})
	names = names[:0]
	for _, r := range reps {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"a", "c", "d"}) || reps[1].Keys != 1 {
		t.Fatalf("order %v, self %+v", names, reps[1])
	}
}

// A report's JSON inlines the cluster view and each member's figures, the
// entry's own name and address winning over the figures'.
func TestReportJSON(t *testing.T) {
	rep := status.Report{
		ClusterInfo: status.Cluster{Self: "a", Members: []status.Member{}},
		ClusterMode: "read-write",
		Nodes: []status.NodeReport{
			{Name: "a", HTTPAddr: "listed:8080", Reachable: true, NodeStatus: &status.Node{Name: "x", HTTPAddr: "own:8080", Keys: 3}},
			{Name: "b", Error: "down"},
		},
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Self        string           `json:"self"`
		ClusterMode string           `json:"cluster_mode"`
		Members     []map[string]any `json:"members"`
		Nodes       []map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Self != "a" || raw.ClusterMode != "read-write" || raw.Members == nil || len(raw.Nodes) != 2 {
		t.Fatalf("report: %s", b)
	}
	if n := raw.Nodes[0]; n["name"] != "a" || n["http_addr"] != "listed:8080" || n["keys"] != 3.0 || n["reachable"] != true {
		t.Errorf("reachable entry: %v", n)
	}
	if n := raw.Nodes[1]; n["error"] != "down" || n["reachable"] != false || n["keys"] != nil {
		t.Errorf("unreachable entry: %v", n)
	}
}
