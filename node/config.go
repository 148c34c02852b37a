package node

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/peercache/peercache/internal/replica"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
	"github.com/peercache/peercache/tier"
)

// Defaults for Config fields left zero.
const (
	// DefaultGossipAddr is the gossip bind address with a cluster secret;
	// without one it is DefaultLoopbackGossipAddr.
	DefaultGossipAddr         = ":7946"
	DefaultLoopbackGossipAddr = "127.0.0.1:7946"
	DefaultMaxClockSkew       = time.Minute
	DefaultMaxKeyBytes        = 1 << 10
	DefaultMaxValueBytes      = 1 << 20
	DefaultTombstoneTTL       = 5 * time.Minute
	DefaultHandoffWindow      = 30 * time.Second
	DefaultDrainTimeout       = 60 * time.Second
	DefaultPeerTimeout        = 5 * time.Second
	DefaultSweepInterval      = 2 * time.Minute
	DefaultMaxImportBatch     = 10000
)

// Config describes one node. Zero values take the defaults above.
type Config struct {
	// Name is the node's unique name in the cluster. Required.
	Name string
	// HTTPAddr is the address this node's HTTP door (package httpapi)
	// listens on, as bound (host:port with the port it got). The node
	// serves no HTTP itself: it only advertises the door to the other
	// members. Empty: no HTTP door.
	HTTPAddr string
	// AdvertiseHTTP is the host:port other members use to reach this node's
	// HTTP door. Empty: the advertise host (see AdvertiseAddr) with the
	// port of HTTPAddr.
	AdvertiseHTTP string
	// GossipAddr is the memberlist bind host:port (port 0 picks one).
	// Empty: DefaultGossipAddr with a cluster secret (or Insecure), else
	// DefaultLoopbackGossipAddr.
	GossipAddr string
	// PeerAddr is where the peer protocol listens (forwarded requests,
	// imports, handoff, invalidations). Empty: the gossip bind host with
	// the gossip port + 1 (port 0 when the gossip port is 0).
	PeerAddr string
	// AdvertisePeer is the host:port other members use for the peer
	// protocol. Empty: the advertise host with the actual peer port.
	AdvertisePeer string
	// AdvertiseAddr is the host or host:port announced for gossip. Empty:
	// the bind host when it is a specific IP, else the host's first
	// non-loopback address.
	AdvertiseAddr string
	// Seeds are host:port or DNS names of members to join.
	Seeds []string
	// ClusterLabel keeps clusters sharing a network apart.
	ClusterLabel string
	// ClusterSecret authenticates members to each other: it keys gossip
	// encryption (unless GossipKey is set) and the peer protocol's mutual
	// TLS (see peer.Auth). Without it (and without PeerCertificate), gossip
	// and peer listeners must stay on loopback unless Insecure is set.
	ClusterSecret []byte
	// PeerCertificate and PeerCAs, when both set, authenticate the peer
	// protocol with the operator's certificates instead of the secret.
	PeerCertificate *tls.Certificate
	PeerCAs         *x509.CertPool
	// Insecure allows gossip and peer listeners beyond loopback without
	// any authentication (a network the operator trusts).
	Insecure bool
	// GossipKey, when set, encrypts gossip (16, 24 or 32 bytes) instead of
	// the key derived from ClusterSecret.
	GossipKey []byte
	// MaxClockSkew is how far ahead of this node's clock a version from
	// another member may lie (0: 1 minute); entries with later versions are
	// refused, since they would win over every later write of their key.
	MaxClockSkew time.Duration
	// Timing selects memberlist timeouts (LAN by default; Fast for tests).
	Timing membership.Timing
	// Resolver resolves seed and advertise host names (nil: the system
	// resolver).
	Resolver membership.Resolver

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

	// VNodes is the number of virtual nodes per member (0: 128).
	VNodes int
	// Hash places keys and vnodes on the ring (nil: xxhash64). Every member
	// must use the same.
	Hash ring.HashFunc

	// Replicas is the number of copies of each key (0: 1). The first of a
	// key's owners (ring.Owners) is its primary; the others are replicas.
	Replicas int
	// WriteAcks is how many copies a write waits for before it is
	// acknowledged: "all" (every owner in the ring, the default), "quorum"
	// (a majority of Replicas) or "one" (the primary; replicas are written
	// in the background).
	WriteAcks string

	// MaxKeyBytes and MaxValueBytes bound requests (0: 1 KiB and 1 MiB).
	MaxKeyBytes   int
	MaxValueBytes int
	// MaxTTL bounds ?ttl= (0: no bound beyond what fits).
	MaxTTL time.Duration
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
	// PeerTimeout bounds each request to a peer (0: 5s).
	PeerTimeout time.Duration
	// SweepInterval is how often a node with no migration running checks its
	// shard for keys it does not own (0: 2m; negative disables).
	SweepInterval time.Duration
	// Migrate tunes key migration.
	Migrate migrate.Options

	// LocalTierBytes is the byte budget of the node's in-process tier, which
	// holds copies of values fetched from other owners (near cache) and,
	// unless the shard is the in-memory store, copies of its own keys. It
	// is part of MemoryMaxBytes. 0: its share of MemoryMaxBytes (see
	// MemorySplit); negative: no local tier.
	LocalTierBytes int64
	// LocalTierPolicy is the tier's eviction policy: "tinylfu" (the
	// default), "lru" or "fifo".
	LocalTierPolicy string
	// NearCacheTTL is the longest a node keeps a copy of a value another
	// node owns (0: 1s; negative: no near cache, and this node lets no
	// other node keep copies of its keys).
	NearCacheTTL time.Duration
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
	// (0: DefaultWarmKeys, DefaultWarmBytes; WarmKeys negative: no warm-up).
	WarmKeys  int
	WarmBytes int64
	// Getter, when set, loads keys that are in no shard (read-through);
	// see Getter.
	Getter Getter
	// LoaderNegativeTTL is how long an owner remembers that the Getter
	// did not find a key (0: 5s; negative: not at all).
	LoaderNegativeTTL time.Duration
	// TTLJitter shortens the TTLs of loaded values (and negative entries)
	// by a random fraction up to this (0 to 1), so that keys loaded
	// together do not expire together.
	TTLJitter float64

	// Logger receives the node's logs (nil: slog.Default()).
	Logger *slog.Logger
}

