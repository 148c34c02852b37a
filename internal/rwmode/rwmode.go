// Package rwmode owns the read/write modes of a node and of its cluster:
// what they are and how they are parsed, how a cluster mode is stamped with
// the time it was set, encoded in a member's gossiped metadata and merged
// among members (the newest stamp wins; on a tie read-only wins), and the
// check that refuses a user write while either mode is read-only.
//
// It must not know the node, HTTP, memberlist or the peer protocol: the
// metadata it reads arrives as plain Extra maps, and what it publishes
// leaves through a function its caller passes in. It uses package kv only
// for the error a refused write returns.
package rwmode

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is the read/write mode of a node or of the whole cluster.
type Mode string

// Modes. In read-only mode user writes (sets and deletes, whichever way a
// client sends them) are refused; reads are served, and moving data between
// nodes (migration imports, handoff, internal replication) goes on, since it
// is not a user write.
const (
	ReadWrite Mode = "read-write"
	ReadOnly  Mode = "read-only"
)

// Scope says what a mode change applies to.
type Scope string

// Scopes of a mode change.
const (
	// Node applies to one node: it refuses the writes its clients send it;
	// writes that other nodes forward to it as the key's owner still land.
	Node Scope = "node"
	// Cluster applies to every member, present and future: it travels with
	// gossip, and a node that joins later inherits it.
	Cluster Scope = "cluster"
)

// Keys in a member's gossiped metadata (membership.Meta.Extra). The values
// are kept short: the encoded metadata must fit in membership.MaxMetaSize.
const (
	// KeyNode is "ro" while the member itself is read-only (absent
	// otherwise).
	KeyNode = "mode"
	// KeyCluster is the newest cluster mode the member knows:
	// "ro@<unix-ms>" or "rw@<unix-ms>", the stamp being when it was set.
	KeyCluster = "cmode"
)

// ParseMode accepts "read-only"/"ro" and "read-write"/"rw".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "read-only", "readonly", "ro":
		return ReadOnly, nil
	case "read-write", "readwrite", "rw":
		return ReadWrite, nil
	}
	return "", fmt.Errorf("mode %q: want %q or %q", s, ReadOnly, ReadWrite)
}

// ParseScope accepts "node" and "cluster".
func ParseScope(s string) (Scope, error) {
	switch Scope(strings.ToLower(strings.TrimSpace(s))) {
	case Node:
		return Node, nil
	case Cluster:
		return Cluster, nil
	}
	return "", fmt.Errorf("scope %q: want %q or %q", s, Cluster, Node)
}

// NodeReadOnly reports whether a member's gossiped Extra metadata says the
// member itself (node scope) is read-only.
func NodeReadOnly(extra map[string]string) bool {
	return extra[KeyNode] == "ro"
}

// Info is a node's read/write modes, as the node reports them.
type Info struct {
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

// ModeInfo is Info under the name Change embeds it by, so that the field
// is Change.ModeInfo.
type ModeInfo = Info

// Change is what a node reports after a mode change.
type Change struct {
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

// ClusterMode is the cluster-wide mode with the time it was set at: among
// members, the largest stamp wins (ties: read-only wins). The zero value is
// a mode never set, which is read-write.
type ClusterMode struct {
	// Mode is the cluster's mode.
	Mode Mode
	// Stamp is when it was set, in Unix milliseconds; 0: never set.
	Stamp int64
}

// Encode returns c as gossiped under KeyCluster: "ro@<ms>" or "rw@<ms>".
func (c ClusterMode) Encode() string {
	m := "rw"
	if c.Mode == ReadOnly {
		m = "ro"
	}
	return m + "@" + strconv.FormatInt(c.Stamp, 10)
}

// ParseClusterMode reads what Encode wrote; ok is false for anything else,
// including a stamp that is not positive.
func ParseClusterMode(s string) (ClusterMode, bool) {
	m, ts, ok := strings.Cut(s, "@")
	if !ok {
		return ClusterMode{}, false
	}
	stamp, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || stamp <= 0 {
		return ClusterMode{}, false
	}
	switch m {
	case "ro":
		return ClusterMode{ReadOnly, stamp}, true
	case "rw":
		return ClusterMode{ReadWrite, stamp}, true
	}
	return ClusterMode{}, false
}

// Newer reports whether c supersedes o: a larger stamp, or the same stamp
// with c read-only and o not.
func (c ClusterMode) Newer(o ClusterMode) bool {
	if c.Stamp != o.Stamp {
		return c.Stamp > o.Stamp
	}
	return c.Mode == ReadOnly && o.Mode != ReadOnly
}

// Effective returns the mode c applies: read-only or read-write (also for
// the zero value).
func (c ClusterMode) Effective() Mode {
	if c.Mode == ReadOnly {
		return ReadOnly
	}
	return ReadWrite
}
