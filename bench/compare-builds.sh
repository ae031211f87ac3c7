#!/usr/bin/env bash
# compare-builds.sh REV: this work tree's raftcache against the build of an
# earlier revision, on the same machine in the same run, through
# bench/compare.sh (HTTP, against etcd) and bench/compare-redis.sh (the
# Redis port, against redis-server). Rounds alternate old and new builds
# (ROUNDS of each, default 3) so that a change in the machine's load
# touches both; it prints each figure's median per build and new/old.
#
# Both scripts measure raftcache as a ratio to a peer started in the same
# run (etcd, redis-server), so the comparison is of those ratios as well
# as of raw req/s. Outputs are kept in the temp dir it prints.
#
# Usage: bench/compare-builds.sh 2038a1b     (ROUNDS=3 DURATION=10s by default)
set -euo pipefail
REV=${1:?usage: compare-builds.sh REV}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/raftcache-builds.XXXXXX")
BENCH_NAME=compare-builds
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log "building $REV and the work tree into $TMP"
# The scripts run from a copy, so that the work tree may change meanwhile.
mkdir -p "$TMP/bench"
cp "$ROOT"/bench/compare.sh "$ROOT"/bench/compare-redis.sh "$ROOT"/bench/lib.sh "$TMP/bench/"
mkdir -p "$TMP/old-src"
git -C "$ROOT" archive "$REV" | tar -x -C "$TMP/old-src"
(cd "$TMP/old-src" && CGO_ENABLED=0 go build -o "$TMP/old" .)
(cd "$ROOT" && CGO_ENABLED=0 go build -o "$TMP/new" .)

for r in $(seq 1 "$ROUNDS"); do
	for b in old new; do
		log "round $r: $b"
		RAFTCACHE_BIN=$TMP/$b DOC='' RATE=0 CEILING=0 bash "$TMP/bench/compare-redis.sh" >"$TMP/redis-$b-$r.txt" 2>"$TMP/redis-$b-$r.err" ||
			log "compare-redis.sh failed for $b round $r (see $TMP/redis-$b-$r.err)"
		RAFTCACHE_BIN=$TMP/$b DOC='' bash "$TMP/bench/compare.sh" >"$TMP/etcd-$b-$r.txt" 2>"$TMP/etcd-$b-$r.err" ||
			log "compare.sh failed for $b round $r (see $TMP/etcd-$b-$r.err)"
	done
done

# figures FILE...: "name value" lines from the scripts' tables.
figures() {
	awk -F'|' '
		# columns: target, SET req/s, SET p50 / p99, SET CPU/req, GET req/s, ...
		/^\| raftcache \|/ && $3 + 0 > 0 && $4 ~ /\// {gsub(/ /, "", $3); gsub(/ /, "", $6); print "redis.SET_rps", $3; print "redis.GET_rps", $6}
		/^\| raftcache \/ redis \|/ {gsub(/ /, "", $3); gsub(/ /, "", $4); print "redis.SET_ratio", $3; print "redis.GET_ratio", $4}
		/^\| raftcache \/ redis-always \|/ {gsub(/ /, "", $3); print "redis-always.SET_ratio", $3}
		/^\| (write|read-lin|read-serial)[ #]/ {w = $2; gsub(/ |#[0-9]+/, "", w); gsub(/ /, "", $6); gsub(/ /, "", $9); print "etcd." w "_rps", $6; print "etcd." w "_ratio", $9}
	' "$@"
}
# lower_median: the median of the numbers on stdin, the lower of the middle
# two for an even count (lib.sh's median averages them; this table has
# always taken the lower one).
lower_median() { sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]; else print "-"}'; }

printf '\n| figure | old (%s) median | new median | new/old |\n|---|---:|---:|---:|\n' "$REV"
for f in etcd.write_rps etcd.write_ratio etcd.read-lin_rps etcd.read-lin_ratio etcd.read-serial_rps etcd.read-serial_ratio \
	redis.SET_rps redis.SET_ratio redis-always.SET_ratio redis.GET_rps redis.GET_ratio; do
	o=$(cat "$TMP"/{etcd,redis}-old-*.txt 2>/dev/null | figures /dev/stdin | awk -v f="$f" '$1 == f {print $2}' | lower_median)
	n=$(cat "$TMP"/{etcd,redis}-new-*.txt 2>/dev/null | figures /dev/stdin | awk -v f="$f" '$1 == f {print $2}' | lower_median)
	printf '| %s | %s | %s | %s |\n' "$f" "$o" "$n" "$(ratio "$n" "$o")"
done
echo
echo "load average now: $(load_avg); outputs in $TMP"
