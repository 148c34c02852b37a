package node

import (
	"context"
	"time"

	"github.com/peercache/peercache/internal/nodemetrics"
)

// opsSnapshot reads, at scrape time, what the operator series report:
// members by state, memberlist health, the running migration, the shard's
// size and the read/write modes.
func (n *Node) opsSnapshot() nodemetrics.Ops {
	o := nodemetrics.Ops{MembersByState: n.views.cur.Load().MembersByState(), Health: n.ml.Health(), Migration: n.mig.Status()}

	ctx, cancel := context.WithTimeout(n.life.ctx, time.Second)
	st, err := n.st.Stats(ctx)
	cancel()
	// a failure shows in peercache_store_errors_total{op="stats"}
	o.ShardKeys, o.ShardBytes, o.ShardOK = st.Keys, st.Bytes, err == nil

	mi := n.Mode()
	o.NodeReadOnly, o.ClusterReadOnly = mi.NodeMode == ModeReadOnly, mi.ClusterMode == ModeReadOnly
	return o
}
