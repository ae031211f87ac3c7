#!/usr/bin/env bash
# kill-test.sh: the long run of cluster-test's kill -9 test. A 3-node
# cluster (real processes) under write load from 4 writers; KILLS times a
# random member, the leader or a follower, is killed with SIGKILL, kept
# down a moment, restarted and caught up; at the end every acknowledged
# write must be readable (strongly from the leader, and stale from every
# node). CI runs the same test with 10 kills and a fixed seed.
#
# Settings (environment):
#   KILLS=100     kills in the run
#   SEED=         the test's random seed (default: the time)
#   STORE=        log store of the nodes (default: the default, pebble)
#
# It prints the test's RESULT line (kills, leaders, followers, seed,
# acknowledged and ambiguous writes, lost, restarts that held their vote
# until they had caught up with a leader (node/catchup.go; every restart
# must hold, the rest ended their hold with no leader in sight), elapsed)
# and exits non-zero if anything acknowledged was lost, a restart did not
# hold its vote, or the cluster did not recover.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KILLS=${KILLS:-100}
SEED=${SEED:-$(date +%s)}
OUT=$(mktemp /tmp/kill-test.XXXXXX)
trap 'rm -f "$OUT"' EXIT
echo "kill-test: $KILLS kills, seed $SEED, store ${STORE:-default}, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ), commit $(git -C "$ROOT" rev-parse --short HEAD)"
# 100 kills take a few minutes on a quiet 2-core machine; allow for a busy one.
if (cd "$ROOT" && RAFTCACHE_KILLS=$KILLS RAFTCACHE_KILL_SEED=$SEED RAFTCACHE_KILL_STORE=${STORE:-} \
	go test ./cluster-test -run '^TestKillNineUnderLoad$' -count=1 -v -timeout 60m) >"$OUT" 2>&1; then
	grep -o 'RESULT .*' "$OUT"
	echo "kill-test: passed; load average after $(cut -d' ' -f1-3 /proc/loadavg)"
else
	grep -E '^\s+crashsafety_test.go|FAIL|panic' "$OUT" | tail -40
	echo "kill-test: FAILED (seed $SEED); full output kept in $OUT.keep"
	cp "$OUT" "$OUT.keep"
	exit 1
fi
