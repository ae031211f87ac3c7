#!/usr/bin/env bash
# watch-delay.sh: how long after a write is acknowledged its change event
# reaches a watch stream (GET /v1/watch), on the leader and on a follower,
# and how much faster a near-cache hit is than a plain GET. A 3-node
# cluster runs in one Go process; results go into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
RAFTCACHE_BENCH_WATCH=1 go test ./bench -run '^(TestWatchDelay|TestTrackingDelay)$' -count 1 -v | grep -E 'watch delay|invalidation delay'
go test ./bench -run '^$' -bench 'NearCacheGet' -benchtime 3s -count 1 | grep -E 'Benchmark|ok'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
