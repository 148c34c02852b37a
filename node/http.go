package node

import (
	"context"
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
	"github.com/peercache/peercache/migrate"
)

// Response headers of the key API.
const (
	hdrOwner   = "X-Peercache-Owner"
	hdrSource  = "X-Peercache-Source"
	hdrVersion = "X-Peercache-Version"
	hdrTTLMs   = "X-Peercache-Ttl-Ms"
	hdrApplied = "X-Peercache-Applied"
	hdrExisted = "X-Peercache-Existed"
)

// maxTTL keeps expiry times far from int64 overflow (about 100 years).
const maxTTL = 100 * 365 * 24 * time.Hour

func (n *Node) routes() http.Handler {
	read, write, admin := always(auth.RoleRead), roleFor(auth.RoleWrite), roleFor(auth.RoleAdmin)
	metricsRole := read
	if n.cfg.PublicMetrics {
		metricsRole = always(auth.RoleNone)
	}
	promh := promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{Registry: n.metrics.reg})
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/cluster", n.instrument("cluster", n.allow(read, false, n.handleCluster)))
	mux.HandleFunc("/v1/leave", n.instrument("leave", n.allow(always(auth.RoleAdmin), true, n.handleLeave)))
	mux.HandleFunc("/v1/status", n.instrument("status", n.allow(read, false, n.handleStatus)))
	mux.HandleFunc("/v1/mode", n.instrument("mode", n.allow(admin, true, n.handleMode)))
	mux.HandleFunc("/v1/ring", n.instrument("ring", n.allow(read, false, n.handleRing)))
	mux.HandleFunc("/v1/warm", n.instrument("warm", n.allow(write, false, n.handleWarm)))
	mux.HandleFunc("/{$}", n.instrument("dashboard", n.allow(read, false, n.handleDashboard)))
	mux.HandleFunc("/ui/", n.instrument("dashboard", n.allow(read, false, n.handleDashboardAsset)))
	mux.HandleFunc("/livez", n.handleLivez)
	mux.HandleFunc("/readyz", n.handleReadyz)
	mux.Handle("/metrics", n.allow(metricsRole, false, promh.ServeHTTP))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, "no route for %s %s; see /v1/keys/{key}, /v1/cluster, /livez, /readyz, /metrics", r.Method, r.URL.Path))
	})
	keys := n.instrument("key", n.allow(write, false, n.handleKey))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Keys are routed before the mux, which would clean "." and ".."
		// out of the path (and redirect): every key, those included,
		// reaches its handler as sent.
		if key, ok := strings.CutPrefix(r.URL.Path, "/v1/keys/"); ok {
			n.ops.keyRequests.add(time.Now())
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

func (n *Node) instrument(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h(sw, r)
		m := methodLabel(r.Method)
		n.metrics.requests.WithLabelValues(route, m, strconv.Itoa(sw.status)).Inc()
		n.metrics.latency.WithLabelValues(route, m).Observe(time.Since(start).Seconds())
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

func writeError(w http.ResponseWriter, e *Error) {
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
	var e *Error
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, errorf(http.StatusNotFound, "key not found"))
	case errors.As(err, &e):
		writeError(w, e)
	default:
		writeError(w, errorf(http.StatusInternalServerError, "%v", err))
	}
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, errorf(http.StatusMethodNotAllowed, "method not allowed; use %s", allow))
}

func writeItem(w http.ResponseWriter, it Item) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set(hdrOwner, it.Owner)
	h.Set(hdrSource, string(it.Source))
	h.Set(hdrVersion, strconv.FormatUint(it.Version, 10))
	if ttl, ok := it.TTL(); ok {
		ms := ttl.Milliseconds()
		if ms < 1 {
			ms = 1
		}
		h.Set(hdrTTLMs, strconv.FormatInt(ms, 10))
	}
	h.Set("Content-Length", strconv.Itoa(len(it.Value)))
	w.WriteHeader(http.StatusOK)
	w.Write(it.Value)
}

// writeWriteResult answers a PUT or DELETE: 204 when it was carried out
// (a delete of a missing key included), 412 when its condition did not hold.
func writeWriteResult(w http.ResponseWriter, m Mutation, res WriteResult) {
	h := w.Header()
	h.Set(hdrOwner, res.Owner)
	h.Set(hdrExisted, boolHeader(res.Existed))
	if !res.Applied && !m.Delete {
		writeError(w, errorf(http.StatusPreconditionFailed, "not written: %s", conditionFailure(m, res)))
		return
	}
	h.Set(hdrApplied, boolHeader(res.Applied))
	h.Set(hdrVersion, strconv.FormatUint(res.Version, 10))
	w.WriteHeader(http.StatusNoContent)
}

