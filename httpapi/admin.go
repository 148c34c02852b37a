package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/node"
)

// modeRequest is PUT /v1/mode's body.
type modeRequest struct {
	Mode  string `json:"mode"`
	Scope string `json:"scope"`
}

// modeAckWait bounds how long PUT /v1/mode waits for members to carry a new
// cluster mode before it answers (the change is in effect either way).
const modeAckWait = 2 * time.Second

func (s *Server) handleMode(w http.ResponseWriter, r *http.Request) {
	if e := noQuery(r.URL.Query()); e != nil {
		writeError(w, e)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		writeJSON(w, http.StatusOK, s.n.Mode())
	case http.MethodPut, http.MethodPost:
		b, err := io.ReadAll(io.LimitReader(r.Body, 4097))
		if err != nil {
			writeError(w, kv.Errorf(http.StatusBadRequest, "reading body: %v", err))
			return
		}
		if len(b) > 4096 {
			writeError(w, kv.Errorf(http.StatusRequestEntityTooLarge, "mode request larger than 4096 bytes"))
			return
		}
		var req modeRequest
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, kv.Errorf(http.StatusBadRequest, `body: want JSON {"mode": "read-only"|"read-write", "scope": "cluster"|"node"}: %v`, err))
			return
		}
		mode, err := node.ParseMode(req.Mode)
		if err != nil {
			writeError(w, kv.Errorf(http.StatusBadRequest, "%v", err))
			return
		}
		scope := node.ScopeCluster
		if req.Scope != "" {
			if scope, err = node.ParseScope(req.Scope); err != nil {
				writeError(w, kv.Errorf(http.StatusBadRequest, "%v", err))
				return
			}
		}
		if err := s.n.SetMode(mode, scope); err != nil {
			writeError(w, kv.Errorf(http.StatusBadRequest, "%v", err))
			return
		}
		s.log.Info("mode set over HTTP", "mode", mode, "scope", scope, "remote", r.RemoteAddr)
		out := node.ModeChange{Scope: scope}
		if scope == node.ScopeCluster {
			ctx, cancel := context.WithTimeout(r.Context(), modeAckWait)
			out.Acknowledged, out.Pending = s.n.AwaitClusterMode(ctx)
			cancel()
		}
		out.ModeInfo = s.n.Mode()
		writeJSON(w, http.StatusOK, out)
	default:
		methodNotAllowed(w, "GET, HEAD, PUT")
	}
}

func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	writeJSON(w, http.StatusOK, s.n.ClusterReport(r.Context()))
}

func (s *Server) handleLivez(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.n.Leaving():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unready", "error": "node is leaving the cluster"})
	case !s.n.Ready():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unready", "error": "node has not joined yet or its store does not answer"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// handleLeave starts a graceful leave (as SIGTERM does for cachenode): the
// node hands its keys off, leaves the cluster and stops; Done is closed
// then. It answers 202 at once.
func (s *Server) handleLeave(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	if s.n.Leaving() || s.n.Stopped() {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "already leaving"})
		return
	}
	s.log.Info("leave requested over HTTP", "remote", r.RemoteAddr)
	go s.n.Stop(context.Background())
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "leaving", "drain_timeout": s.n.Config().Migration.DrainTimeout.String()})
}

// maxWarmBody bounds a POST /v1/warm body (one key per line).
const maxWarmBody = 4 << 20

// handleWarm loads the keys of the body (one per line) through their owners
// and the read-through origin: POST /v1/warm, answered with the counts.
func (s *Server) handleWarm(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWarmBody))
	if err != nil {
		writeError(w, kv.Errorf(http.StatusRequestEntityTooLarge, "warm: the key list exceeds %d bytes; send it in parts", maxWarmBody))
		return
	}
	var keys []string
	for _, line := range strings.Split(string(body), "\n") {
		if k := strings.TrimRight(line, "\r"); k != "" {
			if err := s.n.CheckKey(k); err != nil {
				writeError(w, kv.Errorf(http.StatusBadRequest, "warm: line %d: %s", len(keys)+1, err))
				return
			}
			keys = append(keys, k)
		}
	}
	writeJSON(w, http.StatusOK, s.n.Warm(r.Context(), keys))
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	if e := noQuery(r.URL.Query()); e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, s.n.Status(r.Context()))
}

func (s *Server) handleRing(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	segments := defaultRingSegments
	for k, vals := range r.URL.Query() {
		if k != "segments" {
			writeError(w, kv.Errorf(http.StatusBadRequest, "unknown query parameter %q (only segments is accepted)", k))
			return
		}
		s, err := strconv.Atoi(vals[0])
		if err != nil || len(vals) > 1 || s < 1 || s > maxRingSegments {
			writeError(w, kv.Errorf(http.StatusBadRequest, "segments %q: want one whole number from 1 to %d", vals[0], maxRingSegments))
			return
		}
		segments = s
	}
	writeJSON(w, http.StatusOK, s.n.RingSegments(segments))
}
