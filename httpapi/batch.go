package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/node"
)

// Batches over HTTP: POST /v1/mget reads many keys and POST /v1/mset writes
// (or deletes) many, in one request each. Both go through node.Many, as a
// Redis pipeline does: what one owner serves leaves as one peer request,
// and an owner applies its share of the writes together. Each key's result
// carries the status the single-key request would have answered (200, 204,
// 404, 412, 503...) with its error message; the request itself answers 200
// once its body is understood.

// Bounds of one batch request.
const (
	maxBatchItems = 1000
	maxBatchBody  = 8 << 20 // values travel as base64 (4/3 of their size)
	// maxBatchAnswer bounds the value bytes one /v1/mget answers; a value
	// past it is left out with a 413 of its own (read it alone).
	maxBatchAnswer = 32 << 20
)

// mgetRequest is POST /v1/mget's body.
type mgetRequest struct {
	Keys []string `json:"keys"`
}

// msetItem is one write of POST /v1/mset: a set of Value (base64), with
// TTL (a Go duration or whole seconds) or ExpireAt (an instant), If
// ("absent" or "present") and KeepTTL as the single-key PUT's query takes
// them, or a delete.
type msetItem struct {
	Key      string `json:"key"`
	Value    []byte `json:"value"`
	TTL      string `json:"ttl"`
	ExpireAt string `json:"expire_at"`
	If       string `json:"if"`
	KeepTTL  bool   `json:"keepttl"`
	Delete   bool   `json:"delete"`
}

// msetRequest is POST /v1/mset's body.
type msetRequest struct {
	Items []msetItem `json:"items"`
}

// batchResult is one key's answer: Status is what the single-key request
// would have answered; Error its message when it failed.
type batchResult struct {
	Key    string `json:"key"`
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
	// A read's value (base64) and the item's metadata, as the headers of a
	// single GET carry them.
	Value   []byte `json:"value,omitzero"` // "" for an empty value
	Version uint64 `json:"version,omitempty"`
	TTLMs   int64  `json:"ttl_ms,omitempty"`
	Owner   string `json:"owner,omitempty"`
	Source  string `json:"source,omitempty"`
	// A write's outcome (X-Peercache-Applied, X-Peercache-Existed).
	Applied *bool `json:"applied,omitempty"`
	Existed *bool `json:"existed,omitempty"`
}

// decodeBatch reads a batch body into v: one JSON object, no unknown
// field, nothing after it, at most maxBatchBody bytes, and, by items, at
// most maxBatchItems keys.
func decodeBatch(w http.ResponseWriter, r *http.Request, v any, shape string, items func() int) *node.Error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBatchBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			err = errors.New("data after the JSON object")
		}
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return kv.Errorf(http.StatusRequestEntityTooLarge, "the body exceeds %d bytes; send the keys in parts", maxBatchBody)
	case err != nil:
		return kv.Errorf(http.StatusBadRequest, "body: want JSON %s: %v", shape, err)
	case items() > maxBatchItems:
		return kv.Errorf(http.StatusRequestEntityTooLarge, "%d keys in one batch; the limit is %d", items(), maxBatchItems)
	}
	return nil
}

// batchRequest checks what both batch routes share before their body.
func (s *Server) batchRequest(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return false
	}
	if e := noQuery(r.URL.Query()); e != nil {
		writeError(w, e)
		return false
	}
	if s.n.HasLeft() {
		writeError(w, leftError())
		return false
	}
	s.n.CountRequest()
	return true
}

