package node

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/peercache/peercache/status"
)

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
		HitRatio:       n.reads.tier.HitRatio(),
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

// ClusterReport returns Cluster() plus the status of every member, asked in
// parallel over the peer protocol (status.Gather: a member that does not
// answer within 500 ms is reported unreachable).
func (n *Node) ClusterReport(ctx context.Context) ClusterReport {
	rep := ClusterReport{ClusterInfo: n.Cluster(), ClusterMode: n.ops.mode.Cluster().Effective()}
	v := n.views.cur.Load()
	rep.Nodes = status.Gather(ctx, v, n.cfg.Name, n.Status, func(ctx context.Context, name string) (*NodeStatus, error) {
		return n.fetchStatus(ctx, v, name)
	})
	return rep
}

// fetchStatus asks member name for its status over the peer protocol
// (authenticated by the cluster secret: it needs no client credentials).
func (n *Node) fetchStatus(ctx context.Context, v *view, name string) (*NodeStatus, error) {
	b, err := n.peer.members.Status(ctx, v, name)
	if err != nil {
		return nil, err
	}
	var st NodeStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("status report: %w", err)
	}
	return &st, nil
}

// Status answers a member's status request (peer.Handler): this node's
// report, as JSON.
func (h peerHandler) Status(ctx context.Context, from string) ([]byte, error) {
	return json.Marshal(h.n.Status(ctx))
}

// RingSegments samples the ring at segments evenly spaced positions.
func (n *Node) RingSegments(segments int) RingSegments {
	v := n.views.cur.Load()
	return status.Segments(v.Ring, v.Version, segments)
}

// Cluster returns this node's view of the cluster.
func (n *Node) Cluster() status.Cluster {
	v := n.views.cur.Load()
	n.self.mu.Lock()
	state := string(n.self.meta.State)
	n.self.mu.Unlock()
	ci := status.Cluster{
		Self:        n.cfg.Name,
		State:       state,
		Ready:       n.Ready(),
		Ring:        status.RingOf(v),
		Members:     status.MembersOf(v),
		Handoff:     n.handoffActive(v),
		Auth:        n.cfg.PeerAuth().Mode(),
		Migration:   n.mig.Status(),
		Replication: status.Replication{Factor: n.cfg.Replication.Factor, WriteAcks: string(n.cfg.Replication.WriteAcks)},
	}
	ci.Replication.UnderReplicated = n.underReplicated()
	rs := n.repair.Stats()
	ci.Replication.RepairPending, ci.Replication.Repaired = rs.Pending, rs.Repaired
	return ci
}
