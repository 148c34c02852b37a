package httpapi

import (
	"net/http"
	"strconv"

	"github.com/peercache/peercache/internal/glob"
	"github.com/peercache/peercache/kv"
)

// Bounds of GET /v1/scan?count=.
const (
	defaultScanCount = 100
	maxScanCount     = 10000
)

// handleScan answers GET /v1/scan?cursor=C&count=N&match=P: one step of a
// scan of the whole cluster's keys, as Redis' SCAN (node.ScanAll: each
// member in turn scans the keys it owns): about count keys read from
// cursor ("0" starts), those matching the glob pattern, and the cursor of
// the next step ("0": done). A key present throughout is returned at least
// once while the ring stays the same, maybe more than once.
func (s *Server) handleScan(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	q := r.URL.Query()
	for k, vs := range q {
		if k != "cursor" && k != "count" && k != "match" {
			writeError(w, kv.Errorf(http.StatusBadRequest, "unknown query parameter %q (accepted: count, cursor, match)", k))
			return
		}
		if len(vs) > 1 {
			writeError(w, kv.Errorf(http.StatusBadRequest, "%s given %d times", k, len(vs)))
			return
		}
	}
	var cursor uint64
	if c := q.Get("cursor"); c != "" {
		var err error
		if cursor, err = strconv.ParseUint(c, 10, 64); err != nil {
			writeError(w, kv.Errorf(http.StatusBadRequest, "cursor %q: want the decimal cursor the previous step answered (0 starts)", truncate(c, 32)))
			return
		}
	}
	count := defaultScanCount
	if c := q.Get("count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 || n > maxScanCount {
			writeError(w, kv.Errorf(http.StatusBadRequest, "count %q: want 1 to %d", truncate(c, 32), maxScanCount))
			return
		}
		count = n
	}
	match, hasMatch := []byte(q.Get("match")), q.Has("match")
	if limit := s.n.Config().Limits.MaxKeyBytes; len(match) > limit {
		writeError(w, kv.Errorf(http.StatusBadRequest, "match pattern longer than the key limit of %d bytes", limit))
		return
	}
	s.n.CountRequest()
	keys, next, err := s.n.ScanAll(r.Context(), cursor, count)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := keys[:0]
	for _, k := range keys {
		if !hasMatch || glob.Match(match, []byte(k)) {
			out = append(out, k)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"cursor": strconv.FormatUint(next, 10), "keys": out})
}
