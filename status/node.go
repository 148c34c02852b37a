package status

import (
	"time"

	"github.com/peercache/peercache/internal/rwmode"
	"github.com/peercache/peercache/migrate"
)

// Node is GET /v1/status: the figures one node measures about itself.
type Node struct {
	// Name is the node's name.
	Name string `json:"name"`
	// HTTPAddr is the address other members use for its HTTP API.
	HTTPAddr string `json:"http_addr"`
	// State is the node's lifecycle state (joining, active, leaving).
	State string `json:"state"`
	// Ready is what /readyz answers.
	Ready bool `json:"ready"`
	// Mode is the read/write mode the node applies (see rwmode.Info).
	Mode rwmode.Mode `json:"mode"`
	// NodeMode and ClusterMode are the two modes it derives from.
	NodeMode    rwmode.Mode `json:"node_mode"`
	ClusterMode rwmode.Mode `json:"cluster_mode"`
	// Keys is the number of records in the shard, tombstones included.
	Keys int64 `json:"keys"`
	// MemoryBytes is the shard's memory (Redis used_memory, or the in-memory
	// store's accounted bytes).
	MemoryBytes int64 `json:"memory_bytes"`
	// MemoryMaxBytes is the node's memory budget (node.Config.MemoryMaxBytes,
	// split between the in-memory shard and the local tier; see
	// node.Config.MemorySplit).
	MemoryMaxBytes int64 `json:"memory_max_bytes"`
	// Evictions counts the keys dropped to stay within the memory budget.
	Evictions Evictions `json:"evictions"`
	// StoreError is set when the shard did not report its size.
	StoreError string `json:"store_error,omitempty"`
	// RingVersion is the node's ring snapshot version (a local counter).
	RingVersion uint64 `json:"ring_version"`
	// RingShare is the fraction of the ring this node owns.
	RingShare float64 `json:"ring_share"`
	// RequestRate is the key API requests per second this node received
	// over the last few seconds; Requests counts them since it started.
	RequestRate float64 `json:"request_rate"`
	Requests    uint64  `json:"requests"`
	// HitRatio is the local tier's hit ratio; null while the node has no
	// local tier.
	HitRatio *float64 `json:"hit_ratio"`
	// Migration is the node's key migration: the running one and the last.
	Migration migrate.Status `json:"migration"`
	// StartedAt and UptimeSeconds tell how long the node has run.
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
}

// Evictions are the keys dropped to stay within the memory budget since the
// node started.
type Evictions struct {
	// Store counts the records the shard evicted: those keys are gone (a
	// read answers not found). Only the in-memory store counts them; a Redis
	// shard reports its own in its INFO (evicted_keys) and is 0 here.
	Store uint64 `json:"store"`
	// LocalTier counts the copies the local tier evicted (the keys stay in
	// their shards).
	LocalTier uint64 `json:"local_tier"`
}
