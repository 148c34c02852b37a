// Package membership wraps hashicorp/memberlist for peercache: it builds the
// memberlist configuration (bind/advertise addresses, cluster label, gossip
// encryption, timing profile), joins seed addresses (host:port or DNS names;
// a name resolving to several IPs joins all of them), gossips a small piece of
// node metadata (Meta) with every member, and turns memberlist's membership
// events into a channel of coalesced, sorted member sets.
//
// # Member sets
//
// memberlist's event callbacks are invoked while memberlist holds its internal
// node lock, and the *Node values returned by Memberlist.Members point into
// memberlist's own state, which memberlist keeps mutating after the lock is
// released. This package therefore never reads Memberlist.Members: the event
// callbacks copy each node (name, address, metadata) into a map guarded by the
// package's own mutex and poke a coalescer with a non-blocking send. The
// coalescer waits Config.Debounce, snapshots the map and publishes the set on
// the Updates channel (capacity 1, latest wins, identical consecutive sets are
// not republished).
//
// memberlist v0.7.0 does not expose whether a member is currently suspected
// (Node.State is never filled in and the per-node state is unexported), so
// Member.Suspect is always false for now; suspected members are reported as
// ordinary members until memberlist declares them dead.
//
// # Joining
//
// Start joins the seeds. Seed addresses that resolve to this node itself are
// skipped, so a node whose seed list contains only itself (the first replica
// of a docker compose service whose name resolves to its own IP) starts a new
// cluster at once. With Config.JoinTimeout > 0 Start retries with exponential
// backoff (100ms doubling to 2s) until a seed answers and fails with an error
// after JoinTimeout. With JoinTimeout == 0 (the default) Start makes one
// attempt; if no seed answers it logs a warning, returns nil and a background
// loop keeps retrying with the same backoff until some seed answers or another
// node joins this one. After that the loop re-resolves the seeds every
// Config.RejoinInterval and joins any seed address that is not a member; this
// heals partitions and merges clusters that formed separately because
// replicas started at the same moment.
//
// # Change log
//
// ChangeLog turns consecutive member sets into log lines: one per member
// that joined, left, or changed state, node mode or address. What a node
// mode is (which Meta.Extra field says read-only) it must not know: the
// caller passes a function that reads it.
package membership
