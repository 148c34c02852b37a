package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/peercache/peercache/internal/wire"
	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/store"
)

// Peer API: routes under /internal/v1/ are for cluster members only. Every
// request carries the sender's name (a current member) and cluster label.
const (
	hdrFrom    = "X-Peercache-From"
	hdrCluster = "X-Peercache-Cluster"
	hdrOwner   = "X-Peercache-Owner"
	hdrSource  = "X-Peercache-Source"
	hdrVersion = "X-Peercache-Version"
	hdrTTLMs   = "X-Peercache-Ttl-Ms"
	hdrApplied = "X-Peercache-Applied"
	// hdrDeadline carries the sender's deadline (Unix ms): a forwarded write
	// that arrives, or would be applied, after it is refused.
	hdrDeadline = "X-Peercache-Deadline"
	hdrExisted  = "X-Peercache-Existed"
	// hdrReplicaRead asks a replica to answer from its own shard because
	// the primary could not be reached.
	hdrReplicaRead = "X-Peercache-Replica-Read"

	// maxImportBody bounds one import request; the sender splits larger batches.
	maxImportBody = 32 << 20
)

func (n *Node) peerURL(addr, path string) string {
	return "http://" + addr + path
}

func (n *Node) newPeerRequest(ctx context.Context, method, addr, path string, body []byte) (*http.Request, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.PeerTimeout)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.peerURL(addr, path), rd)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req.Header.Set(hdrFrom, n.cfg.Name)
	req.Header.Set(hdrCluster, n.cfg.ClusterLabel)
	if dl, ok := ctx.Deadline(); ok {
		req.Header.Set(hdrDeadline, strconv.FormatInt(dl.UnixMilli(), 10))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	return req, cancel, nil
}

// peerDo sends a request to member name and returns status, headers and body
// (read up to limit bytes). hdr holds extra header name/value pairs.
func (n *Node) peerDo(ctx context.Context, v *view, name, method, path string, body []byte, limit int64, hdr ...string) (int, http.Header, []byte, *Error) {
	m, ok := v.members[name]
	if !ok || m.Meta.HTTPAddr == "" {
		return 0, nil, nil, retryable(http.StatusServiceUnavailable, "owner %s is not a known member", name)
	}
	req, cancel, err := n.newPeerRequest(ctx, method, m.Meta.HTTPAddr, path, body)
	if err != nil {
		return 0, nil, nil, errorf(http.StatusInternalServerError, "building peer request: %v", err)
	}
	defer cancel()
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := n.client.Do(req)
	if err != nil {
		n.metrics.peerErrors.Inc()
		e := retryable(http.StatusServiceUnavailable, "owner %s (%s) unreachable: %v", name, m.Meta.HTTPAddr, err)
		e.unreachable = true
		return 0, nil, nil, e
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		n.metrics.peerErrors.Inc()
		return 0, nil, nil, retryable(http.StatusServiceUnavailable, "reading answer from %s: %v", name, err)
	}
	if int64(len(b)) > limit {
		return 0, nil, nil, errorf(http.StatusBadGateway, "answer from %s exceeds %d bytes", name, limit)
	}
	if resp.StatusCode == http.StatusForbidden && (n.left.Load() || n.leaving.Load()) {
		// This node has left: members no longer take its calls.
		return 0, nil, nil, retryable(http.StatusServiceUnavailable, "this node has left the cluster; retry on another node")
	}
	return resp.StatusCode, resp.Header, b, nil
}

// peerError turns a peer's JSON error answer into an *Error.
func peerError(name string, status int, body []byte) *Error {
	var je struct {
		Error string `json:"error"`
		Owner string `json:"owner"`
	}
	if json.Unmarshal(body, &je) != nil || je.Error == "" {
		je.Error = fmt.Sprintf("peer %s answered %d", name, status)
	}
	return &Error{Status: status, Message: je.Error, Owner: je.Owner,
		Retryable: status == http.StatusMisdirectedRequest || status == http.StatusServiceUnavailable}
}

func keyPath(prefix, key string) string {
	return prefix + url.PathEscape(key)
}

func (n *Node) peerGet(ctx context.Context, v *view, owner, key string) (Item, error) {
	n.metrics.forwarded.WithLabelValues("get").Inc()
	return n.peerRead(ctx, v, owner, key, SourcePeer)
}

