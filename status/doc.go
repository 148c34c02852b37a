// Package status owns the JSON documents a node answers about itself and
// its cluster: GET /v1/status (Node, with its Evictions), GET /v1/cluster
// (Report: this node's view of the cluster, Cluster, with its Members,
// Ring and Replication, plus every member's own figures, NodeReport) and
// GET /v1/ring (RingSegments); and the assembly of those documents that
// needs no node: sampling a ring's owners (Segments), the member list and
// ring of a cluster view (MembersOf, RingOf), and asking every member for
// its figures in parallel, each within a bound (Gather).
//
// It must not know the node, the peer protocol or HTTP: the figures a node
// measures about itself arrive as values, and what a member answers
// arrives through a function its caller passes in. Its documents are plain
// data, and their JSON field names are the API's.
package status
