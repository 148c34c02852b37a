package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/peercache/peercache/internal/nodetest"
)

// result is one key's answer of /v1/mget or /v1/mset.
type result struct {
	Key     string `json:"key"`
	Status  int    `json:"status"`
	Error   string `json:"error"`
	Value   []byte `json:"value"`
	Version uint64 `json:"version"`
	TTLMs   int64  `json:"ttl_ms"`
	Owner   string `json:"owner"`
	Source  string `json:"source"`
	Applied *bool  `json:"applied"`
	Existed *bool  `json:"existed"`
}

func batchPost(t *testing.T, base, route string, body any, hdr ...string) (nodetest.Resp, []result) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, http.MethodPost, base+route, b, append([]string{"Content-Type", "application/json"}, hdr...)...)
	if r.Status != http.StatusOK {
		return r, nil
	}
	var out map[string][]result
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("POST %s: %v in %s", route, err, r.Body)
	}
	return r, append(out["items"], out["results"]...)
}

type item = map[string]any

// TestBatchRoutes: POST /v1/mset writes and deletes many keys through one
// node and POST /v1/mget reads them through the other (about half of them
// owned by each), every result as the single-key request would answer it.
func TestBatchRoutes(t *testing.T) {
	nodes := startCluster(t, 2)
	nodes[1].put(t, "taken", "old")
	nodes[1].put(t, "gone", "x")
	var items []item
	for i := range 40 {
		it := item{"key": fmt.Sprintf("b/%d", i), "value": []byte(fmt.Sprintf("v%d", i))}
		if i%4 == 0 {
			it["ttl"] = "1h"
		}
		items = append(items, it)
	}
	items = append(items,
		item{"key": "empty", "value": []byte{}},
		item{"key": "twice", "value": []byte("first")},
		item{"key": "twice", "value": []byte("second")}, // one key's items go in order
		item{"key": "taken", "value": []byte("new"), "if": "absent"},
		item{"key": "gone", "delete": true},
		item{"key": "never", "delete": true},
		item{"key": "", "value": []byte("x")},
	)
	r, res := batchPost(t, nodes[0].base, "/v1/mset", item{"items": items})
	if len(res) != len(items) {
		t.Fatalf("mset: %s", r)
	}
	for i, got := range res[:42] {
		if got.Key != items[i]["key"] || got.Status != http.StatusNoContent || got.Applied == nil || !*got.Applied || got.Version == 0 || got.Owner == "" {
			t.Fatalf("mset result %d: %+v", i, got)
		}
	}
	if got := res[43]; got.Status != http.StatusPreconditionFailed || !strings.Contains(got.Error, "if=absent") || got.Existed == nil || !*got.Existed {
		t.Errorf("if=absent on a live key: %+v", got)
	}
	if got := res[44]; got.Status != http.StatusNoContent || !*got.Existed {
		t.Errorf("delete of a live key: %+v", got)
	}
	if got := res[45]; got.Status != http.StatusNoContent || *got.Existed {
		t.Errorf("delete of a missing key: %+v", got)
	}
	if got := res[46]; got.Status != http.StatusBadRequest || got.Error == "" {
		t.Errorf("empty key: %+v", got)
	}

	keys := []string{"taken", "gone", "empty", "twice", "missing"}
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("b/%d", i))
	}
	r, got := batchPost(t, nodes[1].base, "/v1/mget", item{"keys": keys})
	if len(got) != len(keys) {
		t.Fatalf("mget: %s", r)
	}
	want := map[string]string{"taken": "old", "empty": "", "twice": "second"}
	owners := map[string]bool{}
	for i, g := range got {
		if g.Key != keys[i] {
			t.Fatalf("mget result %d is for %q, want %q", i, g.Key, keys[i])
		}
		v, ok := want[g.Key]
		if n, err := strconv.Atoi(strings.TrimPrefix(g.Key, "b/")); err == nil {
			v, ok = fmt.Sprintf("v%d", n), true
			if (n%4 == 0) != (g.TTLMs > 0) || g.TTLMs > 3600_000 {
				t.Errorf("%s: ttl_ms %d", g.Key, g.TTLMs)
			}
		}
		switch {
		case !ok && (g.Status != http.StatusNotFound || g.Error != "key not found"):
			t.Errorf("%s: %+v, want 404", g.Key, g)
		case ok && (g.Status != http.StatusOK || string(g.Value) != v || g.Version == 0 || g.Source == ""):
			t.Errorf("%s: %+v, want 200 %q", g.Key, g, v)
		}
		owners[g.Owner] = true
		// A single GET agrees on value and version.
		if s := nodes[0].get(t, g.Key); ok && (string(s.Body) != v || s.Header.Get("X-Peercache-Version") != strconv.FormatUint(g.Version, 10)) {
			t.Errorf("GET %s = %s version %s, mget said %+v", g.Key, s, s.Header.Get("X-Peercache-Version"), g)
		}
	}
	if !owners["n0"] || !owners["n1"] {
		t.Errorf("the keys' owners: %v, want both nodes", owners)
	}
	// An empty value comes back as "", not as an absent field.
	if !bytes.Contains(r.Body, []byte(`"key": "empty",
      "status": 200,
      "value": ""`)) {
		t.Errorf(`mget of an empty value: want "value": "" in %s`, r.Body)
	}
}

