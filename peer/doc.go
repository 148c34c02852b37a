// Package peer carries the node-to-node protocol of peercache: forwarded
// reads and writes, replica reads, handoff reads, import batches
// (migration, replica copies, repair) and near-cache invalidations. It owns
// the encoding, the connections, their authentication and the protocol's
// metrics; package peer/member addresses members by name over a Client.
// It decides nothing about routing: package node chooses whom to ask and
// what, and a Handler answers.
//
// A Server listens on a port of its own (cachenode: --peer-addr, default
// the gossip port + 1). A Client keeps long-lived TCP connections to each
// peer (one by default, ClientConfig.ConnsPerPeer) and multiplexes many
// requests over each: every frame carries an id, answers come back in any
// order, and frames that are ready together leave in one write (see
// frameWriter). Requests carry their sender's deadline; a server refuses a
// request that arrives after it. A server serves the requests its handler
// answers at once (AtOnceHandler: a read or write of a key it owns, held
// in process; a small import to an in-process shard) on the goroutine
// that reads the connection, and answers all of those read together in
// one write; the others run on the connection's workers. Client.GoGet and
// GoWrite start a request that no goroutine waits for: its answer (or its
// timer's error) goes to a callback, and Flush writes what was started
// (the RESP event loop forwards this way).
//
// Authentication happens once per connection, before any request is read:
//
//   - With a cluster secret (Auth.Secret), both ends run TLS 1.3 with a
//     certificate and key derived from the secret (HKDF-SHA256, Ed25519):
//     only a holder of the secret completes the handshake, in either
//     direction, and the traffic is encrypted and integrity-protected.
//   - With Auth.Certificate and Auth.CAs: the same with the operator's PKI.
//   - Without either, nothing is authenticated (for loopback clusters, or
//     a network the operator trusts).
//
// After the handshake the client sends a hello (protocol magic, cluster
// label, its member name); the server refuses another cluster's label or a
// name that is not a member (Handler.Admit), and closes the connection.
// Refused connections are logged (rate-limited) and counted
// (peercache_peer_auth_failures_total). Until the hello is accepted no
// frame may exceed 4 KiB, so an unauthenticated caller cannot make the
// server allocate more.
package peer
