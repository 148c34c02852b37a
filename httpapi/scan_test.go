package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// scanStep is one GET /v1/scan answer.
type scanStep struct {
	Cursor string   `json:"cursor"`
	Keys   []string `json:"keys"`
}

// TestScanRoute: GET /v1/scan walks the whole cluster's keys from either
// node, in steps of about count keys, each key at least once, matching the
// pattern when one is given; bad parameters are refused with JSON.
func TestScanRoute(t *testing.T) {
	nodes := startCluster(t, 2)
	want := map[string]bool{}
	for i := range 120 {
		key := fmt.Sprintf("user:%d", i)
		if i%3 == 0 {
			key = fmt.Sprintf("order:%d", i)
		}
		nodes[i%2].put(t, key, "v")
		want[key] = true
	}
	for _, c := range []struct {
		via   *testNode
		query string
		keep  func(string) bool
	}{
		{nodes[0], "count=7", func(string) bool { return true }},
		{nodes[1], "count=50&match=user:*", func(k string) bool { return strings.HasPrefix(k, "user:") }},
		{nodes[1], "match=order:1?", func(k string) bool { return strings.HasPrefix(k, "order:1") && len(k) == len("order:1x") }},
	} {
		seen := map[string]bool{}
		cursor, steps := "0", 0
		for {
			r := do(t, http.MethodGet, c.via.base+"/v1/scan?cursor="+cursor+"&"+c.query, nil)
			var st scanStep
			if r.Status != http.StatusOK || json.Unmarshal(r.Body, &st) != nil {
				t.Fatalf("scan %s: %s", c.query, r)
			}
			for _, k := range st.Keys {
				if !want[k] || !c.keep(k) {
					t.Fatalf("scan %s returned %q", c.query, k)
				}
				seen[k] = true
			}
			steps++
			if cursor = st.Cursor; cursor == "0" {
				break
			}
			if steps > 1000 {
				t.Fatalf("scan %s: no end after %d steps", c.query, steps)
			}
		}
		for k := range want {
			if c.keep(k) && !seen[k] {
				t.Errorf("scan %s missed %q", c.query, k)
			}
		}
		if c.query == "count=7" && steps < 10 {
			t.Errorf("scan count=7 of 120 keys took %d steps", steps)
		}
	}
	for _, q := range []string{"cursor=abc", "cursor=-1", "count=0", "count=10001", "count=x", "bogus=1", "cursor=0&cursor=1", "match=" + strings.Repeat("a", 2000)} {
		r := do(t, http.MethodGet, nodes[0].base+"/v1/scan?"+q, nil)
		if r.Status != http.StatusBadRequest || !strings.HasPrefix(string(r.Body), `{`) {
			t.Errorf("scan ?%.40s = %s, want 400 JSON", q, r)
		}
	}
	if r := do(t, http.MethodPost, nodes[0].base+"/v1/scan", nil); r.Status != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/scan = %s", r)
	}
}
