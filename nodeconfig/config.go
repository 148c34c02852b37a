// Package nodeconfig owns a node's settings: the fields of Config in their
// groups, the defaults (Default, SetDefaults), validation (Validate), the
// memory split between the in-memory shard and the local tier, and the
// addresses a node binds and advertises, with the rule that keeps gossip
// and the peer protocol on loopback while nothing authenticates members.
//
// It must not know what a node does with the settings (package node), nor
// flags and environment variables (cmd/cachenode maps those onto Config).
// node re-exports Config and Default as node.Config and node.DefaultConfig;
// the groups (Gossip, Tier, ...) are named here.
package nodeconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/peercache/peercache/internal/replica"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
	"github.com/peercache/peercache/tier"
)

// Defaults for Config fields left zero (Default returns them all in a
// Config).
const (
	// DefaultGossipAddr is the gossip bind address with a cluster secret
	// (or Auth.Insecure); without one it is DefaultLoopbackGossipAddr.
	DefaultGossipAddr         = ":7946"
	DefaultLoopbackGossipAddr = "127.0.0.1:7946"
	DefaultMaxClockSkew       = time.Minute
	DefaultPeerTimeout        = 5 * time.Second
	DefaultMaxKeyBytes        = 1 << 10
	DefaultMaxValueBytes      = 1 << 20
	DefaultMemoryMaxBytes     = 256 << 20
	DefaultTombstoneTTL       = 5 * time.Minute
	DefaultHandoffWindow      = 30 * time.Second
	DefaultDrainTimeout       = 60 * time.Second
	DefaultLeaveLinger        = time.Second
	DefaultSweepInterval      = 2 * time.Minute
	DefaultNearCacheTTL       = time.Second
	DefaultNearTrackMaxKeys   = 1 << 18
	DefaultInvalidationWait   = 5 * time.Millisecond
	DefaultLoaderNegTTL       = 5 * time.Second
)

// Config describes one node. Zero values take the defaults (see Default);
// the fields documented with "negative: none" switch their feature off.
type Config struct {
	// Name is the node's unique name in the cluster. Required.
	Name string
	// ClusterLabel keeps clusters sharing a network apart: gossip and the
	// peer protocol refuse members with another label.
	ClusterLabel string
	// HTTP is where this node's HTTP door is reached.
	HTTP HTTP
	// RESP is where the node's Redis protocol door is reached, gossiped so
	// that the doors of the other members can redirect Redis Cluster
	// clients to it (MOVED).
	RESP RESP
	// Gossip is membership: addresses, seeds, encryption, timing.
	Gossip Gossip
	// Peer is the node-to-node protocol's addresses, timeout and version
	// check.
	Peer Peer
	// Auth is how members authenticate each other.
	Auth Auth

	// Store is the node's shard. Nil: an in-memory store that the node owns
	// and closes. A caller-provided store is not closed by the node.
	Store store.Store
	// MemoryMaxBytes is the node's memory budget (0: DefaultMemoryMaxBytes,
	// 256 MiB): the bytes the in-memory shard and the local tier may hold,
	// keys, values and per-entry overhead included (see MemorySplit for how
	// it is divided). It does not bound a Redis shard, which has its own
	// maxmemory. cachenode also derives the process's Go memory limit from
	// it (see cmd/cachenode).
	MemoryMaxBytes int64
	// Ring places keys: how finely the 16384 slots are grouped (VNodes, 0:
	// 128). Every member must use the same.
	Ring ring.Options

	// Replication is how many copies of each key there are and how many a
	// write waits for.
	Replication Replication
	// Limits bound what clients may send.
	Limits Limits
	// Migration tunes moving keys when the ring changes.
	Migration Migration
	// Tier is the local tier, the near cache and the warm-up.
	Tier Tier
	// Loader is read-through: loading keys that are in no shard.
	Loader Loader

	// Logger receives the node's logs (nil: slog.Default()).
	Logger *slog.Logger
}