// handleMget answers POST /v1/mget {"keys": [...]}: {"items": [...]}, one
// result per key in the order asked.
func (s *Server) handleMget(w http.ResponseWriter, r *http.Request) {
	if !s.batchRequest(w, r) {
		return
	}
	var req mgetRequest
	if e := decodeBatch(w, r, &req, `{"keys": ["k1", "k2", ...]}`, func() int { return len(req.Keys) }); e != nil {
		writeError(w, e)
		return
	}
	ops := make([]node.Op, len(req.Keys))
	for i, k := range req.Keys {
		ops[i] = node.Op{Key: k}
	}
	out := make([]batchResult, len(ops))
	budget := maxBatchAnswer
	for i, res := range s.n.Many(r.Context(), ops) {
		out[i] = batchResult{Key: ops[i].Key}
		if res.Err != nil {
			out[i].Status, out[i].Error = errStatus(res.Err)
			continue
		}
		it := res.Item
		if budget -= len(it.Value); budget < 0 {
			out[i].Status = http.StatusRequestEntityTooLarge
			out[i].Error = fmt.Sprintf("left out: the batch's values exceed %d bytes; read this key on its own", maxBatchAnswer)
			continue
		}
		out[i].Status, out[i].Value, out[i].Version = http.StatusOK, it.Value, it.Version
		out[i].Owner, out[i].Source = it.Owner, string(it.Source)
		if out[i].Value == nil {
			out[i].Value = []byte{} // an empty value is "", not absent
		}
		if ms, ok := ttlMs(it); ok {
			out[i].TTLMs = ms
		}
	}
	writeJSON(w, http.StatusOK, map[string][]batchResult{"items": out})
}

// handleMset answers POST /v1/mset {"items": [...]}: {"results": [...]},
// one result per item in the order sent. Items of one key are carried out
// in their order.
func (s *Server) handleMset(w http.ResponseWriter, r *http.Request) {
	if !s.batchRequest(w, r) {
		return
	}
	var req msetRequest
	if e := decodeBatch(w, r, &req, `{"items": [{"key": "k", "value": "<base64>", "ttl": "30s"}, {"key": "k2", "delete": true}, ...]}`, func() int { return len(req.Items) }); e != nil {
		writeError(w, e)
		return
	}
	ops := make([]node.Op, len(req.Items))
	for i, it := range req.Items {
		m, e := it.mutation()
		if e != nil {
			writeError(w, kv.Errorf(e.Status, "items[%d]: %s", i, e.Message))
			return
		}
		ops[i] = node.Op{Key: it.Key, Write: true, Mutation: m}
	}
	out := make([]batchResult, len(ops))
	for i, res := range s.n.Many(r.Context(), ops) {
		m := ops[i].Mutation
		out[i] = batchResult{Key: ops[i].Key}
		if res.Err != nil {
			out[i].Status, out[i].Error = errStatus(res.Err)
			continue
		}
		applied, existed := res.Applied, res.Existed
		out[i].Owner, out[i].Existed = res.Owner, &existed
		if !applied && !m.Delete {
			out[i].Status = http.StatusPreconditionFailed
			out[i].Error = "not written: " + conditionFailure(m, res.WriteResult)
			continue
		}
		out[i].Status, out[i].Applied, out[i].Version = http.StatusNoContent, &applied, res.Version
	}
	writeJSON(w, http.StatusOK, map[string][]batchResult{"results": out})
}

// mutation is the write an item asks for, checked as PUT and DELETE check
// their query.
func (it msetItem) mutation() (node.Mutation, *node.Error) {
	if it.Delete {
		if it.Value != nil || it.TTL != "" || it.ExpireAt != "" || it.KeepTTL {
			return node.Mutation{}, kv.Errorf(http.StatusBadRequest, "a delete takes no value, ttl, expire_at or keepttl")
		}
	}
	q := map[string][]string{}
	if it.If != "" {
		q["if"] = []string{it.If}
	}
	if it.TTL != "" {
		q["ttl"] = []string{it.TTL}
	}
	if it.ExpireAt != "" {
		q["expire_at"] = []string{it.ExpireAt}
	}
	if it.KeepTTL {
		q["keepttl"] = []string{"1"}
	}
	m, e := parseMutation(q, it.Delete)
	if e != nil {
		return m, e
	}
	m.Value = it.Value
	if !m.Delete && m.Value == nil {
		m.Value = []byte{}
	}
	return m, nil
}

// errStatus is the status and message a single-key request would answer
// err with (writeErr's mapping).
func errStatus(err error) (int, string) {
	var e *node.Error
	switch {
	case errors.Is(err, node.ErrNotFound):
		return http.StatusNotFound, "key not found"
	case errors.As(err, &e):
		return e.Status, e.Message
	default:
		return http.StatusInternalServerError, fmt.Sprintf("%v", err)
	}
}
