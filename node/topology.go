package node

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"net/http"

	"github.com/peercache/peercache/internal/clusterview"
	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
)

// Topology is the cluster's placement as one node sees it, in the terms a
// Redis Cluster client needs (the cluster mode of the RESP door): who owns
// each slot and where each owner's RESP door is. A Topology is immutable and
// shared; one is built per view of the cluster.
type Topology struct {
	// Self is this node's name.
	Self string
	// Ring places the slots. It is the ring this node routes by, so a key
	// whose slot it gives to Self is served here without a hop.
	Ring *ring.Ring
	// Epoch counts this node's ring changes (the view version): it grows
	// whenever placement changes.
	Epoch uint64
	// Replicas is how many members hold each slot (the replication factor,
	// at least 1).
	Replicas int
	// Members are the ring's members, sorted by name.
	Members []TopologyMember
	// Settled tells whether every member this node knows gossips the ring
	// checksum of this node's view: views agree, so a client redirected
	// to a slot's owner is served there and not sent back. While they do
	// not (a join or a leave spreading), a door should forward instead.
	Settled bool
	// Gone tells that this node has left the cluster (or stopped): it can
	// no longer forward, only redirect.
	Gone bool
	// Ready tells whether this node serves (joined, shard answering, not
	// leaving).
	Ready  bool
	byName map[string]int // index into Members
}

// TopologyMember is one member of a Topology.
type TopologyMember struct {
	// Name is the member's name, ID its 40-hex-digit Redis Cluster node id
	// (the SHA-1 of the name: stable across restarts).
	Name, ID string
	// RESPAddr is where clients reach its RESP door ("" when it gossips
	// none), PeerAddr its peer protocol listener.
	RESPAddr, PeerAddr string
}

// Member returns the member called name, false if it is not in the ring.
func (t *Topology) Member(name string) (TopologyMember, bool) {
	i, ok := t.byName[name]
	if !ok {
		return TopologyMember{}, false
	}
	return t.Members[i], true
}

// NewTopology builds a Topology from its parts (members are the ring's,
// with their addresses; IDs are filled in): for tools and tests that render
// a cluster's layout without running its nodes.
func NewTopology(self string, r *ring.Ring, replicas int, members []TopologyMember) *Topology {
	t := &Topology{Self: self, Ring: r, Replicas: max(replicas, 1), Ready: true, Settled: true, byName: map[string]int{}}
	for _, name := range r.Members() {
		m := TopologyMember{Name: name}
		for _, g := range members {
			if g.Name == name {
				m = g
			}
		}
		m.ID = NodeID(name)
		t.byName[name] = len(t.Members)
		t.Members = append(t.Members, m)
	}
	return t
}

// NodeID is the Redis Cluster node id of the member called name: the hex
// SHA-1 of the name.
func NodeID(name string) string {
	h := sha1.Sum([]byte(name))
	return hex.EncodeToString(h[:])
}

// topology caches the Topology of one view.
type topology struct {
	v           *view
	ready, gone bool
	t           *Topology
}

// Topology returns the node's current Topology. It is cheap (one built per
// view, and per change of readiness or of Gone).
func (n *Node) Topology() *Topology {
	v, ready, gone := n.views.cur.Load(), n.Ready(), n.HasLeft() || n.Stopped()
	if c := n.views.topo.Load(); c != nil && c.v == v && c.ready == ready && c.gone == gone {
		return c.t
	}
	t := &Topology{Self: n.cfg.Name, Ring: v.Ring, Epoch: v.Version, Replicas: max(n.cfg.Replication.Factor, 1), Ready: ready,
		Gone: gone, Settled: true, byName: map[string]int{}}
	for name, m := range v.Members {
		if name != n.cfg.Name && m.Meta.Extra[clusterview.MetaRing] != v.Checksum {
			t.Settled = false
		}
	}
	for _, name := range v.Ring.Members() { // sorted
		m := TopologyMember{Name: name, ID: NodeID(name)}
		if gm, ok := v.Members[name]; ok {
			m.RESPAddr, m.PeerAddr = gm.Meta.RESPAddr, gm.Meta.PeerAddr
		}
		if name == n.cfg.Name {
			m.RESPAddr, m.PeerAddr = n.selfMeta().RESPAddr, n.peer.advertised
		}
		t.byName[name] = len(t.Members)
		t.Members = append(t.Members, m)
	}
	n.views.topo.Store(&topology{v: v, ready: ready, gone: gone, t: t})
	return t
}

// selfMeta is the metadata this node gossips about itself.
func (n *Node) selfMeta() membership.Meta {
	n.self.mu.Lock()
	defer n.self.mu.Unlock()
	return n.self.meta
}

