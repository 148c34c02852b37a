package node_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/ring"
)

// TestMultiKeyChanges: RENAME, RENAMENX, COPY and MSETNX are atomic at the
// owner of their keys' slot, sent through every node of a 3-node cluster
// (two of them forward), with replicas: a token renamed back and forth by
// 16 goroutines is never lost nor doubled, exactly one of several
// concurrent MSETNX wins and all its keys hold its values, expiries travel
// with renames and copies, and both copies of every key agree.
func TestMultiKeyChanges(t *testing.T) {
	nodes := startCluster(t, 3, true, withReplicas(2, node.WriteAcksAll))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A token whose slot moves to n3 when it joins below.
	later := ring.New([]string{"n0", "n1", "n2", "n3"}, nodes[0].RingOptionsForTest())
	tag := 0
	for later.Owner(fmt.Sprintf("{tok%d}", tag)) != "n3" {
		tag++
	}
	a, b := fmt.Sprintf("{tok%d}a", tag), fmt.Sprintf("{tok%d}b", tag)
	first := nodes // the goroutines below address these three
	if err := nodes[0].Set(ctx, a, []byte("token"), 0); err != nil {
		t.Fatal(err)
	}
	rename := func(n *testNode, src, dst string) (kv.MultiResult, error) {
		return n.WriteMulti(ctx, kv.Multi{Kind: kv.MultiRename, Keys: []string{src, dst}})
	}

	var moved atomic.Int64
	concurrently(16, 600, func(i int) bool {
		src, dst := a, b
		if i%2 == 1 {
			src, dst = b, a
		}
		res, err := rename(nodes[i%3], src, dst)
		if err != nil {
			t.Errorf("rename %s %s: %v", src, dst, err)
			return false
		}
		if res.Applied != res.SourceExisted {
			t.Errorf("rename result %+v", res)
		}
		if res.Applied {
			moved.Add(1)
		}
		return true
	})
	// Again while a fourth node joins (the slot may move to it: its
	// handoff reads find the token on the previous owner). A retryable
	// refusal is the client's to retry; the token must survive.
	stop := make(chan struct{})
	var retried atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			src, dst := a, b
			if i%2 == 1 {
				src, dst = b, a
			}
			res, err := rename(first[i%3], src, dst)
			var e *kv.Error
			switch {
			case errors.As(err, &e) && e.Retryable:
				retried.Add(1)
			case err != nil:
				t.Errorf("rename during the join: %v", err)
				return
			case res.Applied:
				moved.Add(1)
			}
		}
	}()
	nodes = append(nodes, startNode(t, "n3", []string{nodes[0].GossipAddr()}, true, withReplicas(2, node.WriteAcksAll)))
	waitRing(t, nodes, 4)
	time.Sleep(500 * time.Millisecond) // renames while the migration settles
	close(stop)
	<-done
	t.Logf("%d renames applied, %d retryable refusals during the join", moved.Load(), retried.Load())

	_, errA := nodes[1].Get(ctx, a)
	_, errB := nodes[2].Get(ctx, b)
	if (errA == nil) == (errB == nil) {
		t.Fatalf("after %d renames: %s present %v, %s present %v; want exactly one", moved.Load(), a, errA == nil, b, errB == nil)
	}
	if moved.Load() == 0 {
		t.Fatal("no rename applied")
	}

	// MSETNX: one winner of 12, all its keys set, nothing of the others.
	keys := []string{"{ms}1", "{ms}2", "{ms}3", "{ms}4"}
	var wins atomic.Int64
	concurrently(12, 12, func(i int) bool {
		m := kv.Multi{Kind: kv.MultiMSetNX, Keys: keys}
		for range keys {
			m.Values = append(m.Values, []byte(fmt.Sprint("w", i)))
		}
		res, err := nodes[i%3].WriteMulti(ctx, m)
		if err != nil {
			t.Errorf("msetnx: %v", err)
		}
		if res.Applied {
			wins.Add(1)
		}
		return true
	})
	if wins.Load() != 1 {
		t.Fatalf("%d MSETNX applied, want 1", wins.Load())
	}
	var winner string
	for _, k := range keys {
		it, err := nodes[0].Get(ctx, k)
		if err != nil || (winner != "" && string(it.Value) != winner) {
			t.Fatalf("%s after MSETNX: %q %v (winner %q)", k, it.Value, err, winner)
		}
		winner = string(it.Value)
	}

	// Expiries travel; COPY leaves the source; NX kinds keep an existing
	// destination.
	if err := nodes[2].Set(ctx, "{e}src", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if res, err := nodes[1].WriteMulti(ctx, kv.Multi{Kind: kv.MultiCopy, Keys: []string{"{e}src", "{e}cp"}}); err != nil || !res.Applied {
		t.Fatalf("copy: %+v %v", res, err)
	}
	if res, err := nodes[0].WriteMulti(ctx, kv.Multi{Kind: kv.MultiCopy, Keys: []string{"{e}src", "{e}cp"}}); err != nil || res.Applied {
		t.Fatalf("copy onto an existing key: %+v %v", res, err)
	}
	if res, err := nodes[0].WriteMulti(ctx, kv.Multi{Kind: kv.MultiRenameNX, Keys: []string{"{e}src", "{e}cp"}}); err != nil || res.Applied || !res.SourceExisted {
		t.Fatalf("renamenx onto an existing key: %+v %v", res, err)
	}
	if res, err := rename(nodes[0], "{e}src", "{e}mv"); err != nil || !res.Applied {
		t.Fatalf("rename: %+v %v", res, err)
	}
	for _, k := range []string{"{e}cp", "{e}mv"} {
		it, err := nodes[1].Get(ctx, k)
		if left, ok := it.TTL(); err != nil || string(it.Value) != "v" || !ok || left < 59*time.Minute {
			t.Fatalf("%s: %q ttl %s %v %v", k, it.Value, left, ok, err)
		}
	}
	if _, err := nodes[1].Get(ctx, "{e}src"); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("renamed source still readable: %v", err)
	}

	// Refused: keys of two slots, a copy onto itself, a bad shape.
	for _, m := range []kv.Multi{
		{Kind: kv.MultiRename, Keys: []string{"x", "y"}},
		{Kind: kv.MultiMSetNX, Keys: []string{"{a}1", "{b}1"}, Values: [][]byte{nil, nil}},
		{Kind: kv.MultiCopy, Keys: []string{"{e}cp", "{e}cp"}},
		{Kind: kv.MultiRename, Keys: []string{"{e}cp"}},
		{Kind: kv.MultiMSetNX, Keys: []string{"{e}cp"}},
		{Kind: 99, Keys: []string{"{e}cp", "{e}x"}},
	} {
		if _, err := nodes[0].WriteMulti(ctx, m); !errors.Is(err, kv.ErrInvalid) {
			t.Errorf("%+v: %v, want invalid", m, err)
		}
	}

	// Both copies of every key agree (the replicas got every change).
	waitFor(t, 5*time.Second, "replicas agree", func() bool {
		var diff []string
		for _, k := range append(keys, a, b, "{e}src", "{e}cp", "{e}mv") {
			var seen []string
			for _, n := range nodes {
				if e, ok := shardSnapshot(t, n.Store())[k]; ok && !e.Tombstone {
					seen = append(seen, fmt.Sprintf("%s@%d", e.Value, e.Version))
				}
			}
			want := 2
			if k == "{e}src" || (k == a && errA != nil) || (k == b && errA == nil) {
				want = 0
			}
			if len(seen) != want || (want == 2 && seen[0] != seen[1]) {
				diff = append(diff, fmt.Sprintf("%s: %v", k, seen))
			}
		}
		if len(diff) > 0 {
			t.Logf("copies: %s", strings.Join(diff, "; "))
		}
		return len(diff) == 0
	})
}
