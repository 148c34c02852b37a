package nodeconfig

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/peercache/peercache/internal/replica"
	"github.com/peercache/peercache/internal/warm"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/tier"
)

// Default returns a Config holding every default a zero field takes. The
// fields whose default depends on other fields stay zero and are derived
// when the node is created (SetDefaults): Gossip.Addr (loopback without a
// cluster secret), Peer.Addr (next to the gossip port) and Tier.Bytes (a
// share of MemoryMaxBytes that depends on the shard).
func Default() Config {
	return Config{
		Peer:           Peer{Timeout: DefaultPeerTimeout, MaxClockSkew: DefaultMaxClockSkew},
		MemoryMaxBytes: DefaultMemoryMaxBytes,
		Replication:    Replication{Factor: 1, WriteAcks: replica.AcksAll},
		Limits:         Limits{MaxKeyBytes: DefaultMaxKeyBytes, MaxValueBytes: DefaultMaxValueBytes},
		Migration: Migration{TombstoneTTL: DefaultTombstoneTTL, HandoffWindow: DefaultHandoffWindow,
			DrainTimeout: DefaultDrainTimeout, LeaveLinger: DefaultLeaveLinger, SweepInterval: DefaultSweepInterval},
		Tier: Tier{Policy: tier.DefaultPolicy, NearTTL: DefaultNearCacheTTL, NearTrackMaxKeys: DefaultNearTrackMaxKeys,
			InvalidationWait: DefaultInvalidationWait, WarmKeys: warm.DefaultKeys, WarmBytes: warm.DefaultBytes},
		Loader: Loader{NegativeTTL: DefaultLoaderNegTTL},
		Logger: slog.Default(),
	}
}

// zeroDefault sets *field to def when it is the zero value.
func zeroDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// SetDefaults fills every zero field with its default (Default), and
// derives the defaults that depend on other fields.
func (c *Config) SetDefaults() {
	d := Default()
	if c.Gossip.Addr == "" {
		c.Gossip.Addr = DefaultLoopbackGossipAddr
		if c.PeerAuth().Enabled() || c.Auth.Insecure {
			c.Gossip.Addr = DefaultGossipAddr
		}
	}
	if c.Peer.Addr == "" {
		if h, p, err := SplitHostPort(c.Gossip.Addr); err == nil {
			if p != 0 {
				p++
			}
			c.Peer.Addr = net.JoinHostPort(h, strconv.Itoa(p))
		}
	}
	zeroDefault(&c.Peer.Timeout, d.Peer.Timeout)
	zeroDefault(&c.Peer.MaxClockSkew, d.Peer.MaxClockSkew)
	if c.MemoryMaxBytes <= 0 {
		c.MemoryMaxBytes = d.MemoryMaxBytes
	}
	zeroDefault(&c.Replication.Factor, d.Replication.Factor)
	zeroDefault(&c.Replication.WriteAcks, d.Replication.WriteAcks)
	zeroDefault(&c.Limits.MaxKeyBytes, d.Limits.MaxKeyBytes)
	zeroDefault(&c.Limits.MaxValueBytes, d.Limits.MaxValueBytes)
	m, dm := &c.Migration, d.Migration
	zeroDefault(&m.TombstoneTTL, dm.TombstoneTTL)
	zeroDefault(&m.HandoffWindow, dm.HandoffWindow)
	zeroDefault(&m.DrainTimeout, dm.DrainTimeout)
	zeroDefault(&m.LeaveLinger, dm.LeaveLinger)
	zeroDefault(&m.SweepInterval, dm.SweepInterval)
	t, dt := &c.Tier, d.Tier
	zeroDefault(&t.Bytes, c.MemoryMaxBytes/localTierShare(c.Store == nil))
	zeroDefault(&t.Policy, dt.Policy)
	zeroDefault(&t.NearTTL, dt.NearTTL)
	zeroDefault(&t.NearTrackMaxKeys, dt.NearTrackMaxKeys)
	zeroDefault(&t.InvalidationWait, dt.InvalidationWait)
	zeroDefault(&t.WarmKeys, dt.WarmKeys)
	if t.WarmBytes <= 0 {
		t.WarmBytes = dt.WarmBytes
	}
	zeroDefault(&c.Loader.NegativeTTL, d.Loader.NegativeTTL)
	zeroDefault(&c.Logger, d.Logger)
}

// localTierShare is the divisor of the memory budget the local tier gets by
// default: 1/8 with the in-memory shard (the tier holds near copies only,
// each kept for at most Tier.NearTTL), 1/4 with another shard (the tier
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
//   - the local tier gets Tier.Bytes when set, else 1/8 of the budget with
//     the in-memory shard (32 MiB of the default) and 1/4 with a
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
	case c.Tier.Bytes > 0:
		tierBytes = c.Tier.Bytes
	case c.Tier.Bytes == 0:
		tierBytes = total / localTierShare(c.Store == nil)
	}
	if c.Store == nil {
		storeBytes = max(total-tierBytes, 0)
	}
	return storeBytes, tierBytes
}

