package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/peercache/peercache/auth"
	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/node"
)

// Response headers of the key API (see the README for what each means).
const (
	HeaderOwner   = "X-Peercache-Owner"
	HeaderSource  = "X-Peercache-Source"
	HeaderVersion = "X-Peercache-Version"
	HeaderTTLMs   = "X-Peercache-Ttl-Ms"
	HeaderApplied = "X-Peercache-Applied"
	HeaderExisted = "X-Peercache-Existed"
)

// maxTTL keeps expiry times far from int64 overflow (about 100 years).
const maxTTL = 100 * 365 * 24 * time.Hour

// Bounds of /v1/ring?segments=.
const (
	defaultRingSegments = 360
	maxRingSegments     = 4096
)

func (s *Server) routes() http.Handler {
	read, write, admin := always(auth.RoleRead), roleFor(auth.RoleWrite), roleFor(auth.RoleAdmin)
	metricsRole := read
	if s.cfg.PublicMetrics {
		metricsRole = always(auth.RoleNone)
	}
	promh := promhttp.HandlerFor(s.n.Registry(), promhttp.HandlerOpts{Registry: s.n.Registry()})
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/cluster", s.instrument("cluster", s.allow(read, false, s.handleCluster)))
	mux.HandleFunc("/v1/leave", s.instrument("leave", s.allow(always(auth.RoleAdmin), true, s.handleLeave)))
	mux.HandleFunc("/v1/status", s.instrument("status", s.allow(read, false, s.handleStatus)))
	mux.HandleFunc("/v1/mode", s.instrument("mode", s.allow(admin, true, s.handleMode)))
	mux.HandleFunc("/v1/ring", s.instrument("ring", s.allow(read, false, s.handleRing)))
	mux.HandleFunc("/v1/warm", s.instrument("warm", s.allow(write, false, s.handleWarm)))
	mux.HandleFunc("/v1/mget", s.instrument("mget", s.allow(read, false, s.handleMget)))
	mux.HandleFunc("/v1/mset", s.instrument("mset", s.allow(write, false, s.handleMset)))
	mux.HandleFunc("/v1/scan", s.instrument("scan", s.allow(read, false, s.handleScan)))
	mux.HandleFunc("/{$}", s.instrument("dashboard", s.allow(read, false, s.handleDashboard)))
	mux.HandleFunc("/ui/", s.instrument("dashboard", s.allow(read, false, s.handleDashboardAsset)))
	mux.HandleFunc("/livez", s.handleLivez)
	mux.HandleFunc("/readyz", s.handleReadyz)
	mux.Handle("/metrics", s.allow(metricsRole, false, promh.ServeHTTP))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, kv.Errorf(http.StatusNotFound, "no route for %s %s; see /v1/keys/{key}, /v1/mget, /v1/mset, /v1/scan, /v1/cluster, /livez, /readyz, /metrics", r.Method, r.URL.Path))
	})
	keys := s.instrument("key", s.allow(write, false, s.handleKey))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Keys are routed before the mux, which would clean "." and ".."
		// out of the path (and redirect): every key, those included,
		// reaches its handler as sent.
		if key, ok := strings.CutPrefix(r.URL.Path, "/v1/keys/"); ok {
			s.n.CountRequest()
			r.SetPathValue("key", key)
			keys(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// statusWriter records the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *Server) instrument(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h(sw, r)
		m := methodLabel(r.Method)
		s.metrics.requests.WithLabelValues(route, m, strconv.Itoa(sw.status)).Inc()
		s.metrics.latency.WithLabelValues(route, m).Observe(time.Since(start).Seconds())
	}
}

// methodLabel bounds the method label to the methods the API knows: any
// other string a client sends would make a metric series of its own.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *node.Error) {
	if e.Retryable && e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	body := map[string]string{"error": e.Message}
	if e.Owner != "" {
		body["owner"] = e.Owner
	}
	writeJSON(w, e.Status, body)
}

