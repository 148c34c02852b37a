package status

import "github.com/peercache/peercache/ring"

// RingSegments is GET /v1/ring: the owner of evenly spaced positions
// around the ring, for drawing it.
type RingSegments struct {
	// Version is the ring snapshot version (a local counter).
	Version uint64 `json:"version"`
	// Members are the ring's members, sorted; Owners index into it.
	Members []string `json:"members"`
	// Shares is each member's fraction of the ring.
	Shares map[string]float64 `json:"shares"`
	// Partitions is the number of fixed partitions of the hash space.
	Partitions int `json:"partitions"`
	// Segments is the number of positions sampled.
	Segments int `json:"segments"`
	// Owners[i] is the index in Members of the owner of the middle of
	// segment i (clockwise from hash 0), or -1 for an empty ring.
	Owners []int `json:"owners"`
}

// Segments samples ring r, whose snapshot version is version, at segments
// evenly spaced positions (segments must be at least 1).
func Segments(r *ring.Ring, version uint64, segments int) RingSegments {
	rs := RingSegments{Version: version, Members: r.Members(), Shares: r.Shares(),
		Partitions: r.Partitions(), Segments: segments, Owners: make([]int, segments)}
	if rs.Shares == nil {
		rs.Shares = map[string]float64{}
	}
	idx := make(map[string]int, len(rs.Members))
	for i, m := range rs.Members {
		idx[m] = i
	}
	step := ^uint64(0) / uint64(segments)
	for i := range rs.Owners {
		o, ok := idx[r.OwnerOfHash(uint64(i)*step+step/2)]
		if !ok {
			o = -1
		}
		rs.Owners[i] = o
	}
	return rs
}
