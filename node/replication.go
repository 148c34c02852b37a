package node

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/peercache/peercache/internal/replica"
	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/ring"
)

// owners returns the key's owners in r: the primary first, then replicas.
func (n *Node) owners(r *ring.Ring, key string, buf *[replica.MaxReplicas]string) []string {
	return replica.Owners(r, key, n.cfg.Replication.Factor, buf)
}

// isOwner reports whether this node is one of the key's owners in r.
func (n *Node) isOwner(r *ring.Ring, key string) bool {
	var buf [replica.MaxReplicas]string
	return slices.Contains(n.owners(r, key, &buf), n.cfg.Name)
}

// initReplication builds the primary's copier and the repairer of failed
// copies on this node's shard, ring and peer client. The repairer runs
// from Start (with Replicas > 1) until the node stops.
func (n *Node) initReplication() {
	n.repair = replica.NewRepairer(replica.RepairConfig{
		Self:     n.cfg.Name,
		RF:       n.cfg.Replication.Factor,
		Store:    n.st,
		Ring:     func() *ring.Ring { return n.views.cur.Load().Ring },
		Import:   n.peer.members.Import,
		FullCopy: n.requestFullReplication,
		Logger:   n.log,
		Repaired: n.metrics.Repaired,
	})
	n.copier = replica.NewCopier(replica.CopierConfig{
		Self:    n.cfg.Name,
		RF:      n.cfg.Replication.Factor,
		Acks:    replica.Acks(n.cfg.Replication.WriteAcks),
		Timeout: n.cfg.Peer.Timeout,
		Send:    n.peer.members.Import,
		Failed:  n.repair.Add, // copied again as soon as the replica answers
		Results: n.metrics.Replication,
	})
}

// replicaGet serves a read from this node's shard as one of the key's
// replicas, when the primary cannot be reached.
func (n *Node) replicaGet(ctx context.Context, v *view, key string) (Item, error) {
	if !n.isOwner(v.Ring, key) {
		return Item{}, &Error{Status: http.StatusMisdirectedRequest, Owner: v.Ring.Owner(key), Retryable: true,
			Message: fmt.Sprintf("this node holds no copy of the key; %s owns it in its view", v.Ring.Owner(key))}
	}
	e, found, err := n.st.Get(ctx, key)
	if err != nil {
		return Item{}, kv.Retryable(http.StatusServiceUnavailable, "shard read failed: %w", err)
	}
	if !found || e.Tombstone {
		return Item{}, ErrNotFound
	}
	return itemOf(e, n.cfg.Name, SourceReplica), nil
}

// readFromReplicas answers a read whose primary could not be reached from
// the key's other owners, in ring order, without waiting for the ring to
// drop the primary.
func (n *Node) readFromReplicas(ctx context.Context, v *view, primary, key string) (Item, error, bool) {
	var buf [replica.MaxReplicas]string
	for _, o := range n.owners(v.Ring, key, &buf) {
		if o == primary {
			continue
		}
		var it Item
		var err error
		if o == n.cfg.Name {
			it, err = n.replicaGet(ctx, v, key)
		} else {
			it, _, err = n.peer.members.Get(ctx, v, o, key, true)
		}
		if err == nil || err == ErrNotFound {
			n.metrics.ReplicaReads.Inc()
			return it, err, true
		}
	}
	return Item{}, nil, false
}

// underReplicated estimates the keys this node holds whose copies are not
// confirmed yet (migrate.Status.UnderReplicated).
func (n *Node) underReplicated() int64 { return n.mig.Status().UnderReplicated() }

// requestFullReplication starts a run that copies every key this node
// holds to all of its owners, as if no run had completed before (the
// placement has no base ring until a run serving the request completes).
func (n *Node) requestFullReplication() {
	n.base.WantFull()
	n.wantMigration()
}