// writeErr renders any error from the request path.
func writeErr(w http.ResponseWriter, err error) {
	var e *node.Error
	if !errors.Is(err, node.ErrNotFound) && errors.As(err, &e) {
		writeError(w, e) // with its Retry-After and owner
		return
	}
	status, msg := errStatus(err)
	writeError(w, kv.Errorf(status, "%s", msg))
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, kv.Errorf(http.StatusMethodNotAllowed, "method not allowed; use %s", allow))
}

func writeItem(w http.ResponseWriter, it node.Item) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set(HeaderOwner, it.Owner)
	h.Set(HeaderSource, string(it.Source))
	h.Set(HeaderVersion, strconv.FormatUint(it.Version, 10))
	if ms, ok := ttlMs(it); ok {
		h.Set(HeaderTTLMs, strconv.FormatInt(ms, 10))
	}
	h.Set("Content-Length", strconv.Itoa(len(it.Value)))
	w.WriteHeader(http.StatusOK)
	w.Write(it.Value)
}

// ttlMs is the item's remaining lifetime in ms, at least 1 (ok false: no
// expiry), as X-Peercache-Ttl-Ms and a batch's ttl_ms report it.
func ttlMs(it node.Item) (int64, bool) {
	ttl, ok := it.TTL()
	return max(ttl.Milliseconds(), 1), ok
}

// leftError is the answer of a key route on a node that has left.
func leftError() *node.Error {
	return kv.Retryable(http.StatusServiceUnavailable, "this node has left the cluster; retry on another node")
}

// writeWriteResult answers a PUT or DELETE: 204 when it was carried out
// (a delete of a missing key included), 412 when its condition did not hold.
func writeWriteResult(w http.ResponseWriter, m node.Mutation, res node.WriteResult) {
	h := w.Header()
	h.Set(HeaderOwner, res.Owner)
	h.Set(HeaderExisted, boolHeader(res.Existed))
	if !res.Applied && !m.Delete {
		writeError(w, kv.Errorf(http.StatusPreconditionFailed, "not written: %s", conditionFailure(m, res)))
		return
	}
	h.Set(HeaderApplied, boolHeader(res.Applied))
	h.Set(HeaderVersion, strconv.FormatUint(res.Version, 10))
	w.WriteHeader(http.StatusNoContent)
}

func conditionFailure(m node.Mutation, res node.WriteResult) string {
	switch {
	case m.IfAbsent:
		return "the key exists (if=absent)"
	case m.IfPresent:
		return "the key does not exist (if=present)"
	default:
		return "the key does not exist"
	}
}

