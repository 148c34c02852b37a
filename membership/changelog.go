package membership

import (
	"log/slog"
	"sync"
)

// ChangeLog writes one structured log line per member that joined, left,
// changed state, node mode or address between one member set and the next
// (the sets Updates publishes, or Members returns). What marks a member's
// node mode as read-only is the caller's to say: ChangeLog only compares.
// It is safe for concurrent use.
type ChangeLog struct {
	log      *slog.Logger
	readOnly func(extra map[string]string) bool

	mu   sync.Mutex
	seen map[string]memberSeen // member set last logged; guarded by mu
}

// memberSeen is what change logs compare.
type memberSeen struct {
	addr, httpAddr string
	state          State
	readOnly       bool
}

// NewChangeLog returns a ChangeLog that writes to log; readOnly tells from
// a member's Meta.Extra whether its node mode is read-only.
func NewChangeLog(log *slog.Logger, readOnly func(extra map[string]string) bool) *ChangeLog {
	return &ChangeLog{log: log, readOnly: readOnly}
}

// Log writes what changed since the member set of the previous call (every
// member joined, on the first).
func (c *ChangeLog) Log(ms []Member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make(map[string]memberSeen, len(ms))
	for _, m := range ms {
		s := memberSeen{addr: m.Addr, httpAddr: m.Meta.HTTPAddr, state: m.Meta.State, readOnly: c.readOnly(m.Meta.Extra)}
		next[m.Name] = s
		prev, ok := c.seen[m.Name]
		switch {
		case !ok:
			c.log.Info("member joined", "member", m.Name, "gossip_addr", s.addr, "http_addr", s.httpAddr,
				"state", s.state, "members", len(ms))
		case prev.state != s.state:
			c.log.Info("member state changed", "member", m.Name, "from", prev.state, "to", s.state)
		case prev.readOnly != s.readOnly:
			c.log.Info("member node mode changed", "member", m.Name, "read_only", s.readOnly)
		case prev.addr != s.addr || prev.httpAddr != s.httpAddr:
			c.log.Info("member address changed", "member", m.Name, "gossip_addr", s.addr, "http_addr", s.httpAddr)
		}
	}
	for name, prev := range c.seen {
		if _, ok := next[name]; !ok {
			c.log.Info("member left", "member", name, "last_state", prev.state, "members", len(ms))
		}
	}
	c.seen = next
}