// TestBatchRefusals: malformed, oversized and unauthorised batches are
// refused whole, with a JSON error and the right status, and write
// nothing.
func TestBatchRefusals(t *testing.T) {
	users := testUsers(t)
	n := startNode(t, "a1", nil, func(c *nodetest.Config) { c.HTTP.Auth = users })
	app, ro := []string{"Authorization", basic("app")}, []string{"Authorization", basic("ro")}
	many := make([]string, 1001)
	for i := range many {
		many[i] = strconv.Itoa(i)
	}
	for _, c := range []struct {
		name, route, body string
		hdr               []string
		want              int
		msg               string
	}{
		{"not JSON", "/v1/mget", "keys=a", app, 400, "want JSON"},
		{"unknown field", "/v1/mget", `{"keys": ["a"], "x": 1}`, app, 400, "unknown field"},
		{"data after the object", "/v1/mget", `{"keys": ["a"]} {}`, app, 400, "data after"},
		{"too many keys", "/v1/mget", `{"keys": ["` + strings.Join(many, `","`) + `"]}`, app, 413, "the limit is 1000"},
		{"body too large", "/v1/mset", `{"items": [{"key": "a", "value": "` + strings.Repeat("A", 9<<20) + `"}]}`, app, 413, "exceeds"},
		{"value not base64", "/v1/mset", `{"items": [{"key": "a", "value": "!!"}]}`, app, 400, "want JSON"},
		{"bad ttl", "/v1/mset", `{"items": [{"key": "a", "value": "eA==", "ttl": "soon"}]}`, app, 400, "items[0]: ttl"},
		{"bad if", "/v1/mset", `{"items": [{"key": "a", "value": "eA==", "if": "maybe"}]}`, app, 400, "items[0]: if="},
		{"delete with a value", "/v1/mset", `{"items": [{"key": "a", "value": "eA==", "delete": true}]}`, app, 400, "a delete takes no value"},
		{"ttl and keepttl", "/v1/mset", `{"items": [{"key": "a", "ttl": "1s", "keepttl": true}]}`, app, 400, "exclude each other"},
		{"read role writes", "/v1/mset", `{"items": [{"key": "a", "value": "eA=="}]}`, ro, 403, "needs role write"},
		{"no credentials", "/v1/mget", `{"keys": ["a"]}`, nil, 401, "authentication required"},
		{"query", "/v1/mget?x=1", `{"keys": ["a"]}`, app, 400, "unknown query parameter"},
	} {
		r := do(t, http.MethodPost, n.base+c.route, []byte(c.body), append([]string{"Content-Type", "application/json"}, c.hdr...)...)
		if r.Status != c.want || !strings.Contains(string(r.Body), c.msg) || !strings.HasPrefix(string(r.Body), "{") {
			t.Errorf("%s: %d %.200s, want %d with %q", c.name, r.Status, r.Body, c.want, c.msg)
		}
	}
	if r := do(t, http.MethodGet, n.base+"/v1/mget", nil, app...); r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "POST" {
		t.Errorf("GET /v1/mget = %s", r)
	}
	if r := do(t, http.MethodGet, n.keyURL("a"), nil, app...); r.Status != http.StatusNotFound {
		t.Errorf("a refused batch wrote key a: %s", r)
	}
	// The read role reads.
	if r, got := batchPost(t, n.base, "/v1/mget", item{"keys": []string{"a"}}, ro...); len(got) != 1 || got[0].Status != http.StatusNotFound {
		t.Errorf("mget as the read role: %s", r)
	}
}

// TestMgetAnswerBound: an mget answers at most 32 MiB of values; the value
// that would pass the bound, and every one after it, is left out with a
// 413 of its own.
func TestMgetAnswerBound(t *testing.T) {
	n := startNode(t, "big", nil, func(c *nodetest.Config) { c.MemoryMaxBytes = 256 << 20 })
	mib := strings.Repeat("x", 1<<20)
	var keys []string
	for i := range 33 {
		keys = append(keys, fmt.Sprintf("big/%d", i))
		n.put(t, keys[i], mib)
	}
	n.put(t, "small", "s")
	keys = append(keys, "small")
	r, got := batchPost(t, n.base, "/v1/mget", item{"keys": keys})
	if len(got) != len(keys) {
		t.Fatalf("mget: %.300s", r)
	}
	for i, g := range got {
		if i < 32 && (g.Status != http.StatusOK || len(g.Value) != 1<<20) {
			t.Fatalf("%s: status %d, %d bytes", g.Key, g.Status, len(g.Value))
		}
		if i >= 32 && (g.Status != http.StatusRequestEntityTooLarge || g.Value != nil || !strings.Contains(g.Error, "read this key on its own")) {
			t.Fatalf("%s past the bound: %+v", g.Key, g.Status)
		}
	}
}
