package node

import (
	"log/slog"
	"time"

	"github.com/peercache/peercache/internal/rate"
	"github.com/peercache/peercache/internal/rwmode"
	"github.com/peercache/peercache/membership"
)

// operator is a node's operator-facing state: read/write modes, the key API
// request rate, uptime, and the log of member changes.
type operator struct {
	started time.Time

	mode *rwmode.State // the node's and the cluster's read/write modes

	keyRequests rate.Counter // key requests of the client doors (CountRequest)

	members *membership.ChangeLog // one line per member that joined, left or changed
}

func newOperator(mode *rwmode.State, log *slog.Logger) *operator {
	return &operator{started: time.Now(), mode: mode, members: membership.NewChangeLog(log, rwmode.NodeReadOnly)}
}

// observeMembers is called with every member set the node applies: it logs
// what changed and adopts the newest cluster mode among the members.
func (n *Node) observeMembers(ms []membership.Member) {
	n.ops.members.Log(ms)
	n.adoptClusterMode(ms)
}
