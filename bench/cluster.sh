#!/usr/bin/env bash
# bench/cluster.sh: a 3-node peercache cluster against a 3-node Redis Cluster
# and a plain redis-server, in one run, on this machine (127.0.0.1), driven
# by redis-benchmark with a fixed number of requests. Reports ops/s, p99 and
# the server CPU per operation (utime+stime of every server process, from
# /proc, divided by the requests): the figure that survives a shared
# machine. Prints a markdown table (and writes it to BENCH_OUT if set).
#
#   bench/cluster.sh
#   BENCH_OUT=/tmp/cluster.md BENCH_BASELINE_REV=354f5f6 bench/cluster.sh
#
# Targets:
#   redis          one redis-server
#   respfloor      the Go floor: `cachenode bench-baseline resp`, a redcon
#                  server answering SET/GET from a map, one process (what a
#                  goroutine-per-connection Go server costs before any cache
#                  work)
#   rediscluster   3 redis-server in cluster mode, redis-benchmark --cluster
#   peercache      3 cachenodes (in-memory shards, --near-cache-ttl 0: every
#                  GET of a key another node owns crosses to its owner),
#                  redis-benchmark against node 1 (2/3 of the keys forwarded)
#   peercache-rf2  the same with --replicas 2 (SET only)
#   peercache-ev, peercache-rf2-ev  the same two with --resp-event-loops 1:
#                  node 1's event loop forwards GETs and SETs itself
#   peercache-cluster  3 cachenodes with --resp-cluster, redis-benchmark
#                  --cluster (it routes each key to its owner: no hop), the
#                  same client as the Redis Cluster run (issue 14)
#   peercache-cluster-ev  the same with --resp-event-loops 1: the RESP
#                  connections served by one event loop per node
#   baseline*      the same two clusters built from BENCH_BASELINE_REV (the
#                  tree before the peer protocol: one HTTP/1.1 request per
#                  forwarded operation), when that revision exists
#
# ops/s is requests / wall time of the redis-benchmark process, measured
# here: redis-benchmark --cluster (threaded) notices that it is done only
# on its 250 ms throughput tick, so the rps it prints is quantised to
# N / (k * 250 ms) -- at 1M requests and 800k ops/s that is 20% -- while a
# single-threaded run stops at once. The wall time includes connecting
# (and, with --cluster, reading the slot map): a few ms.
#
# Knobs: BENCH_N (requests per run, 200000; pipelined runs make 16 times
# as many, BENCH_N_PIPELINED), BENCH_REPEAT (runs of each
# test, 3; the best is reported), BENCH_C (clients, 50),
# BENCH_KEYSPACE (-r, 1000), BENCH_PORT (first port, 17300; 60 are used),
# BENCH_TARGETS (space-separated subset), BENCH_BASELINE_REV (354f5f6;
# empty: none), BENCH_NODE_FLAGS (extra flags for every cachenode).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${BENCH_N:-200000}
NP=${BENCH_N_PIPELINED:-$((16 * N))}
C=${BENCH_C:-50}
KEYSPACE=${BENCH_KEYSPACE:-1000}
PORT=${BENCH_PORT:-17300}
VALUE=32
BASELINE_REV=${BENCH_BASELINE_REV-354f5f6}
TARGETS=${BENCH_TARGETS:-redis respfloor rediscluster peercache peercache-rf2 peercache-ev peercache-rf2-ev peercache-cluster peercache-cluster-ev peercache-1p peercache-1p-rf2 baseline baseline-rf2}

for tool in redis-server redis-benchmark redis-cli go python3; do
	command -v "$tool" >/dev/null || { echo "bench: $tool not found (scripts/deps.sh installs the Redis tools)" >&2; exit 1; }
done

