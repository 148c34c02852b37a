package status

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/peercache/peercache/internal/clusterview"
	"github.com/peercache/peercache/internal/rwmode"
	"github.com/peercache/peercache/migrate"
)

// Cluster is this node's view of the cluster: the part of the /v1/cluster
// document that needs no other member.
type Cluster struct {
	Self    string   `json:"self"`
	State   string   `json:"state"`
	Ready   bool     `json:"ready"`
	Ring    Ring     `json:"ring"`
	Members []Member `json:"members"`
	Handoff bool     `json:"handoff_active"`
	// Auth is how members authenticate each other: "secret" (the cluster
	// secret), "mtls" (peer certificates) or "off".
	Auth        string         `json:"auth"`
	Replication Replication    `json:"replication"`
	Migration   migrate.Status `json:"migration"`
}

// Member describes one member in /v1/cluster.
type Member struct {
	Name       string `json:"name"`
	GossipAddr string `json:"gossip_addr"`
	HTTPAddr   string `json:"http_addr"`
	State      string `json:"state"`
	Suspect    bool   `json:"suspect"`
	Migrating  bool   `json:"migrating"`
	InRing     bool   `json:"in_ring"`
}

// Ring describes the ring snapshot in /v1/cluster.
type Ring struct {
	Version  uint64   `json:"version"`
	Members  []string `json:"members"`
	Checksum string   `json:"checksum"`
	VNodes   int      `json:"vnodes"`
}

// Replication describes replication in /v1/cluster.
type Replication struct {
	Factor    int    `json:"factor"`
	WriteAcks string `json:"write_acks"`
	// UnderReplicated estimates the keys this node holds whose copies on
	// other owners are not yet confirmed (during a re-replication run).
	UnderReplicated int64 `json:"under_replicated"`
	// RepairPending is the number of keys whose copies failed (an owner
	// did not answer) and that the repair path copies again as soon as
	// their owners answer.
	RepairPending int `json:"repair_pending"`
	// Repaired counts the keys the repair path copied since the start.
	Repaired uint64 `json:"repaired"`
}

// MembersOf returns the members of view v, sorted by name, each marked
// with whether it is in v's ring; an empty list (not nil) when v has none.
func MembersOf(v *clusterview.View) []Member {
	out := []Member{}
	for _, name := range sortedNames(v) {
		m := v.Members[name]
		out = append(out, Member{
			Name: m.Name, GossipAddr: m.Addr, HTTPAddr: m.Meta.HTTPAddr, State: string(m.Meta.State),
			Suspect: m.Suspect, Migrating: m.Meta.Migrating, InRing: v.Ring.Has(m.Name),
		})
	}
	return out
}

// RingOf describes the ring of view v.
func RingOf(v *clusterview.View) Ring {
	return Ring{Version: v.Version, Members: v.Ring.Members(), VNodes: v.Ring.Options().VNodes,
		Checksum: v.Checksum}
}

// The embedded documents of Report and NodeReport keep, as field names,
// the names these types had in package node (rep.ClusterInfo,
// nr.NodeStatus), so that code reading those fields is unchanged.
type (
	// ClusterInfo is Cluster, by the name Report embeds it under.
	ClusterInfo = Cluster
	// NodeStatus is Node, by the name NodeReport embeds it under.
	NodeStatus = Node
)

// Report is the /v1/cluster document: this node's view of the cluster
// (Cluster) plus every member's own figures.
type Report struct {
	ClusterInfo
	// ClusterMode is the cluster-wide read/write mode this node knows.
	ClusterMode rwmode.Mode `json:"cluster_mode"`
	// Nodes has one entry per member, sorted by name (see Gather).
	Nodes []NodeReport `json:"nodes"`
}

// NodeReport is one member's entry in /v1/cluster's "nodes": its status as
// it reported it, or why it could not be asked.
type NodeReport struct {
	// Name and HTTPAddr are from this node's member list.
	Name     string `json:"name"`
	HTTPAddr string `json:"http_addr"`
	// Reachable is false when the member did not answer /v1/status in time;
	// Error says why.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// The member's Node fields, when it answered.
	*NodeStatus
}

// fanoutTimeout bounds how long Gather waits for each member's figures.
const fanoutTimeout = 500 * time.Millisecond

// Fetch asks member name for its figures (GET /v1/status, however the
// caller asks it), within ctx.
type Fetch func(ctx context.Context, name string) (*Node, error)

// Gather returns one NodeReport per member of view v, sorted by name, with
// self first when it is not a member of v (yet, or any more). Self's entry
// is local's figures and their address. Every other member is asked with
// fetch, all in parallel, each within 500 ms: a member that does not answer
// in time, or fails, is reported unreachable, with the error.
func Gather(ctx context.Context, v *clusterview.View, self string, local func(context.Context) Node, fetch Fetch) []NodeReport {
	names := sortedNames(v)
	if _, ok := v.Members[self]; !ok {
		names = append([]string{self}, names...)
	}
	reps := make([]NodeReport, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		r := &reps[i]
		r.Name = name
		if name == self {
			st := local(ctx)
			r.HTTPAddr = st.HTTPAddr
			r.Reachable, r.NodeStatus = true, &st
			continue
		}
		r.HTTPAddr = v.Members[name].Meta.HTTPAddr
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, fanoutTimeout)
			defer cancel()
			st, err := fetch(ctx, name)
			if err != nil {
				r.Error = err.Error()
				return
			}
			r.Reachable, r.NodeStatus = true, st
		})
	}
	wg.Wait()
	return reps
}

// sortedNames returns the names of v's members, sorted.
func sortedNames(v *clusterview.View) []string {
	return slices.Sorted(maps.Keys(v.Members))
}
