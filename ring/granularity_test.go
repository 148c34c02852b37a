package ring

import (
	"os"
	"slices"
	"testing"
)

// TestPartitionGranularity measures the trade-off that issue 14's slots
// face: with rendezvous placement, fewer and larger partitions make fewer
// contiguous runs (a smaller CLUSTER SLOTS reply) but a worse balance. It
// is a measurement, not a check: it runs only with PEERCACHE_RING_SWEEP=1
// (docs/ARCHITECTURE.md, "Toward slots", quotes its output):
//
//	PEERCACHE_RING_SWEEP=1 go test -run TestPartitionGranularity -v ./ring/
func TestPartitionGranularity(t *testing.T) {
	if os.Getenv("PEERCACHE_RING_SWEEP") != "1" {
		t.Skip("a measurement: set PEERCACHE_RING_SWEEP=1 to run it")
	}
	const sets, members = 1000, 10
	// CLUSTER SLOTS bytes, Redis 7 layout, IPv4 "10.0.0.10", port 6379:
	// per range "*N\r\n:start\r\n:end\r\n" (about 18 bytes) and per node
	// "*4\r\n$9\r\n10.0.0.10\r\n:6379\r\n$40\r\n<40-char id>\r\n*0\r\n" (77).
	reply := func(runs, nodes int) int { return runs * (18 + 77*nodes) }
	for _, vn := range []int{2, 4, 8, 16, 32} {
		bits := newEmpty(Options{VNodes: vn}).bits
		var worst []float64
		runs1, runs2 := 0, 0
		for s := range sets {
			r := New(containerIDs(uint64(100+s), members), Options{VNodes: vn})
			worst = append(worst, maxOverMean(r.Shares()))
			n1, n2 := 0, 0
			var prev1, prev2 uint32
			for p := range r.table {
				o1 := r.table[p]
				o2 := r.best(uint64(p), int(o1))
				if p == 0 || o1 != prev1 {
					n1++
				}
				if p == 0 || o1 != prev1 || o2 != prev2 {
					n2++
				}
				prev1, prev2 = o1, o2
			}
			runs1, runs2 = max(runs1, n1), max(runs2, n2)
		}
		slices.Sort(worst)
		t.Logf("%5d partitions (%2d slots each): max/mean over %d sets of %d members: median %.3f p90 %.3f p99 %.3f worst %.3f; runs up to %d (rf 1) %d (rf 2); CLUSTER SLOTS up to %d KiB (rf 1) %d KiB (rf 2)",
			1<<bits, 16384>>bits, sets, members,
			worst[sets/2], worst[sets*9/10], worst[sets*99/100], worst[sets-1],
			runs1, runs2, reply(runs1, 1)/1024, reply(runs2, 2)/1024)
	}
}