func conditionFailure(m Mutation, res WriteResult) string {
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
// such as 30s or 1500ms, or whole seconds), if=absent|present, keepttl=1,
// and (peer API only) expire=1. Any other parameter is refused.
func parseMutation(q url.Values, del, peer bool) (Mutation, *Error) {
	m := Mutation{Delete: del}
	allowed := map[string]bool{"if": true}
	if !del {
		allowed["ttl"], allowed["keepttl"] = true, true
		if peer {
			allowed["expire"] = true
		}
	}
	for k, vs := range q {
		if !allowed[k] {
			return m, errorf(http.StatusBadRequest, "unknown query parameter %q (accepted: %s)", k, strings.Join(sortedKeys(allowed), ", "))
		}
		if len(vs) > 1 {
			return m, errorf(http.StatusBadRequest, "%s given %d times", k, len(vs))
		}
	}
	switch q.Get("if") {
	case "":
	case "absent":
		m.IfAbsent = true
	case "present":
		m.IfPresent = true
	default:
		return m, errorf(http.StatusBadRequest, "if=%q: want absent or present", q.Get("if"))
	}
	for _, flag := range []struct {
		name string
		dst  *bool
	}{{"keepttl", &m.KeepTTL}, {"expire", &m.Expire}} {
		switch q.Get(flag.name) {
		case "":
		case "1", "true":
			*flag.dst = true
		default:
			return m, errorf(http.StatusBadRequest, "%s=%q: want 1", flag.name, q.Get(flag.name))
		}
	}
	if s := q.Get("ttl"); s != "" || q.Has("ttl") {
		d, e := parseTTLValue(s)
		if e != nil {
			return m, e
		}
		m.TTL = d
	}
	if m.KeepTTL && m.TTL > 0 {
		return m, errorf(http.StatusBadRequest, "ttl and keepttl exclude each other")
	}
	return m, nil
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
func parseTTLValue(s string) (time.Duration, *Error) {
	var d time.Duration
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		if secs <= 0 || secs > int64(maxTTL/time.Second) {
			return 0, errorf(http.StatusBadRequest, "ttl %q out of range: want a positive duration up to 100 years", s)
		}
		d = time.Duration(secs) * time.Second
	} else {
		var perr error
		d, perr = time.ParseDuration(s)
		if perr != nil {
			return 0, errorf(http.StatusBadRequest, "ttl %q is not a duration: use e.g. 30s, 1500ms, 2h or whole seconds", s)
		}
		if d <= 0 || d > maxTTL {
			return 0, errorf(http.StatusBadRequest, "ttl %q out of range: want a positive duration up to 100 years", s)
		}
	}
	if d < time.Millisecond {
		return 0, errorf(http.StatusBadRequest, "ttl %q is below the 1ms resolution", s)
	}
	return d, nil
}

func noQuery(q url.Values) *Error {
	for k := range q {
		return errorf(http.StatusBadRequest, "unknown query parameter %q", k)
	}
	return nil
}

// readValue reads a PUT body with a hard cap of MaxValueBytes.
func (n *Node) readValue(w http.ResponseWriter, r *http.Request) ([]byte, *Error) {
	limit := int64(n.cfg.MaxValueBytes)
	if r.ContentLength > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, "value is %d bytes; the limit is %d", r.ContentLength, limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "value exceeds the limit of %d bytes", limit)
		}
		return nil, errorf(http.StatusBadRequest, "reading value: %v", err)
	}
	return b, nil
}

func (n *Node) handleKey(w http.ResponseWriter, r *http.Request) {
	if n.left.Load() {
		writeError(w, retryable(http.StatusServiceUnavailable, "this node has left the cluster; retry on another node"))
		return
	}
	key := r.PathValue("key")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if e := noQuery(r.URL.Query()); e != nil {
			writeError(w, e)
			return
		}
		it, err := n.get(r.Context(), key, false)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeItem(w, it)
	case http.MethodPut, http.MethodDelete:
		m, e := parseMutation(r.URL.Query(), r.Method == http.MethodDelete, false)
		if e != nil {
			writeError(w, e)
			return
		}
		if e := n.checkKey(key); e != nil {
			writeError(w, e)
			return
		}
		if !m.Delete {
			if m.Value, e = n.readValue(w, r); e != nil {
				writeError(w, e)
				return
			}
		}
		res, e := n.write(r.Context(), key, m, false)
		if e != nil {
			writeError(w, e)
			return
		}
		writeWriteResult(w, m, res)
	default:
		methodNotAllowed(w, "GET, HEAD, PUT, DELETE")
	}
}

// MemberInfo describes one member in /v1/cluster.
type MemberInfo struct {
	Name       string `json:"name"`
	GossipAddr string `json:"gossip_addr"`
	HTTPAddr   string `json:"http_addr"`
	State      string `json:"state"`
	Suspect    bool   `json:"suspect"`
	Migrating  bool   `json:"migrating"`
	InRing     bool   `json:"in_ring"`
}