// peerReplicaGet reads key from replica's shard (the primary is unreachable).
func (n *Node) peerReplicaGet(ctx context.Context, v *view, replica, key string) (Item, error) {
	return n.peerRead(ctx, v, replica, key, SourceReplica, hdrReplicaRead, "1")
}

// peerRead GETs key from member name over the peer API.
func (n *Node) peerRead(ctx context.Context, v *view, name, key string, src Source, hdr ...string) (Item, error) {
	sent := time.Now() // the owner's remaining TTL is counted from here: never later than the owner's expiry
	status, h, body, perr := n.peerDo(ctx, v, name, http.MethodGet, keyPath("/internal/v1/keys/", key), nil, int64(n.cfg.MaxValueBytes), hdr...)
	if perr != nil {
		return Item{}, perr
	}
	switch status {
	case http.StatusOK:
		it := Item{Key: key, Value: body, Owner: name, Source: src}
		it.Version, _ = strconv.ParseUint(h.Get(hdrVersion), 10, 64)
		if ms, err := strconv.ParseInt(h.Get(hdrTTLMs), 10, 64); err == nil && ms > 0 {
			it.ExpireAt = sent.Add(time.Duration(ms) * time.Millisecond)
		}
		if ms, err := strconv.ParseInt(h.Get(hdrNearTTL), 10, 64); err == nil && ms > 0 {
			it.nearTTL = time.Duration(ms) * time.Millisecond
		}
		return it, nil
	case http.StatusNotFound:
		return Item{}, ErrNotFound
	default:
		return Item{}, peerError(name, status, body)
	}
}

func (n *Node) peerWrite(ctx context.Context, v *view, owner, key string, m Mutation) (WriteResult, *Error) {
	method, op := http.MethodPut, "put"
	path := keyPath("/internal/v1/keys/", key)
	q := url.Values{}
	value := m.Value
	if m.Delete {
		method, op, value = http.MethodDelete, "delete", nil
	} else {
		if m.TTL > 0 {
			q.Set("ttl", strconv.FormatInt(m.TTL.Milliseconds(), 10)+"ms")
		}
		if m.KeepTTL {
			q.Set("keepttl", "1")
		}
		if m.Expire {
			q.Set("expire", "1")
			value = nil
		}
		if value == nil {
			value = []byte{}
		}
	}
	if m.IfAbsent {
		q.Set("if", "absent")
	}
	if m.IfPresent {
		q.Set("if", "present")
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	n.metrics.forwarded.WithLabelValues(op).Inc()
	status, h, body, perr := n.peerDo(ctx, v, owner, method, path, value, 64<<10)
	if perr != nil {
		return WriteResult{}, perr
	}
	res := WriteResult{Item: Item{Key: key, Owner: owner, Source: SourcePeer}}
	switch status {
	case http.StatusNoContent:
		res.Applied = h.Get(hdrApplied) != "0"
	case http.StatusPreconditionFailed:
	default:
		return WriteResult{}, peerError(owner, status, body)
	}
	res.Existed = h.Get(hdrExisted) == "1"
	res.Version, _ = strconv.ParseUint(h.Get(hdrVersion), 10, 64)
	return res, nil
}

// peerHandoff reads key from a previous owner's shard (no routing there).
func (n *Node) peerHandoff(ctx context.Context, addr, key string) (store.Entry, bool, error) {
	req, cancel, err := n.newPeerRequest(ctx, http.MethodGet, addr, keyPath("/internal/v1/handoff/", key), nil)
	if err != nil {
		return store.Entry{}, false, err
	}
	defer cancel()
	resp, err := n.client.Do(req)
	if err != nil {
		return store.Entry{}, false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(n.cfg.MaxValueBytes)+int64(n.cfg.MaxKeyBytes)+64))
	if err != nil {
		return store.Entry{}, false, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		es, err := wire.DecodeEntries(b, n.wireLimits(1), time.Now())
		if err != nil || len(es) != 1 || es[0].Key != key {
			return store.Entry{}, false, fmt.Errorf("bad handoff answer: %v", err)
		}
		return es[0], true, nil
	case http.StatusNotFound:
		return store.Entry{}, false, nil
	default:
		return store.Entry{}, false, peerError(addr, resp.StatusCode, b)
	}
}

