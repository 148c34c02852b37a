#!/usr/bin/env bash
# Runs the end-to-end fault suite (go test -tags e2e ./e2e/) and removes the
# compose project it created whatever happens: a pass, a failure, Ctrl-C,
# SIGTERM, or go test's -timeout (which panics without running the suite's
# own cleanup).
#
#   scripts/e2e.sh [go test flags...]      # make e2e passes $(E2EFLAGS)
#
# The project name is chosen here (PEERCACHE_E2E_PROJECT, read by the suite),
# so this script knows which containers and network are the run's. go test
# runs in a session of its own: on a signal the whole tree (go test, the
# test binary, docker-compose) is asked to stop (SIGTERM: the suite tears its
# project down), then killed after 60 s, and then whatever is left of the
# project is removed. The same happens when the parent (make) dies.
set -uo pipefail
cd "$(dirname "$0")/.."

project=${PEERCACHE_E2E_PROJECT:-pce2e$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')}
export PEERCACHE_E2E_PROJECT=$project

cleanup() {
	# The suite's project, and the second one it starts to compare secrets.
	cleanup_project "$project"
	cleanup_project "${project}b"
}

cleanup_project() {
	local project=$1 ids nets
	ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project" 2>/dev/null)
	if [ -n "$ids" ]; then
		echo "e2e: removing the containers of $project"
		# shellcheck disable=SC2086
		docker rm -f -v $ids >/dev/null 2>&1 || true
	fi
	nets=$(docker network ls -q --filter "label=com.docker.compose.project=$project" 2>/dev/null)
	if [ -n "$nets" ]; then
		echo "e2e: removing the network of $project"
		# shellcheck disable=SC2086
		docker network rm $nets >/dev/null 2>&1 || true
	fi
	docker volume ls -q --filter "label=com.docker.compose.project=$project" 2>/dev/null | xargs -r docker volume rm >/dev/null 2>&1 || true
}

setsid ${GO:-go} test -tags e2e "$@" ./e2e/ &
pid=$!

stop() {
	trap '' INT TERM
	echo "e2e: interrupted; stopping the suite (project $project)" >&2
	kill -TERM -- "-$pid" 2>/dev/null
	for _ in $(seq 60); do
		kill -0 -- "-$pid" 2>/dev/null || break
		sleep 1
	done
	kill -KILL -- "-$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	cleanup
	exit 130
}
trap stop INT TERM

# Wait for go test, and stop it if whoever started this script goes away
# (make killed by a signal sent to it alone leaves its children running).
parent=$PPID
while kill -0 "$pid" 2>/dev/null; do
	if [ "$(ps -o ppid= -p $$ | tr -d ' ')" != "$parent" ]; then
		echo "e2e: the parent process ($parent) is gone" >&2
		stop
	fi
	sleep 1
done
wait "$pid"
rc=$?
# A test binary stopped by -timeout leaves its docker-compose children
# behind, still creating containers maybe: end them before cleaning up.
if kill -0 -- "-$pid" 2>/dev/null; then
	kill -TERM -- "-$pid" 2>/dev/null
	sleep 5
	kill -KILL -- "-$pid" 2>/dev/null
fi
cleanup
exit $rc