// keysInSlotScan is how many keys one shard scan step asks for.
const keysInSlotScan = 1000

// KeysInSlot returns up to max live keys of slot that this node owns and
// holds in its shard (CLUSTER GETKEYSINSLOT; max < 0: all of them, for
// COUNTKEYSINSLOT). The shard has no index by slot: this scans all of it,
// O(keys), bounded by ctx.
func (n *Node) KeysInSlot(ctx context.Context, slot, max int) ([]string, error) {
	if slot < 0 || slot >= ring.Slots {
		return nil, kv.Errorf(http.StatusBadRequest, "invalid slot %d", slot)
	}
	if n.views.cur.Load().Ring.SlotOwner(slot) != n.cfg.Name {
		return nil, nil
	}
	var out []string
	seen := map[string]struct{}{} // a scan may return a key twice
	var cursor uint64
	for {
		keys, next, err := n.scanLive(ctx, cursor, keysInSlotScan, func(k string) bool { return ring.Slot(k) == slot })
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if _, dup := seen[k]; !dup {
				seen[k] = struct{}{}
				out = append(out, k)
				if max >= 0 && len(out) >= max {
					return out, nil
				}
			}
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

// ScanKeys is one step of a scan of the live keys this node owns in its
// shard (SCAN, KEYS and DBSIZE in cluster mode): about count keys read
// from cursor (0 starts), the live owned ones among them, and the cursor
// of the next step (0: done). Like Redis' SCAN, a key present throughout
// is returned at least once.
func (n *Node) ScanKeys(ctx context.Context, cursor uint64, count int) ([]string, uint64, error) {
	r := n.views.cur.Load().Ring
	return n.scanLive(ctx, cursor, count, func(k string) bool { return r.Owner(k) == n.cfg.Name })
}

// ScanAll is one step of a scan of the live keys of the whole cluster
// (SCAN, KEYS, DBSIZE and the flushes in proxy mode): each member of the
// ring in name order scans the keys it owns, this node directly, the
// others over the peer protocol. The cursor keeps the member's index above
// store.ScanCursorLimit and the member's own cursor below it. A key present
// throughout is returned at least once while the ring stays the same; a
// scan through a ring change may miss keys that move meanwhile, or return
// them twice.
func (n *Node) ScanAll(ctx context.Context, cursor uint64, count int) ([]string, uint64, error) {
	v := n.views.cur.Load()
	members := v.Ring.Members() // sorted by name
	if len(members) == 0 {
		return nil, 0, forming()
	}
	if len(members) > 1<<(64-54) { // the member index must fit above the cursor
		return nil, 0, kv.Errorf(http.StatusInternalServerError, "too many members for a cluster-wide scan")
	}
	i, local := int(cursor/store.ScanCursorLimit), cursor%store.ScanCursorLimit
	for i < len(members) {
		var keys []string
		var next uint64
		var err error
		if members[i] == n.cfg.Name {
			keys, next, err = n.ScanKeys(ctx, local, count)
		} else {
			keys, next, err = n.peer.members.Scan(ctx, v, members[i], local, count)
		}
		if err != nil {
			return nil, 0, err
		}
		if next >= store.ScanCursorLimit {
			return nil, 0, kv.Errorf(http.StatusInternalServerError, "member %s answered a scan cursor out of range", members[i])
		}
		if next == 0 {
			i, local = i+1, 0
		} else {
			local = next
		}
		if len(keys) > 0 || next != 0 {
			if i == len(members) {
				return keys, 0, nil
			}
			return keys, uint64(i)*store.ScanCursorLimit + local, nil
		}
	}
	return nil, 0, nil
}

// scanLive is one shard scan step keeping the live keys that want accepts.
func (n *Node) scanLive(ctx context.Context, cursor uint64, count int, want func(string) bool) ([]string, uint64, error) {
	keys, next, err := n.st.Scan(ctx, cursor, count)
	if err != nil {
		return nil, 0, kv.Retryable(http.StatusServiceUnavailable, "shard scan failed: %w", err)
	}
	in := keys[:0:0]
	for _, k := range keys {
		if want(k) {
			in = append(in, k)
		}
	}
	if len(in) == 0 {
		return nil, next, nil
	}
	es, found, err := n.st.GetMany(ctx, in)
	if err != nil {
		return nil, 0, kv.Retryable(http.StatusServiceUnavailable, "shard read failed: %w", err)
	}
	live := in[:0]
	for i, e := range es {
		if found[i] && !e.Tombstone {
			live = append(live, e.Key)
		}
	}
	return live, next, nil
}