func (n *Node) wireLimits(maxEntries int) wire.Limits {
	return wire.Limits{MaxEntries: maxEntries, MaxKeyBytes: n.cfg.MaxKeyBytes, MaxValueBytes: n.cfg.MaxValueBytes}
}

// peerTransport ships migration batches to peers' import endpoints.
type peerTransport struct{ n *Node }

// Import implements migrate.Transport. Batches larger than maxImportBody
// are split.
func (t peerTransport) Import(ctx context.Context, peer string, entries []store.Entry) ([]migrate.ImportResult, error) {
	n := t.n
	out := make([]migrate.ImportResult, 0, len(entries))
	for len(entries) > 0 {
		size, cut := 16, 0
		for cut < len(entries) && cut < DefaultMaxImportBatch {
			es := len(entries[cut].Key) + len(entries[cut].Value) + 32
			if cut > 0 && size+es > maxImportBody {
				break
			}
			size += es
			cut++
		}
		res, err := t.send(ctx, peer, entries[:cut])
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
		entries = entries[cut:]
	}
	n.metrics.importsSent.Add(float64(len(out)))
	return out, nil
}

func (t peerTransport) send(ctx context.Context, peer string, entries []store.Entry) ([]migrate.ImportResult, error) {
	n := t.n
	body := wire.AppendEntries(make([]byte, 0, 64*len(entries)), entries, time.Now())
	status, _, b, perr := n.peerDo(ctx, n.view.Load(), peer, http.MethodPost, "/internal/v1/import", body, 1<<20)
	if perr != nil {
		return nil, fmt.Errorf("import to %s: %w", peer, perr)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("import to %s: %w", peer, peerError(peer, status, b))
	}
	rs, err := wire.DecodeResults(b, len(entries))
	if err != nil {
		return nil, fmt.Errorf("import to %s: %w", peer, err)
	}
	out := make([]migrate.ImportResult, len(rs))
	for i, r := range rs {
		switch r {
		case wire.ResultAcked:
			out[i] = migrate.Acked
		case wire.ResultStale:
			out[i] = migrate.AckedStale
		case wire.ResultExpired:
			out[i] = migrate.AckedExpired
		default:
			out[i] = migrate.Refused
		}
	}
	return out, nil
}

// ---- server side of the peer API ----

// peerRoute serves h to members of this cluster only (checkPeer), for one
// method.
func (n *Node) peerRoute(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if e := n.checkPeer(r); e != nil {
			writeError(w, e)
			return
		}
		if r.Method != method {
			methodNotAllowed(w, method)
			return
		}
		h(w, r)
	}
}

// checkPeer admits only requests from current members of this cluster.
func (n *Node) checkPeer(r *http.Request) *Error {
	if n.peerRefuse.Load() {
		return retryable(http.StatusServiceUnavailable, "peer API unavailable (fault injection)")
	}
	if r.Header.Get(hdrCluster) != n.cfg.ClusterLabel {
		return errorf(http.StatusForbidden, "peer request for cluster %q refused: this node is in cluster %q", r.Header.Get(hdrCluster), n.cfg.ClusterLabel)
	}
	from := r.Header.Get(hdrFrom)
	if from == "" {
		return errorf(http.StatusForbidden, "peer request without %s header refused", hdrFrom)
	}
	if _, ok := n.view.Load().members[from]; ok {
		return nil
	}
	for _, m := range n.ml.Members() { // the view may lag a fresh join
		if m.Name == from {
			return nil
		}
	}
	return errorf(http.StatusForbidden, "peer request from %q refused: not a member of this cluster", from)
}

