package main

import (
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/tier"
)

// tierOptions are the local tier, near cache and read-through flags.
type tierOptions struct {
	localTierBytes    autoBytes
	localTierPolicy   string
	nearCacheTTL      time.Duration
	invalidationWait  time.Duration
	origin            string
	originTTL         time.Duration
	originNegativeTTL time.Duration
	originTimeout     time.Duration
	ttlJitter         float64
	warmKeys          int
	warmBytes         int64
}

func addTierFlags(fs *flag.FlagSet, o *tierOptions) {
	def := node.DefaultConfig().Tier
	defLoader := node.DefaultConfig().Loader
	fs.Var(&o.localTierBytes, "local-tier-bytes", "byte budget of the in-process local tier (near-cache copies, and own keys with a Redis shard), part of --memory-max-bytes; auto: 1/8 of it with the in-memory shard, 1/4 with a Redis shard; 0 disables the tier")
	fs.StringVar(&o.localTierPolicy, "local-tier-policy", string(tier.DefaultPolicy), "local tier eviction policy: tinylfu, lru or fifo")
	fs.DurationVar(&o.nearCacheTTL, "near-cache-ttl", def.NearTTL, "longest a node keeps a copy of a value another node owns (owners invalidate copies on writes); 0 disables the near cache")
	fs.DurationVar(&o.invalidationWait, "invalidation-wait", def.InvalidationWait, "how long a write waits for near copies on other nodes to be invalidated before it is acknowledged; 0: do not wait")
	fs.StringVar(&o.origin, "origin", "", "read-through origin URL template, e.g. http://origin/items/{key}: the owner of a missing key GETs it (200: cached with --origin-ttl, 404: remembered as absent for --origin-negative-ttl, else 502)")
	fs.DurationVar(&o.originTTL, "origin-ttl", 5*time.Minute, "TTL of values loaded from --origin (0: no expiry)")
	fs.DurationVar(&o.originNegativeTTL, "origin-negative-ttl", defLoader.NegativeTTL, "how long a key the origin answered 404 for is answered 404 without asking again (0: not remembered)")
	fs.DurationVar(&o.originTimeout, "origin-timeout", 10*time.Second, "timeout of each request to --origin")
	fs.IntVar(&o.warmKeys, "warm-keys", def.WarmKeys, "after a ring change, send each new owner up to this many of the hottest local copies of its keys, to warm its local tier (0: no warm-up)")
	fs.Int64Var(&o.warmBytes, "warm-bytes", def.WarmBytes, "byte bound of that warm-up (keys and values)")
	fs.Float64Var(&o.ttlJitter, "ttl-jitter", 0, "shorten TTLs of loaded values by a random fraction up to this (0 to <1), so keys loaded together do not expire together")
}

// apply sets the tier fields of cfg; flag value 0 means off where the
// Config field uses negative for off.
func (o tierOptions) apply(cfg *node.Config, maxValueBytes int) error {
	switch lt := o.localTierBytes; {
	case !lt.set:
		cfg.Tier.Bytes = 0 // its share of the memory budget
	case lt.n < 0:
		return fmt.Errorf("--local-tier-bytes %d: must not be negative (0 disables)", lt.n)
	case lt.n == 0:
		cfg.Tier.Bytes = -1
	default:
		cfg.Tier.Bytes = lt.n
	}
	p, err := tier.ParsePolicy(o.localTierPolicy)
	if err != nil {
		return fmt.Errorf("--local-tier-policy %q: want tinylfu, lru or fifo", o.localTierPolicy)
	}
	cfg.Tier.Policy = p
	if o.nearCacheTTL < 0 || o.invalidationWait < 0 || o.originTTL < 0 || o.originNegativeTTL < 0 || o.originTimeout < 0 {
		return fmt.Errorf("--near-cache-ttl, --invalidation-wait, --origin-ttl, --origin-negative-ttl and --origin-timeout must not be negative")
	}
	cfg.Tier.NearTTL = offIfZero(o.nearCacheTTL)
	cfg.Tier.InvalidationWait = offIfZero(o.invalidationWait)
	cfg.Loader.NegativeTTL = offIfZero(o.originNegativeTTL)
	if o.ttlJitter < 0 || o.ttlJitter >= 1 {
		return fmt.Errorf("--ttl-jitter %v: want 0 to less than 1", o.ttlJitter)
	}
	cfg.Loader.TTLJitter = o.ttlJitter
	if o.warmKeys < 0 || o.warmBytes <= 0 {
		return fmt.Errorf("--warm-keys must not be negative (0 disables) and --warm-bytes must be positive")
	}
	cfg.Tier.WarmKeys, cfg.Tier.WarmBytes = o.warmKeys, o.warmBytes
	if o.warmKeys == 0 {
		cfg.Tier.WarmKeys = -1
	}
	if o.origin != "" {
		g, err := node.OriginGetter(o.origin, o.originTTL, &http.Client{Timeout: o.originTimeout}, maxValueBytes)
		if err != nil {
			return fmt.Errorf("--origin: %w", err)
		}
		cfg.Loader.Getter = g
	}
	return nil
}

// autoBytes is a byte count flag whose default is "auto" (not set).
type autoBytes struct {
	n   int64
	set bool
}

// String returns the value, or "auto" when not set.
func (b *autoBytes) String() string {
	if b == nil || !b.set {
		return "auto"
	}
	return strconv.FormatInt(b.n, 10)
}

// Set parses "auto" or a number of bytes.
func (b *autoBytes) Set(s string) error {
	if s == "auto" {
		*b = autoBytes{}
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("want a number of bytes or auto")
	}
	*b = autoBytes{n: n, set: true}
	return nil
}

func offIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
