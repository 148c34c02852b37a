// Package node composes a peercache node: the ring (who owns a key), the
// store (this node's shard), membership (who is in the cluster), migrate
// (moving keys when the ring changes, and when those runs happen), peer
// (the node-to-node protocol; peer/member addresses members by name) and
// the internal packages that each own one concern: clusterview (the view
// of the cluster a node routes by), localtier and nearcache (copies and
// their invalidation), replica (copies on other owners and their repair),
// warm (warm-up after a ring change), rwmode (read/write modes) and
// nodemetrics (the Prometheus series), batch (pipelines grouped by
// owner); package nodeconfig holds its settings and status shapes the
// documents of its status, cluster and ring reports. Node
// itself owns request routing, the owner's read and write paths, whom to
// ask over the peer protocol and what, how to answer other members, and
// the node's lifecycle. It serves no client protocol: the doors (packages
// httpapi and resp) are built on its exported API and register with
// AddDoor.
//
// A node is a library: a Go program starts one with New and Start and stops
// it with Stop (graceful leave: hand every key to its new owner, then leave
// the cluster) or Abort (as a crash would). Several nodes can run in one
// process; the package has no global state.
//
// Routing: any node answers any key. The owner of a key (ring.Owner) reads
// and writes its own shard; every other node forwards the request to the
// owner over the peer protocol (route). A node that receives a forwarded
// request (serveForwardedGet, serveForwardedWrite) for a key it does not
// own (views differ during a ring change) answers 421 with the owner it
// believes in, never forwarding again; the forwarding node retries at that
// owner, then by its own view as it changes, within a two-second budget.
//
// Versions: the owner stamps every write and delete with a hybrid logical
// clock; a shard keeps a record only if it is newer than what it holds, so
// migrated or late copies never overwrite newer writes, and deletes leave
// tombstones (kept for Config.Migration.TombstoneTTL) that stop older copies from
// coming back.
package node