func (n *Node) handlePeerKey(w http.ResponseWriter, r *http.Request) {
	if e := n.checkPeer(r); e != nil {
		writeError(w, e)
		return
	}
	key := r.PathValue("key")
	switch r.Method {
	case http.MethodGet:
		var it Item
		var err error
		var nearTTL time.Duration
		if r.Header.Get(hdrReplicaRead) == "1" {
			it, err = n.replicaGet(r.Context(), n.view.Load(), key)
		} else {
			nearTTL = n.trackFetch(key, r.Header.Get(hdrFrom)) // before the read (nearcache.go)
			it, err = n.get(r.Context(), key, true)
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		if nearTTL > 0 {
			w.Header().Set(hdrNearTTL, strconv.FormatInt(nearTTL.Milliseconds(), 10))
		}
		writeItem(w, it)
	case http.MethodPut, http.MethodDelete:
		ctx := r.Context()
		if dl, err := strconv.ParseInt(r.Header.Get(hdrDeadline), 10, 64); err == nil {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, time.UnixMilli(dl))
			defer cancel()
			if ctx.Err() != nil {
				n.metrics.expiredWrites.Inc()
				writeError(w, retryable(http.StatusServiceUnavailable, "forwarded write arrived after its deadline; not applied"))
				return
			}
		}
		m, e := parseMutation(r.URL.Query(), r.Method == http.MethodDelete, true)
		if e != nil {
			writeError(w, e)
			return
		}
		if !m.Delete && !m.Expire {
			if m.Value, e = n.readValue(w, r); e != nil {
				writeError(w, e)
				return
			}
		}
		res, e := n.write(ctx, key, m, true)
		if e != nil {
			writeError(w, e)
			return
		}
		writeWriteResult(w, m, res)
	default:
		methodNotAllowed(w, "GET, PUT, DELETE")
	}
}

// handlePeerHandoff serves a previous owner's copy of a key from this
// node's shard. It is served through peerRoute (members only, GET).
func (n *Node) handlePeerHandoff(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if e := n.checkKey(key); e != nil {
		writeError(w, e)
		return
	}
	e, found, err := n.st.Get(r.Context(), key)
	if err != nil {
		writeError(w, retryable(http.StatusServiceUnavailable, "shard read failed: %v", err))
		return
	}
	if !found {
		writeError(w, errorf(http.StatusNotFound, "key not found"))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(wire.AppendEntries(nil, []store.Entry{e}, time.Now()))
}

// handleImport writes migrated and replicated entries (only if newer, only
// keys this node owns). It is served through peerRoute (members only, POST).
func (n *Node) handleImport(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > maxImportBody {
		writeError(w, errorf(http.StatusRequestEntityTooLarge, "import batch of %d bytes exceeds the limit of %d", r.ContentLength, maxImportBody))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxImportBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, errorf(http.StatusRequestEntityTooLarge, "import batch exceeds the limit of %d bytes", maxImportBody))
			return
		}
		writeError(w, errorf(http.StatusBadRequest, "reading import batch: %v", err))
		return
	}
	entries, err := wire.DecodeEntries(body, n.wireLimits(DefaultMaxImportBatch), time.Now())
	if err != nil {
		n.metrics.importsReceived.WithLabelValues("malformed").Inc()
		writeError(w, errorf(http.StatusBadRequest, "import batch refused: %v", err))
		return
	}
	v := n.view.Load()
	res := make([]wire.Result, len(entries))
	owned := make([]store.Entry, 0, len(entries))
	idx := make([]int, 0, len(entries))
	var maxVer uint64
	for i, e := range entries {
		if !n.isOwner(v.ring, e.Key) {
			res[i] = wire.ResultRefused
			continue
		}
		owned = append(owned, e)
		idx = append(idx, i)
		maxVer = max(maxVer, e.Version)
	}
	if len(owned) > 0 {
		n.clock.Observe(maxVer)
		outs, err := n.st.Put(r.Context(), owned)
		if err != nil {
			writeError(w, retryable(http.StatusServiceUnavailable, "shard write failed: %v", err))
			return
		}
		for j, o := range outs {
			switch o {
			case store.Applied:
				n.importApplied(owned[j].Key) // local and near copies (tier.go)
				res[idx[j]] = wire.ResultAcked
			case store.Stale:
				res[idx[j]] = wire.ResultStale
			case store.Expired:
				res[idx[j]] = wire.ResultExpired
			default:
				res[idx[j]] = wire.ResultRefused
			}
		}
	}
	n.metrics.importsReceived.WithLabelValues("acked").Add(float64(len(owned)))
	n.metrics.importsReceived.WithLabelValues("refused").Add(float64(len(entries) - len(owned)))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(wire.AppendResults(nil, res))
}
