package node

import (
	"github.com/peercache/peercache/internal/replica"
	"github.com/peercache/peercache/internal/rwmode"
	"github.com/peercache/peercache/internal/warm"
	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/nodeconfig"
	"github.com/peercache/peercache/status"
)

// Names of node's API whose definitions live in the packages that own
// them: the request and response values (kv), the settings (nodeconfig),
// the read/write modes (rwmode), the write-acknowledgement policy
// (replica), the status documents (status) and the warm-up's count
// (warm). See each for its doc.
type (
	Error         = kv.Error          // a request failure, matched with errors.Is against the Err kinds
	Item          = kv.Item           // a value read from the cache
	Mutation      = kv.Mutation       // one write of a key
	WriteOp       = kv.Op             // a read-modify-write operation of a Mutation
	ExpireCond    = kv.ExpireCond     // a condition on the current expiry of an expiry change
	WriteResult   = kv.WriteResult    // what a mutation did
	Source        = kv.Source         // which tier answered a read
	Config        = nodeconfig.Config // one node's settings; zero fields take their defaults
	Getter        = nodeconfig.Getter // loads a value that is in no shard (read-through)
	InsecureError = nodeconfig.InsecureError
	WriteAcks     = replica.Acks  // how many copies a write waits for
	Mode          = rwmode.Mode   // the read/write mode of a node or of the cluster
	Scope         = rwmode.Scope  // what a mode change applies to
	ModeInfo      = rwmode.Info   // a node's modes, as GET /v1/mode reports them
	ModeChange    = rwmode.Change // PUT /v1/mode's answer
	NodeStatus    = status.Node   // GET /v1/status
	ClusterReport = status.Report // GET /v1/cluster
	RingSegments  = status.RingSegments
	Evictions     = status.Evictions
	WarmResult    = warm.Result // what Warm did with a list of keys
)

// Read sources (reported in the X-Peercache-Source header), the read/write
// modes and their scopes (in read-only mode user writes are refused; reads
// are served and data still moves between nodes), and the
// write-acknowledgement policies (Config.Replication.WriteAcks).
const (
	OpSet           WriteOp    = kv.OpSet         // write the value
	OpIncrBy        WriteOp    = kv.OpIncrBy      // add a decimal integer (INCRBY)
	OpIncrByFloat   WriteOp    = kv.OpIncrByFloat // add a decimal float (INCRBYFLOAT)
	OpAppend        WriteOp    = kv.OpAppend      // append (APPEND)
	OpSetRange      WriteOp    = kv.OpSetRange    // overwrite part (SETRANGE; Value: kv.SetRangeValue)
	OpGetDel        WriteOp    = kv.OpGetDel      // delete, answer the old value (GETDEL)
	OpGetSet        WriteOp    = kv.OpGetSet      // set, answer the old value (GETSET, SET ... GET)
	OpGetEx         WriteOp    = kv.OpGetEx       // change the expiry, answer the value (GETEX; Value: ms, 0 persists)
	ExpireNX        ExpireCond = kv.ExpireNX      // EXPIRE NX: only if the key has no expiry
	ExpireXX        ExpireCond = kv.ExpireXX      // EXPIRE XX, PERSIST: only if it has one
	ExpireGT        ExpireCond = kv.ExpireGT      // EXPIRE GT: only to a later expiry
	ExpireLT        ExpireCond = kv.ExpireLT      // EXPIRE LT: only to a sooner one
	SourceLocal     Source     = kv.SourceLocal
	SourceShard     Source     = kv.SourceShard
	SourceNear      Source     = kv.SourceNear
	SourcePeer      Source     = kv.SourcePeer
	SourceOrigin    Source     = kv.SourceOrigin
	SourceHandoff   Source     = kv.SourceHandoff
	SourceReplica   Source     = kv.SourceReplica
	ModeReadWrite   Mode       = rwmode.ReadWrite
	ModeReadOnly    Mode       = rwmode.ReadOnly
	ScopeNode       Scope      = rwmode.Node
	ScopeCluster    Scope      = rwmode.Cluster
	WriteAcksAll    WriteAcks  = replica.AcksAll    // every owner of the key (the default)
	WriteAcksQuorum WriteAcks  = replica.AcksQuorum // a majority of the replication factor
	WriteAcksOne    WriteAcks  = replica.AcksOne    // the primary only
)

// SetRangeValue is the operand of OpSetRange: offset and data.
func SetRangeValue(offset int, data []byte) []byte { return kv.SetRangeValue(offset, data) }

// MaxSetRangeOffset bounds OpSetRange's offset (Redis: 512 MiB).
const MaxSetRangeOffset = kv.MaxSetRangeOffset

// Defaults that callers name (DefaultConfig holds them all).
const (
	DefaultGossipAddr         = nodeconfig.DefaultGossipAddr // with a cluster secret
	DefaultLoopbackGossipAddr = nodeconfig.DefaultLoopbackGossipAddr
	DefaultDrainTimeout       = nodeconfig.DefaultDrainTimeout
	DefaultMemoryMaxBytes     = nodeconfig.DefaultMemoryMaxBytes
	DefaultMaxValueBytes      = nodeconfig.DefaultMaxValueBytes
	DefaultNearCacheTTL       = nodeconfig.DefaultNearCacheTTL
)

// ErrNotFound is returned by Get for a key that is absent, expired or
// deleted; ErrReadOnly matches a write refused by read-only mode;
// ErrOwnerTooOld, a write the key's owner cannot take because it runs an
// earlier release (kv.Mutation.NeedsConditions): it was not sent.
var ErrNotFound, ErrReadOnly, ErrOwnerTooOld = kv.ErrNotFound, kv.ErrReadOnly, kv.ErrOwnerTooOld

// DefaultConfig returns a Config holding every default a zero field takes
// (nodeconfig.Default); New applies the same defaults to zero fields.
func DefaultConfig() Config { return nodeconfig.Default() }

// ParseMode accepts "read-only"/"ro" and "read-write"/"rw".
func ParseMode(s string) (Mode, error) { return rwmode.ParseMode(s) }

// ParseScope accepts "node" and "cluster".
func ParseScope(s string) (Scope, error) { return rwmode.ParseScope(s) }