// HTTP is where a node's HTTP door is reached. The node serves no HTTP
// itself: it only advertises the door to the other members.
type HTTP struct {
	// Addr is the address the door listens on, as bound (host:port with
	// the port it got). Empty: no HTTP door.
	Addr string
	// Advertise is the host:port other members use to reach the door.
	// Empty: the gossip advertise host with the port of Addr.
	Advertise string
}

// RESP is where a node's Redis protocol door is reached. The node serves no
// RESP itself: it only gossips the door's address, which Redis Cluster
// clients are redirected to.
type RESP struct {
	// Addr is the address the door listens on, as bound (host:port with
	// the port it got). Empty: no RESP door.
	Addr string
	// Advertise is the host:port clients use to reach the door (what a
	// MOVED redirect names). Empty: the gossip advertise host with the
	// port of Addr.
	Advertise string
}

// Gossip configures membership (memberlist).
type Gossip struct {
	// Addr is the memberlist bind host:port (port 0 picks one). Empty:
	// DefaultGossipAddr with a cluster secret (or Auth.Insecure), else
	// DefaultLoopbackGossipAddr.
	Addr string
	// Advertise is the host or host:port announced for gossip. Empty: the
	// bind host when it is a specific IP, else the host's first
	// non-loopback address.
	Advertise string
	// Seeds are host:port or DNS names of members to join.
	Seeds []string
	// Key, when set, encrypts gossip (16, 24 or 32 bytes) instead of the
	// key derived from Auth.Secret.
	Key []byte
	// Timing selects memberlist timeouts (LAN by default; Fast for tests).
	Timing membership.Timing
	// Proto, when not 0, is the peer protocol version announced instead of
	// membership.ProtocolVersion: for tests of how members treat a member
	// of an earlier release (the node still speaks this release's
	// protocol).
	Proto int
	// Resolver resolves seed and advertise host names (nil: the system
	// resolver).
	Resolver membership.Resolver
}

// Peer configures the node-to-node protocol.
type Peer struct {
	// Addr is where the peer protocol listens (forwarded requests,
	// imports, handoff, invalidations). Empty: the gossip bind host with
	// the gossip port + 1 (port 0 when the gossip port is 0).
	Addr string
	// Advertise is the host:port other members use for the peer protocol.
	// Empty: the gossip advertise host with the actual peer port.
	Advertise string
	// Timeout bounds each request to a peer (0: 5s).
	Timeout time.Duration
	// Conns is how many connections carry this node's requests to one
	// peer (0: peer.DefaultConnsPerPeer, 1).
	Conns int
	// MaxClockSkew is how far ahead of this node's clock a version from
	// another member may lie (0: 1 minute); entries with later versions are
	// refused, since they would win over every later write of their key.
	MaxClockSkew time.Duration
}

// Auth is how members authenticate each other. Without a secret or
// certificates, gossip and peer listeners must stay on loopback unless
// Insecure is set.
type Auth struct {
	// Secret keys gossip encryption (unless Gossip.Key is set) and the
	// peer protocol's mutual TLS (see peer.Auth).
	Secret []byte
	// Certificate and CAs, when both set, authenticate the peer protocol
	// with the operator's certificates instead of the secret.
	Certificate *tls.Certificate
	CAs         *x509.CertPool
	// Insecure allows gossip and peer listeners beyond loopback without
	// any authentication (a network the operator trusts).
	Insecure bool
}

// Replication is how many copies of each key there are.
type Replication struct {
	// Factor is the number of copies of each key (0: 1). The first of a
	// key's owners (ring.Owners) is its primary; the others are replicas.
	Factor int
	// WriteAcks is how many copies a write waits for before it is
	// acknowledged: replica.AcksAll (every owner in the ring, the
	// default), AcksQuorum (a majority of Factor) or AcksOne (the primary;
	// replicas are written in the background).
	WriteAcks replica.Acks
}

