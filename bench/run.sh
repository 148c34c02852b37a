#!/usr/bin/env bash
# bench/run.sh: peercache against Redis and against plain HTTP baselines, in
# one go, on this machine, everything on 127.0.0.1. Regenerates the section
# between the bench/run.sh markers in docs/benchmarks.md (other sections are
# kept). Takes about 5 minutes.
#
#   bench/run.sh                 # everything, writes docs/benchmarks.md
#   BENCH_DOC=/tmp/b.md bench/run.sh   # write elsewhere
#
# Knobs (environment): BENCH_N (redis-benchmark requests, 200000),
# BENCH_OPS (load-tool operations per HTTP run, 100000), BENCH_C (clients,
# 50), BENCH_KEYSPACE (redis-benchmark -r, 1000), BENCH_RSS_KEYS (100000),
# BENCH_PORT (first port used, 17100; the 96 from it are used), BENCH_REPEAT
# (runs of each comparison, 3; the best is reported).
#
# Needs redis-server and redis-benchmark (scripts/deps.sh installs them) and
# Go. Every process it starts is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

N=${BENCH_N:-200000}
OPS=${BENCH_OPS:-100000}
C=${BENCH_C:-50}
KEYSPACE=${BENCH_KEYSPACE:-1000}
RSS_KEYS=${BENCH_RSS_KEYS:-100000}
VALUE=32
PORT=${BENCH_PORT:-17100}
DOC=${BENCH_DOC:-$ROOT/docs/benchmarks.md}

for tool in redis-server redis-benchmark redis-cli go; do
	command -v "$tool" >/dev/null || { echo "bench: $tool not found (scripts/deps.sh installs the Redis tools)" >&2; exit 1; }
done

