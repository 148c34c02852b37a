package node_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/ring"
)

func withReplicas(rf int, acks node.WriteAcks) nodeOpt {
	return func(c *node.Config) { c.Replication.Factor = rf; c.Replication.WriteAcks = acks }
}

// copiesOK checks that every record on the live nodes is held by all of its
// owners in the ring (min(rf, live) copies) and by no other node.
func copiesOK(t testing.TB, nodes []*testNode, rf int) (keys int, bad string) {
	keys, bad, _ = copiesCheck(t, nodes, rf)
	return keys, bad
}

func copiesCheck(t testing.TB, nodes []*testNode, rf int) (keys int, bad, badKey string) {
	t.Helper()
	ring := nodes[0].RingForTest()
	holders := map[string][]string{}
	for _, n := range nodes {
		for k := range shardSnapshot(t, n.Store()) {
			holders[k] = append(holders[k], n.Name())
		}
	}
	byName := map[string]*testNode{}
	for _, n := range nodes {
		byName[n.Name()] = n
	}
	for k, hs := range holders {
		owners := ring.Owners(k, rf)
		if len(hs) != len(owners) {
			// The workload keeps writing while the shards are scanned one
			// after the other: a key created meanwhile shows up on the
			// shards scanned later only. Ask its owners directly.
			hs = hs[:0]
			for _, n := range nodes {
				if _, found, err := n.Store().Get(context.Background(), k); err == nil && found {
					hs = append(hs, n.Name())
				}
			}
		}
		if len(hs) != len(owners) {
			return len(holders), fmt.Sprintf("key %s held by %v, owners %v", k, hs, owners), k
		}
		for _, h := range hs {
			found := false
			for _, o := range owners {
				found = found || o == h
			}
			if !found {
				return len(holders), fmt.Sprintf("key %s held by non-owner %s (owners %v)", k, h, owners), k
			}
		}
	}
	return len(holders), "", ""
}

// repairedKeys sums the keys the nodes' repair paths copied again.
func repairedKeys(nodes []*testNode) uint64 {
	var n uint64
	for _, tn := range nodes {
		n += tn.RepairStatsForTest().Repaired
	}
	return n
}

// crash kills a node as a lost machine would: no Leave, no handoff, and its
// Redis emptied.
func crash(t testing.TB, n *testNode) {
	n.Abort()
	if err := n.redis.Client().FlushAll(context.Background()).Err(); err != nil {
		t.Fatalf("flush %s's redis: %v", n.Name(), err)
	}
}

