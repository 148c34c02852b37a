package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/peercache/peercache/tier"
)

// Getter loads a value that is in no shard (read-through, as groupcache's
// Getter): it returns the value and how long to keep it (0: no expiry),
// or ErrNotFound when the origin has no such key, or another error.
//
// Only a key's owner calls it, once for all concurrent misses of the key
// on that node (so once cluster-wide for a cold key), and writes the value
// through the ordinary owner write path (versioned, replicated, only if the
// key is still absent). A key the origin does not have is remembered in
// the owner's local tier for Config.LoaderNegativeTTL.
type Getter func(ctx context.Context, key string) (value []byte, ttl time.Duration, err error)

// load calls the Getter for key (a miss at its owner) and stores the
// value. g and ep are the key's guard and the tier epoch from before the
// shard read that missed.
func (n *Node) load(ctx context.Context, v *view, key string, g, ep uint64) (Item, error) {
	val, ttl, err := n.cfg.Getter(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		n.reads.loads[1].Add(1)
		if t := n.reads.tier; t != nil && n.cfg.LoaderNegativeTTL > 0 {
			neg := n.jitter(n.cfg.LoaderNegativeTTL)
			t.fill(key, tier.Entry{Expires: time.Now().Add(neg), Tag: tagOf(ep, tagNegative)}, g)
		}
		return Item{}, ErrNotFound
	case err != nil:
		n.reads.loads[2].Add(1)
		return Item{}, errorf(http.StatusBadGateway, "loading the key from the origin failed: %v", err)
	case len(val) > n.cfg.MaxValueBytes:
		n.reads.loads[2].Add(1)
		return Item{}, errorf(http.StatusBadGateway, "the origin's value is %d bytes; the limit is %d", len(val), n.cfg.MaxValueBytes)
	}
	n.reads.loads[0].Add(1)
	if ttl < 0 {
		ttl = 0
	}
	if ttl > 0 {
		ttl = max(n.jitter(ttl), time.Millisecond)
		if n.cfg.MaxTTL > 0 {
			ttl = min(ttl, n.cfg.MaxTTL)
		}
	}
	// The key is absent, so no node holds a copy to invalidate; the nodes
	// that asked keep their fetch records for later writes, and get this
	// very value.
	res, werr := n.ownerWrite(ctx, key, Mutation{Value: val, TTL: ttl, IfAbsent: true}, true)
	if werr != nil {
		return Item{}, werr
	}
	if !res.Applied { // written meanwhile: that write wins
		return n.shardGet(ctx, v, key)
	}
	it := res.Item
	it.Value, it.Source = val, SourceOrigin
	return it, nil
}

// jitter shortens d by a random fraction of up to Config.TTLJitter, so
// that keys written together do not all expire together.
func (n *Node) jitter(d time.Duration) time.Duration {
	if n.cfg.TTLJitter <= 0 || d <= 0 {
		return d
	}
	return d - time.Duration(rand.Float64()*n.cfg.TTLJitter*float64(d))
}

// OriginGetter returns a Getter that reads keys over HTTP from an origin:
// GET tmpl with "{key}" replaced by the path-escaped key. 200: the body is
// the value, kept for ttl; 404 or 410: ErrNotFound; anything else (or a
// body over maxBytes): an error, which clients see as 502.
func OriginGetter(tmpl string, ttl time.Duration, client *http.Client, maxBytes int) (Getter, error) {
	if !strings.Contains(tmpl, "{key}") {
		return nil, fmt.Errorf("origin %q: the URL template must contain {key}", tmpl)
	}
	u, err := url.Parse(strings.ReplaceAll(tmpl, "{key}", "k"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("origin %q: want an http(s) URL template such as http://origin/items/{key}", tmpl)
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxValueBytes
	}
	return func(ctx context.Context, key string) ([]byte, time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.ReplaceAll(tmpl, "{key}", url.PathEscape(key)), nil)
		if err != nil {
			return nil, 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusNotFound, http.StatusGone:
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			return nil, 0, ErrNotFound
		default:
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			return nil, 0, fmt.Errorf("origin answered %s", resp.Status)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxBytes)+1))
		if err != nil {
			return nil, 0, fmt.Errorf("reading the origin's answer: %w", err)
		}
		if len(b) > maxBytes {
			return nil, 0, fmt.Errorf("the origin's value exceeds %d bytes", maxBytes)
		}
		return b, ttl, nil
	}, nil
}
