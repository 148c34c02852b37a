package node

import (
	"context"
	"time"

	"github.com/peercache/peercache/internal/nodemetrics"
	"github.com/peercache/peercache/membership"
)

// opsSnapshot reads, at scrape time, what the operator series report:
// members by state, memberlist health, the running migration, the shard's
// size and the read/write modes.
func (n *Node) opsSnapshot() nodemetrics.Ops {
	counts := map[string]int{string(membership.StateJoining): 0, string(membership.StateActive): 0,
		string(membership.StateLeaving): 0, "unknown": 0}
	for _, m := range n.views.cur.Load().Members {
		s := string(m.Meta.State)
		if _, ok := counts[s]; !ok {
			s = "unknown"
		}
		counts[s]++
	}
	o := nodemetrics.Ops{MembersByState: counts, Health: n.ml.Health(), Migration: n.mig.Status()}

	ctx, cancel := context.WithTimeout(n.life.ctx, time.Second)
	st, err := n.st.Stats(ctx)
	cancel()
	// a failure shows in peercache_store_errors_total{op="stats"}
	o.ShardKeys, o.ShardBytes, o.ShardOK = st.Keys, st.Bytes, err == nil

	mi := n.Mode()
	o.NodeReadOnly, o.ClusterReadOnly = mi.NodeMode == ModeReadOnly, mi.ClusterMode == ModeReadOnly
	return o
}
