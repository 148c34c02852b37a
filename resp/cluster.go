package resp

import (
	"bytes"
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/tidwall/redcon"

	"github.com/peercache/peercache/internal/glob"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/ring"
)

// ClusterBackend is a Backend that can tell a Redis Cluster client where
// each slot lives: what Options.Cluster needs.
type ClusterBackend interface {
	Backend
	// Topology is the placement the node routes by, in Redis Cluster
	// terms (immutable; a new one after every ring change).
	Topology() *node.Topology
	// KeysInSlot lists up to max live keys of slot held here (max < 0:
	// all).
	KeysInSlot(ctx context.Context, slot, max int) ([]string, error)
	// ScanKeys is one step of a scan of the live keys held and owned
	// here (next 0: done).
	ScanKeys(ctx context.Context, cursor uint64, count int) (keys []string, next uint64, err error)
}

var _ ClusterBackend = (*node.Node)(nil)

// Redis' replies in cluster mode.
const (
	errCrossSlot   = "CROSSSLOT Keys in request don't hash to the same slot"
	errClusterDown = "CLUSTERDOWN The cluster is down"
	errNoCluster   = "ERR This instance has cluster support disabled"
)

// clusterState is the cluster mode of a server (Options.Cluster): the
// backend's topology and the replies built from it, cached per topology
// (CLUSTER SLOTS is what every cluster client asks on each refresh).
type clusterState struct {
	b     ClusterBackend
	cache atomic.Pointer[topoReplies]
}

// topoReplies are the replies of one Topology, built on first use.
type topoReplies struct {
	t            *node.Topology
	slots, nodes []byte // CLUSTER SLOTS, CLUSTER NODES
	shards       []byte // CLUSTER SHARDS
}

// replies returns the cached replies of the backend's current topology.
func (cs *clusterState) replies() *topoReplies {
	t := cs.b.Topology()
	if c := cs.cache.Load(); c != nil && c.t == t {
		return c
	}
	c := buildReplies(t)
	cs.cache.Store(c)
	return c
}

// route decides whether this node serves a keyed command in cluster mode:
// "" when it does, else the error to answer, as a Redis Cluster node
// would: CROSSSLOT for keys of several slots, MOVED to the slot's owner,
// CLUSTERDOWN while the node has no ring or the owner gossips no RESP
// address. While members' views of the ring differ (a join or leave
// spreading through gossip), a key of another owner is served by
// forwarding, as in proxy mode: a MOVED then could send the client to a
// node whose view still names this one, and back (go-redis gives up after
// three redirects). A leaving node forwards too, until it is gone; then
// it can only redirect. A READONLY connection may read a slot this node holds a replica
// of (node.Get answers from the owner, so the read is as fresh as any).
func (s *Server) route(cl *client, spec *cmdSpec, args [][]byte) string {
	if s.cluster == nil || spec.firstKey == 0 || len(args) <= spec.firstKey {
		return ""
	}
	last := spec.lastKey
	if last < 0 {
		last = len(args) + last
	}
	slot := -1
	for i := spec.firstKey; i <= last && i < len(args); i += max(spec.step, 1) {
		sl := ring.SlotOf(args[i])
		if slot >= 0 && sl != slot {
			return errCrossSlot
		}
		slot = sl
	}
	t := s.cluster.b.Topology()
	owner := t.Ring.SlotOwner(slot)
	if owner == t.Self {
		return ""
	}
	if owner == "" {
		return errClusterDown
	}
	if cl.readonly && spec.readonly() && t.Replicas > 1 {
		var buf [16]string
		if slices.Contains(t.Ring.AppendSlotOwners(buf[:0], slot, t.Replicas), t.Self) {
			return ""
		}
	}
	if !t.Settled && !t.Gone {
		return "" // views differ: forward (the node settles who owns), never bounce
	}
	m, ok := t.Member(owner)
	if !ok || m.RESPAddr == "" {
		return errClusterDown
	}
	return "MOVED " + strconv.Itoa(slot) + " " + m.RESPAddr
}

// readonly reports whether the command only reads.
func (c *cmdSpec) readonly() bool { return slices.Contains(c.flags, "readonly") }

