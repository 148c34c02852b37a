package node

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/peercache/peercache/migrate"
)

// NodeStatus is GET /v1/status: the figures one node measures about itself.
type NodeStatus struct {
	// Name is the node's name.
	Name string `json:"name"`
	// HTTPAddr is the address other members use for its HTTP API.
	HTTPAddr string `json:"http_addr"`
	// State is the node's lifecycle state (joining, active, leaving).
	State string `json:"state"`
	// Ready is what /readyz answers.
	Ready bool `json:"ready"`
	// Mode is the read/write mode the node applies (see ModeInfo).
	Mode Mode `json:"mode"`
	// NodeMode and ClusterMode are the two modes it derives from.
	NodeMode    Mode `json:"node_mode"`
	ClusterMode Mode `json:"cluster_mode"`
	// Keys is the number of records in the shard, tombstones included.
	Keys int64 `json:"keys"`
	// MemoryBytes is the shard's memory (Redis used_memory, or the in-memory
	// store's accounted bytes).
	MemoryBytes int64 `json:"memory_bytes"`
	// MemoryMaxBytes is the node's memory budget (Config.MemoryMaxBytes,
	// split between the in-memory shard and the local tier; see
	// Config.MemorySplit).
	MemoryMaxBytes int64 `json:"memory_max_bytes"`
	// Evictions counts the keys dropped to stay within the memory budget.
	Evictions Evictions `json:"evictions"`
	// StoreError is set when the shard did not report its size.
	StoreError string `json:"store_error,omitempty"`
	// RingVersion is the node's ring snapshot version (a local counter).
	RingVersion uint64 `json:"ring_version"`
	// RingShare is the fraction of the ring this node owns.
	RingShare float64 `json:"ring_share"`
	// RequestRate is the key API requests per second this node received
	// over the last few seconds; Requests counts them since it started.
	RequestRate float64 `json:"request_rate"`
	Requests    uint64  `json:"requests"`
	// HitRatio is the local tier's hit ratio; null while the node has no
	// local tier.
	HitRatio *float64 `json:"hit_ratio"`
	// Migration is the node's key migration: the running one and the last.
	Migration migrate.Status `json:"migration"`
	// StartedAt and UptimeSeconds tell how long the node has run.
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
}

// statsTimeout bounds the shard size query of a status report.
const statsTimeout = 300 * time.Millisecond

// CountRequest counts one key request of a client door, for the request
// rate of Status.
func (n *Node) CountRequest() { n.ops.keyRequests.Add(time.Now()) }

// Status returns this node's figures (see NodeStatus).
func (n *Node) Status(ctx context.Context) NodeStatus {
	now := time.Now()
	v := n.views.cur.Load()
	n.self.mu.Lock()
	state := string(n.self.meta.State)
	n.self.mu.Unlock()
	mi := n.Mode()
	s := NodeStatus{
		Name:           n.cfg.Name,
		HTTPAddr:       n.self.httpAddr,
		State:          state,
		Ready:          n.Ready(),
		Mode:           mi.Mode,
		NodeMode:       mi.NodeMode,
		ClusterMode:    mi.ClusterMode,
		RingVersion:    v.Version,
		RingShare:      v.Ring.Shares()[n.cfg.Name],
		RequestRate:    n.ops.keyRequests.Rate(now, n.ops.started),
		Requests:       n.ops.keyRequests.Total(),
		Migration:      n.mig.Status(),
		HitRatio:       n.hitRatio(),
		Evictions:      n.evictions(),
		MemoryMaxBytes: n.cfg.MemoryMaxBytes,
		StartedAt:      n.ops.started.UTC(),
		UptimeSeconds:  now.Sub(n.ops.started).Seconds(),
	}
	sctx, cancel := context.WithTimeout(ctx, statsTimeout)
	st, err := n.st.Stats(sctx)
	cancel()
	if err != nil {
		s.StoreError = err.Error()
	} else {
		s.Keys, s.MemoryBytes = st.Keys, st.Bytes
	}
	return s
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
	// The member's NodeStatus fields, when it answered.
	*NodeStatus
}

// ClusterReport is the /v1/cluster document: this node's view of the
// cluster (ClusterInfo) plus every member's own figures.
type ClusterReport struct {
	ClusterInfo
	// ClusterMode is the cluster-wide read/write mode this node knows.
	ClusterMode Mode `json:"cluster_mode"`
	// Nodes has one entry per member, sorted by name.
	Nodes []NodeReport `json:"nodes"`
}

// statusFanoutTimeout bounds how long /v1/cluster waits for each member's
// /v1/status.
const statusFanoutTimeout = 500 * time.Millisecond

// ClusterReport returns Cluster() plus the status of every member, asked in
// parallel (a member that does not answer within 500 ms is reported
// unreachable).
func (n *Node) ClusterReport(ctx context.Context) ClusterReport {
	ci := n.Cluster()
	rep := ClusterReport{ClusterInfo: ci, ClusterMode: n.ops.mode.Cluster().Effective(), Nodes: []NodeReport{}}
	v := n.views.cur.Load()
	names := sortedNames(v.Members)
	if _, ok := v.Members[n.cfg.Name]; !ok {
		names = append([]string{n.cfg.Name}, names...)
	}
	rep.Nodes = make([]NodeReport, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		r := &rep.Nodes[i]
		r.Name = name
		if name == n.cfg.Name {
			r.HTTPAddr = n.self.httpAddr
			st := n.Status(ctx)
			r.Reachable, r.NodeStatus = true, &st
			continue
		}
		r.HTTPAddr = v.Members[name].Meta.HTTPAddr
		wg.Go(func() {
			st, err := n.fetchStatus(ctx, v, name)
			if err != nil {
				r.Error = err.Error()
				return
			}
			r.Reachable, r.NodeStatus = true, st
		})
	}
	wg.Wait()
	return rep
}

