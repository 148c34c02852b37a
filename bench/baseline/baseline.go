// Package baseline holds the HTTP servers peercache's benchmarks measure
// themselves against (bench/run.sh, `cachenode bench-baseline`):
//
//   - Bare: a plain net/http server answering GET/PUT /v1/keys/{key} from a
//     map: the HTTP ceiling of this machine, with nothing a cache must do
//     (no routing, versions, expiry, metrics).
//   - NaiveProxy: an httputil.ReverseProxy in front of another server: the
//     cost of one forwarding hop done simply, to compare with a peercache
//     node forwarding a read to the key's owner.
//
// Both speak the same URL shape as a node's HTTP API, so the load tool
// (`cachenode bench --target http`) can hit any of them.
package baseline

import (
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
)

// Bare is the bare net/http baseline: a map of values behind an RWMutex.
type Bare struct {
	mu   sync.RWMutex
	vals map[string][]byte
	max  int64
}

// NewBare returns a Bare server preloaded with keys prefix+"0" ..
// prefix+strconv.Itoa(n-1), each holding value.
func NewBare(prefix string, n int, value []byte) *Bare {
	b := &Bare{vals: make(map[string][]byte, n), max: 1 << 20}
	for i := 0; i < n; i++ {
		b.vals[prefix+strconv.Itoa(i)] = value
	}
	return b
}

// Handler serves GET/HEAD/PUT/DELETE /v1/keys/{key}.
func (b *Bare) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/keys/{key...}", b.serveKey)
	return mux
}

func (b *Bare) serveKey(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		b.mu.RLock()
		v, ok := b.vals[key]
		b.mu.RUnlock()
		if !ok {
			http.Error(w, `{"error": "key not found"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(v)))
		w.Write(v)
	case http.MethodPut:
		v, err := io.ReadAll(http.MaxBytesReader(w, r.Body, b.max))
		if err != nil {
			http.Error(w, `{"error": "bad body"}`, http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.vals[key] = v
		b.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		b.mu.Lock()
		delete(b.vals, key)
		b.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
		http.Error(w, `{"error": "method not allowed"}`, http.StatusMethodNotAllowed)
	}
}

// NaiveProxy returns the simplest reverse proxy to upstream (host:port):
// httputil.ReverseProxy with a transport whose idle pool is sized for
// maxConns concurrent requests (the default of 2 idle connections per host
// would measure connection churn rather than the hop).
func NaiveProxy(upstream string, maxConns int) http.Handler {
	u := &url.URL{Scheme: "http", Host: upstream}
	p := httputil.NewSingleHostReverseProxy(u)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = max(maxConns, 100)
	t.MaxIdleConnsPerHost = max(maxConns, 2)
	p.Transport = t
	return p
}