// cmdCluster answers CLUSTER subcommands.
func cmdCluster(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	if s.cluster == nil {
		s.writeErr(c, errNoCluster)
		return
	}
	sub := strings.ToLower(string(args[1]))
	want := map[string]int{"slots": 2, "shards": 2, "nodes": 2, "info": 2, "myid": 2, "keyslot": 3, "countkeysinslot": 3, "getkeysinslot": 4}
	if n, ok := want[sub]; ok && len(args) != n {
		s.writeErr(c, "ERR wrong number of arguments for 'cluster|"+sub+"' command")
		return
	}
	switch sub {
	case "slots":
		c.WriteRaw(s.cluster.replies().slots)
	case "shards":
		c.WriteRaw(s.cluster.replies().shards)
	case "nodes":
		c.WriteBulk(s.cluster.replies().nodes)
	case "info":
		c.WriteBulkString(clusterInfo(s.cluster.b.Topology()))
	case "myid":
		c.WriteBulkString(node.NodeID(s.cluster.b.Topology().Self))
	case "keyslot":
		c.WriteInt(ring.Slot(string(args[2])))
	case "countkeysinslot", "getkeysinslot":
		// Redis 7's checks and texts, in its order.
		limit, ok := int64(-1), true
		if sub == "getkeysinslot" {
			if limit, ok = parseInt(args[3]); !ok {
				s.writeErr(c, errNotInteger)
				return
			}
		}
		slot, ok := parseInt(args[2])
		switch {
		case !ok && sub == "countkeysinslot":
			s.writeErr(c, errNotInteger)
			return
		case sub == "countkeysinslot" && (slot < 0 || slot >= ring.Slots):
			s.writeErr(c, "ERR Invalid slot")
			return
		case !ok || slot < 0 || slot >= ring.Slots:
			s.writeErr(c, "ERR Invalid or out of range slot")
			return
		case limit < -1 || (sub == "getkeysinslot" && limit < 0):
			s.writeErr(c, "ERR Invalid slot or number of keys")
			return
		}
		keys, err := s.cluster.b.KeysInSlot(s.cmdCtx(), int(slot), int(limit))
		switch {
		case err != nil:
			s.writeNodeErr(c, err)
		case sub == "countkeysinslot":
			c.WriteInt(len(keys))
		default:
			c.WriteArray(len(keys))
			for _, k := range keys {
				c.WriteBulkString(k)
			}
		}
	default:
		s.writeErr(c, "ERR unknown subcommand '"+truncate(args[1], 128)+"'. Try CLUSTER HELP.")
	}
}

