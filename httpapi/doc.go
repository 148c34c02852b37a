// Package httpapi is a node's HTTP door: the public key API
// (/v1/keys/{key}), the cluster, status, ring, mode, warm-up and leave
// routes, the probes (/livez, /readyz), /metrics and the dashboard, with
// the role each route needs (auth.go) and cross-site protection.
//
// It is built on node's exported API only, as package resp is on its
// backend: it knows nothing of how keys are placed or moved. A Server
// registers itself with its node (node.AddDoor), which stops it before it
// closes its store.
//
// Start one with NewNode (bind, create the node, create the door), then
// Serve, then the node's Start.
package httpapi
