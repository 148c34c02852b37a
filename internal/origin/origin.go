// Package origin reads keys from an HTTP origin for the read-through
// loader (cachenode --origin): GET of a URL template with the key in it.
// It knows nothing of nodes or shards: it answers a value and how long to
// keep it, kv.ErrNotFound, or an error.
package origin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/peercache/peercache/kv"
)

// HTTP returns a function that loads a key over HTTP: GET tmpl with
// "{key}" replaced by the path-escaped key. 200: the body is the value,
// kept for ttl; 404 or 410: kv.ErrNotFound; anything else (or a body over
// maxBytes): an error. A nil client is one with a 10 s timeout.
func HTTP(tmpl string, ttl time.Duration, client *http.Client, maxBytes int) (func(ctx context.Context, key string) ([]byte, time.Duration, error), error) {
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
			return nil, 0, kv.ErrNotFound
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