func boolHeader(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// parseMutation reads the query of a PUT or DELETE: ttl (a Go duration
// such as 30s or 1500ms, or whole seconds) or expire_at (an instant),
// if=absent|present and keepttl=1. Any other parameter is refused.
func parseMutation(q url.Values, del bool) (node.Mutation, *node.Error) {
	m := node.Mutation{Delete: del}
	allowed := map[string]bool{"if": true}
	if !del {
		allowed["ttl"], allowed["keepttl"], allowed["expire_at"] = true, true, true
	}
	for k, vs := range q {
		if !allowed[k] {
			return m, kv.Errorf(http.StatusBadRequest, "unknown query parameter %q (accepted: %s)", k, strings.Join(sortedKeys(allowed), ", "))
		}
		if len(vs) > 1 {
			return m, kv.Errorf(http.StatusBadRequest, "%s given %d times", k, len(vs))
		}
	}
	switch q.Get("if") {
	case "":
	case "absent":
		m.IfAbsent = true
	case "present":
		m.IfPresent = true
	default:
		return m, kv.Errorf(http.StatusBadRequest, "if=%q: want absent or present", q.Get("if"))
	}
	switch q.Get("keepttl") {
	case "":
	case "1", "true":
		m.KeepTTL = true
	default:
		return m, kv.Errorf(http.StatusBadRequest, "keepttl=%q: want 1", q.Get("keepttl"))
	}
	if s := q.Get("ttl"); s != "" || q.Has("ttl") {
		d, e := parseTTLValue(s)
		if e != nil {
			return m, e
		}
		m.TTL = d
	}
	if q.Has("expire_at") {
		at, e := parseInstant(q.Get("expire_at"))
		if e != nil {
			return m, e
		}
		m.ExpireAt = at
	}
	if n := boolCount(m.KeepTTL, m.TTL > 0, !m.ExpireAt.IsZero()); n > 1 {
		return m, kv.Errorf(http.StatusBadRequest, "ttl, expire_at and keepttl exclude each other")
	}
	return m, nil
}

func boolCount(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// parseInstant reads an absolute expiry: Unix milliseconds (as Redis'
// PXAT) or an RFC 3339 time, after 1970 and within 100 years. One already
// past is accepted: the key ends absent, as in Redis.
func parseInstant(s string) (time.Time, *node.Error) {
	var at time.Time
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		at = time.UnixMilli(ms)
	} else if at, err = time.Parse(time.RFC3339Nano, s); err != nil {
		return at, kv.Errorf(http.StatusBadRequest, "expire_at %q: want Unix milliseconds or an RFC 3339 time such as 2030-01-02T15:04:05Z", truncate(s, 64))
	}
	if at.UnixMilli() <= 0 || time.Until(at) > maxTTL {
		return at, kv.Errorf(http.StatusBadRequest, "expire_at %q out of range: want an instant after 1970 and within 100 years", truncate(s, 64))
	}
	return at.Truncate(time.Millisecond), nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// parseTTLValue reads a ttl: a Go duration, or whole seconds.
func parseTTLValue(s string) (time.Duration, *node.Error) {
	var d time.Duration
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		if secs <= 0 || secs > int64(maxTTL/time.Second) {
			return 0, kv.Errorf(http.StatusBadRequest, "ttl %q out of range: want a positive duration up to 100 years", s)
		}
		d = time.Duration(secs) * time.Second
	} else {
		var perr error
		d, perr = time.ParseDuration(s)
		if perr != nil {
			return 0, kv.Errorf(http.StatusBadRequest, "ttl %q is not a duration: use e.g. 30s, 1500ms, 2h or whole seconds", s)
		}
		if d <= 0 || d > maxTTL {
			return 0, kv.Errorf(http.StatusBadRequest, "ttl %q out of range: want a positive duration up to 100 years", s)
		}
	}
	if d < time.Millisecond {
		return 0, kv.Errorf(http.StatusBadRequest, "ttl %q is below the 1ms resolution", s)
	}
	return d, nil
}

func noQuery(q url.Values) *node.Error {
	for k := range q {
		return kv.Errorf(http.StatusBadRequest, "unknown query parameter %q", k)
	}
	return nil
}

// readValue reads a PUT body with a hard cap of MaxValueBytes.
func (s *Server) readValue(w http.ResponseWriter, r *http.Request) ([]byte, *node.Error) {
	limit := int64(s.maxValue)
	if r.ContentLength > limit {
		return nil, kv.Errorf(http.StatusRequestEntityTooLarge, "value is %d bytes; the limit is %d", r.ContentLength, limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, kv.Errorf(http.StatusRequestEntityTooLarge, "value exceeds the limit of %d bytes", limit)
		}
		return nil, kv.Errorf(http.StatusBadRequest, "reading value: %v", err)
	}
	return b, nil
}

func (s *Server) handleKey(w http.ResponseWriter, r *http.Request) {
	if s.n.HasLeft() {
		writeError(w, leftError())
		return
	}
	key := r.PathValue("key")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if e := noQuery(r.URL.Query()); e != nil {
			writeError(w, e)
			return
		}
		it, err := s.n.Get(r.Context(), key)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeItem(w, it)
	case http.MethodPut, http.MethodDelete:
		m, e := parseMutation(r.URL.Query(), r.Method == http.MethodDelete)
		if e != nil {
			writeError(w, e)
			return
		}
		if err := s.n.CheckKey(key); err != nil {
			writeErr(w, err)
			return
		}
		if !m.Delete {
			if m.Value, e = s.readValue(w, r); e != nil {
				writeError(w, e)
				return
			}
		}
		res, err := s.n.Write(r.Context(), key, m)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeWriteResult(w, m, res)
	case http.MethodPost:
		s.handleKeyOp(w, r, key)
	default:
		methodNotAllowed(w, "GET, HEAD, PUT, DELETE, POST")
	}
}

