package node

import (
	"context"
	"fmt"
	"iter"

	"github.com/peercache/peercache/membership"
)

// Mode returns this node's read/write mode.
func (n *Node) Mode() ModeInfo { return n.ops.mode.Info() }

// SetMode puts this node (ScopeNode) or the whole cluster (ScopeCluster) in
// mode. A cluster mode takes effect on this node at once and reaches the
// other members through gossip, usually within a gossip interval; members
// that join later inherit it.
func (n *Node) SetMode(mode Mode, scope Scope) error {
	if err := n.ops.mode.Set(mode, scope); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}

// setExtra sets (or, with value "", removes) one field of this node's
// gossiped metadata. The map is replaced, never changed in place: earlier
// copies of the metadata may still be read elsewhere (Meta.WithExtra).
func (n *Node) setExtra(key, value string) {
	n.setMeta(func(m *membership.Meta) { *m = m.WithExtra(key, value) })
}

// adoptClusterMode takes the newest cluster mode found among members, and
// gossips it on as this node's own, so that it outlives the member that set
// it and reaches members that join later.
func (n *Node) adoptClusterMode(ms []membership.Member) { n.ops.mode.Adopt(extras(ms)) }

// AwaitClusterMode waits (within ctx) until every member gossips the
// cluster mode this node knows, and says who did and who did not yet.
func (n *Node) AwaitClusterMode(ctx context.Context) (acked, pending []string) {
	return n.ops.mode.Await(ctx, func() iter.Seq2[string, map[string]string] { return extras(n.ml.Members()) })
}

// extras lists each member's name and gossiped Extra metadata (what
// rwmode reads modes from).
func extras(ms []membership.Member) iter.Seq2[string, map[string]string] {
	return func(yield func(string, map[string]string) bool) {
		for _, m := range ms {
			if !yield(m.Name, m.Meta.Extra) {
				return
			}
		}
	}
}
