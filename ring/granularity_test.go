package ring

import (
	"fmt"
	"slices"
	"testing"
)

// BenchmarkPartitionGranularity measures the trade-off that issue 14's
// slots face: with rendezvous placement, fewer and larger partitions make
// fewer contiguous runs (a smaller CLUSTER SLOTS reply) but a worse
// balance. Each iteration builds 1000 random 10-member rings per
// granularity; docs/ARCHITECTURE.md ("Toward slots") quotes the metrics:
//
//	go test -run '^$' -bench PartitionGranularity -benchtime 1x ./ring/
func BenchmarkPartitionGranularity(b *testing.B) {
	const sets, members = 1000, 10
	// CLUSTER SLOTS bytes with IPv4 "10.0.0.10", port 6379: per range
	// "*N\r\n:start\r\n:end\r\n" (about 18 bytes) and per node either
	// "*2\r\n$9\r\n10.0.0.10\r\n:6379\r\n" (26, address only: the layout
	// peercache answers) or, in Redis 7's layout, that with a 40-character id
	// and an empty metadata map (77).
	reply := func(runs, nodes, perNode int) int { return runs * (18 + perNode*nodes) }
	for _, vn := range []int{16, 32, 64, 128, 256} {
		bits := newEmpty(Options{VNodes: vn}).bits
		b.Run(fmt.Sprintf("partitions=%d/slots-each=%d", 1<<bits, 16384>>bits), func(b *testing.B) {
			for range b.N {
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
				b.ReportMetric(worst[sets/2], "max/mean-median")
				b.ReportMetric(worst[sets*9/10], "max/mean-p90")
				b.ReportMetric(worst[sets*99/100], "max/mean-p99")
				b.ReportMetric(worst[sets-1], "max/mean-worst")
				b.ReportMetric(float64(runs1), "runs-rf1")
				b.ReportMetric(float64(runs2), "runs-rf2")
				b.ReportMetric(float64(reply(runs1, 1, 26)/1024), "slots-KiB-rf1")
				b.ReportMetric(float64(reply(runs2, 2, 26)/1024), "slots-KiB-rf2")
				b.ReportMetric(float64(reply(runs1, 1, 77)/1024), "redis7-KiB-rf1")
				b.ReportMetric(float64(reply(runs2, 2, 77)/1024), "redis7-KiB-rf2")
			}
		})
	}
}
