#!/usr/bin/env bash
# bench/rss.sh: memory per key. Starts redis-server and lone cachenodes on
# loopback, writes KEYS keys of VALUE bytes to each (cachenode bench
# --target resp --preload: every key exactly once, the same keys for all),
# lets the runtime settle and prints VmRSS (/proc/PID/status) before and
# after, with the bytes per key and the ratio to redis-server.
#
#   bench/rss.sh [KEYS...]        (default: 100000 1000000)
#
# Env: BIN (cachenode binary; default: built to a temporary directory),
# VALUE (bytes per value, 32), BASE_PORT (17400), SETTLE (seconds, 5),
# NODE_ARGS (extra flags for every cachenode), PPROF (1: save a heap
# profile of the default node after each load to $OUT/heap-KEYS.pb.gz),
# OUT (directory for logs and profiles; default: a temporary one).
# Bounded: every load has a timeout, and a trap stops every process this
# script started.
set -euo pipefail

VALUE=${VALUE:-32}
BASE=${BASE_PORT:-17400}
SETTLE=${SETTLE:-5}
OUT=${OUT:-$(mktemp -d /tmp/peercache-rss.XXXXXX)}
KEYS_LIST=("$@")
[ ${#KEYS_LIST[@]} -gt 0 ] || KEYS_LIST=(100000 1000000)
mkdir -p "$OUT"

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT INT TERM

if [ -z "${BIN:-}" ]; then
	BIN=$OUT/cachenode
	(cd "$(dirname "$0")/.." && go build -o "$BIN" ./cmd/cachenode)
fi

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

wait_port() {
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "port $1 did not open" >&2
	return 1
}

# start NAME RESP_PORT COMMAND...: starts a server in the background.
start() {
	local name=$1 port=$2
	shift 2
	"$@" >"$OUT/$name.log" 2>&1 &
	PIDS+=($!)
	eval "PID_$name=$!"
	wait_port "$port"
}

stop_all() {
	cleanup
	PIDS=()
}

load() { # load PORT KEYS: a failed load is reported, and its row stays (check the key counts)
	timeout 600 "$BIN" bench --target resp --addrs "127.0.0.1:$1" --keys "$2" --value-size "$VALUE" \
		--preload --ops 0 --concurrency 16 --pipeline 16 --progress off >"$OUT/load-$1-$2.txt" 2>&1 ||
		echo "load of 127.0.0.1:$1 ($2 keys) failed: see $OUT/load-$1-$2.txt" >&2
}

# keys_of PORT: the keys a server holds (INFO keyspace db0), to show that
# nothing was evicted.
keys_of() {
	redis-cli -p "$1" info keyspace 2>/dev/null | tr -d '\r' | sed -n 's/^db0:keys=\([0-9]*\).*/\1/p'
}

printf '%-34s %9s %10s %10s %9s %8s\n' target keys empty_MB rss_MB B/key x_redis
for keys in "${KEYS_LIST[@]}"; do
	p=$BASE
	start redis "$p" redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no
	start shard "$((p + 10))" redis-server --port "$((p + 10))" --bind 127.0.0.1 --save '' --appendonly no
	# shellcheck disable=SC2086 # NODE_ARGS is a list of flags
	start node "$((p + 4))" "$BIN" --name m1 --http-addr "127.0.0.1:$((p + 1))" --gossip-addr "127.0.0.1:$((p + 2))" \
		--resp-addr "127.0.0.1:$((p + 4))" --pprof-addr "127.0.0.1:$((p + 5))" ${NODE_ARGS:-}
	# shellcheck disable=SC2086
	start noderedis "$((p + 14))" "$BIN" --name m2 --http-addr "127.0.0.1:$((p + 11))" --gossip-addr "127.0.0.1:$((p + 12))" \
		--resp-addr "127.0.0.1:$((p + 14))" --redis-addr "127.0.0.1:$((p + 10))" ${NODE_ARGS:-}
	sleep 1
	declare -A empty
	for n in redis shard node noderedis; do
		pid_var=PID_$n
		empty[$n]=$(rss_kb "${!pid_var}")
	done
	load "$p" "$keys"
	load "$((p + 4))" "$keys"
	load "$((p + 14))" "$keys"
	sleep "$SETTLE"
	if [ "${PPROF:-0}" = 1 ]; then
		curl -fsS "http://127.0.0.1:$((p + 5))/debug/pprof/heap" -o "$OUT/heap-$keys.pb.gz" || true
		curl -fsS "http://127.0.0.1:$((p + 5))/debug/pprof/heap?debug=1" | grep '^# [A-Z]' >"$OUT/memstats-$keys.txt" || true
	fi
	echo "keys held: redis-server $(keys_of "$p"), cachenode $(keys_of "$((p + 4))"), cachenode's redis shard $(keys_of "$((p + 10))")" >&2
	redis=$(rss_kb "$PID_redis")
	row() { # row LABEL RSS_KB EMPTY_KB
		awk -v l="$1" -v k="$keys" -v r="$2" -v e="$3" -v red="$redis" \
			'BEGIN { printf "%-34s %9d %10.1f %10.1f %9.0f %8.2f\n", l, k, e/1024, r/1024, (r-e)*1024/k, r/red }'
	}
	row redis-server "$redis" "${empty[redis]}"
	row "cachenode (defaults)" "$(rss_kb "$PID_node")" "${empty[node]}"
	shard=$(rss_kb "$PID_shard")
	nr=$(rss_kb "$PID_noderedis")
	row "cachenode --redis-addr (node)" "$nr" "${empty[noderedis]}"
	row "cachenode --redis-addr (+shard)" "$((nr + shard))" "$((empty[noderedis] + empty[shard]))"
	stop_all
done
echo "logs and profiles: $OUT" >&2
