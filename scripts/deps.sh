#!/usr/bin/env bash
# Installs what the test suite needs and Go alone does not bring:
# redis-server (real Redis for the store and cluster tests), chromium (the
# dashboard's browser test drives Debian's chromium through chromedp) and
# kubectl (deploy/ renders the Kubernetes manifests with `kubectl kustomize`;
# Debian's kubernetes-client package when no kubectl is on the PATH) and curl
# (the TLS tests check that `curl --cacert` trusts the client doors) and
# python3-redis (the cluster-mode test drives redis-py's RedisCluster with
# Debian's /usr/bin/python3: a second client library beside go-redis).
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
/usr/bin/python3 -c 'import redis.cluster' >/dev/null 2>&1 || need+=(python3-redis)

if [ ${#need[@]} -eq 0 ]; then
	echo "deps: redis-server $(redis-server --version | awk '{print $3}'), chromium, kubectl, curl and python3-redis present"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
		echo "deps: need root (or sudo) to install: ${need[*]}" >&2
		exit 1
	fi
fi
echo "deps: installing ${need[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts a system redis on :6379 after installing; tests start their own.
command -v redis-server >/dev/null 2>&1 || { echo "deps: redis-server still missing" >&2; exit 1; }
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { echo "deps: chromium still missing" >&2; exit 1; }
command -v kubectl >/dev/null 2>&1 || { echo "deps: kubectl still missing" >&2; exit 1; }
command -v curl >/dev/null 2>&1 || { echo "deps: curl still missing" >&2; exit 1; }
/usr/bin/python3 -c 'import redis.cluster' >/dev/null 2>&1 || { echo "deps: python3-redis still missing" >&2; exit 1; }
echo "deps: redis-server $(redis-server --version | awk '{print $3}'), chromium, kubectl, curl and python3-redis ready"
