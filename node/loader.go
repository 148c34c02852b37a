package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
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
