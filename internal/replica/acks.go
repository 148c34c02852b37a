package replica

import (
	"fmt"

	"github.com/peercache/peercache/ring"
)

// MaxReplicas bounds the replication factor (the primary included), and
// sizes the owner buffers of Owners.
const MaxReplicas = 16

// Owners returns key's owners in r, at most rf of them, the primary first,
// appended to buf (which keeps the common case free of allocations).
func Owners(r *ring.Ring, key string, rf int, buf *[MaxReplicas]string) []string {
	return r.AppendOwners(buf[:0], key, rf)
}

// Acks is a write-acknowledgement policy: how many copies a write waits
// for before it is acknowledged.
type Acks string

// Write-acknowledgement policies.
const (
	// AcksAll waits for every owner of the key in the ring.
	AcksAll Acks = "all"
	// AcksQuorum waits for a majority of the replication factor, the
	// primary included.
	AcksQuorum Acks = "quorum"
	// AcksOne waits for the primary only; replicas are written in the
	// background.
	AcksOne Acks = "one"
)

// ParseAcks returns the policy named s, or an error for any other name.
func ParseAcks(s string) (Acks, error) {
	switch a := Acks(s); a {
	case AcksAll, AcksQuorum, AcksOne:
		return a, nil
	}
	return "", fmt.Errorf("%q, want all, quorum or one", s)
}

// Required is how many replicas (besides the primary) must acknowledge a
// write under acks, given how many replicas the key has in the ring and
// the replication factor rf. An unknown policy counts as AcksAll.
func Required(acks Acks, replicas, rf int) int {
	switch acks {
	case AcksOne:
		return 0
	case AcksQuorum:
		return min(replicas, rf/2) // majority of rf, the primary included
	default:
		return replicas
	}
}
