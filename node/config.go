package node

import (
	"github.com/peercache/peercache/internal/replica"
	"github.com/peercache/peercache/nodeconfig"
)

// A node's settings live in package nodeconfig (fields, groups,
// defaults, validation, addresses); these names make them node's API.
type (
	// Config describes one node; zero fields take their defaults.
	Config = nodeconfig.Config
	// Getter loads a value that is in no shard (read-through).
	Getter = nodeconfig.Getter
	// WriteAcks is a write-acknowledgement policy
	// (Config.Replication.WriteAcks).
	WriteAcks = replica.Acks
	// InsecureError is New's refusal of an address beyond loopback while
	// nothing authenticates members.
	InsecureError = nodeconfig.InsecureError
)

// DefaultConfig returns a Config holding every default a zero field takes
// (nodeconfig.Default); New applies the same defaults to zero fields.
func DefaultConfig() Config { return nodeconfig.Default() }

// Write acknowledgement policies (Config.Replication.WriteAcks).
const (
	// WriteAcksAll waits for every owner of the key (the default).
	WriteAcksAll = replica.AcksAll
	// WriteAcksQuorum waits for a majority of the replication factor.
	WriteAcksQuorum = replica.AcksQuorum
	// WriteAcksOne waits for the primary only.
	WriteAcksOne = replica.AcksOne
)

// Defaults that callers name (every default is in DefaultConfig).
const (
	// DefaultGossipAddr is the gossip bind address with a cluster secret.
	DefaultGossipAddr = nodeconfig.DefaultGossipAddr
	// DefaultLoopbackGossipAddr is the gossip bind address without one.
	DefaultLoopbackGossipAddr = nodeconfig.DefaultLoopbackGossipAddr
	// DefaultDrainTimeout bounds a graceful leave's hand-off.
	DefaultDrainTimeout = nodeconfig.DefaultDrainTimeout
	// DefaultMemoryMaxBytes is the memory budget (256 MiB).
	DefaultMemoryMaxBytes = nodeconfig.DefaultMemoryMaxBytes
	// DefaultMaxValueBytes is the largest value accepted (1 MiB).
	DefaultMaxValueBytes = nodeconfig.DefaultMaxValueBytes
	// DefaultNearCacheTTL is the longest a near copy is kept (1 s).
	DefaultNearCacheTTL = nodeconfig.DefaultNearCacheTTL
	// DefaultMaxImportBatch bounds the entries of one import.
	DefaultMaxImportBatch = 10000
)
