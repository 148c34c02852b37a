package resp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/nodeconfig"
)

// testNode is an in-process node (in-memory store) with a RESP server.
type testNode struct {
	*node.Node
	resp *Server
	web  *httpapi.Server
	addr string // RESP host:port
	port string
}

func testLogger() *slog.Logger {
	if os.Getenv("PEERCACHE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testOptions applies PEERCACHE_TEST_RESP_EVENT_LOOPS (make test runs this
// package a second time with it set): every server of the suite then
// serves its connections from that many event loops, unless the test
// chose itself or needs TLS.
func testOptions(o Options) Options {
	if v := os.Getenv("PEERCACHE_TEST_RESP_EVENT_LOOPS"); v != "" && o.EventLoops == 0 && o.TLS == nil {
		n, err := strconv.Atoi(v)
		if err != nil {
			panic("PEERCACHE_TEST_RESP_EVENT_LOOPS: " + err.Error())
		}
		o.EventLoops = n
	}
	return o
}

func startNode(t testing.TB, name string, seeds []string, opts ...func(*node.Config)) *testNode {
	t.Helper()
	return startNodeResp(t, name, seeds, Options{}, opts...)
}

// startNodeResp is startNode with the RESP server's options (Addr and
// Listener are set here: the port is bound before the node, which gossips
// it).
func startNodeResp(t testing.TB, name string, seeds []string, ro Options, opts ...func(*node.Config)) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.Config{
		RESP:      nodeconfig.RESP{Addr: ln.Addr().String()},
		Name:      name,
		Gossip:    nodeconfig.Gossip{Addr: "127.0.0.1:0", Advertise: "127.0.0.1", Seeds: seeds, Timing: membership.TimingFast},
		Logger:    testLogger(),
		Migration: nodeconfig.Migration{SweepInterval: -1},
	}
	for _, o := range opts {
		o(&cfg)
	}
	n, web, err := httpapi.NewNode("127.0.0.1:0", cfg, httpapi.Config{})
	if err != nil {
		ln.Close()
		t.Fatalf("node %s: %v", name, err)
	}
	web.Serve()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		n.Abort()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(n.Abort)
	ro.Listener, ro.Logger = ln, testLogger()
	s, err := Listen(n, testOptions(ro))
	if err != nil {
		t.Fatalf("resp listen: %v", err)
	}
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("resp close: %v", err)
		}
	})
	tn := &testNode{Node: n, resp: s, web: web, addr: s.Addr().String()}
	_, tn.port, _ = splitPort(tn.addr)
	return tn
}

func splitPort(addr string) (string, string, error) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:], nil
		}
	}
	return "", "", fmt.Errorf("no port in %q", addr)
}

// startCluster starts size nodes seeded with the first and waits until
// every one has all of them in its ring.
func startCluster(t testing.TB, size int) []*testNode {
	t.Helper()
	return startClusterResp(t, size, Options{})
}

// startClusterResp is startCluster with the RESP servers' options.
func startClusterResp(t testing.TB, size int, ro Options, opts ...func(*node.Config)) []*testNode {
	t.Helper()
	nodes := []*testNode{startNodeResp(t, "n0", nil, ro, opts...)}
	for i := 1; i < size; i++ {
		nodes = append(nodes, startNodeResp(t, fmt.Sprintf("n%d", i), []string{nodes[0].GossipAddr()}, ro, opts...))
	}
	// In cluster mode, also wait until every node sees the others gossip
	// its ring (Topology.Settled): until then a node forwards rather than
	// redirect, and a test expecting MOVED would race the gossip.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, n := range nodes {
			if len(n.Cluster().Ring.Members) != size || (ro.Cluster && !n.Topology().Settled) {
				ok = false
			}
		}
		if ok {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ring did not reach %d members (or, in cluster mode, did not settle)", size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// needTool fails the test when a Redis tool is missing: these tests claim
// behaviour against the real redis-cli/redis-benchmark (scripts/deps.sh
// installs them with Debian's redis-tools).
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (install redis-tools: scripts/deps.sh): %v", name, err)
	}
	return p
}