// DefaultMemoryMaxBytes is the node's memory budget when
// Config.MemoryMaxBytes is 0.
const DefaultMemoryMaxBytes = 256 << 20

// localTierShare is the divisor of the memory budget the local tier gets by
// default: 1/8 with the in-memory shard (the tier holds near copies only,
// each kept for at most NearCacheTTL), 1/4 with another shard (the tier
// then also holds copies of owned keys; 64 MiB of the default budget).
func localTierShare(inMemoryShard bool) int64 {
	if inMemoryShard {
		return 8
	}
	return 4
}

// MemorySplit returns how the memory budget (MemoryMaxBytes, default 256
// MiB) is divided between the in-memory shard and the local tier:
//
//   - the local tier gets LocalTierBytes when set, else 1/8 of the budget
//     with the in-memory shard (32 MiB of the default) and 1/4 with a
//     caller-provided shard such as Redis (64 MiB); 0 when it is disabled;
//   - the in-memory shard gets the rest (224 MiB of the default); 0 when
//     the shard is caller-provided (a Redis shard has its own maxmemory).
//
// Both budgets count keys, values and each structure's per-entry overhead
// (store.MemoryEntryOverhead, the tier's own), so the process's live heap
// stays close to the budget plus a fixed base; the garbage collector's
// headroom comes on top (cmd/cachenode bounds it with the Go memory limit).
func (c Config) MemorySplit() (storeBytes, tierBytes int64) {
	total := c.MemoryMaxBytes
	if total <= 0 {
		total = DefaultMemoryMaxBytes
	}
	switch {
	case c.LocalTierBytes > 0:
		tierBytes = c.LocalTierBytes
	case c.LocalTierBytes == 0:
		tierBytes = total / localTierShare(c.Store == nil)
	}
	if c.Store == nil {
		storeBytes = max(total-tierBytes, 0)
	}
	return storeBytes, tierBytes
}

