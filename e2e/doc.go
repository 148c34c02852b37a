// Package e2e is peercache's end-to-end fault suite: it builds the offline
// image (scripts/image-offline.sh), runs the repository's docker-compose.yml
// under a project name of its own, and drives the cluster through scale-up,
// graceful scale-down, kill -9, a network partition and a Redis restart while
// a bounded concurrent workload records every acknowledged operation; at the
// end of each scenario it reads every key back and prints the figures.
//
// The suite is behind the e2e build tag and needs Docker with Compose (v2
// "docker compose" or v1 "docker-compose"):
//
//	make e2e
//	go test -tags e2e -count=1 -v -timeout 20m ./e2e/
//
// Environment: PEERCACHE_E2E_NO_BUILD=1 reuses the image already tagged
// peercache/cachenode:latest; PEERCACHE_REPLICAS sets the replication factor
// (docker-compose.yml's default: 2); PEERCACHE_E2E_PARTITION_STRICT=0 reports
// last-writer-wins violations after the partition instead of failing on them.
//
// All traffic from the host goes to 127.0.0.1 (the published ports); traffic
// between nodes stays on the compose network. The project is torn down
// (docker compose down -v) whatever the outcome.
package e2e
