// Package nodetest starts real nodes with their HTTP door for the tests of
// node, httpapi and the other doors: loopback addresses, fast gossip
// timing, no background sweep, cleaned up with the test.
package nodetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/nodeconfig"
)

// Config is what a test node starts with: the node's configuration and its
// HTTP door's.
type Config struct {
	node.Config
	HTTP httpapi.Config
}

// Base returns the configuration of a test node named name joining
// through seeds: loopback gossip and peer ports, fast gossip timing, no
// background sweep, logs at WARN (PEERCACHE_TEST_LOG=info or debug for more).
func Base(name string, seeds []string) Config {
	return Config{Config: node.Config{
		Name:      name,
		Gossip:    nodeconfig.Gossip{Addr: "127.0.0.1:0", Advertise: "127.0.0.1", Seeds: seeds, Timing: membership.TimingFast},
		Logger:    Logger(name),
		Migration: nodeconfig.Migration{SweepInterval: -1},
	}}
}

// Logger is a test node's logger: WARN and above on stderr, unless
// PEERCACHE_TEST_LOG asks for info or debug.
func Logger(name string) *slog.Logger {
	lvl := slog.LevelWarn
	switch os.Getenv("PEERCACHE_TEST_LOG") {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("test_node", name)
}

// Start creates the node of cfg with its HTTP door on a free loopback
// port, serves it and starts the node (the test fails if any step does).
// The node is aborted when the test ends.
func Start(t testing.TB, cfg Config) (*node.Node, *httpapi.Server) {
	t.Helper()
	n, web, err := httpapi.NewNode("127.0.0.1:0", cfg.Config, cfg.HTTP)
	if err != nil {
		t.Fatalf("node %s: %v", cfg.Name, err)
	}
	web.Serve()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		n.Abort()
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	t.Cleanup(n.Abort)
	return n, web
}

// client is the HTTP client of Do (safe for concurrent use, never
// changed): a bounded timeout and enough idle connections per node.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// Resp is an HTTP answer, read in full.
type Resp struct {
	Status int
	Header http.Header
	Body   []byte
}

// String is the status and the body, for test failures.
func (r Resp) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// KeyURL is the URL of key on the HTTP door at base (http://host:port).
func KeyURL(base, key string) string { return base + "/v1/keys/" + url.PathEscape(key) }

// Put writes key = value through the door at base; query holds
// parameters such as "ttl=30s".
func Put(t testing.TB, base, key, value string, query ...string) Resp {
	t.Helper()
	u := KeyURL(base, key)
	if len(query) > 0 {
		u += "?" + strings.Join(query, "&")
	}
	return Do(t, http.MethodPut, u, []byte(value))
}

// Get reads key through the door at base.
func Get(t testing.TB, base, key string) Resp {
	t.Helper()
	return Do(t, http.MethodGet, KeyURL(base, key), nil)
}

// Del deletes key through the door at base.
func Del(t testing.TB, base, key string) Resp {
	t.Helper()
	return Do(t, http.MethodDelete, KeyURL(base, key), nil)
}

// Do sends method u with body (nil: none) and the header pairs hdr
// (name, value, name, value, ...); a request that gets no answer fails
// the test.
func Do(t testing.TB, method, u string, body []byte, hdr ...string) Resp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatalf("request %s %s: %v", method, u, err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return Resp{res.StatusCode, res.Header, b}
}

// TryGet is a GET for goroutines other than the test's (which must not
// call t.Fatal): a request that got no answer is returned as an error.
func TryGet(u string) (Resp, error) {
	res, err := client.Get(u)
	if err != nil {
		return Resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return Resp{res.StatusCode, res.Header, b}, err
}

// WaitFor polls cond every 20 ms until it holds, and returns how long that
// took; the test fails after timeout, naming what it waited for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitRing waits until every node's ring has exactly want members and all
// nodes agree on it.
func WaitRing(t testing.TB, nodes []*node.Node, want int) {
	t.Helper()
	WaitFor(t, 20*time.Second, fmt.Sprintf("all nodes see a ring of %d", want), func() bool {
		var sum string
		for i, n := range nodes {
			ci := n.Cluster()
			if len(ci.Ring.Members) != want {
				return false
			}
			if i == 0 {
				sum = ci.Ring.Checksum
			} else if ci.Ring.Checksum != sum {
				return false
			}
		}
		return true
	})
}