// PeerAuth is the peer protocol's authentication for this config.
func (c *Config) PeerAuth() peer.Auth {
	return peer.Auth{Secret: c.Auth.Secret, Certificate: c.Auth.Certificate, CAs: c.Auth.CAs}
}

// Validate reports every field that is out of range, joined (call it after
// SetDefaults).
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	hostPort := func(name, addr string) {
		if h, p, err := SplitHostPort(addr); err != nil || h == "" || p == 0 {
			bad("%s %q: want host:port", name, addr)
		}
	}
	if c.Name == "" {
		bad("name: must not be empty")
	}
	// door checks a door's bound address and its advertised one.
	door := func(addrFlag, advFlag, kind, addr, adv string) {
		if addr != "" {
			if _, p, err := SplitHostPort(addr); err != nil {
				bad("%s %q: %w", addrFlag, addr, err)
			} else if p == 0 && adv == "" {
				bad("%s %q: want the address the %s door is bound to, with its port", addrFlag, addr, kind)
			}
		}
		if adv != "" {
			hostPort(advFlag, adv)
		}
	}
	door("http-addr", "advertise-http", "HTTP", c.HTTP.Addr, c.HTTP.Advertise)
	door("resp-addr", "resp-advertise-addr", "RESP", c.RESP.Addr, c.RESP.Advertise)
	if _, _, err := SplitHostPort(c.Gossip.Addr); err != nil {
		bad("gossip-addr %q: %w", c.Gossip.Addr, err)
	}
	if _, _, err := SplitHostPort(c.Peer.Addr); err != nil {
		bad("peer-addr %q: %w", c.Peer.Addr, err)
	}
	if c.Peer.Advertise != "" {
		hostPort("advertise-peer", c.Peer.Advertise)
	}
	if n := len(c.Auth.Secret); n != 0 && n < peer.MinSecretBytes {
		bad("cluster secret: %d bytes, want at least %d", n, peer.MinSecretBytes)
	}
	if (c.Auth.Certificate == nil) != (c.Auth.CAs == nil) {
		bad("peer TLS: a certificate and a CA pool go together")
	}
	if n := len(c.Gossip.Key); n != 0 && !validKeyLen(n) {
		bad("gossip key: %d bytes, want 16, 24 or 32", n)
	}
	if n := c.Peer.Conns; n < 0 || n > peer.MaxConnsPerPeer {
		bad("peer-conns: %d, want 1 to %d (0: %d)", n, peer.MaxConnsPerPeer, peer.DefaultConnsPerPeer)
	}
	if c.Peer.MaxClockSkew < 0 {
		bad("max-clock-skew must not be negative")
	}
	if f := c.Replication.Factor; f < 1 || f > replica.MaxReplicas {
		bad("replicas: %d, want 1 to %d", f, replica.MaxReplicas)
	}
	if _, err := replica.ParseAcks(string(c.Replication.WriteAcks)); err != nil {
		bad("write-acks: %w", err)
	}
	if c.Ring.VNodes < 0 {
		bad("vnodes: %d is negative", c.Ring.VNodes)
	}
	if c.Limits.MaxKeyBytes < 0 || c.Limits.MaxValueBytes < 0 {
		bad("max key/value bytes must not be negative")
	}
	m := c.Migration
	if m.TombstoneTTL < 0 || m.HandoffWindow < 0 || m.DrainTimeout < 0 || c.Peer.Timeout < 0 || c.Limits.MaxTTL < 0 {
		bad("durations must not be negative")
	}
	if _, err := tier.ParsePolicy(string(c.Tier.Policy)); err != nil {
		bad("local-tier-policy: %q: want lru, fifo or tinylfu", c.Tier.Policy)
	}
	if c.Loader.TTLJitter < 0 || c.Loader.TTLJitter >= 1 {
		bad("ttl-jitter: %v, want 0 to less than 1", c.Loader.TTLJitter)
	}
	if c.Store == nil && c.Tier.Bytes >= c.MemoryMaxBytes {
		bad("local-tier-bytes %d: must be below memory-max-bytes %d, which also holds the in-memory shard",
			c.Tier.Bytes, c.MemoryMaxBytes)
	}
	if c.Tier.NearTrackMaxKeys < 0 {
		bad("near-track-max-keys: %d is negative", c.Tier.NearTrackMaxKeys)
	}
	return errors.Join(errs...)
}
