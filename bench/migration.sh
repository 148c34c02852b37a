#!/usr/bin/env bash
# bench/migration.sh: key migration on join against the plain Redis-to-Redis
# copies, in interleaved rounds on this machine, so that a change of the
# machine's speed during the run hits all three alike. Each round runs
# BenchmarkJoinMigration (a node holding PEERCACHE_BENCH_KEYS keys, 1M by
# default, is joined by a second; each node has its own redis-server) and
# then BenchmarkRedisCopyBaseline's two copies (a source holding only the
# keys that move; a source holding the whole shard). It prints one line a
# round with keys/s and the join's ratio to each copy, then the medians.
#
#   bench/migration.sh                     # 5 rounds, about 2 minutes
#   BENCH_ROUNDS=9 bench/migration.sh
#
# Needs redis-server (scripts/deps.sh installs it) and Go.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_ROUNDS:-5}
command -v redis-server >/dev/null || { echo "bench: redis-server not found (scripts/deps.sh installs it)" >&2; exit 1; }

WORK=$(mktemp -d -t peercache-migration.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
go test -c -o "$WORK/node.test" ./node/

# keys_per_s NAME FILE: the keys/s figure of benchmark NAME in FILE.
keys_per_s() {
	awk -v name="$1" '$1 ~ "^"name"(-[0-9]+)?$" { for (i = 2; i < NF; i++) if ($(i+1) == "keys/s") { print $i; exit } }' "$2"
}

printf '%-5s %12s %16s %12s %14s %14s\n' round join copy-moved-only copy-whole join/moved join/whole
: >"$WORK/ratios"
for r in $(seq 1 "$ROUNDS"); do
	"$WORK/node.test" -test.run '^$' -test.bench '^BenchmarkJoinMigration$' -test.benchtime 1x >"$WORK/join.txt" 2>&1 || { cat "$WORK/join.txt" >&2; exit 1; }
	"$WORK/node.test" -test.run '^$' -test.bench '^BenchmarkRedisCopyBaseline$' -test.benchtime 1x >"$WORK/copy.txt" 2>&1 || { cat "$WORK/copy.txt" >&2; exit 1; }
	join=$(keys_per_s BenchmarkJoinMigration "$WORK/join.txt")
	moved=$(keys_per_s BenchmarkRedisCopyBaseline/moved-keys-only "$WORK/copy.txt")
	whole=$(keys_per_s BenchmarkRedisCopyBaseline/whole-shard "$WORK/copy.txt")
	rm_=$(awk -v a="$join" -v b="$moved" 'BEGIN { printf "%.2f", a / b }')
	rw=$(awk -v a="$join" -v b="$whole" 'BEGIN { printf "%.2f", a / b }')
	echo "$rm_ $rw" >>"$WORK/ratios"
	printf '%-5s %12.0f %16.0f %12.0f %14s %14s\n' "$r" "$join" "$moved" "$whole" "${rm_}x" "${rw}x"
done

# median COLUMN: the median of a column of the ratios file.
median() {
	sort -n -k"$1","$1" "$WORK/ratios" | awk -v c="$1" '{ v[NR] = $c } END { if (NR % 2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2] + v[NR/2+1]) / 2 }'
}
echo "median join/moved-keys-only $(median 1)x, join/whole-shard $(median 2)x over $ROUNDS rounds"
