package httpapi_test

import (
	"fmt"
	"testing"

	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/internal/nodetest"
	"github.com/peercache/peercache/node"
)

// testNode is an in-process node (Memory store) with its HTTP door.
type testNode struct {
	*node.Node
	web  *httpapi.Server
	base string // http://host:port
}

type nodeOpt func(*nodetest.Config)

// startNode starts a node named name joining through seeds.
func startNode(t testing.TB, name string, seeds []string, opts ...nodeOpt) *testNode {
	t.Helper()
	cfg := nodetest.Base(name, seeds)
	for _, o := range opts {
		o(&cfg)
	}
	n, web := nodetest.Start(t, cfg)
	return &testNode{Node: n, web: web, base: "http://" + web.Addr()}
}

// startCluster starts size nodes named n0..n{size-1}, all seeded with n0.
func startCluster(t testing.TB, size int) []*testNode {
	t.Helper()
	nodes := []*testNode{startNode(t, "n0", nil)}
	for i := 1; i < size; i++ {
		nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i), []string{nodes[0].GossipAddr()}))
	}
	ns := make([]*node.Node, len(nodes))
	for i, n := range nodes {
		ns[i] = n.Node
	}
	nodetest.WaitRing(t, ns, size)
	return nodes
}

func do(t testing.TB, method, u string, body []byte, hdr ...string) nodetest.Resp {
	t.Helper()
	return nodetest.Do(t, method, u, body, hdr...)
}

func (n *testNode) keyURL(key string) string { return nodetest.KeyURL(n.base, key) }

func (n *testNode) put(t testing.TB, key, value string, query ...string) nodetest.Resp {
	return nodetest.Put(t, n.base, key, value, query...)
}

func (n *testNode) get(t testing.TB, key string) nodetest.Resp { return nodetest.Get(t, n.base, key) }

func (n *testNode) del(t testing.TB, key string) nodetest.Resp { return nodetest.Del(t, n.base, key) }