// Limits bound what clients may send.
type Limits struct {
	// MaxKeyBytes and MaxValueBytes bound requests (0: 1 KiB and 1 MiB).
	MaxKeyBytes   int
	MaxValueBytes int
	// MaxTTL bounds ?ttl= (0: no bound beyond what fits).
	MaxTTL time.Duration
}

// Migration tunes moving keys when the ring changes.
type Migration struct {
	// TombstoneTTL is how long a delete is remembered so that an older copy
	// still in migration cannot resurrect it (0: 5m). It must exceed the
	// longest migration.
	TombstoneTTL time.Duration
	// HandoffWindow is how long after a ring change a new owner asks the
	// previous owner on a local miss (0: 30s). Handoff also stays on while
	// any member reports a migration in progress.
	HandoffWindow time.Duration
	// DrainTimeout bounds the hand-off of keys on graceful leave (0: 60s).
	DrainTimeout time.Duration
	// LeaveLinger is how long a leaving node keeps answering after it left
	// the member list, for members whose view lags (0: 1s; negative: none).
	LeaveLinger time.Duration
	// SweepInterval is how often a node with no migration running checks
	// its shard for keys it does not own (0: 2m; negative: never).
	SweepInterval time.Duration
	// Options tunes the migrator (batch size, workers, rate).
	Options migrate.Options
}

// Tier configures the local tier, the near cache and the warm-up.
type Tier struct {
	// Bytes is the byte budget of the node's in-process tier, which holds
	// copies of values fetched from other owners (near cache) and, unless
	// the shard is the in-memory store, copies of its own keys. It is part
	// of MemoryMaxBytes. 0: its share of MemoryMaxBytes (see MemorySplit);
	// negative: no local tier.
	Bytes int64
	// Policy is the tier's eviction policy: tier.TinyLFU (the
	// default), LRU or FIFO.
	Policy tier.Policy
	// NearTTL is the longest a node keeps a copy of a value another node
	// owns (0: 1s; negative: no near cache, and this node lets no other
	// node keep copies of its keys).
	NearTTL time.Duration
	// NearTrackMaxKeys bounds how many keys an owner tracks for near-cache
	// invalidation (0: 262,144); beyond it, readers get no copy permission.
	NearTrackMaxKeys int
	// InvalidationWait is how long a write waits for the nodes holding
	// near copies of the key to acknowledge their invalidation before it
	// is acknowledged itself (0: 5ms; negative: do not wait).
	InvalidationWait time.Duration
	// WarmKeys and WarmBytes bound the warm-up a node sends to the new
	// owners of its keys after a ring change: the hottest of its local
	// copies of keys they now own, at most this many keys and bytes
	// (0: warm.DefaultKeys, warm.DefaultBytes; WarmKeys negative: none).
	WarmKeys  int
	WarmBytes int64
}

// Getter loads a value that is in no shard (read-through, as groupcache's
// Getter): it returns the value and how long to keep it (0: no expiry),
// or kv.ErrNotFound when the origin has no such key, or another error.
//
// Only a key's owner calls it, once for all concurrent misses of the key
// on that node (so once cluster-wide for a cold key), and stores the value
// as the owner stores a write (versioned, replicated, only if the key is
// still absent). A key the origin does not have is remembered in the
// owner's local tier for Loader.NegativeTTL.
type Getter func(ctx context.Context, key string) (value []byte, ttl time.Duration, err error)

// Loader is read-through: loading keys that are in no shard.
type Loader struct {
	// Getter, when set, loads keys that are in no shard; see Getter.
	Getter Getter
	// NegativeTTL is how long an owner remembers that the Getter did not
	// find a key (0: 5s; negative: not at all).
	NegativeTTL time.Duration
	// TTLJitter shortens the TTLs of loaded values (and negative entries)
	// by a random fraction up to this (0 to 1), so that keys loaded
	// together do not expire together.
	TTLJitter float64
}
