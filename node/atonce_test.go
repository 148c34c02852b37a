package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/peercache/peercache/node"
)

// TestAnswersAtOnce checks the prediction the RESP event loop runs commands
// on: only keys this node serves without waiting on another process.
func TestAnswersAtOnce(t *testing.T) {
	short := func(c *node.Config) { c.Migration.HandoffWindow = 200 * time.Millisecond }

	t.Run("alone on the embedded store", func(t *testing.T) {
		n := startNode(t, "solo", nil, false, short)
		if !n.AnswersAtOnce("k", false) || !n.AnswersAtOnce("k", true) {
			t.Fatalf("a lone node on the embedded store should answer GET and SET of any key at once")
		}
	})
	t.Run("Redis shard", func(t *testing.T) {
		n := startNode(t, "redis", nil, true, short)
		if n.AnswersAtOnce("k", false) || n.AnswersAtOnce("k", true) {
			t.Fatalf("a node on a Redis shard waits on redis-server")
		}
	})
	t.Run("loader", func(t *testing.T) {
		getter := func(context.Context, string) ([]byte, time.Duration, error) { return []byte("v"), 0, nil }
		n := startNode(t, "loader", nil, false, short, func(c *node.Config) { c.Loader.Getter = getter })
		if n.AnswersAtOnce("k", false) {
			t.Fatalf("a read may call the loader")
		}
		if !n.AnswersAtOnce("k", true) {
			t.Fatalf("a write calls no loader")
		}
	})
	t.Run("replicas and keys of others", func(t *testing.T) {
		nodes := startCluster(t, 2, false, short, func(c *node.Config) { c.Replication.Factor = 2 })
		a, b := nodes[0], nodes[1]
		mine := keyOwnedBy(a, a.Name(), "atonce-")
		theirs := keyOwnedBy(a, b.Name(), "atonce-")
		// Right after the join the previous owner may hold a's keys.
		waitFor(t, 10*time.Second, "the handoff window to end", func() bool { return a.AnswersAtOnce(mine, false) })
		if a.AnswersAtOnce(mine, true) {
			t.Fatalf("a write with --replicas 2 copies to a replica")
		}
		if a.AnswersAtOnce(theirs, false) || a.AnswersAtOnce(theirs, true) {
			t.Fatalf("a key another member owns is forwarded")
		}
	})
	t.Run("near copy", func(t *testing.T) {
		nodes := startCluster(t, 2, false, short)
		a, b := nodes[0], nodes[1]
		mine := keyOwnedBy(a, a.Name(), "atonce-")
		waitFor(t, 10*time.Second, "the handoff window to end", func() bool { return a.AnswersAtOnce(mine, true) })
		if r := a.put(t, mine, "v"); r.status/100 != 2 {
			t.Fatalf("put: %v", r)
		}
		if r := b.get(t, mine); r.status != 200 {
			t.Fatalf("get through b: %v", r)
		}
		if a.AnswersAtOnce(mine, true) {
			t.Fatalf("a write of a key another member holds a near copy of waits for its invalidation")
		}
		if !a.AnswersAtOnce(mine, false) {
			t.Fatalf("a read does not wait for near copies")
		}
	})
}
