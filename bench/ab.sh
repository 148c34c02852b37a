#!/usr/bin/env bash
# bench/ab.sh: two 3-node peercache clusters side by side on this machine
# (127.0.0.1), driven in turns by redis-benchmark through node 1 of each
# (--near-cache-ttl 0: 2/3 of the keys forwarded to their owner), so that
# two builds or two flag sets are compared under the same load of the
# machine. Reports ops/s (wall time of each run) and the server CPU per
# request (utime+stime of the three nodes, from /proc).
#
#   bench/ab.sh "/tmp/old/cachenode" "/tmp/new/cachenode --resp-event-loops 1"
#   BENCH_P=16 BENCH_REPEAT=3 BENCH_TESTS="set get" bench/ab.sh "$A" "$B"
#
# Each argument is a cachenode binary and its extra flags. Knobs: BENCH_N
# (requests per run, 300000; with BENCH_P > 1 sixteen times as many),
# BENCH_P (pipeline depth, 1), BENCH_REPEAT (turns, 2), BENCH_TESTS
# ("set get"), BENCH_PORT (first port, 18200; 200 are used).
set -euo pipefail
A=$1
B=$2
N=${BENCH_N:-300000}
P=${BENCH_P:-1}
REPEAT=${BENCH_REPEAT:-2}
TESTS=${BENCH_TESTS:-set get}
PORT=${BENCH_PORT:-18200}
[ "$P" != 1 ] && N=$((N * 16))
command -v redis-benchmark >/dev/null || { echo "ab: redis-benchmark not found (scripts/deps.sh installs it)" >&2; exit 1; }

WORK=$(mktemp -d -t peercache-ab.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A NODEPIDS
start() { # NAME BASE BIN [flags...]
	local c=$1 base=$2 i b seed
	shift 2
	for i in 0 1 2; do
		b=$((base + 4 * i))
		seed=()
		[ "$i" -gt 0 ] && seed=(--seeds "127.0.0.1:$((base + 1))")
		# shellcheck disable=SC2068 # the binary and its flags, split on purpose
		$@ --name "ab-$c$i" --http-addr "127.0.0.1:$b" --gossip-addr "127.0.0.1:$((b + 1))" \
			--peer-addr "127.0.0.1:$((b + 2))" --resp-addr "127.0.0.1:$((b + 3))" \
			--log-level warn --near-cache-ttl 0 "${seed[@]}" >"$WORK/$c$i.log" 2>&1 &
		PIDS+=("$!")
		NODEPIDS[$c]="${NODEPIDS[$c]:-} $!"
		sleep 0.3
	done
}
cpu() { # NAME: clock ticks of its nodes
	local t=0 p f
	for p in ${NODEPIDS[$1]}; do
		read -r -a f <"/proc/$p/stat"
		t=$((t + f[13] + f[14]))
	done
	echo "$t"
}
start a "$PORT" $A
start b "$((PORT + 100))" $B
echo "ab: waiting 33 s for both clusters to form and their handoff windows to pass" >&2
sleep 33
hz=$(getconf CLK_TCK)
echo "| turn | build | test | ops/s | server CPU µs/op |"
echo "|---|---|---|---|---|"
for r in $(seq "$REPEAT"); do
	for c in a b; do
		for t in $TESTS; do
			base=$PORT
			[ "$c" = b ] && base=$((PORT + 100))
			c0=$(cpu "$c")
			s=$(date +%s.%N)
			redis-benchmark -p "$((base + 3))" -t "$t" -n "$N" -c 50 -r 1000 -d 32 -P "$P" -q >/dev/null 2>&1
			e=$(date +%s.%N)
			c1=$(cpu "$c")
			python3 -c "print('| $r | $c | $t -P $P | %.0f | %.2f |' % ($N / ($e - $s), ($c1 - $c0) * 1e6 / $hz / $N))"
		done
	done
done