WORK=$(mktemp -d -t peercache-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && wait "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
port() { echo $((PORT + $1)); }

log "building cachenode"
CGO_ENABLED=0 go build -trimpath -o "$WORK/cachenode" ./cmd/cachenode
BIN=$WORK/cachenode
START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- process helpers ----

# start_redis NAME PORT: a throw-away redis-server, no persistence.
start_redis() {
	local name=$1 p=$2
	redis-server --bind 127.0.0.1 --port "$p" --save '' --appendonly no --daemonize no \
		--dir "$WORK" --dbfilename "$name.rdb" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	echo $! >"$WORK/$name.pid"
	for _ in $(seq 100); do
		redis-cli -p "$p" ping >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "bench: redis-server $name did not start:" >&2
	cat "$WORK/$name.log" >&2
	exit 1
}

# start_node NAME HTTP GOSSIP RESP [extra flags...]: a cachenode, waits until
# ready. Its peer port is GOSSIP + 50 (the default, GOSSIP + 1, is the
# next node's HTTP port here).
start_node() {
	local name=$1 http=$2 gossip=$3 resp=$4
	shift 4
	env ${NODE_ENV:-} "$BIN" --name "$name" --http-addr "127.0.0.1:$http" --gossip-addr "127.0.0.1:$gossip" \
		--peer-addr "127.0.0.1:$((gossip + 50))" --advertise-addr 127.0.0.1 --resp-addr "127.0.0.1:$resp" \
		--log-level warn "$@" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	echo $! >"$WORK/$name.pid"
	for _ in $(seq 200); do
		"$BIN" health --addr "127.0.0.1:$http" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "bench: cachenode $name did not become ready:" >&2
	cat "$WORK/$name.log" >&2
	exit 1
}

# start_baseline NAME KIND PORT [flags...]
start_baseline() {
	local name=$1 kind=$2 p=$3
	shift 3
	"$BIN" bench-baseline "$kind" --addr "127.0.0.1:$p" "$@" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	echo $! >"$WORK/$name.pid"
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "bench: baseline $name did not start" >&2
	exit 1
}

stop() {
	local pid
	pid=$(cat "$WORK/$1.pid")
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# cluster_ready HTTP... : every node lists all of them in its ring.
cluster_ready() {
	local want=$#
	for _ in $(seq 200); do
		local ok=1
		for h in "$@"; do
			local n
			n=$("$BIN" cluster --addr "127.0.0.1:$h" --json 2>/dev/null | grep -c '"in_ring": true' || true)
			[ "$n" = "$want" ] || ok=0
		done
		[ $ok = 1 ] && return 0
		sleep 0.1
	done
	echo "bench: the cluster did not form" >&2
	exit 1
}

# cpu_ticks PROC...: user+system CPU time (clock ticks) of processes started here.
cpu_ticks() {
	local t=0 p
	for p in "$@"; do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$(cat "$WORK/$p.pid")/stat")))
	done
	echo $t
}

# rb NAME PORT PROC... -- [-P 16]: redis-benchmark GET/SET on the hot set, CSV
# kept, and the CPU time the server processes PROC... spent meanwhile.
rb() {
	local name=$1 p=$2 procs=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do procs+=("$1"); shift; done
	shift
	log "redis-benchmark $name $*"
	local before after
	before=$(cpu_ticks "${procs[@]}")
	redis-benchmark -h 127.0.0.1 -p "$p" -t set,get -n "$N" -c "$C" -r "$KEYSPACE" -d "$VALUE" --csv "$@" \
		>"$WORK/rb-$name.csv" 2>"$WORK/rb-$name.err"
	after=$(cpu_ticks "${procs[@]}")
	echo "$((after - before)) $(getconf CLK_TCK) $((2 * N))" >"$WORK/rb-$name.cpu"
}

# lt NAME ARGS...: the load tool, JSON kept.
lt() {
	local name=$1
	shift
	log "cachenode bench $name $*"
	"$BIN" bench --json --progress off --concurrency "$C" "$@" >"$WORK/lt-$name.json" 2>"$WORK/lt-$name.err" || true
}

# ltcpu NAME "PROC..." ARGS...: lt, and the CPU time the server processes
# PROC... spent meanwhile (preload included).
ltcpu() {
	local name=$1 procs=$2 before after
	shift 2
	# shellcheck disable=SC2086 # procs is a list of names
	before=$(cpu_ticks $procs)
	lt "$name" "$@"
	# shellcheck disable=SC2086
	after=$(cpu_ticks $procs)
	echo "$((after - before)) $(getconf CLK_TCK)" >"$WORK/lt-$name.cpu"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$(cat "$WORK/$1.pid")/status"; }

# Every comparison runs BENCH_REPEAT times, its targets taking turns, and the
# report keeps each target's best run: the machine is shared (also with the
# load generators), and the best of a few runs is the steadiest estimate of
# what a server can do here.
R=${BENCH_REPEAT:-3}

# ---- 1. Redis protocol: plain redis-server vs single nodes ----

start_redis redis "$(port 0)"
start_node mem "$(port 1)" "$(port 2)" "$(port 3)"
NODE_ENV=GOMAXPROCS=1 # one P: see docs/benchmarks.md
start_node mem1 "$(port 4)" "$(port 5)" "$(port 6)"
NODE_ENV=
start_redis shard "$(port 7)"
start_node red "$(port 8)" "$(port 9)" "$(port 10)" --redis-addr "127.0.0.1:$(port 7)"
for i in $(seq "$R"); do
	for pipe in 1 16; do
		rb "redis-P$pipe-$i" "$(port 0)" redis -- -P "$pipe"
		rb "node-P$pipe-$i" "$(port 3)" mem -- -P "$pipe"
		rb "node1-P$pipe-$i" "$(port 6)" mem1 -- -P "$pipe"
		rb "noderedis-P$pipe-$i" "$(port 10)" red shard -- -P "$pipe"
	done
done

# ---- 2. HTTP: bare ceiling, naive proxy, single nodes, forwarded ----

HTTPRUN=(--target http --ops "$OPS" --keys "$KEYSPACE" --value-size "$VALUE" --read-ratio 1 --preload)
start_node rednt "$(port 11)" "$(port 12)" "$(port 13)" --redis-addr "127.0.0.1:$(port 7)" --redis-prefix notier: --local-tier-bytes 0
start_baseline bare http "$(port 14)" --keys "$KEYSPACE" --value-size "$VALUE"
start_baseline proxy proxy "$(port 15)" --upstream "127.0.0.1:$(port 14)" --max-conns "$C"
# Forwarded GETs: two 2-node clusters, reads through the first node of keys
# the second owns; one without near cache (every GET crosses to the owner),
# one with the default near cache.
start_node fa "$(port 16)" "$(port 17)" "$(port 18)" --near-cache-ttl 0
start_node fb "$(port 19)" "$(port 20)" "$(port 21)" --near-cache-ttl 0 --seeds "127.0.0.1:$(port 17)"
start_node na "$(port 22)" "$(port 23)" "$(port 24)"
start_node nb "$(port 25)" "$(port 26)" "$(port 27)" --seeds "127.0.0.1:$(port 23)"
cluster_ready "$(port 16)" "$(port 19)"
cluster_ready "$(port 22)" "$(port 25)"
for i in $(seq "$R"); do
	ltcpu "bare-$i" bare --addrs "127.0.0.1:$(port 14)" "${HTTPRUN[@]}"
	ltcpu "proxy-$i" "proxy bare" --addrs "127.0.0.1:$(port 15)" "${HTTPRUN[@]}"
	ltcpu "nodemem-$i" mem --addrs "127.0.0.1:$(port 1)" "${HTTPRUN[@]}"
	ltcpu "noderedis-$i" "red shard" --addrs "127.0.0.1:$(port 8)" "${HTTPRUN[@]}"
	ltcpu "noderedisnotier-$i" "rednt shard" --addrs "127.0.0.1:$(port 11)" "${HTTPRUN[@]}"
	ltcpu "forwarded-$i" "fa fb" --addrs "127.0.0.1:$(port 16)" --remote-only "${HTTPRUN[@]}"
	ltcpu "forwardednear-$i" "na nb" --addrs "127.0.0.1:$(port 22)" --remote-only "${HTTPRUN[@]}"
done
for p in nb na fb fa proxy bare rednt red shard mem1 mem redis; do stop "$p"; done

# ---- 3. Three nodes, requests spread over all, 90% reads, zipf ----

start_node c1 "$(port 30)" "$(port 31)" "$(port 32)"
start_node c2 "$(port 33)" "$(port 34)" "$(port 35)" --seeds "127.0.0.1:$(port 31)"
start_node c3 "$(port 36)" "$(port 37)" "$(port 38)" --seeds "127.0.0.1:$(port 31)"
cluster_ready "$(port 30)" "$(port 33)" "$(port 36)"
lt cluster3-http --addrs "127.0.0.1:$(port 30),127.0.0.1:$(port 33),127.0.0.1:$(port 36)" \
	--target http --ops "$OPS" --keys 10000 --value-size "$VALUE" --read-ratio 0.9 --dist zipf --zipf-s 1.1 --preload
lt cluster3-resp --addrs "127.0.0.1:$(port 32),127.0.0.1:$(port 35),127.0.0.1:$(port 38)" \
	--target resp --ops "$OPS" --keys 10000 --value-size "$VALUE" --read-ratio 0.9 --dist zipf --zipf-s 1.1 --preload
stop c3
stop c2
stop c1

# ---- 4. Memory: RSS after loading the same keys ----

log "RSS with $RSS_KEYS keys of $VALUE bytes"
start_redis rss-redis "$(port 40)"
start_node rss-node "$(port 41)" "$(port 42)" "$(port 43)"
start_node rss-nodent "$(port 44)" "$(port 45)" "$(port 46)" --local-tier-bytes 0
RSS_REDIS_EMPTY=$(rss_kb rss-redis)
RSS_NODE_EMPTY=$(rss_kb rss-node)
RSS_NODENT_EMPTY=$(rss_kb rss-nodent)
lt rss-redis --target resp --addrs "127.0.0.1:$(port 40)" --keys "$RSS_KEYS" --value-size "$VALUE" --preload --ops 0
lt rss-node --target resp --addrs "127.0.0.1:$(port 43)" --keys "$RSS_KEYS" --value-size "$VALUE" --preload --ops 0
lt rss-nodent --target resp --addrs "127.0.0.1:$(port 46)" --keys "$RSS_KEYS" --value-size "$VALUE" --preload --ops 0
sleep 2 # let the Go runtime settle (its scavenger returns freed pages)
cat >"$WORK/rss.txt" <<EOF
keys $RSS_KEYS
value $VALUE
redis_empty_kb $RSS_REDIS_EMPTY
node_empty_kb $RSS_NODE_EMPTY
redis_kb $(rss_kb rss-redis)
node_kb $(rss_kb rss-node)
nodent_empty_kb $RSS_NODENT_EMPTY
nodent_kb $(rss_kb rss-nodent)
EOF
stop rss-nodent
stop rss-node
stop rss-redis

END=$(date +%s)
cat >"$WORK/machine.txt" <<EOF
date $(date -u +%Y-%m-%d)
nproc $(nproc)
cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem_gib $(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)
go $(go env GOVERSION)
redis $(redis-server --version | awk '{print $3}' | sed 's/v=//')
load_start $LOAD_START
load_end $(cut -d' ' -f1-3 /proc/loadavg)
seconds $((END - START))
n $N
ops $OPS
c $C
keyspace $KEYSPACE
value $VALUE
repeat $R
EOF

log "writing $DOC"
go run ./bench/report --dir "$WORK" --doc "$DOC"
log "done in $((END - START)) s"

# Optional: a CPU profile of a node serving the RESP GET run (the same node
# and RESP server code, in a test binary so that it can be profiled).
#   BENCH_PROFILE=/tmp/prof bench/run.sh   then   go tool pprof -top /tmp/prof/resp.test /tmp/prof/cpu.out
if [ -n "${BENCH_PROFILE:-}" ]; then
	mkdir -p "$BENCH_PROFILE"
	log "profiling the RESP GET run into $BENCH_PROFILE"
	PEERCACHE_PROFILE_ARGS="-t set,get -n $N -c $C -r $KEYSPACE -d $VALUE" \
		go test -run TestProfileRedisBenchmark -count=1 -cpuprofile "$BENCH_PROFILE/cpu.out" \
		-o "$BENCH_PROFILE/resp.test" ./resp/ >"$BENCH_PROFILE/run.log" 2>&1
	go tool pprof -top -nodecount=25 "$BENCH_PROFILE/resp.test" "$BENCH_PROFILE/cpu.out" 2>/dev/null | head -35
fi
