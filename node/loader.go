package node

import (
	"net/http"
	"time"

	"github.com/peercache/peercache/internal/origin"
)

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
