// Package zipf draws ranks from a Zipf distribution for any exponent s > 0
// (math/rand's Zipf needs s > 1), for benchmarks and load generators.
package zipf

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Zipf draws ranks 0..n-1 with P(rank k) proportional to 1/(k+1)^s, by
// inverting the cumulative sum. It is not safe for concurrent use.
type Zipf struct {
	cdf []float64
	r   *rand.Rand
}

// New returns a generator over n ranks with exponent s, seeded by seed.
func New(n int, s float64, seed uint64) *Zipf {
	z := &Zipf{cdf: make([]float64, n), r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	sum := 0.0
	for k := 0; k < n; k++ {
		sum += 1 / math.Pow(float64(k+1), s)
		z.cdf[k] = sum
	}
	for k := range z.cdf {
		z.cdf[k] /= sum
	}
	return z
}

// Next returns the next rank.
func (z *Zipf) Next() int {
	return sort.SearchFloat64s(z.cdf, z.r.Float64())
}
