package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestKeyOps: POST /v1/keys/{key}/incr, /incrbyfloat and /append, through
// either node (half the keys forwarded), with Redis' errors as JSON.
func TestKeyOps(t *testing.T) {
	nodes := startCluster(t, 2)
	for i := range 10 {
		key := fmt.Sprintf("a/b%d", i) // a key with a slash: the last segment is the operation
		for n, want := range []string{"1", "6", "4"} {
			by := []string{"", "?by=5", "?by=-2"}[n]
			r := do(t, http.MethodPost, nodes[n%2].keyURL(key)+"/incr"+by, nil)
			if r.Status != http.StatusOK || string(r.Body) != want {
				t.Fatalf("POST %s/incr%s = %s, want 200 %s", key, by, r, want)
			}
		}
		if r := nodes[1].get(t, key); string(r.Body) != "4" {
			t.Fatalf("GET %s after increments = %s", key, r)
		}
	}
	if r := do(t, http.MethodPost, nodes[0].keyURL("f")+"/incrbyfloat?by=10.5", nil); string(r.Body) != "10.5" {
		t.Fatalf("incrbyfloat = %s", r)
	}
	if r := do(t, http.MethodPost, nodes[1].keyURL("f")+"/incrbyfloat?by=0.1", nil); string(r.Body) != "10.6" {
		t.Fatalf("incrbyfloat = %s", r)
	}
	if r := do(t, http.MethodPost, nodes[0].keyURL("s")+"/append", []byte("hello")); string(r.Body) != "hello" {
		t.Fatalf("append = %s", r)
	}
	if r := do(t, http.MethodPost, nodes[1].keyURL("s")+"/append", []byte(" world")); string(r.Body) != "hello world" {
		t.Fatalf("append = %s", r)
	}
	for _, c := range []struct {
		url    string
		status int
		msg    string
	}{
		{nodes[0].keyURL("s") + "/incr", 400, "value is not an integer or out of range"},
		{nodes[0].keyURL("x") + "/incr?by=abc", 400, "value is not an integer or out of range"},
		{nodes[0].keyURL("x") + "/incr?by=1&ttl=5", 400, "unknown query parameter"},
		{nodes[0].keyURL("x") + "/incrbyfloat?by=nan", 400, "value is not a valid float"},
		{nodes[0].keyURL("x") + "/bogus", 400, "unknown operation"},
		{nodes[0].base + "/v1/keys/nosegment", 400, "POST needs an operation"},
	} {
		r := do(t, http.MethodPost, c.url, nil)
		if r.Status != c.status || !strings.Contains(string(r.Body), c.msg) || !strings.HasPrefix(string(r.Body), "{") {
			t.Errorf("POST %s = %s, want %d with %q", c.url, r, c.status, c.msg)
		}
	}
	do(t, http.MethodPut, nodes[0].keyURL("big"), []byte("9223372036854775807"))
	if r := do(t, http.MethodPost, nodes[1].keyURL("big")+"/incr", nil); r.Status != 400 || !strings.Contains(string(r.Body), "would overflow") {
		t.Errorf("overflow: %s", r)
	}
}