// ringOptions are the ring's options for this config.
func (c *Config) ringOptions() ring.Options {
	return ring.Options{VNodes: c.VNodes, Hash: c.Hash}
}

// peerAuth is the peer protocol's authentication for this config.
func (c *Config) peerAuth() peer.Auth {
	return peer.Auth{Secret: c.ClusterSecret, Certificate: c.PeerCertificate, CAs: c.PeerCAs}
}

// zeroDefault sets *field to def when it is the zero value.
func zeroDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

func (c *Config) setDefaults() {
	if c.GossipAddr == "" {
		c.GossipAddr = DefaultLoopbackGossipAddr
		if c.peerAuth().Enabled() || c.Insecure {
			c.GossipAddr = DefaultGossipAddr
		}
	}
	if c.PeerAddr == "" {
		if h, p, err := splitHostPort(c.GossipAddr); err == nil {
			if p != 0 {
				p++
			}
			c.PeerAddr = net.JoinHostPort(h, strconv.Itoa(p))
		}
	}
	zeroDefault(&c.WarmKeys, DefaultWarmKeys)
	if c.WarmBytes <= 0 {
		c.WarmBytes = DefaultWarmBytes
	}
	zeroDefault(&c.MaxClockSkew, DefaultMaxClockSkew)
	zeroDefault(&c.Replicas, 1)
	zeroDefault(&c.WriteAcks, WriteAcksAll)
	zeroDefault(&c.MaxKeyBytes, DefaultMaxKeyBytes)
	zeroDefault(&c.MaxValueBytes, DefaultMaxValueBytes)
	zeroDefault(&c.TombstoneTTL, DefaultTombstoneTTL)
	zeroDefault(&c.HandoffWindow, DefaultHandoffWindow)
	zeroDefault(&c.DrainTimeout, DefaultDrainTimeout)
	zeroDefault(&c.LeaveLinger, time.Second)
	zeroDefault(&c.PeerTimeout, DefaultPeerTimeout)
	zeroDefault(&c.SweepInterval, DefaultSweepInterval)
	if c.MemoryMaxBytes <= 0 {
		c.MemoryMaxBytes = DefaultMemoryMaxBytes
	}
	zeroDefault(&c.LocalTierBytes, c.MemoryMaxBytes/localTierShare(c.Store == nil))
	zeroDefault(&c.NearCacheTTL, DefaultNearCacheTTL)
	zeroDefault(&c.NearTrackMaxKeys, DefaultNearTrackMaxKeys)
	zeroDefault(&c.InvalidationWait, DefaultInvalidationWait)
	zeroDefault(&c.LoaderNegativeTTL, DefaultLoaderNegTTL)
	zeroDefault(&c.Logger, slog.Default())
}

