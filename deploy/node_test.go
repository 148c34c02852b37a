package deploy

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/nodeconfig"
)

// moduleRoot is the module's directory, seen from this package's.
const moduleRoot = ".."

// Shutdown of cachenode after SIGTERM, beyond --drain-timeout: serve gives
// the node's Stop the drain timeout plus stopMargin (cmd/cachenode/main.go),
// then stops its redis-server within redisStopTimeout
// (cmd/cachenode/redisproc.go). A grace period below drain + both is cut
// short by SIGKILL on a slow drain.
const (
	stopMargin       = 15 * time.Second
	redisStopTimeout = 10 * time.Second
)

// shutdownBound is how long cachenode may take to exit after SIGTERM.
func shutdownBound(drain time.Duration) time.Duration {
	return drain + stopMargin + redisStopTimeout
}

// envName is the variable of a cachenode flag (cmd/cachenode/main.go).
func envName(flag string) string {
	return "CACHENODE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// serveFlags returns the environment variables of `cachenode serve`: one
// per flag registered in newFlagSet and in the functions it hands its
// FlagSet to (add*Flags), read from cmd/cachenode's source.
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	dir := filepath.Join(moduleRoot, "cmd", "cachenode")
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]*ast.FuncDecl{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
				funcs[fd.Name.Name] = fd
			}
		}
	}
	flags := map[string]bool{}
	seen := map[string]bool{}
	var visit func(fn string)
	visit = func(fn string) {
		fd := funcs[fn]
		if fd == nil || seen[fn] {
			return
		}
		seen[fn] = true
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			switch f := call.Fun.(type) {
			case *ast.SelectorExpr: // fs.StringVar(&o.x, "name", ...), fs.String("name", ...)
				if x, ok := f.X.(*ast.Ident); ok && x.Name == "fs" {
					for _, a := range call.Args {
						if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							name, err := strconv.Unquote(lit.Value)
							if err == nil {
								flags[envName(name)] = true
							}
							break
						}
					}
				}
			case *ast.Ident: // addTierFlags(fs, &o.tier)
				for _, a := range call.Args {
					if id, ok := a.(*ast.Ident); ok && id.Name == "fs" {
						visit(f.Name)
					}
				}
			}
			return true
		})
	}
	visit("newFlagSet")
	for _, must := range []string{"CACHENODE_SEEDS", "CACHENODE_DRAIN_TIMEOUT", "CACHENODE_REDIS_SERVER", "CACHENODE_LOCAL_TIER_BYTES"} {
		if !flags[must] {
			t.Fatalf("reading cachenode's flags from %s: %s not found among %d; has newFlagSet moved?", dir, must, len(flags))
		}
	}
	return flags
}

// nodeEnv is what a deployment sets in a node's environment: literal
// values, and for values taken from elsewhere (the downward API) a marker
// of where from.
type nodeEnv map[string]string

// duration returns the flag's duration, or def when unset.
func (e nodeEnv) duration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v, ok := e[name]
	if !ok || v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

// bytes returns the flag's byte count, or def when unset.
func (e nodeEnv) bytes(t *testing.T, name string, def int64) int64 {
	t.Helper()
	v, ok := e[name]
	if !ok || v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// port returns the port of the flag's host:port, or that of def when unset.
func (e nodeEnv) port(t *testing.T, name, def string) int {
	t.Helper()
	v, ok := e[name]
	if !ok || v == "" {
		v = def
	}
	_, p, err := net.SplitHostPort(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a fixed port", name, v)
	}
	return n
}

// checkKnownFlags fails for every CACHENODE_* variable that names no flag
// of `cachenode serve` (the node would ignore it).
func checkKnownFlags(t *testing.T, env nodeEnv) {
	t.Helper()
	flags := serveFlags(t)
	for name := range env {
		if strings.HasPrefix(name, "CACHENODE_") && !flags[name] {
			t.Errorf("%s names no cachenode flag: the node ignores it", name)
		}
	}
}

// servedStatus answers GET path from a real node's HTTP handler (not
// started: /readyz answers 503 until it joins). A path the node does not
// serve answers 404.
func servedStatus(t *testing.T, paths ...string) map[string]int {
	t.Helper()
	n, web, err := httpapi.NewNode("127.0.0.1:0", node.Config{Name: "probe", Gossip: nodeconfig.Gossip{Addr: "127.0.0.1:0"},
		Logger: slog.New(slog.DiscardHandler)}, httpapi.Config{})
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	defer n.Abort()
	out := map[string]int{}
	for _, p := range paths {
		req := httptest.NewRequestWithContext(context.Background(), http.MethodGet, p, nil)
		rec := httptest.NewRecorder()
		web.Handler().ServeHTTP(rec, req)
		out[p] = rec.Code
	}
	return out
}

// TestNodeFacts checks the facts the other tests lean on against the node
// itself, so that they fail when the node changes under them.
func TestNodeFacts(t *testing.T) {
	if node.DefaultDrainTimeout != 60*time.Second {
		t.Errorf("node.DefaultDrainTimeout = %v; docs/kubernetes.md, the manifests and docker-compose.yml assume 60s", node.DefaultDrainTimeout)
	}
	st := servedStatus(t, "/livez", "/readyz", "/metrics", "/no-such-route")
	if st["/livez"] != http.StatusOK || st["/metrics"] != http.StatusOK {
		t.Errorf("a node that has not joined: /livez %d, /metrics %d; want 200", st["/livez"], st["/metrics"])
	}
	if st["/readyz"] != http.StatusServiceUnavailable {
		t.Errorf("a node that has not joined: /readyz %d; want 503", st["/readyz"])
	}
	if st["/no-such-route"] != http.StatusNotFound {
		t.Errorf("unknown route answers %d; want 404 (servedStatus relies on it)", st["/no-such-route"])
	}
	flags := serveFlags(t)
	for _, f := range []string{"CACHENODE_NAME", "CACHENODE_ADVERTISE_ADDR", "CACHENODE_CLUSTER_SECRET_FILE", "CACHENODE_RESP_ADDR"} {
		if !flags[f] {
			t.Errorf("%s not among cachenode's flags", f)
		}
	}
}
