// Package replica owns where the copies of a key go and making sure they
// get there: the placement that tells migration which members must hold
// every key (Placement) and what it is planned against (Base: the ring of
// the last completed run, and the full copies asked for), the
// write-acknowledgement policy (Acks, Required), the primary's fan-out of
// the copies of the writes it applied (Copier), the copies of fresh writes
// to the previous owners that have not learned of a ring change yet
// (WriteThrough), and the repair of copies that failed while the ring
// stayed the same (Repairer).
//
// A key's owners are the first RF members of ring.Owners (rendezvous
// order): the first is its primary, the others are its replicas.
//
// The package must not know the node that composes it, HTTP, the peer
// protocol's wire or where the ring's members come from: it is handed a
// ring, a store to read, and functions that send entries to a member's
// import (Send, Import) and that ask for a full re-replication run
// (FullCopy). It has no package-level mutable state; every goroutine it
// starts ends with the context or the call that started it.
package replica
