package node

import (
	"sync"
	"time"

	"github.com/peercache/peercache/internal/rate"
	"github.com/peercache/peercache/internal/rwmode"
	"github.com/peercache/peercache/membership"
)

// operator is a node's operator-facing state: read/write modes, the key API
// request rate, uptime, and the member set last logged.
type operator struct {
	started time.Time

	mode *rwmode.State // the node's and the cluster's read/write modes

	keyRequests rate.Counter // key requests of the client doors (CountRequest)

	logMu sync.Mutex
	seen  map[string]memberSeen // member set last logged; guarded by logMu
}

// memberSeen is what membership change logs compare.
type memberSeen struct {
	addr, httpAddr string
	state          membership.State
	readOnly       bool
}

func newOperator(mode *rwmode.State) *operator {
	return &operator{started: time.Now(), mode: mode}
}

// observeMembers is called with every member set the node applies: it logs
// what changed and adopts the newest cluster mode among the members.
func (n *Node) observeMembers(ms []membership.Member) {
	n.logMemberChanges(ms)
	n.adoptClusterMode(ms)
}

// logMemberChanges writes one structured line per member that joined, left
// or changed state (or node mode) since the previous member set.
func (n *Node) logMemberChanges(ms []membership.Member) {
	o := n.ops
	o.logMu.Lock()
	defer o.logMu.Unlock()
	next := make(map[string]memberSeen, len(ms))
	for _, m := range ms {
		s := memberSeen{addr: m.Addr, httpAddr: m.Meta.HTTPAddr, state: m.Meta.State, readOnly: rwmode.NodeReadOnly(m.Meta.Extra)}
		next[m.Name] = s
		prev, ok := o.seen[m.Name]
		switch {
		case !ok:
			n.log.Info("member joined", "member", m.Name, "gossip_addr", s.addr, "http_addr", s.httpAddr,
				"state", s.state, "members", len(ms))
		case prev.state != s.state:
			n.log.Info("member state changed", "member", m.Name, "from", prev.state, "to", s.state)
		case prev.readOnly != s.readOnly:
			n.log.Info("member node mode changed", "member", m.Name, "read_only", s.readOnly)
		case prev.addr != s.addr || prev.httpAddr != s.httpAddr:
			n.log.Info("member address changed", "member", m.Name, "gossip_addr", s.addr, "http_addr", s.httpAddr)
		}
	}
	for name, prev := range o.seen {
		if _, ok := next[name]; !ok {
			n.log.Info("member left", "member", name, "last_state", prev.state, "members", len(ms))
		}
	}
	o.seen = next
}
