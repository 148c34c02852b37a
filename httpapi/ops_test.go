package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/peercache/peercache/node"
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

// TestKeyExpiryAndGetdel: POST /v1/keys/{key}/expire?ttl=, /persist and
// /getdel, through either node, as Redis' EXPIRE, PERSIST and GETDEL.
func TestKeyExpiryAndGetdel(t *testing.T) {
	nodes := startCluster(t, 2)
	for i := range 6 {
		key := fmt.Sprintf("e/%d", i)
		via := nodes[i%2]
		if r := do(t, http.MethodPost, via.keyURL(key)+"/expire?ttl=30s", nil); r.Status != http.StatusNotFound || !strings.HasPrefix(string(r.Body), "{") {
			t.Fatalf("expire of a missing key: %s", r)
		}
		nodes[0].put(t, key, "v")
		if r := do(t, http.MethodPost, via.keyURL(key)+"/expire?ttl=30s", nil); r.Status != http.StatusNoContent || r.Header.Get("X-Peercache-Applied") != "1" {
			t.Fatalf("expire: %s", r)
		}
		ttl, _ := strconv.Atoi(nodes[1-i%2].get(t, key).Header.Get("X-Peercache-Ttl-Ms"))
		if ttl <= 25_000 || ttl > 30_000 {
			t.Fatalf("ttl after expire?ttl=30s: %d ms", ttl)
		}
		if r := do(t, http.MethodPost, via.keyURL(key)+"/persist", nil); r.Status != http.StatusNoContent {
			t.Fatalf("persist: %s", r)
		}
		if r := nodes[0].get(t, key); r.Status != http.StatusOK || r.Header.Get("X-Peercache-Ttl-Ms") != "" || string(r.Body) != "v" {
			t.Fatalf("after persist: %s ttl %q", r, r.Header.Get("X-Peercache-Ttl-Ms"))
		}
		if r := do(t, http.MethodPost, via.keyURL(key)+"/getdel", nil); r.Status != http.StatusOK || string(r.Body) != "v" {
			t.Fatalf("getdel: %s", r)
		}
		if r := nodes[1].get(t, key); r.Status != http.StatusNotFound {
			t.Fatalf("after getdel: %s", r)
		}
		if r := do(t, http.MethodPost, via.keyURL(key)+"/getdel", nil); r.Status != http.StatusNotFound {
			t.Fatalf("getdel of a missing key: %s", r)
		}
	}
	for _, c := range []struct{ url, msg string }{
		{nodes[0].keyURL("k") + "/expire", "expire needs ?ttl="},
		{nodes[0].keyURL("k") + "/expire?ttl=0", "out of range"},
		{nodes[0].keyURL("k") + "/expire?ttl=soon", "not a duration"},
		{nodes[0].keyURL("k") + "/persist?ttl=1s", "unknown query parameter"},
		{nodes[0].keyURL("k") + "/getdel?by=1", "unknown query parameter"},
	} {
		if r := do(t, http.MethodPost, c.url, nil); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), c.msg) {
			t.Errorf("POST %s = %s, want 400 with %q", c.url, r, c.msg)
		}
	}
}

// TestAbsoluteExpiryOverHTTP: ?expire_at= (Unix ms or RFC 3339) on PUT, on
// POST .../expire and in /v1/mset items is stored on the key's owner as
// given, to the millisecond, written through either node; an instant
// already past leaves the key absent; malformed or conflicting ones are
// refused.
func TestAbsoluteExpiryOverHTTP(t *testing.T) {
	nodes := startCluster(t, 2)
	ctx := context.Background()
	const at = int64(4102444800123) // 2100-01-01, and 123 ms
	exact := func(key string, want int64) {
		t.Helper()
		for _, n := range nodes {
			if it, err := n.Get(ctx, key); err == nil && it.Source == node.SourceShard {
				if got := it.ExpireAt.UnixMilli(); got != want {
					t.Fatalf("%s: the owner holds expiry %d, want %d", key, got, want)
				}
				return
			}
		}
		t.Fatalf("%s: no owner read", key)
	}
	for i := range 4 {
		via := nodes[i%2]
		key := fmt.Sprintf("abs/%d", i)
		if r := via.put(t, key, "v", "expire_at="+strconv.FormatInt(at, 10)); r.Status != http.StatusNoContent {
			t.Fatalf("PUT expire_at: %s", r)
		}
		exact(key, at)
		if r := do(t, http.MethodPost, via.keyURL(key)+"/expire?expire_at=2100-01-01T00:00:05.5Z", nil); r.Status != http.StatusNoContent {
			t.Fatalf("expire?expire_at=: %s", r)
		}
		exact(key, 4102444805500)
		if r, _ := batchPost(t, via.base, "/v1/mset", item{"items": []item{{"key": key, "value": []byte("w"), "expire_at": strconv.FormatInt(at+7, 10)}}}); r.Status != http.StatusOK {
			t.Fatalf("mset expire_at: %s", r)
		}
		exact(key, at+7)
		if r := via.put(t, key, "v", "expire_at=1000"); r.Status != http.StatusNoContent {
			t.Fatalf("PUT with a past expire_at: %s", r)
		}
		if r := nodes[1-i%2].get(t, key); r.Status != http.StatusNotFound {
			t.Fatalf("after a past expire_at: %s", r)
		}
	}
	for _, q := range []string{"expire_at=soon", "expire_at=0", "expire_at=-5", "expire_at=99999999999999999", "expire_at=4102444800123&ttl=5s", "expire_at=4102444800123&keepttl=1"} {
		if r := nodes[0].put(t, "bad", "v", q); r.Status != http.StatusBadRequest {
			t.Errorf("PUT ?%s = %s, want 400", q, r)
		}
	}
}