// runKillScenario runs the workload on a cluster, crashes victims one at a
// time, and checks that nothing acknowledged was lost.
func runKillScenario(t *testing.T, size, rf int, acks node.WriteAcks, kills int) {
	nodes := startCluster(t, size, true, withReplicas(rf, acks), withoutNearCache) // see TestScaleUnderLoad
	w := newWorkload(t, 3000, 12, nodes)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); w.resume(); <-done }) // also after a failed check left the writers paused
	time.Sleep(2 * time.Second)
	w.report(t, "before the crash")

	for k := 0; k < kills; k++ {
		victim := nodes[len(nodes)-1]
		nodes = nodes[:len(nodes)-1]
		w.setTargets(nodes)
		failedBefore := w.failed.Load()
		crash(t, victim)
		crashAt := time.Now()
		detected := waitFor(t, 30*time.Second, victim.Name()+" leaves every ring", func() bool {
			for _, n := range nodes {
				if n.RingForTest().Has(victim.Name()) {
					return false
				}
			}
			return true
		})
		// Copies rebuilt: every key on all its owners, no migration running.
		// Counted on a quiesced cluster: with writes in flight, a write the
		// primary has applied and is still copying would look like a
		// missing copy.
		w.pause()
		rebuildStart := time.Now()
		var rebuilt time.Duration
		for {
			idle := true
			for _, n := range nodes {
				idle = idle && !n.MigratorForTest().Status().Active && n.RepairPendingForTest() == 0
			}
			if _, bad := copiesOK(t, nodes, rf); bad == "" && idle {
				rebuilt = time.Since(rebuildStart) + detected
				break
			}
			if time.Since(rebuildStart) > 15*time.Second {
				rebuilt = time.Since(rebuildStart) + detected
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		keys, bad, badKey := copiesCheck(t, nodes, rf)
		if bad != "" {
			for _, n := range nodes {
				e, found, _ := n.Store().Get(context.Background(), badKey)
				t.Logf("  now: %s holds %s: found=%v version time %s tomb=%v value=%q", n.Name(), badKey, found,
					time.Unix(0, int64(e.Version)).Format("15:04:05.000000"), e.Tombstone, e.Value)
			}
		}
		t.Logf("crash of %s: dropped from every ring after %s; every key on all its owners %s after the crash (writers paused at detection); %d keys with %d copies each; repaired by the repair path so far: %d; client errors in the window: %d",
			victim.Name(), detected.Round(time.Millisecond), rebuilt.Round(time.Millisecond), keys, min(rf, len(nodes)), repairedKeys(nodes), w.failed.Load()-failedBefore)
		if bad != "" {
			t.Errorf("after the crash of %s: %s", victim.Name(), bad)
			_, _, k := copiesCheck(t, nodes, rf)
			for _, n := range nodes {
				st := n.MigratorForTest().Status()
				e, found, _ := n.Store().Get(context.Background(), k)
				t.Logf("  %s migration: active=%v last=%+v; %s: found=%v version time %s tomb=%v", n.Name(), st.Active, st.Last, k, found,
					time.Unix(0, int64(e.Version)).Format("15:04:05.000000"), e.Tombstone)
			}
			t.Logf("  crash at %s, detected at %s", crashAt.Format("15:04:05.000000"), crashAt.Add(detected).Format("15:04:05.000000"))
		}
		if rebuilt-detected > 5*time.Second {
			t.Errorf("copies rebuilt %s after the crash was detected; want within 5 s", rebuilt-detected)
		}
		w.resume()
		time.Sleep(time.Second)
	}
	cancel()
	<-done
	w.report(t, "end")
	lost, resurrected := w.check(nodes[0])
	t.Logf("final check: lost=%d resurrected=%d misses=%d stale_reads=%d failed_ops=%d of %d", lost, resurrected, w.misses.Load(), w.stale.Load(), w.failed.Load(), w.ops.Load())
}

// Acceptance (replication 1, 2): rf=2, 3 nodes, a workload through all
// nodes; one node crashes (its Redis emptied), then a second one after the
// copies were rebuilt: no acknowledged write lost, no delete undone.
func TestReplicasSurviveCrashes(t *testing.T) {
	runKillScenario(t, 3, 2, node.WriteAcksAll, 2)
}

// Acceptance (replication 3): rf=3 with write-acks quorum, one crash.
func TestQuorumSurvivesCrash(t *testing.T) {
	runKillScenario(t, 3, 3, node.WriteAcksQuorum, 1)
}

// Reads fail over to a replica while the primary is unreachable, before the
// ring drops it.
func TestReadFailsOverToReplica(t *testing.T) {
	nodes := startCluster(t, 3, false, withReplicas(2, node.WriteAcksAll), func(c *node.Config) { c.Gossip.Timing = 0 }) // LAN timing: slow failure detection
	a := nodes[0]
	var key string
	for i := 0; ; i++ {
		key = fmt.Sprintf("k%d", i)
		if a.RingForTest().Owner(key) == nodes[2].Name() {
			break
		}
	}
	if r := a.put(t, key, "v"); r.status != http.StatusNoContent {
		t.Fatalf("put: %s", r)
	}
	nodes[2].Abort() // the primary; memberlist (LAN timing) notices only after seconds
	r := a.get(t, key)
	if r.status != http.StatusOK || string(r.body) != "v" || r.header.Get(httpapi.HeaderSource) != string(node.SourceReplica) {
		t.Fatalf("read with the primary down: %s (source %q)", r, r.header.Get(httpapi.HeaderSource))
	}
}

// Acceptance (CI issue, repair): rf=2, 3 nodes, writes running; one node's
// peer API refuses every request for 3 s while it stays a member (no ring
// change), so the copies its primaries send it fail and the clients get
// retryable 503s. Once it answers again the repair path copies those keys
// again: within 5 s every key has its 2 copies, without a sweep or a ring
// change.
func TestRepairAfterPeerOutage(t *testing.T) {
	nodes := startCluster(t, 3, true, withReplicas(2, node.WriteAcksAll), withoutNearCache)
	w := newWorkload(t, 3000, 12, nodes)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.run(ctx); close(done) }()
	stopLoad := sync.OnceFunc(func() { cancel(); w.resume(); <-done })
	t.Cleanup(stopLoad)
	time.Sleep(1500 * time.Millisecond)
	versions := make([]uint64, len(nodes))
	for i, n := range nodes {
		versions[i] = n.ViewVersionForTest()
	}

	victim := nodes[2]
	failedBefore := w.failed.Load()
	victim.PeerRefuseForTest().Store(true)
	time.Sleep(3 * time.Second)
	var pending int
	for _, n := range nodes {
		pending += n.RepairPendingForTest()
	}
	victim.PeerRefuseForTest().Store(false)
	back := time.Now()
	w.pause() // count copies on a quiesced cluster (see runKillScenario)
	paused := time.Since(back)
	var keys int
	var bad string
	for {
		keys, bad = copiesOK(t, nodes, 2)
		if bad == "" || time.Since(back) > 15*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(back)
	w.resume()
	t.Logf("peer API of %s refused for 3 s: %d client errors; %d keys waited for repair when it answered again; every one of %d keys had 2 copies %s later (writers paused after %s); repaired: %d",
		victim.Name(), w.failed.Load()-failedBefore, pending, keys, took.Round(time.Millisecond), paused.Round(time.Millisecond), repairedKeys(nodes))
	if bad != "" {
		t.Errorf("15 s after the peer answered again: %s", bad)
	}
	if pending == 0 {
		t.Errorf("no key waited for repair: the outage did not make any copy fail")
	}
	if took > 5*time.Second {
		t.Errorf("copies complete %s after the peer answered again; want within 5 s", took)
	}
	for i, n := range nodes {
		if v := n.ViewVersionForTest(); v != versions[i] {
			t.Errorf("%s's ring changed during the test (version %d -> %d): the repair must not need one", n.Name(), versions[i], v)
		}
	}
	stopLoad()
	lost, resurrected := w.check(nodes[0])
	t.Logf("final check: lost=%d resurrected=%d misses=%d stale_reads=%d failed_ops=%d of %d", lost, resurrected, w.misses.Load(), w.stale.Load(), w.failed.Load(), w.ops.Load())
}

// A key whose primary is gone (crashed before its background copies were
// acknowledged, with acks quorum or one) is copied by each surviving owner
// to the others, although all of them were owners before; a key whose
// primary survives is not copied again.
func TestPlacementCopiesKeysOfAGonePrimary(t *testing.T) {
	base := ring.New([]string{"n0", "n1", "n2"}, ring.Options{})
	now := base.Without("n2")
	boots := map[string]string{"n0": "b0", "n1": "b1", "n2": "b2"}
	p := node.NewReplicaPlacementForTest("n0", 3, now, base, boots, boots)
	var orphan, kept string
	for i := 0; orphan == "" || kept == ""; i++ {
		k := fmt.Sprint("k", i)
		switch base.Owner(k) {
		case "n2":
			orphan = k
		case "n0":
			kept = k
		}
	}
	if to, own := p.Targets(orphan); !own || !slices.Equal(to, []string{"n1"}) {
		t.Errorf("key of the crashed primary: targets %v (own %v), want [n1]", to, own)
	}
	if to, own := p.Targets(kept); !own || len(to) != 0 {
		t.Errorf("key of a surviving primary: targets %v (own %v), want none", to, own)
	}
}

// A write's value may alias the caller's buffer (the RESP door passes the
// bytes of its read buffer, reused for the next pipeline once the reply is
// out). Copies that finish after the write returned (acks one or quorum)
// must send the value as written, not what the buffer holds later.
func TestBackgroundCopiesOwnTheirValue(t *testing.T) {
	nodes := startCluster(t, 3, false, withReplicas(3, node.WriteAcksOne), withoutNearCache)
	a := nodes[0]
	ctx := context.Background()
	var keys []string
	for i := 0; len(keys) < 200; i++ {
		if k := fmt.Sprint("alias", i); a.RingForTest().Owner(k) == a.Name() {
			keys = append(keys, k)
		}
	}
	buf := make([]byte, 64)
	for _, k := range keys {
		copy(buf, "value-of-"+k+"--------------------------------------------------")
		if _, err := a.Write(ctx, k, node.Mutation{Value: buf}); err != nil {
			t.Fatalf("write %s: %v", k, err)
		}
		copy(buf, "OVERWRITTEN-BY-THE-NEXT-REQUEST-------------------------------------") // the next pipeline
	}
	waitFor(t, 5*time.Second, "every key has 3 copies", func() bool { _, bad := copiesOK(t, nodes, 3); return bad == "" })
	for _, n := range nodes {
		for _, k := range keys {
			e, found, err := n.Store().Get(ctx, k)
			want := ("value-of-" + k + "--------------------------------------------------")[:64]
			if err != nil || !found || string(e.Value) != want {
				t.Fatalf("%s holds %s = %q (found %v, err %v), want %q", n.Name(), k, e.Value, found, err, want)
			}
		}
	}
}