// keyOpNames lists what POST /v1/keys/{key}/{op} takes, for its errors.
const keyOpNames = "incr, incrbyfloat, append, expire, persist or getdel"

// handleKeyOp answers POST /v1/keys/{key}/{op}: a read-modify-write that
// the key's owner carries out atomically. incr?by=N (default 1),
// incrbyfloat?by=F and append (the suffix as the body) answer the new
// value, as a GET; getdel answers the value it deleted; expire?ttl=D and
// persist change only the key's expiry and answer 204 (404: no such key).
// The path's last segment names the operation, so a key may itself hold
// slashes.
func (s *Server) handleKeyOp(w http.ResponseWriter, r *http.Request, path string) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		writeError(w, kv.Errorf(http.StatusBadRequest, "POST needs an operation: /v1/keys/{key}/{op} with op one of %s", keyOpNames))
		return
	}
	key, op, q := path[:i], path[i+1:], r.URL.Query()
	param := "" // the operation's own query parameter
	switch {
	case op == "incr" || op == "incrbyfloat":
		param = "by"
	case op == "expire" && q.Has("expire_at"):
		param = "expire_at"
	case op == "expire":
		param = "ttl"
	}
	arg, given := q.Get(param), param != "" && q.Has(param)
	if given {
		q.Del(param)
	}
	if e := noQuery(q); e != nil {
		writeError(w, e)
		return
	}
	var m node.Mutation
	switch op {
	case "incr":
		if !given {
			arg = "1"
		}
		m = node.Mutation{Op: node.OpIncrBy, Value: []byte(arg)}
	case "incrbyfloat":
		m = node.Mutation{Op: node.OpIncrByFloat, Value: []byte(arg)}
	case "append":
		v, e := s.readValue(w, r)
		if e != nil {
			writeError(w, e)
			return
		}
		m = node.Mutation{Op: node.OpAppend, Value: v}
	case "expire":
		if !given {
			writeError(w, kv.Errorf(http.StatusBadRequest, "expire needs ?ttl= (a Go duration such as 30s, or whole seconds) or ?expire_at= (an instant)"))
			return
		}
		m = node.Mutation{Expire: true}
		var e *node.Error
		if param == "expire_at" {
			m.ExpireAt, e = parseInstant(arg)
		} else {
			m.TTL, e = parseTTLValue(arg)
		}
		if e != nil {
			writeError(w, e)
			return
		}
	case "persist":
		m = node.Mutation{Expire: true}
	case "getdel":
		m = node.Mutation{Op: node.OpGetDel}
	default:
		writeError(w, kv.Errorf(http.StatusBadRequest, "unknown operation %q: want %s", truncate(op, 64), keyOpNames))
		return
	}
	if err := s.n.CheckKey(key); err != nil {
		writeErr(w, err)
		return
	}
	res, err := s.n.Write(r.Context(), key, m)
	switch {
	case err != nil:
		writeErr(w, err)
	case m.Expire && !res.Applied, m.Op == node.OpGetDel && !res.Existed:
		w.Header().Set(HeaderOwner, res.Owner)
		writeError(w, kv.Errorf(http.StatusNotFound, "key not found"))
	case m.Expire:
		writeWriteResult(w, m, res)
	default:
		writeItem(w, res.Item)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
