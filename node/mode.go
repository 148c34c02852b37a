package node

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/peercache/peercache/membership"
)

// Mode is the read/write mode of a node or of the whole cluster.
type Mode string

// Modes. In read-only mode user writes (PUT and DELETE through the HTTP API,
// Set and Delete through the library) are refused with 503; reads are
// served, and moving data between nodes (migration imports, handoff, internal
// replication) goes on, since it is not a user write.
const (
	ModeReadWrite Mode = "read-write"
	ModeReadOnly  Mode = "read-only"
)

// Scope says what a mode change applies to.
type Scope string

// Scopes of a mode change.
const (
	// ScopeNode applies to one node: it refuses the writes its clients send
	// it; writes that other nodes forward to it as the key's owner still land.
	ScopeNode Scope = "node"
	// ScopeCluster applies to every member, present and future: it travels
	// with gossip, and a node that joins later inherits it.
	ScopeCluster Scope = "cluster"
)

// Keys in membership.Meta.Extra. The values are kept short: the encoded
// metadata must fit in membership.MaxMetaSize.
const (
	// extraNodeMode is "ro" while the member itself is read-only (absent
	// otherwise).
	extraNodeMode = "mode"
	// extraClusterMode is the newest cluster mode the member knows:
	// "ro@<unix-ms>" or "rw@<unix-ms>", the stamp being when it was set.
	extraClusterMode = "cmode"
)

// ParseMode accepts "read-only"/"ro" and "read-write"/"rw".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "read-only", "readonly", "ro":
		return ModeReadOnly, nil
	case "read-write", "readwrite", "rw":
		return ModeReadWrite, nil
	}
	return "", fmt.Errorf("mode %q: want %q or %q", s, ModeReadOnly, ModeReadWrite)
}

// ParseScope accepts "node" and "cluster".
func ParseScope(s string) (Scope, error) {
	switch Scope(strings.ToLower(strings.TrimSpace(s))) {
	case ScopeNode:
		return ScopeNode, nil
	case ScopeCluster:
		return ScopeCluster, nil
	}
	return "", fmt.Errorf("scope %q: want %q or %q", s, ScopeCluster, ScopeNode)
}

// clusterMode is the cluster-wide mode with the logical time it was set at:
// among members, the largest stamp wins (ties: read-only wins).
type clusterMode struct {
	mode  Mode
	stamp int64 // unix ms; 0: never set (read-write)
}

func (c clusterMode) encode() string {
	m := "rw"
	if c.mode == ModeReadOnly {
		m = "ro"
	}
	return m + "@" + strconv.FormatInt(c.stamp, 10)
}

func parseClusterMode(s string) (clusterMode, bool) {
	m, ts, ok := strings.Cut(s, "@")
	if !ok {
		return clusterMode{}, false
	}
	stamp, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || stamp <= 0 {
		return clusterMode{}, false
	}
	switch m {
	case "ro":
		return clusterMode{ModeReadOnly, stamp}, true
	case "rw":
		return clusterMode{ModeReadWrite, stamp}, true
	}
	return clusterMode{}, false
}

// newer reports whether c supersedes o.
func (c clusterMode) newer(o clusterMode) bool {
	if c.stamp != o.stamp {
		return c.stamp > o.stamp
	}
	return c.mode == ModeReadOnly && o.mode != ModeReadOnly
}

func (c clusterMode) effective() Mode {
	if c.mode == ModeReadOnly {
		return ModeReadOnly
	}
	return ModeReadWrite
}

// ModeInfo is a node's read/write mode, as GET /v1/mode reports it.
type ModeInfo struct {
	// Node is the answering node's name.
	Node string `json:"node"`
	// Mode is what the node applies: read-only if either the node or the
	// cluster is read-only.
	Mode Mode `json:"mode"`
	// NodeMode is the node's own mode.
	NodeMode Mode `json:"node_mode"`
	// ClusterMode is the newest cluster-wide mode this node knows.
	ClusterMode Mode `json:"cluster_mode"`
	// ClusterModeSetAt is when the cluster mode was set (zero: never).
	ClusterModeSetAt time.Time `json:"cluster_mode_set_at,omitzero"`
}

// ModeChange is PUT /v1/mode's answer.
type ModeChange struct {
	ModeInfo
	// Scope is the scope of the change.
	Scope Scope `json:"scope"`
	// Acknowledged lists the members whose gossiped metadata carries the
	// new cluster mode (cluster scope only).
	Acknowledged []string `json:"acknowledged,omitempty"`
	// Pending lists the members that did not carry it yet when the answer
	// was sent; gossip brings it to them shortly.
	Pending []string `json:"pending,omitempty"`
}

// Mode returns this node's read/write mode.
func (n *Node) Mode() ModeInfo {
	c := n.ops.cmode()
	mi := ModeInfo{Node: n.cfg.Name, NodeMode: ModeReadWrite, ClusterMode: c.effective()}
	if n.ops.nodeRO.Load() {
		mi.NodeMode = ModeReadOnly
	}
	if c.stamp > 0 {
		mi.ClusterModeSetAt = time.UnixMilli(c.stamp).UTC()
	}
	mi.Mode = ModeReadWrite
	if mi.NodeMode == ModeReadOnly || mi.ClusterMode == ModeReadOnly {
		mi.Mode = ModeReadOnly
	}
	return mi
}

