package node

import (
	"context"
	"net/http"
	"time"

	"github.com/peercache/peercache/internal/origin"
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

// OriginGetter returns a Getter that reads keys over HTTP from an origin
// (package internal/origin): GET tmpl with "{key}" replaced by the
// path-escaped key. 200: the body is the value, kept for ttl; 404 or 410:
// ErrNotFound; anything else (or a body over maxBytes, 0: the default
// MaxValueBytes): an error, which clients see as 502.
func OriginGetter(tmpl string, ttl time.Duration, client *http.Client, maxBytes int) (Getter, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxValueBytes
	}
	g, err := origin.HTTP(tmpl, ttl, client, maxBytes)
	if err != nil {
		return nil, err
	}
	return Getter(g), nil
}