func (c *Config) validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name: must not be empty"))
	}
	if c.HTTPAddr != "" {
		if _, p, err := splitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("http-addr %q: %w", c.HTTPAddr, err))
		} else if p == 0 && c.AdvertiseHTTP == "" {
			errs = append(errs, fmt.Errorf("http-addr %q: want the address the HTTP door is bound to, with its port", c.HTTPAddr))
		}
	}
	if _, _, err := splitHostPort(c.GossipAddr); err != nil {
		errs = append(errs, fmt.Errorf("gossip-addr %q: %w", c.GossipAddr, err))
	}
	if _, _, err := splitHostPort(c.PeerAddr); err != nil {
		errs = append(errs, fmt.Errorf("peer-addr %q: %w", c.PeerAddr, err))
	}
	if c.AdvertisePeer != "" {
		if h, p, err := splitHostPort(c.AdvertisePeer); err != nil || h == "" || p == 0 {
			errs = append(errs, fmt.Errorf("advertise-peer %q: want host:port", c.AdvertisePeer))
		}
	}
	if n := len(c.ClusterSecret); n != 0 && n < peer.MinSecretBytes {
		errs = append(errs, fmt.Errorf("cluster secret: %d bytes, want at least %d", n, peer.MinSecretBytes))
	}
	if (c.PeerCertificate == nil) != (c.PeerCAs == nil) {
		errs = append(errs, errors.New("peer TLS: a certificate and a CA pool go together"))
	}
	if c.MaxClockSkew < 0 {
		errs = append(errs, errors.New("max-clock-skew must not be negative"))
	}
	if c.AdvertiseHTTP != "" {
		if h, p, err := splitHostPort(c.AdvertiseHTTP); err != nil || h == "" || p == 0 {
			errs = append(errs, fmt.Errorf("advertise-http %q: want host:port", c.AdvertiseHTTP))
		}
	}
	if c.Replicas < 1 || c.Replicas > replica.MaxReplicas {
		errs = append(errs, fmt.Errorf("replicas: %d, want 1 to %d", c.Replicas, replica.MaxReplicas))
	}
	if _, err := replica.ParseAcks(c.WriteAcks); err != nil {
		errs = append(errs, fmt.Errorf("write-acks: %w", err))
	}
	if c.VNodes < 0 {
		errs = append(errs, fmt.Errorf("vnodes: %d is negative", c.VNodes))
	}
	if c.MaxKeyBytes < 0 || c.MaxValueBytes < 0 {
		errs = append(errs, errors.New("max key/value bytes must not be negative"))
	}
	if n := len(c.GossipKey); n != 0 && n != 16 && n != 24 && n != 32 {
		errs = append(errs, fmt.Errorf("gossip key: %d bytes, want 16, 24 or 32", n))
	}
	if c.TombstoneTTL < 0 || c.HandoffWindow < 0 || c.DrainTimeout < 0 || c.PeerTimeout < 0 || c.MaxTTL < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if _, err := tier.ParsePolicy(c.LocalTierPolicy); err != nil {
		errs = append(errs, fmt.Errorf("local-tier-policy: %q: want lru, fifo or tinylfu", c.LocalTierPolicy))
	}
	if c.TTLJitter < 0 || c.TTLJitter >= 1 {
		errs = append(errs, fmt.Errorf("ttl-jitter: %v, want 0 to less than 1", c.TTLJitter))
	}
	if c.Store == nil && c.LocalTierBytes >= c.MemoryMaxBytes {
		errs = append(errs, fmt.Errorf("local-tier-bytes %d: must be below memory-max-bytes %d, which also holds the in-memory shard",
			c.LocalTierBytes, c.MemoryMaxBytes))
	}
	if c.NearTrackMaxKeys < 0 {
		errs = append(errs, fmt.Errorf("near-track-max-keys: %d is negative", c.NearTrackMaxKeys))
	}
	return errors.Join(errs...)
}

// InsecureError is returned by New when an address other hosts could reach
// would carry gossip or the peer protocol without authentication (no
// cluster secret, no peer certificates, and Insecure not set).
type InsecureError struct {
	// Field is the Config field holding the address (GossipAddr, PeerAddr,
	// AdvertiseAddr, AdvertisePeer).
	Field string
	Addr  string
}

func (e *InsecureError) Error() string {
	return fmt.Sprintf("%s %s reaches beyond loopback, and no cluster secret is set: anyone who can reach it could join the cluster and read or change any key", e.Field, e.Addr)
}

// checkLoopback refuses a non-loopback address when nothing authenticates
// members. host may be a name (resolved by the caller) or an IP.
func (c *Config) checkLoopback(field, addr, host string) error {
	if c.peerAuth().Enabled() || c.Insecure {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	return &InsecureError{Field: field, Addr: addr}
}

// splitHostPort parses host:port where the port is numeric.
func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, port, nil
}

// ParseGossipKey accepts a gossip key file's content: 16, 24 or 32 raw
// bytes, or their base64 encoding (surrounding white space ignored).
func ParseGossipKey(b []byte) ([]byte, error) {
	t := strings.TrimSpace(string(b))
	if k, err := base64.StdEncoding.DecodeString(t); err == nil && validKeyLen(len(k)) {
		return k, nil
	}
	if validKeyLen(len(t)) {
		return []byte(t), nil
	}
	if validKeyLen(len(b)) {
		return b, nil
	}
	return nil, fmt.Errorf("gossip key: want 16, 24 or 32 bytes (raw or base64), got %d bytes", len(t))
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }
