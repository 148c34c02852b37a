package rwmode

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peercache/peercache/kv"
)

// State is one node's read/write modes: its own (node scope) and the newest
// cluster mode it knows. Its methods are safe for concurrent use.
type State struct {
	name    string
	log     *slog.Logger
	publish func(key, value string)

	mu      sync.Mutex                  // serialises changes with their publication
	nodeRO  atomic.Bool                 // the node is read-only (node scope)
	cluster atomic.Pointer[ClusterMode] // newest cluster mode known; nil: never set
}

// NewState returns the read-write state of the node called name, which logs
// its changes to log. publish sets (or, with value "", removes) one field of
// the node's gossiped metadata; State calls it with its lock held, so that
// the fields are published in the order of the changes.
func NewState(name string, log *slog.Logger, publish func(key, value string)) *State {
	return &State{name: name, log: log, publish: publish}
}

// Cluster returns the newest cluster mode the node knows.
func (s *State) Cluster() ClusterMode {
	if p := s.cluster.Load(); p != nil {
		return *p
	}
	return ClusterMode{Mode: ReadWrite}
}

// Encoded returns the newest cluster mode the node knows as it is gossiped
// under KeyCluster.
func (s *State) Encoded() string { return s.Cluster().Encode() }

// Info returns the node's modes.
func (s *State) Info() Info {
	c := s.Cluster()
	mi := Info{Node: s.name, NodeMode: ReadWrite, ClusterMode: c.Effective()}
	if s.nodeRO.Load() {
		mi.NodeMode = ReadOnly
	}
	if c.Stamp > 0 {
		mi.ClusterModeSetAt = time.UnixMilli(c.Stamp).UTC()
	}
	mi.Mode = ReadWrite
	if mi.NodeMode == ReadOnly || mi.ClusterMode == ReadOnly {
		mi.Mode = ReadOnly
	}
	return mi
}

// Set puts the node (scope Node) or the cluster (scope Cluster) in mode
// and publishes the gossip field that carries it. A cluster mode is stamped
// with the current time, or one millisecond after the mode it replaces if
// that is later, so that it supersedes it.
func (s *State) Set(mode Mode, scope Scope) error {
	if mode != ReadOnly && mode != ReadWrite {
		return fmt.Errorf("mode %q: want %q or %q", mode, ReadOnly, ReadWrite)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch scope {
	case Node:
		ro := mode == ReadOnly
		if s.nodeRO.Swap(ro) != ro {
			s.log.Info("node mode changed", "mode", mode, "scope", scope)
		}
		v := ""
		if ro {
			v = "ro"
		}
		s.publish(KeyNode, v)
	case Cluster:
		cur := s.Cluster()
		c := ClusterMode{Mode: mode, Stamp: max(time.Now().UnixMilli(), cur.Stamp+1)}
		s.cluster.Store(&c)
		s.log.Info("cluster mode changed", "mode", mode, "scope", scope, "previous", cur.Effective(), "stamp", c.Stamp)
		s.publish(KeyCluster, c.Encode())
	default:
		return fmt.Errorf("scope %q: want %q or %q", scope, Cluster, Node)
	}
	return nil
}

// Adopt takes the newest cluster mode among members (each member's name
// and gossiped Extra metadata; the node itself is skipped) if it is newer
// than the one the node knows, and publishes it as the node's own, so that
// it outlives the member that set it and reaches members that join later.
func (s *State) Adopt(members iter.Seq2[string, map[string]string]) {
	best, from := s.Cluster(), ""
	for name, extra := range members {
		if name == s.name {
			continue
		}
		if c, ok := ParseClusterMode(extra[KeyCluster]); ok && c.Newer(best) {
			best, from = c, name
		}
	}
	if from == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.Cluster()
	if !best.Newer(cur) {
		return
	}
	s.cluster.Store(&best)
	s.log.Info("cluster mode adopted from gossip", "mode", best.Mode, "from", from,
		"set_at", time.UnixMilli(best.Stamp).UTC(), "previous", cur.Effective())
	s.publish(KeyCluster, best.Encode())
}

// CheckWritable refuses a user write in read-only mode with a 503 marked
// ReadOnly (kv.ErrReadOnly). A write forwarded by another node is refused
// only by the cluster mode (the sender checked its own node mode), so a
// read-only node still stores the keys it owns.
func (s *State) CheckWritable(forwarded bool) *kv.Error {
	if s.Cluster().Mode == ReadOnly {
		return readOnly("node %s is read-only (cluster mode): writes are refused until the cluster is set back to read-write", s.name)
	}
	if !forwarded && s.nodeRO.Load() {
		return readOnly("node %s is read-only (node mode): writes are refused until it is set back to read-write", s.name)
	}
	return nil
}

// statusUnavailable is the status a refused write carries (kv.Error.Status
// is an HTTP status: 503 Service Unavailable).
const statusUnavailable = 503

// readOnly is the refusal of a write in read-only mode.
func readOnly(format string, args ...any) *kv.Error {
	return &kv.Error{Status: statusUnavailable, Message: fmt.Sprintf(format, args...), ReadOnly: true}
}

// Await waits (bounded by ctx) until every member (members lists each
// one's name and gossiped Extra metadata, fresh at each call) carries the
// cluster mode this node knows, looking every 20 ms, and reports who does
// and who does not yet. The node itself counts as carrying it.
func (s *State) Await(ctx context.Context, members func() iter.Seq2[string, map[string]string]) (acked, pending []string) {
	value := s.Encoded()
	for {
		acked, pending = acked[:0], pending[:0]
		for name, extra := range members() {
			if name == s.name || extra[KeyCluster] == value {
				acked = append(acked, name)
			} else {
				pending = append(pending, name)
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
