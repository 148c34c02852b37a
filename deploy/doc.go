// Package deploy holds no code. It owns the checks of the files users
// deploy peercache with, run by go test against the node those files start:
//
//   - deploy/kubernetes, the kustomize base (`kubectl apply -k
//     deploy/kubernetes`): kubernetes_test.go renders it with `kubectl
//     kustomize`, decodes every object strictly into the k8s.io/api types
//     and checks what a cluster would only show at run time: the grace
//     period covers the drain, probes ask paths the node serves on the port
//     it listens on, the seed is the headless Service, selectors select the
//     pods, the memory limit holds the node's budget, the cluster secret
//     comes from a Secret that is not committed.
//   - docker-compose.yml at the module root: compose_test.go loads it with
//     compose-go (the loader of Compose v2; this machine kind only has
//     docker-compose v1, which the e2e suite runs) and checks that it loads
//     without warnings and survives `--scale`.
//
// node_test.go gathers the facts about cachenode both use: its flags (read
// from cmd/cachenode's source, so that a misspelt CACHENODE_* variable
// fails here instead of being ignored by the node) and its shutdown bound.
package deploy
