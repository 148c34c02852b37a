package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestTierFlags(t *testing.T) {
	var tierBytes int64 // the Config's LocalTierBytes of the last parse
	parse := func(args ...string) (cfgErr error, o options) {
		fs := newFlagSet(&o, io.Discard)
		if err := fs.Parse(append([]string{"--name", "x"}, args...)); err != nil {
			t.Fatal(err)
		}
		cfg, err := o.config(slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil {
			tierBytes = cfg.Tier.Bytes
			o.tier.nearCacheTTL = cfg.Tier.NearTTL
			o.tier.invalidationWait = cfg.Tier.InvalidationWait
			o.tier.localTierPolicy = string(cfg.Tier.Policy)
			if cfg.Loader.Getter != nil {
				o.tier.origin = "set"
			}
		}
		return err, o
	}
	err, o := parse()
	if err != nil || tierBytes != 0 || o.tier.nearCacheTTL != time.Second || o.tier.localTierPolicy != "tinylfu" || o.tier.origin != "" {
		t.Fatalf("defaults: %v %+v", err, o.tier)
	}
	err, o = parse("--local-tier-bytes", "0", "--near-cache-ttl", "0", "--invalidation-wait", "0", "--local-tier-policy", "LRU",
		"--origin", "http://origin:8000/items/{key}", "--ttl-jitter", "0.2")
	if err != nil || tierBytes >= 0 || o.tier.nearCacheTTL >= 0 || o.tier.invalidationWait >= 0 || o.tier.localTierPolicy != "lru" || o.tier.origin != "set" {
		t.Fatalf("0 disables: %v %+v", err, o.tier)
	}
	if err, _ = parse("--local-tier-bytes", "1000"); err != nil || tierBytes != 1000 {
		t.Fatalf("--local-tier-bytes 1000: %v, LocalTierBytes %d", err, tierBytes)
	}
	if err, _ = parse("--local-tier-bytes", "auto"); err != nil || tierBytes != 0 {
		t.Fatalf("--local-tier-bytes auto: %v, LocalTierBytes %d (want 0: the budget's share)", err, tierBytes)
	}
	for _, bad := range [][]string{
		{"--local-tier-policy", "arc"}, {"--local-tier-bytes", "-1"}, {"--ttl-jitter", "1"},
		{"--origin", "http://origin/items"}, {"--origin", "ftp://x/{key}"}, {"--near-cache-ttl", "-1s"},
	} {
		if err, _ := parse(bad...); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(bad[0], "")) && !strings.Contains(err.Error(), "--") {
			t.Errorf("%v accepted (%v)", bad, err)
		}
	}
}