// fetchStatus asks member name for its status over the peer protocol
// (authenticated by the cluster secret: it needs no client credentials).
func (n *Node) fetchStatus(ctx context.Context, v *view, name string) (*NodeStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, statusFanoutTimeout)
	defer cancel()
	b, err := n.peer.members.Status(ctx, v, name)
	if err != nil {
		return nil, err
	}
	var st NodeStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("status report: %v", err)
	}
	return &st, nil
}

// Status answers a member's status request (peer.Handler): this node's
// report, as JSON.
func (h peerHandler) Status(ctx context.Context, from string) ([]byte, error) {
	return json.Marshal(h.n.Status(ctx))
}

// RingSegments is GET /v1/ring: the owner of evenly spaced positions
// around the ring, for drawing it.
type RingSegments struct {
	// Version is the ring snapshot version (a local counter).
	Version uint64 `json:"version"`
	// Members are the ring's members, sorted; Owners index into it.
	Members []string `json:"members"`
	// Shares is each member's fraction of the ring.
	Shares map[string]float64 `json:"shares"`
	// Partitions is the number of fixed partitions of the hash space.
	Partitions int `json:"partitions"`
	// Segments is the number of positions sampled.
	Segments int `json:"segments"`
	// Owners[i] is the index in Members of the owner of the middle of
	// segment i (clockwise from hash 0), or -1 for an empty ring.
	Owners []int `json:"owners"`
}

// RingSegments samples the ring at segments evenly spaced positions.
func (n *Node) RingSegments(segments int) RingSegments {
	v := n.views.cur.Load()
	r := v.Ring
	rs := RingSegments{Version: v.Version, Members: r.Members(), Shares: r.Shares(),
		Partitions: r.Partitions(), Segments: segments, Owners: make([]int, segments)}
	if rs.Shares == nil {
		rs.Shares = map[string]float64{}
	}
	idx := make(map[string]int, len(rs.Members))
	for i, m := range rs.Members {
		idx[m] = i
	}
	step := ^uint64(0) / uint64(segments)
	for i := range rs.Owners {
		o, ok := idx[r.OwnerOfHash(uint64(i)*step+step/2)]
		if !ok {
			o = -1
		}
		rs.Owners[i] = o
	}
	return rs
}

// MemberInfo describes one member in /v1/cluster.
type MemberInfo struct {
	Name       string `json:"name"`
	GossipAddr string `json:"gossip_addr"`
	HTTPAddr   string `json:"http_addr"`
	State      string `json:"state"`
	Suspect    bool   `json:"suspect"`
	Migrating  bool   `json:"migrating"`
	InRing     bool   `json:"in_ring"`
}

// RingInfo describes the ring snapshot in /v1/cluster.
type RingInfo struct {
	Version  uint64   `json:"version"`
	Members  []string `json:"members"`
	Checksum string   `json:"checksum"`
	VNodes   int      `json:"vnodes"`
}

// ReplicationInfo describes replication in /v1/cluster.
type ReplicationInfo struct {
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

// ClusterInfo is the /v1/cluster document: this node's view of the cluster.
type ClusterInfo struct {
	Self    string       `json:"self"`
	State   string       `json:"state"`
	Ready   bool         `json:"ready"`
	Ring    RingInfo     `json:"ring"`
	Members []MemberInfo `json:"members"`
	Handoff bool         `json:"handoff_active"`
	// Auth is how members authenticate each other: "secret" (the cluster
	// secret), "mtls" (peer certificates) or "off".
	Auth        string          `json:"auth"`
	Replication ReplicationInfo `json:"replication"`
	Migration   migrate.Status  `json:"migration"`
}

// Cluster returns this node's view of the cluster.
func (n *Node) Cluster() ClusterInfo {
	v := n.views.cur.Load()
	n.self.mu.Lock()
	state := string(n.self.meta.State)
	n.self.mu.Unlock()
	ci := ClusterInfo{
		Self:  n.cfg.Name,
		State: state,
		Ready: n.Ready(),
		Ring: RingInfo{Version: v.Version, Members: v.Ring.Members(), VNodes: v.Ring.Options().VNodes,
			Checksum: v.Checksum},
		Members:     []MemberInfo{},
		Handoff:     n.handoffActive(v),
		Auth:        n.cfg.PeerAuth().Mode(),
		Migration:   n.mig.Status(),
		Replication: ReplicationInfo{Factor: n.cfg.Replication.Factor, WriteAcks: string(n.cfg.Replication.WriteAcks)},
	}
	ci.Replication.UnderReplicated = n.underReplicated()
	rs := n.repair.Stats()
	ci.Replication.RepairPending, ci.Replication.Repaired = rs.Pending, rs.Repaired
	for _, name := range sortedNames(v.Members) {
		m := v.Members[name]
		ci.Members = append(ci.Members, MemberInfo{
			Name: m.Name, GossipAddr: m.Addr, HTTPAddr: m.Meta.HTTPAddr, State: string(m.Meta.State),
			Suspect: m.Suspect, Migrating: m.Meta.Migrating, InRing: v.Ring.Has(m.Name),
		})
	}
	return ci
}
