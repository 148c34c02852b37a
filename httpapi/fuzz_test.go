package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/peercache/peercache/internal/nodetest"
)

// FuzzHTTPKeys drives the key routes (and whatever path the input names)
// with arbitrary methods, paths, queries, headers and bodies, through the
// node's whole handler (authentication included) on a live node: no input
// may panic or get a 500, every error answer is JSON with a message, and a
// second request keeps being served.
//
//	go test -run XXX -fuzz FuzzHTTPKeys -fuzztime 60s ./httpapi/
func FuzzHTTPKeys(f *testing.F) {
	for _, s := range []struct {
		method, path, query, ctype, auth string
		body                             []byte
	}{
		{"GET", "/v1/keys/k", "", "", "", nil},
		{"PUT", "/v1/keys/k", "ttl=30s", "application/octet-stream", "app", []byte("v")},
		{"PUT", "/v1/keys/..", "ttl=1ms&if-absent=true", "", "app", []byte("v")},
		{"DELETE", "/v1/keys/%2e%2e/x", "", "", "root", nil},
		{"PUT", "/v1/keys/k", "ttl=9999999999999h", "text/plain", "app", bytes.Repeat([]byte("x"), 100)},
		{"POST", "/v1/leave", "", "application/x-www-form-urlencoded", "ro", []byte("a=b")},
		{"PUT", "/v1/mode", "", "application/json", "root", []byte(`{"mode":"read-only","scope":"node"}`)},
		{"POST", "/v1/warm", "", "", "app", []byte("a\nb\n\n" + strings.Repeat("k", 2000))},
		{"GET", "/v1/keys/" + strings.Repeat("%ff", 300), "x=%zz", "", "", nil},
		{"POST", "/v1/mget", "", "application/json", "ro", []byte(`{"keys": ["a", "b", ""]}`)},
		{"POST", "/v1/mset", "", "application/json", "app", []byte(`{"items": [{"key": "a", "value": "eA==", "ttl": "1s"}, {"key": "a", "delete": true, "if": "present"}]}`)},
		{"POST", "/v1/mset", "", "", "app", []byte(`{"items": [{"key": "a", "value": "eA==", "keepttl": true}]}{`)},
		{"POST", "/v1/keys/k/expire", "ttl=5s", "", "app", nil},
		{"PUT", "/v1/keys/k", "expire_at=2100-01-01T00:00:00.123Z", "", "app", []byte("v")},
		{"POST", "/v1/keys/k/expire", "expire_at=4102444800123&ttl=1s", "", "app", nil},
		{"POST", "/v1/keys/a/b/getdel", "", "", "app", nil},
		{"GET", "/v1/scan", "cursor=18014398509481984&count=3&match=[a-", "", "ro", nil},
	} {
		f.Add(s.method, s.path, s.query, s.ctype, s.auth, s.body)
	}
	users := testUsers(f)
	n := startNode(f, "fz", nil, func(c *nodetest.Config) { c.HTTP.Auth = users; c.MemoryMaxBytes = 16 << 20 })
	h := n.web.Handler()
	f.Fuzz(func(t *testing.T, method, path, query, ctype, user string, body []byte) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			method = "GET"
		}
		if path == "" || path[0] != '/' {
			path = "/v1/keys/" + path
		}
		u := &url.URL{Path: path, RawQuery: query}
		if p, err := url.PathUnescape(path); err == nil {
			u.Path, u.RawPath = p, path
		}
		req := httptest.NewRequest("GET", "/", bytes.NewReader(body))
		req.Method, req.URL, req.RequestURI = method, u, ""
		req.ContentLength = int64(len(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if user == "root" || user == "app" || user == "ro" {
			req.Header.Set("Authorization", basic(user))
		} else if user != "" {
			req.Header.Set("Authorization", user)
		}
		if path == "/v1/leave" || path == "/v1/mode" {
			// Not while fuzzing: a leave would stop the node, and a mode
			// change is state of its own; their checks still run.
			req.Header.Set("Authorization", basic("ro"))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %q ?%q: %d %s", method, path, query, w.Code, w.Body)
		}
		if w.Code >= 400 && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%s %q: %d answer without a JSON error: %q", method, path, w.Code, w.Body)
			}
			if strings.Contains(e.Error, "-pw") || strings.Contains(e.Error, "sha256:") {
				t.Fatalf("error shows a secret: %s", e.Error)
			}
		}
		// The node keeps serving.
		pr := httptest.NewRequest("GET", "/livez", nil)
		pw := httptest.NewRecorder()
		h.ServeHTTP(pw, pr)
		if pw.Code != http.StatusOK {
			t.Fatalf("/livez after %s %q: %d", method, path, pw.Code)
		}
	})
}
