#!/bin/sh
# Long run of the queue torture test (cluster-test/queue_torture_test.go):
# producers and BLMOVE/BRPOP consumers on every node of a real three-node
# cluster while the leader is killed (-9) and paused (SIGSTOP) again and
# again. Needs a binary with lists. Results go into docs/benchmarks.md
# ("Queue torture").
#
#   scripts/queue-torture.sh [duration] [seed]     # default 10m, a new seed
set -eu
cd "$(dirname "$0")/.."
DURATION=${1:-10m}
export QUEUE_TORTURE_DURATION="$DURATION"
if [ $# -ge 2 ]; then
	export QUEUE_TORTURE_SEED="$2"
fi
exec go test ./cluster-test -run '^TestQueueTorture$' -count=1 -v -timeout 2h