// cmdReadOnly answers READONLY and READWRITE (reads of slots this node
// holds replicas of, on this connection) and ASKING (accepted: the new
// owner of a slot serves its keys still in transit, so peercache never
// redirects with ASK).
func cmdReadOnly(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	if s.cluster == nil {
		s.writeErr(c, errNoCluster)
		return
	}
	switch {
	case isOpt(args[0], "READONLY"):
		cl.readonly = true
	case isOpt(args[0], "READWRITE"):
		cl.readonly = false
	}
	c.WriteString("OK")
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// clusterInfo is the CLUSTER INFO text.
func clusterInfo(t *node.Topology) string {
	state, assigned := "fail", 0
	if t.Ring.Len() > 0 {
		assigned = ring.Slots
		if t.Ready {
			state = "ok"
		}
	}
	var b strings.Builder
	kv := func(k string, v any) {
		b.WriteString(k)
		b.WriteByte(':')
		switch v := v.(type) {
		case string:
			b.WriteString(v)
		case int:
			b.WriteString(strconv.Itoa(v))
		case uint64:
			b.WriteString(strconv.FormatUint(v, 10))
		}
		b.WriteString("\r\n")
	}
	kv("cluster_state", state)
	kv("cluster_slots_assigned", assigned)
	kv("cluster_slots_ok", assigned)
	kv("cluster_slots_pfail", 0)
	kv("cluster_slots_fail", 0)
	kv("cluster_known_nodes", len(t.Members))
	kv("cluster_size", t.Ring.Len())
	kv("cluster_current_epoch", t.Epoch)
	kv("cluster_my_epoch", t.Epoch)
	kv("cluster_stats_messages_sent", 0)
	kv("cluster_stats_messages_received", 0)
	kv("total_cluster_links_buffer_limit_exceeded", 0)
	return b.String()
}

// buildReplies renders the CLUSTER SLOTS, NODES and SHARDS replies of t.
//
// CLUSTER SLOTS lists each run of slots with the same owners, primary
// first, each as [ip, port]: the layout of Redis 3.0, which every cluster
// client reads, without the node id and metadata Redis 7 adds (they would
// double the reply; CLUSTER NODES and SHARDS carry the ids). Runs whose
// owner gossips no RESP address are left out, as Redis leaves out
// unassigned slots.
//
// CLUSTER NODES lists every member as a master with the slots it is primary
// for. Replicas in peercache are per slot, not per node (a member holds
// copies of slots of every other member), which CLUSTER NODES cannot
// express; CLUSTER SLOTS and SHARDS show them per run.
//
// CLUSTER SHARDS has one shard per distinct owner list (primary and its
// replicas for those slots), with its slot ranges.
func buildReplies(t *node.Topology) *topoReplies {
	rp := &topoReplies{t: t}
	runs := t.Ring.SlotRuns(t.Replicas)
	addr := func(name string) (host string, port int, ok bool) {
		m, found := t.Member(name)
		if !found || m.RESPAddr == "" {
			return "", 0, false
		}
		h, p, err := splitHostPort(m.RESPAddr)
		return h, p, err == nil
	}

	// CLUSTER SLOTS.
	var body []byte
	count := 0
	for _, g := range runs {
		if _, _, ok := addr(g.Owners[0]); !ok {
			continue
		}
		var ns [][2]any
		for _, o := range g.Owners {
			if h, p, ok := addr(o); ok {
				ns = append(ns, [2]any{h, p})
			}
		}
		body = redcon.AppendArray(body, 2+len(ns))
		body = redcon.AppendInt(body, int64(g.First))
		body = redcon.AppendInt(body, int64(g.Last))
		for _, n := range ns {
			body = redcon.AppendArray(body, 2)
			body = redcon.AppendBulkString(body, n[0].(string))
			body = redcon.AppendInt(body, int64(n[1].(int)))
		}
		count++
	}
	rp.slots = append(redcon.AppendArray(nil, count), body...)

	// CLUSTER NODES.
	primary := map[string][]ring.SlotRun{}
	for _, g := range runs {
		p := g.Owners[0]
		if k := len(primary[p]) - 1; k >= 0 && primary[p][k].Last+1 == g.First {
			primary[p][k].Last = g.Last // merge runs that differ only in replicas
			continue
		}
		primary[p] = append(primary[p], ring.SlotRun{First: g.First, Last: g.Last})
	}
	var nb bytes.Buffer
	for _, m := range t.Members {
		h, p, ok := addr(m.Name)
		if !ok {
			continue
		}
		_, pp, _ := splitHostPort(m.PeerAddr)
		flags := "master"
		if m.Name == t.Self {
			flags = "myself,master"
		}
		nb.WriteString(m.ID + " " + joinHostPort(h, p) + "@" + strconv.Itoa(pp) + " " + flags + " - 0 0 " +
			strconv.FormatUint(t.Epoch, 10) + " connected")
		for _, g := range primary[m.Name] {
			nb.WriteByte(' ')
			nb.WriteString(slotRange(g.First, g.Last))
		}
		nb.WriteByte('\n')
	}
	rp.nodes = nb.Bytes()

	// CLUSTER SHARDS.
	type shard struct {
		owners []string
		ranges [][2]int
	}
	var shards []*shard
	byOwners := map[string]*shard{}
	for _, g := range runs {
		key := strings.Join(g.Owners, "\x00")
		sh := byOwners[key]
		if sh == nil {
			sh = &shard{owners: g.Owners}
			byOwners[key] = sh
			shards = append(shards, sh)
		}
		sh.ranges = append(sh.ranges, [2]int{g.First, g.Last})
	}
	b := redcon.AppendArray(nil, len(shards))
	for _, sh := range shards {
		b = redcon.AppendArray(b, 4)
		b = redcon.AppendBulkString(b, "slots")
		b = redcon.AppendArray(b, 2*len(sh.ranges))
		for _, r := range sh.ranges {
			b = redcon.AppendInt(b, int64(r[0]))
			b = redcon.AppendInt(b, int64(r[1]))
		}
		b = redcon.AppendBulkString(b, "nodes")
		b = redcon.AppendArray(b, len(sh.owners))
		for i, o := range sh.owners {
			m, _ := t.Member(o)
			h, p, _ := addr(o)
			role := "replica"
			if i == 0 {
				role = "master"
			}
			b = redcon.AppendArray(b, 12)
			b = redcon.AppendBulkString(b, "id")
			b = redcon.AppendBulkString(b, m.ID)
			b = redcon.AppendBulkString(b, "port")
			b = redcon.AppendInt(b, int64(p))
			b = redcon.AppendBulkString(b, "ip")
			b = redcon.AppendBulkString(b, h)
			b = redcon.AppendBulkString(b, "endpoint")
			b = redcon.AppendBulkString(b, h)
			b = redcon.AppendBulkString(b, "role")
			b = redcon.AppendBulkString(b, role)
			b = redcon.AppendBulkString(b, "health")
			b = redcon.AppendBulkString(b, "online")
		}
	}
	rp.shards = b
	return rp
}

func slotRange(first, last int) string {
	if first == last {
		return strconv.Itoa(first)
	}
	return strconv.Itoa(first) + "-" + strconv.Itoa(last)
}

// splitHostPort splits a host:port address with a numeric port.
func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return h, port, err
}

func joinHostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// scanner returns the scan the keyspace commands use: in cluster mode
// the keys this node owns (as each node of a Redis Cluster answers), in
// proxy mode the whole cluster's (node.ScanAll: every member in turn).
func (s *Server) scanner() func(ctx context.Context, cursor uint64, count int) ([]string, uint64, error) {
	if s.cluster != nil {
		return s.cluster.b.ScanKeys
	}
	return s.b.ScanAll
}

// maxScanCount bounds SCAN's COUNT (keys read from the shard per call).
const maxScanCount = 100000

// cmdScan is SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]: over the keys
// this node owns in cluster mode, as Redis Cluster's per-node SCAN; over
// the whole cluster in proxy mode (scanner).
func cmdScan(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		s.writeErr(c, "ERR invalid cursor")
		return
	}
	var pattern []byte
	count, typeOK := 10, true
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			s.writeErr(c, errSyntax)
			return
		}
		switch {
		case isOpt(args[i], "MATCH"):
			pattern = args[i+1]
		case isOpt(args[i], "COUNT"):
			n, ok := parseInt(args[i+1])
			if !ok {
				s.writeErr(c, errNotInteger)
				return
			}
			if n < 1 {
				s.writeErr(c, errSyntax)
				return
			}
			count = int(min(n, maxScanCount))
		case isOpt(args[i], "TYPE"):
			typeOK = isOpt(args[i+1], "STRING") // the only type there is
		default:
			s.writeErr(c, errSyntax)
			return
		}
	}
	keys, next, err := s.scanner()(s.cmdCtx(), cursor, count)
	if err != nil {
		s.writeNodeErr(c, err)
		return
	}
	out := keys[:0]
	for _, k := range keys {
		if typeOK && (pattern == nil || glob.Match(pattern, []byte(k))) {
			out = append(out, k)
		}
	}
	c.WriteArray(2)
	c.WriteBulkString(strconv.FormatUint(next, 10))
	c.WriteArray(len(out))
	for _, k := range out {
		c.WriteBulkString(k)
	}
}

// cmdKeys is KEYS pattern and DBSIZE over the keys this node owns
// (cluster mode) or the whole cluster's (proxy mode): a scan of the whole
// shard, or of every shard, O(keys).
func cmdKeys(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	ctx, scan := s.cmdCtx(), s.scanner()
	var out []string
	seen := map[string]struct{}{}
	var cursor uint64
	for {
		keys, next, err := scan(ctx, cursor, 1000)
		if err != nil {
			s.writeNodeErr(c, err)
			return
		}
		for _, k := range keys {
			if _, dup := seen[k]; !dup && (len(args) == 1 || glob.Match(args[1], []byte(k))) {
				seen[k] = struct{}{}
				out = append(out, k)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if len(args) == 1 { // DBSIZE
		c.WriteInt(len(out))
		return
	}
	c.WriteArray(len(out))
	for _, k := range out {
		c.WriteBulkString(k)
	}
}

// cmdFlush is FLUSHDB and FLUSHALL [ASYNC|SYNC]: every key this node owns
// is deleted in cluster mode (as on a node of a Redis Cluster), every key
// of the cluster in proxy mode (scanner), each an
// ordinary versioned delete through the node, replicated like any other,
// in batches of flushBatch. It needs the admin role.
func cmdFlush(s *Server, c redcon.Conn, cl *client, args [][]byte) {
	if len(args) > 2 || (len(args) == 2 && !isOpt(args[1], "ASYNC") && !isOpt(args[1], "SYNC")) {
		s.writeErr(c, errSyntax)
		return
	}
	ctx, scan := s.cmdCtx(), s.scanner()
	var cursor uint64
	for {
		keys, next, err := scan(ctx, cursor, flushBatch)
		if err != nil {
			s.writeNodeErr(c, err)
			return
		}
		ops := make([]node.Op, len(keys))
		for i, k := range keys {
			ops[i] = node.Op{Key: k, Write: true, Mutation: node.Mutation{Delete: true}}
		}
		for _, res := range s.b.ManyInto(ctx, ops, nil) {
			if res.Err != nil {
				s.writeNodeErr(c, res.Err)
				return
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	c.WriteString("OK")
}

// flushBatch is how many keys FLUSHDB deletes in one batch.
const flushBatch = 500