// SetMode puts this node (ScopeNode) or the whole cluster (ScopeCluster) in
// mode. A cluster mode takes effect on this node at once and reaches the
// other members through gossip, usually within a gossip interval; members
// that join later inherit it.
func (n *Node) SetMode(mode Mode, scope Scope) error {
	if mode != ModeReadOnly && mode != ModeReadWrite {
		return fmt.Errorf("node: mode %q: want %q or %q", mode, ModeReadOnly, ModeReadWrite)
	}
	n.ops.modeMu.Lock()
	defer n.ops.modeMu.Unlock()
	switch scope {
	case ScopeNode:
		ro := mode == ModeReadOnly
		if n.ops.nodeRO.Swap(ro) != ro {
			n.log.Info("node mode changed", "mode", mode, "scope", scope)
		}
		v := ""
		if ro {
			v = "ro"
		}
		n.setExtra(extraNodeMode, v)
	case ScopeCluster:
		cur := n.ops.cmode()
		c := clusterMode{mode: mode, stamp: max(time.Now().UnixMilli(), cur.stamp+1)}
		n.ops.cluster.Store(&c)
		n.log.Info("cluster mode changed", "mode", mode, "scope", scope, "previous", cur.effective(), "stamp", c.stamp)
		n.setExtra(extraClusterMode, c.encode())
	default:
		return fmt.Errorf("node: scope %q: want %q or %q", scope, ScopeCluster, ScopeNode)
	}
	return nil
}

// setExtra sets (or, with value "", removes) one field of this node's
// gossiped metadata. The map is replaced, never changed in place: earlier
// copies of the metadata may still be read elsewhere.
func (n *Node) setExtra(key, value string) {
	n.setMeta(func(m *membership.Meta) { setExtraField(m, key, value) })
}

// setExtraField sets (or, with value "", removes) one Meta.Extra field on a
// copy of the map, so that Meta values already handed out stay unchanged.
func setExtraField(m *membership.Meta, key, value string) {
	if m.Extra[key] == value {
		return
	}
	x := maps.Clone(m.Extra)
	if x == nil {
		x = map[string]string{}
	}
	if value == "" {
		delete(x, key)
	} else {
		x[key] = value
	}
	if len(x) == 0 {
		x = nil
	}
	m.Extra = x
}

// adoptClusterMode takes the newest cluster mode found among members, and
// gossips it on as this node's own, so that it outlives the member that set
// it and reaches members that join later.
func (n *Node) adoptClusterMode(ms []membership.Member) {
	best, from := n.ops.cmode(), ""
	for _, m := range ms {
		if m.Name == n.cfg.Name {
			continue
		}
		if c, ok := parseClusterMode(m.Meta.Extra[extraClusterMode]); ok && c.newer(best) {
			best, from = c, m.Name
		}
	}
	if from == "" {
		return
	}
	n.ops.modeMu.Lock()
	defer n.ops.modeMu.Unlock()
	cur := n.ops.cmode()
	if !best.newer(cur) {
		return
	}
	n.ops.cluster.Store(&best)
	n.log.Info("cluster mode adopted from gossip", "mode", best.mode, "from", from,
		"set_at", time.UnixMilli(best.stamp).UTC(), "previous", cur.effective())
	n.setExtra(extraClusterMode, best.encode())
}

// checkWritable refuses user writes in read-only mode. A write forwarded by
// another node is refused only by the cluster mode (the sender checked its
// own node mode), so a read-only node still stores the keys it owns.
// readOnly is the refusal of a write in read-only mode (ErrReadOnly).
func readOnly(format string, args ...any) *Error {
	e := errorf(http.StatusServiceUnavailable, format, args...)
	e.ReadOnly = true
	return e
}

func (n *Node) checkWritable(forwarded bool) *Error {
	if n.ops.cmode().mode == ModeReadOnly {
		return readOnly("node %s is read-only (cluster mode): writes are refused until the cluster is set back to read-write", n.cfg.Name)
	}
	if !forwarded && n.ops.nodeRO.Load() {
		return readOnly("node %s is read-only (node mode): writes are refused until it is set back to read-write", n.cfg.Name)
	}
	return nil
}

// AwaitClusterMode waits (within ctx) until every member gossips the
// cluster mode this node knows, and says who did and who did not yet.
func (n *Node) AwaitClusterMode(ctx context.Context) (acked, pending []string) {
	return n.awaitClusterMode(ctx, n.ops.cmode().encode())
}

// awaitClusterMode waits (bounded by ctx) until every member's gossiped
// metadata carries value, and reports who does and who does not.
func (n *Node) awaitClusterMode(ctx context.Context, value string) (acked, pending []string) {
	for {
		acked, pending = acked[:0], pending[:0]
		for _, m := range n.ml.Members() {
			if m.Name == n.cfg.Name || m.Meta.Extra[extraClusterMode] == value {
				acked = append(acked, m.Name)
			} else {
				pending = append(pending, m.Name)
			}
		}
		if len(pending) == 0 {
			return acked, nil
		}
		select {
		case <-ctx.Done():
			return acked, pending
		case <-time.After(20 * time.Millisecond):
		}
	}
}
