package httpapi_test

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peercache/peercache/auth"
	"github.com/peercache/peercache/internal/nodetest"
	"github.com/peercache/peercache/node"
)

// testUsers writes a users file with root (admin), app (write) and ro
// (read), each with password "<name>-pw", and loads it.
func testUsers(t testing.TB) *auth.Store {
	t.Helper()
	var b strings.Builder
	for _, u := range [][2]string{{"root", "admin"}, {"app", "write"}, {"ro", "read"}} {
		b.WriteString(u[0] + " " + u[1] + " " + auth.HashPassword(u[0]+"-pw") + "\n")
	}
	f := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := auth.Load(auth.Config{UsersFile: f})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func basic(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+user+"-pw"))
}

// TestHTTPAuth: every route asks for the role the table in auth.go
// gives it; state-changing routes refuse cross-site browser requests.
func TestHTTPAuth(t *testing.T) {
	users := testUsers(t)
	n := startNode(t, "a1", nil, func(c *nodetest.Config) { c.HTTP.Auth = users })
	pub := startNode(t, "p1", nil, func(c *nodetest.Config) { c.HTTP.Auth = users; c.HTTP.PublicMetrics = true })
	k := n.keyURL("k")
	cases := []struct {
		name, method, url, body string
		hdr                     []string
		want                    int
		inBody                  string
	}{
		{"GET without credentials", "GET", k, "", nil, 401, "authentication required"},
		{"PUT without credentials", "PUT", k, "v", nil, 401, "authentication required"},
		{"wrong password", "GET", k, "", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("ro:nope"))}, 401, "wrong user name or password"},
		{"unknown user", "GET", k, "", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("eve:eve-pw"))}, 401, "wrong user name or password"},
		{"malformed header", "GET", k, "", []string{"Authorization", "Basic %%%"}, 401, "wrong user name or password"},
		{"bearer with a wrong token", "GET", k, "", []string{"Authorization", "Bearer nope"}, 401, "wrong user name or password"},
		{"read user GET", "GET", k, "", []string{"Authorization", basic("ro")}, 404, "key not found"},
		{"read user PUT", "PUT", k, "v", []string{"Authorization", basic("ro")}, 403, "needs role write"},
		{"read user DELETE", "DELETE", k, "", []string{"Authorization", basic("ro")}, 403, "needs role write"},
		{"write user PUT", "PUT", k, "v", []string{"Authorization", basic("app")}, 204, ""},
		{"bearer user:password", "GET", k, "", []string{"Authorization", "Bearer app:app-pw"}, 200, "v"},
		{"write user leave", "POST", n.base + "/v1/leave", "", []string{"Authorization", basic("app")}, 403, "needs role admin"},
		{"write user mode", "PUT", n.base + "/v1/mode", `{"mode":"read-only","scope":"cluster"}`, []string{"Authorization", basic("app")}, 403, "needs role admin"},
		{"read user mode GET", "GET", n.base + "/v1/mode", "", []string{"Authorization", basic("ro")}, 200, "read-write"},
		{"leave without credentials", "POST", n.base + "/v1/leave", "", nil, 401, ""},
		{"cross-site form POST leave as admin", "POST", n.base + "/v1/leave", "x=1", []string{"Authorization", basic("root"), "Origin", "http://evil.example", "Content-Type", "application/x-www-form-urlencoded"}, 403, "cross-site request refused"},
		{"cross-site fetch (Sec-Fetch-Site)", "PUT", n.base + "/v1/mode", `{"mode":"read-only","scope":"cluster"}`, []string{"Authorization", basic("root"), "Sec-Fetch-Site", "cross-site"}, 403, "cross-site request refused"},
		{"form content type on mode as admin", "PUT", n.base + "/v1/mode", `{"mode":"read-only","scope":"node"}`, []string{"Authorization", basic("root"), "Content-Type", "text/plain"}, 415, "form content types"},
		{"status without credentials", "GET", n.base + "/v1/status", "", nil, 401, ""},
		{"cluster without credentials", "GET", n.base + "/v1/cluster", "", nil, 401, ""},
		{"dashboard without credentials", "GET", n.base + "/", "", nil, 401, ""},
		{"metrics without credentials", "GET", n.base + "/metrics", "", nil, 401, ""},
		{"metrics as read user", "GET", n.base + "/metrics", "", []string{"Authorization", basic("ro")}, 200, "peercache_"},
		{"public metrics", "GET", pub.base + "/metrics", "", nil, 200, "peercache_"},
		{"public metrics, status still closed", "GET", pub.base + "/v1/status", "", nil, 401, ""},
		{"livez open", "GET", n.base + "/livez", "", nil, 200, ""},
		{"readyz open", "GET", n.base + "/readyz", "", nil, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := do(t, tc.method, tc.url, body, tc.hdr...)
			if r.Status != tc.want || !strings.Contains(string(r.Body), tc.inBody) {
				t.Fatalf("%s %s: %v, want %d containing %q", tc.method, tc.url, r, tc.want, tc.inBody)
			}
			if r.Status == 401 && r.Header.Get("WWW-Authenticate") != auth.WWWAuthenticate {
				t.Fatalf("401 without WWW-Authenticate: %v", r.Header)
			}
			for _, secret := range []string{"-pw", "sha256:"} {
				if strings.Contains(string(r.Body), secret) {
					t.Fatalf("answer shows %q: %s", secret, r.Body)
				}
			}
		})
	}
	if n.Mode().Mode != node.ModeReadWrite {
		t.Fatal("a refused request changed the mode")
	}
	if n.HasLeft() || n.Leaving() {
		t.Fatal("a refused leave request started a leave")
	}
	// The admin may.
	if r := do(t, "PUT", n.base+"/v1/mode", []byte(`{"mode":"read-only","scope":"node"}`), "Authorization", basic("root"), "Content-Type", "application/json"); r.Status != 200 {
		t.Fatalf("admin mode change: %v", r)
	}
}

// Keys "." and ".." (and others a path cleaner would rewrite) work through
// any node, the owner and the others.
func TestDotKeys(t *testing.T) {
	nodes := startCluster(t, 3)
	for _, key := range []string{".", "..", "a/../b", "./x", "a//b"} {
		for i, n := range nodes {
			v := key + "@" + n.Name()
			if r := n.put(t, key, v); r.Status != http.StatusNoContent {
				t.Fatalf("PUT %q through %s: %v", key, n.Name(), r)
			}
			for _, m := range nodes {
				if r := m.get(t, key); r.Status != http.StatusOK || string(r.Body) != v {
					t.Fatalf("GET %q through %s after the PUT through %s: %v", key, m.Name(), nodes[i].Name(), r)
				}
			}
		}
		if r := nodes[1].del(t, key); r.Status != http.StatusNoContent {
			t.Fatalf("DELETE %q: %v", key, r)
		}
	}
}