// RingInfo describes the ring snapshot in /v1/cluster.
type RingInfo struct {
	Version  uint64   `json:"version"`
	Members  []string `json:"members"`
	Checksum string   `json:"checksum"`
	VNodes   int      `json:"vnodes"`
}

// ReplicationInfo describes replication in /v1/cluster.
type ReplicationInfo struct {
	Factor    int    `json:"factor"`
	WriteAcks string `json:"write_acks"`
	// UnderReplicated estimates the keys this node holds whose copies on
	// other owners are not yet confirmed (during a re-replication run).
	UnderReplicated int64 `json:"under_replicated"`
	// RepairPending is the number of keys whose copies failed (an owner
	// did not answer) and that the repair path copies again as soon as
	// their owners answer.
	RepairPending int `json:"repair_pending"`
	// Repaired counts the keys the repair path copied since the start.
	Repaired uint64 `json:"repaired"`
}

// ClusterInfo is the /v1/cluster document: this node's view of the cluster.
type ClusterInfo struct {
	Self    string       `json:"self"`
	State   string       `json:"state"`
	Ready   bool         `json:"ready"`
	Ring    RingInfo     `json:"ring"`
	Members []MemberInfo `json:"members"`
	Handoff bool         `json:"handoff_active"`
	// Auth is how members authenticate each other: "secret" (the cluster
	// secret), "mtls" (peer certificates) or "off".
	Auth        string          `json:"auth"`
	Replication ReplicationInfo `json:"replication"`
	Migration   migrate.Status  `json:"migration"`
}

// Cluster returns this node's view of the cluster.
func (n *Node) Cluster() ClusterInfo {
	v := n.view.Load()
	n.metaMu.Lock()
	state := string(n.meta.State)
	n.metaMu.Unlock()
	ci := ClusterInfo{
		Self:  n.cfg.Name,
		State: state,
		Ready: n.Ready(),
		Ring: RingInfo{Version: v.version, Members: v.ring.Members(), VNodes: v.ring.Options().VNodes,
			Checksum: v.checksum},
		Members:     []MemberInfo{},
		Handoff:     n.handoffActive(v),
		Auth:        n.cfg.peerAuth().Mode(),
		Migration:   n.mig.Status(),
		Replication: ReplicationInfo{Factor: n.cfg.Replicas, WriteAcks: n.cfg.WriteAcks},
	}
	ci.Replication.UnderReplicated = n.underReplicated()
	rs := n.repair.stats()
	ci.Replication.RepairPending, ci.Replication.Repaired = rs.Pending, rs.Repaired
	for _, name := range sortedNames(v.members) {
		m := v.members[name]
		ci.Members = append(ci.Members, MemberInfo{
			Name: m.Name, GossipAddr: m.Addr, HTTPAddr: m.Meta.HTTPAddr, State: string(m.Meta.State),
			Suspect: m.Suspect, Migrating: m.Meta.Migrating, InRing: v.ring.Has(m.Name),
		})
	}
	return ci
}

func (n *Node) handleCluster(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	writeJSON(w, http.StatusOK, n.ClusterReport(r.Context()))
}

func (n *Node) handleLivez(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (n *Node) handleReadyz(w http.ResponseWriter, r *http.Request) {
	switch {
	case n.leaving.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unready", "error": "node is leaving the cluster"})
	case !n.ready.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unready", "error": "node has not joined yet or its store does not answer"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// handleLeave starts a graceful leave (as SIGTERM does for cachenode): the
// node hands its keys off, leaves the cluster and stops; Done is closed
// then. It answers 202 at once.
func (n *Node) handleLeave(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	if n.leaving.Load() || n.stopped.Load() {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "already leaving"})
		return
	}
	n.log.Info("leave requested over HTTP", "remote", r.RemoteAddr)
	go n.Stop(context.Background())
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "leaving", "drain_timeout": n.cfg.DrainTimeout.String()})
}

// maxWarmBody bounds a POST /v1/warm body (one key per line).
const maxWarmBody = 4 << 20

// handleWarm loads the keys of the body (one per line) through their owners
// and the read-through origin: POST /v1/warm, answered with the counts.
func (n *Node) handleWarm(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWarmBody))
	if err != nil {
		writeError(w, errorf(http.StatusRequestEntityTooLarge, "warm: the key list exceeds %d bytes; send it in parts", maxWarmBody))
		return
	}
	var keys []string
	for _, line := range strings.Split(string(body), "\n") {
		if k := strings.TrimRight(line, "\r"); k != "" {
			if e := n.checkKey(k); e != nil {
				writeError(w, errorf(http.StatusBadRequest, "warm: line %d: %s", len(keys)+1, e.Message))
				return
			}
			keys = append(keys, k)
		}
	}
	writeJSON(w, http.StatusOK, n.Warm(r.Context(), keys))
}