WORK=$(mktemp -d -t peercache-cluster.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
	"$ROOT/bench/redis-cluster.sh" stop "$((PORT + 50))" "$WORK/rc" >/dev/null 2>&1 || true
	if [ -d "$WORK/baseline-src" ]; then git -C "$ROOT" worktree remove --force "$WORK/baseline-src" >/dev/null 2>&1 || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "building cachenode"
CGO_ENABLED=0 go build -trimpath -o "$WORK/cachenode" ./cmd/cachenode
BASEBIN=""
if [ -n "$BASELINE_REV" ] && git -C "$ROOT" rev-parse --verify -q "$BASELINE_REV^{commit}" >/dev/null; then
	log "building the baseline cachenode from $BASELINE_REV"
	git -C "$ROOT" worktree add --detach -f "$WORK/baseline-src" "$BASELINE_REV" >/dev/null 2>&1
	(cd "$WORK/baseline-src" && CGO_ENABLED=0 go build -trimpath -o "$WORK/cachenode-baseline" ./cmd/cachenode)
	BASEBIN=$WORK/cachenode-baseline
fi

ticks() { # PID... -> utime+stime in clock ticks
	local t=0 p
	for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
	echo "$t"
}

# node BIN NAME INDEX SEED [flags...]: start a cachenode on ports
# PORT+4*INDEX .. +3 (http, gossip, peer, resp); its pid is in LAST_PID.
node() {
	local bin=$1 name=$2 i=$3 seed=$4
	shift 4
	local base=$((PORT + 4 * i)) extra=()
	[ -n "$seed" ] && extra+=(--seeds "$seed")
	# The baseline has no --peer-addr (its peer API is on the HTTP port).
	if [ "$bin" = "$WORK/cachenode" ]; then extra+=(--peer-addr "127.0.0.1:$((base + 2))"); fi
	# shellcheck disable=SC2086 # BENCH_NODE_FLAGS is a list of flags
	"$bin" --name "$name" --http-addr "127.0.0.1:$base" --gossip-addr "127.0.0.1:$((base + 1))" \
		--resp-addr "127.0.0.1:$((base + 3))" --log-level warn --near-cache-ttl 0 "${extra[@]}" ${BENCH_NODE_FLAGS:-} "$@" \
		>"$WORK/$name.log" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

wait_ring() { # HTTP-PORT... : every node has all of them in its ring
	local want=$# h n
	for _ in $(seq 300); do
		local ok=1
		for h in "$@"; do
			n=$("$WORK/cachenode" cluster --addr "127.0.0.1:$h" --json 2>/dev/null | grep -c '"in_ring": true' || true)
			[ "$n" = "$want" ] || ok=0
		done
		[ $ok = 1 ] && return 0
		sleep 0.1
	done
	echo "bench: the cluster did not form; logs:" >&2
	tail -n 20 "$WORK"/*.log >&2
	exit 1
}

# cluster3 BIN PREFIX FIRST-INDEX [flags...]: three nodes; their pids are
# in CLUSTER_PIDS.
cluster3() {
	local bin=$1 pre=$2 i=$3
	shift 3
	local seed="127.0.0.1:$((PORT + 4 * i + 1))"
	CLUSTER_PIDS=()
	node "$bin" "${pre}1" "$i" "" "$@"
	CLUSTER_PIDS+=("$LAST_PID")
	node "$bin" "${pre}2" $((i + 1)) "$seed" "$@"
	CLUSTER_PIDS+=("$LAST_PID")
	node "$bin" "${pre}3" $((i + 2)) "$seed" "$@"
	CLUSTER_PIDS+=("$LAST_PID")
	wait_ring "$((PORT + 4 * i))" "$((PORT + 4 * (i + 1)))" "$((PORT + 4 * (i + 2)))"
}

# rb TARGET TEST PIPE PORT CLUSTERFLAG PIDS...: BENCH_REPEAT redis-benchmark
# runs (the machine is shared with the load generator: the best one is the
# steadiest estimate); appends "target test pipe rps p99 cpu_us_per_op" of
# each to results (the report keeps the best).
rb() {
	local i
	for i in $(seq "${BENCH_REPEAT:-3}"); do rb1 "$@"; done
}

rb1() {
	local target=$1 test=$2 pipe=$3 port=$4 cflag=$5
	shift 5
	local n=$N
	[ "$pipe" = 1 ] || n=$NP
	log "$target $test -P $pipe ($n requests)"
	local a b t0 t1
	a=$(ticks "$@")
	t0=$(date +%s%N)
	# shellcheck disable=SC2086 # cflag is empty or --cluster
	redis-benchmark -h 127.0.0.1 -p "$port" $cflag -t "$test" -n "$n" -c "$C" -r "$KEYSPACE" -d "$VALUE" -P "$pipe" --csv \
		>"$WORK/rb.csv" 2>"$WORK/rb.err" || { cat "$WORK/rb.err" >&2; return 1; }
	t1=$(date +%s%N)
	b=$(ticks "$@")
	python3 - "$target" "$test" "$pipe" "$((b - a))" "$(getconf CLK_TCK)" "$n" "$((t1 - t0))" "$WORK/rb.csv" >>"$WORK/results" <<'EOF'
import csv, sys
target, test, pipe, dt, tck, n, wall_ns, path = sys.argv[1:]
# redis-benchmark --cluster prints the cluster layout before the CSV.
lines = open(path).read().splitlines()
start = next(i for i, l in enumerate(lines) if l.startswith('"test"'))
rows = list(csv.DictReader(lines[start:]))
r = rows[0]
rps = int(n) / (int(wall_ns) / 1e9)
print(target, test, pipe, "%.0f" % rps, r.get("p99_latency_ms", "0"), "%.2f" % (int(dt) / int(tck) * 1e6 / int(n)))
EOF
}

has() { case " $TARGETS " in *" $1 "*) return 0 ;; esac; return 1; }
# settle: a new cluster asks previous owners on every miss for its first
# 30 s (--handoff-window): wait that out, so that what is measured is the
# steady state.
settle() { log "waiting 31 s for the handoff window of the new ring to pass"; sleep 31; }
# run_all TARGET PORT CLUSTERFLAG TESTS PIDS...
run_all() {
	local target=$1 port=$2 cflag=$3 tests=$4
	shift 4
	for test in $tests; do
		for pipe in 1 16; do rb "$target" "$test" "$pipe" "$port" "$cflag" "$@"; done
	done
}
stop_pids() { local p; for p in "$@"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }

: >"$WORK/results"
if has redis; then
	redis-server --bind 127.0.0.1 --port "$((PORT + 49))" --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
	rpid=$!
	PIDS+=("$rpid")
	for _ in $(seq 100); do redis-cli -p "$((PORT + 49))" ping >/dev/null 2>&1 && break; sleep 0.05; done
	run_all redis "$((PORT + 49))" "" "set get" "$rpid"
	stop_pids "$rpid"
fi
if has respfloor; then
	"$WORK/cachenode" bench-baseline resp --addr "127.0.0.1:$((PORT + 48))" --keys 1000000 >"$WORK/respfloor.log" 2>&1 &
	fpid=$!
	PIDS+=("$fpid")
	for _ in $(seq 100); do redis-cli -p "$((PORT + 48))" ping >/dev/null 2>&1 && break; sleep 0.05; done
	run_all respfloor "$((PORT + 48))" "" "set get" "$fpid"
	stop_pids "$fpid"
fi
if has rediscluster; then
	"$ROOT/bench/redis-cluster.sh" start "$((PORT + 50))" "$WORK/rc" >/dev/null
	# shellcheck disable=SC2046
	run_all rediscluster "$((PORT + 50))" --cluster "set get" $("$ROOT/bench/redis-cluster.sh" pids "$((PORT + 50))" "$WORK/rc")
	"$ROOT/bench/redis-cluster.sh" stop "$((PORT + 50))" "$WORK/rc" >/dev/null
fi
if has peercache; then
	cluster3 "$WORK/cachenode" pc 0
	settle
	run_all peercache "$((PORT + 3))" "" "set get" "${CLUSTER_PIDS[@]}"
	stop_pids "${CLUSTER_PIDS[@]}"
fi
if has peercache-rf2; then
	cluster3 "$WORK/cachenode" pr 3 --replicas 2
	settle
	run_all peercache-rf2 "$((PORT + 15))" "" "set" "${CLUSTER_PIDS[@]}"
	stop_pids "${CLUSTER_PIDS[@]}"
fi
if has peercache-ev; then
	cluster3 "$WORK/cachenode" pv 0 --resp-event-loops 1
	settle
	run_all peercache-ev "$((PORT + 3))" "" "set get" "${CLUSTER_PIDS[@]}"
	stop_pids "${CLUSTER_PIDS[@]}"
fi
if has peercache-rf2-ev; then
	cluster3 "$WORK/cachenode" pw 3 --replicas 2 --resp-event-loops 1
	settle
	run_all peercache-rf2-ev "$((PORT + 15))" "" "set" "${CLUSTER_PIDS[@]}"
	stop_pids "${CLUSTER_PIDS[@]}"
fi
if has peercache-cluster; then
	cluster3 "$WORK/cachenode" pk 0 --resp-cluster
	settle
	run_all peercache-cluster "$((PORT + 3))" --cluster "set get" "${CLUSTER_PIDS[@]}"
	stop_pids "${CLUSTER_PIDS[@]}"
fi
if has peercache-cluster-ev; then
	cluster3 "$WORK/cachenode" pe 0 --resp-cluster --resp-event-loops 1
	settle
	run_all peercache-cluster-ev "$((PORT + 3))" --cluster "set get" "${CLUSTER_PIDS[@]}"
	stop_pids "${CLUSTER_PIDS[@]}"
fi
# The same with GOMAXPROCS=1: three single-threaded servers on two cores,
# as the three redis-server of the Redis Cluster are.
if has peercache-1p; then
	export GOMAXPROCS=1
	cluster3 "$WORK/cachenode" pg 0
	unset GOMAXPROCS
	settle
	run_all peercache-1p "$((PORT + 3))" "" "set get" "${CLUSTER_PIDS[@]}"
	stop_pids "${CLUSTER_PIDS[@]}"
fi
if has peercache-1p-rf2; then
	export GOMAXPROCS=1
	cluster3 "$WORK/cachenode" ph 3 --replicas 2
	unset GOMAXPROCS
	settle
	run_all peercache-1p-rf2 "$((PORT + 15))" "" "set" "${CLUSTER_PIDS[@]}"
	stop_pids "${CLUSTER_PIDS[@]}"
fi
if [ -n "$BASEBIN" ] && has baseline; then
	cluster3 "$BASEBIN" ba 6
	settle
	run_all "baseline-$BASELINE_REV" "$((PORT + 27))" "" "set get" "${CLUSTER_PIDS[@]}"
	stop_pids "${CLUSTER_PIDS[@]}"
fi
if [ -n "$BASEBIN" ] && has baseline-rf2; then
	cluster3 "$BASEBIN" bb 9 --replicas 2
	settle
	run_all "baseline-$BASELINE_REV-rf2" "$((PORT + 39))" "" "set" "${CLUSTER_PIDS[@]}"
	stop_pids "${CLUSTER_PIDS[@]}"
fi

python3 - "$WORK/results" "$N" "$C" "$KEYSPACE" "$NP" <<'EOF' | tee "${BENCH_OUT:-/dev/null}"
import sys, collections
path, n, c, r, np = sys.argv[1:]
rows = [l.split() for l in open(path) if l.strip()]
best = collections.OrderedDict()  # the run with the most ops/s of each
for t, test, pipe, rps, p99, cpu in rows:
    k, v = (t, test, pipe), (float(rps), float(p99), float(cpu))
    if k not in best or v[0] > best[k][0]:
        best[k] = v
rc = {k[1:]: v for k, v in best.items() if k[0] == "rediscluster"}
print(f"`redis-benchmark -t set|get -n {n} -c {c} -r {r} -d 32` (with `-P 16`: {np} requests), ops/s from the wall time of each run, best of the runs; Redis Cluster with `--cluster`; peercache through node 1 of 3 (`--near-cache-ttl 0`; `-1p`: GOMAXPROCS=1), `peercache-cluster` with `--resp-cluster` and `--cluster`. CPU: all server processes, µs per request. Ratios against the Redis Cluster run of the same test.\n")
print("| target | test | ops/s | p99 ms | server CPU µs/op | ops/s vs Redis Cluster | CPU/op vs Redis Cluster |")
print("|---|---|---|---|---|---|---|")
for (t, test, pipe), (rps, p99, cpu) in best.items():
    name = f"{test.upper()}" + (f" -P {pipe}" if pipe != "1" else "")
    base = rc.get((test, pipe))
    ratio = f"{rps / base[0]:.2f}x" if base and t != "rediscluster" else "-"
    cratio = f"{cpu / base[2]:.2f}x" if base and t != "rediscluster" and base[2] > 0 else "-"
    print(f"| {t} | {name} | {rps:,.0f} | {p99:.2f} | {cpu:.2f} | {ratio} | {cratio} |")
EOF
