package warm

import (
	"context"
	"errors"

	"github.com/peercache/peercache/kv"
)

// Result counts what Keys did with a list of keys (the JSON of POST
// /v1/warm and cachenode warm).
type Result struct {
	Keys    int    `json:"keys"`    // keys asked for
	Present int    `json:"present"` // already cached
	Loaded  int    `json:"loaded"`  // loaded through the read-through origin
	Missing int    `json:"missing"` // neither cached nor known to the origin
	Failed  int    `json:"failed"`  // errors (the first is in Error)
	Error   string `json:"error,omitempty"`
}

// Read is the answer to one key of a batch Keys reads: whether the origin
// had to load it, or why it could not be read (kv.ErrNotFound: neither
// cached nor known to the origin).
type Read struct {
	Origin bool
	Err    error
}

// Keys loads keys into the cluster before traffic is switched on, batch
// keys at a time: read reads a batch of distinct keys (each through its
// owner, which loads it from the read-through origin when no shard holds
// it) and answers one Read per key. Repeated keys are read and counted
// once.
func Keys(ctx context.Context, keys []string, batch int, read func(ctx context.Context, keys []string) []Read) Result {
	res := Result{Keys: len(keys)}
	for len(keys) > 0 {
		b := keys[:min(len(keys), batch)]
		keys = keys[len(b):]
		distinct := make([]string, 0, len(b))
		seen := make(map[string]bool, len(b))
		for _, k := range b {
			if !seen[k] {
				seen[k] = true
				distinct = append(distinct, k)
			}
		}
		res.Keys -= len(b) - len(distinct)
		for _, r := range read(ctx, distinct) {
			switch {
			case r.Err == nil && r.Origin:
				res.Loaded++
			case r.Err == nil:
				res.Present++
			case errors.Is(r.Err, kv.ErrNotFound):
				res.Missing++
			default:
				res.Failed++
				if res.Error == "" {
					res.Error = r.Err.Error()
				}
			}
		}
	}
	return res
}
