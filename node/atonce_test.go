package node_test

import (
	"context"
	"errors"
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
		// A read does not wait for near copies. (Under load a late view
		// change may open another handoff window first: it ends.)
		waitFor(t, 10*time.Second, "a read to be answered at once", func() bool { return a.AnswersAtOnce(mine, false) })
	})
}

// TestStartForwards checks the forwards a door that cannot wait starts
// (StartGet, StartWrite): they reach the owner, answer done, leave the
// near cache coherent, start nothing they cannot carry (a key of this
// node, a condition, no connection up), and ask for a retry when the owner
// cannot be reached.
func TestStartForwards(t *testing.T) {
	nodes := startCluster(t, 2, false, func(c *node.Config) {
		c.Migration.HandoffWindow = 200 * time.Millisecond
		c.Tier.InvalidationWait = 5 * time.Second // a write returns once the near copies are gone
	})
	a, b := nodes[0], nodes[1]
	mine := keyOwnedBy(a, a.Name(), "start-")
	theirs := keyOwnedBy(a, b.Name(), "start-")
	if a.Forwards(mine) || !a.Forwards(theirs) {
		t.Fatalf("Forwards(mine) = %v, Forwards(theirs) = %v", a.Forwards(mine), a.Forwards(theirs))
	}
	if r := a.put(t, theirs, "v0"); r.status/100 != 2 { // dials a's connection to b
		t.Fatalf("put: %v", r)
	}
	type answer struct {
		it    node.Item
		res   node.WriteResult
		err   error
		retry bool
	}
	got := make(chan answer, 4)
	onGet := func(it node.Item, err error, retry bool) { got <- answer{it: it, err: err, retry: retry} }
	onSet := func(res node.WriteResult, err error, retry bool) { got <- answer{res: res, err: err, retry: retry} }
	if a.StartGet(mine, false, onGet) || a.StartWrite(mine, node.Mutation{Value: []byte("x")}, false, onSet) {
		t.Fatal("started a forward of a key this node owns")
	}
	if a.StartWrite(theirs, node.Mutation{Value: []byte("x"), IfAbsent: true}, false, onSet) {
		t.Fatal("started a conditional write (its answer may not be repeated)")
	}
	if !a.StartWrite(theirs, node.Mutation{Value: []byte("v1")}, false, onSet) {
		t.Fatal("StartWrite did not start")
	}
	a.FlushStarted()
	if r := <-got; r.err != nil || r.retry || !r.res.Applied {
		t.Fatalf("StartWrite: %+v", r)
	}
	for range 2 { // the second read may come from the near copy the first filled
		if !a.StartGet(theirs, false, onGet) {
			t.Fatal("StartGet did not start")
		}
		a.FlushStarted()
		if r := <-got; r.err != nil || r.retry || string(r.it.Value) != "v1" {
			t.Fatalf("StartGet: %+v", r)
		}
	}
	if r := b.put(t, theirs, "v2"); r.status/100 != 2 { // invalidates a's near copy
		t.Fatalf("put: %v", r)
	}
	if !a.StartGet(theirs, false, onGet) {
		t.Fatal("StartGet did not start")
	}
	a.FlushStarted()
	if r := <-got; r.err != nil || string(r.it.Value) != "v2" {
		t.Fatalf("StartGet after a write at the owner: %+v, want v2", r)
	}
	if !a.StartGet(theirs+"-absent", false, onGet) {
		t.Fatal("StartGet did not start")
	}
	a.FlushStarted()
	if r := <-got; !errors.Is(r.err, node.ErrNotFound) || r.retry {
		t.Fatalf("StartGet of a missing key: %+v", r)
	}

	// Without a connection up nothing starts (the blocking path dials).
	addr := b.PeerAdvertisedForTest()
	a.PeerClientForTest().Forget(addr)
	if a.StartGet(theirs+"-2", false, onGet) {
		t.Fatal("StartGet started with no connection to the owner")
	}
	// An owner that does not answer: the forward asks for a retry.
	if r := a.get(t, theirs); r.status != 200 { // dials again
		t.Fatalf("get: %v", r)
	}
	b.PeerServerForTest().Close()
	if a.StartGet(theirs+"-3", false, onGet) {
		a.FlushStarted()
		if r := <-got; r.err == nil || !r.retry {
			t.Fatalf("StartGet from an owner whose peer port closed: %+v, want a retry", r)
		}
	}
}
