#!/usr/bin/env bash
# compare-redis.sh: raftcache's Redis protocol front against redis-server,
# on this machine, driven by the same tool (redis-benchmark) with the same
# settings.
#
# It starts a fresh 3-node raftcache cluster (built from this work tree,
# serving RESP with --resp-addr) and two redis-server instances:
#
#   redis          redis-server defaults, no RDB snapshots (--save "")
#   redis-always   --appendonly yes --appendfsync always: every write is
#                  fsynced before the reply, the durability raftcache gives
#                  (raftcache also replicates to a quorum before replying)
#
# and, unless CEILING=0, two bare Go servers (bench/ceiling: no state, no
# Raft, GET answered with a fixed value, SET with +OK) that show how far a
# Go server can get on this machine under the same load at all:
#
#   redcon-bare    tidwall/redcon, raftcache's Redis front: a goroutine
#                  per connection
#   gnet-bare      panjf2000/gnet: epoll event loops, as redis-server works
#
# all on 127.0.0.1 with data in a temp dir, then runs
#
#   redis-benchmark -t set,get -c CLIENTS -n REQUESTS -d VALUE_SIZE
#
# and two rate-limit workloads on one hot key:
#
#   INCR rl:incr                       a plain counter
#   EVALSHA <sha> 1 rl:hot 60          INCR, and EXPIRE on the first hit
#                                      (the fixed-window script of limits,
#                                      slowapi, fastapi-limiter), loaded
#                                      with SCRIPT LOAD first
#
# against each (raftcache: its leader's RESP port), ROUNDS times, and the
# SET and GET runs once more through a follower's RESP port
# (raftcache-follower: a plain client that sends no READONLY, so the
# follower relays its SETs and its GETs, strong reads, to the leader), prints a
# table of the medians of requests/s, latency percentiles and server CPU
# per request (user+system time of the server processes, from
# /proc/PID/stat: the three raftcache nodes, or the one redis-server), the
# ratios raftcache/redis and the load average before and after, and
# replaces the "## Redis" section of docs/benchmarks.md (appending it at
# the end if there is none). It exits non-zero if redis-benchmark saw an
# error reply or raftcache changed leader during a run.
#
# Settings (environment):
#   CLIENTS=50         concurrent connections (-c)
#   REQUESTS=100000    requests per test (-n)
#   VALUE_SIZE=100     value size in bytes (-d)
#   WARMUP=5000        requests of an unmeasured run before each measured one (0: none)
#   ROUNDS=3           rounds over the three targets, in alternating order
#                      (raftcache first in odd rounds, last in even ones); the
#                      tables give each figure's median over the rounds
#   RC_ARGS=""         extra flags for every raftcache node, e.g. "--log-store wal"
#   PORT_BASE=17300    ports PORT_BASE+1..3 raftcache HTTP, +11..13 Raft,
#                      +21..23 RESP, +31 redis, +32 redis-always,
#                      +33 redcon-bare, +34 gnet-bare
#   DOC=docs/benchmarks.md   where the results go ("" to skip)
#   RATE=1             0: skip the INCR and EVALSHA rate-limit workloads
#   FOLLOWER=1         0: skip the runs through a follower (raftcache-follower)
#   CEILING=1          0: skip the bare servers (redcon-bare, gnet-bare)
#   RAFTCACHE_BIN=     a raftcache binary to run instead of building this work tree
#   KEEP=0             1: keep the temp dir (logs, outputs) and print it
#
# It installs redis-server and redis-tools with apt-get if missing, and
# stops everything it started (by PID) on exit.
set -euo pipefail

CLIENTS=${CLIENTS:-50}
REQUESTS=${REQUESTS:-100000}
VALUE_SIZE=${VALUE_SIZE:-100}
WARMUP=${WARMUP:-5000}
ROUNDS=${ROUNDS:-3}
RC_ARGS=${RC_ARGS:-}
PORT_BASE=${PORT_BASE:-17300}
KEEP=${KEEP:-0}
READY_TIMEOUT=60 # seconds

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOC=${DOC-$ROOT/docs/benchmarks.md}

BENCH_NAME=compare-redis
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_tools redis-server:redis-server redis-benchmark:redis-tools curl:curl jq:jq

# --- cleanup --------------------------------------------------------------

bench_init raftcache-compare-redis 15
declare -A SERVER_PIDS # target -> the PIDs whose CPU time it uses

# --- ports ----------------------------------------------------------------

rc_resp() { echo $((PORT_BASE + 20 + $1)); }
REDIS_PORT=$((PORT_BASE + 31))
REDIS_ALWAYS_PORT=$((PORT_BASE + 32))
declare -A BARE_PORT=([redcon-bare]=$((PORT_BASE + 33)) [gnet-bare]=$((PORT_BASE + 34)))

ports_free "$(rc_http 1)" "$(rc_http 2)" "$(rc_http 3)" "$(rc_raft 1)" "$(rc_raft 2)" "$(rc_raft 3)" \
	"$(rc_resp 1)" "$(rc_resp 2)" "$(rc_resp 3)" "$REDIS_PORT" "$REDIS_ALWAYS_PORT" "${BARE_PORT[@]}"

# --- start ----------------------------------------------------------------

build_raftcache
LOG_STORE=pebble # the default for a new data directory
[[ $RC_ARGS =~ --log-store[=\ ]+([a-z]+) ]] && LOG_STORE=${BASH_REMATCH[1]}
mkdir -p "$TMP/rc" "$TMP/redis" "$TMP/redis-always" "$TMP/out"

log "starting raftcache: RESP on 127.0.0.1:$(rc_resp 1)-$(rc_resp 3)"
for i in 1 2 3; do
	args=(node --id "n$i" --http-addr "127.0.0.1:$(rc_http $i)" --raft-addr "127.0.0.1:$(rc_raft $i)"
		--resp-addr "127.0.0.1:$(rc_resp $i)" --data-dir "$TMP/rc/n$i" --log-level warn)
	# shellcheck disable=SC2206 # RC_ARGS is split into flags on purpose
	args+=($RC_ARGS)
	start_rc_node "$i" "${args[@]}"
	SERVER_PIDS[raftcache]="${SERVER_PIDS[raftcache]:-} $RC_PID"
done

REDIS_VERSION=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
log "starting redis-server $REDIS_VERSION on 127.0.0.1:$REDIS_PORT and :$REDIS_ALWAYS_PORT"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$TMP/redis" \
	--daemonize no --logfile "$TMP/redis/redis.log" </dev/null &
SERVER_PIDS[redis]=$!
track $! "redis-server"
redis-server --bind 127.0.0.1 --port "$REDIS_ALWAYS_PORT" --save "" --appendonly yes --appendfsync always \
	--dir "$TMP/redis-always" --daemonize no --logfile "$TMP/redis-always/redis.log" </dev/null &
SERVER_PIDS[redis-always]=$!
track $! "redis-server (appendfsync always)"

if [[ ${CEILING:-1} != 0 ]]; then
	# Its own module (bench/ceiling/go.mod): raftcache does not depend on gnet.
	log "building bench/ceiling and starting redcon-bare on :${BARE_PORT[redcon-bare]}, gnet-bare on :${BARE_PORT[gnet-bare]}"
	(cd "$ROOT/bench/ceiling" && go build -o "$TMP/ceiling" .)
	for target in redcon-bare gnet-bare; do
		"$TMP/ceiling" -kind "${target%-bare}" -addr "127.0.0.1:${BARE_PORT[$target]}" >"$TMP/$target.log" 2>&1 </dev/null &
		SERVER_PIDS[$target]=$!
		track $! "$target (bench/ceiling)"
	done
fi

# rc_leader: sets RC_LEADER_RESP (the leader's RESP address) and RC_TERM,
# once every node is ready and a write through the leader's RESP port
# succeeds.
rc_leader() {
	local i view id
	for i in 1 2 3; do
		curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$(rc_http $i)/readyz" 2>/dev/null || return 1
	done
	view=$(curl -fsS -m 2 "http://127.0.0.1:$(rc_http 1)/v1/cluster" 2>/dev/null) || return 1
	id=$(jq -r '.leader.id // empty' <<<"$view")
	[[ -n $id && $(jq '.members | length' <<<"$view") == 3 ]] || return 1
	RC_LEADER_RESP=$(jq -r --arg id "$id" '.members[] | select(.id == $id) | .resp_addr // empty' <<<"$view")
	RC_LEADER_HTTP=$(jq -r --arg id "$id" '.members[] | select(.id == $id) | .http_addr // empty' <<<"$view")
	RC_FOLLOWER_RESP=$(jq -r --arg id "$id" '[.members[] | select(.id != $id)][0].resp_addr // empty' <<<"$view")
	RC_TERM=$(jq -r '.term' <<<"$view")
	[[ -n $RC_LEADER_RESP && -n $RC_FOLLOWER_RESP ]] || return 1
	[[ $(redis-cli -h "${RC_LEADER_RESP%:*}" -p "${RC_LEADER_RESP##*:}" SET compare-redis-probe 1 2>/dev/null) == OK ]]
}
redis_up() { [[ $(redis-cli -p "$1" PING 2>/dev/null) == PONG ]]; }

wait_until "raftcache to be ready" rc_leader
wait_until "redis-server" redis_up "$REDIS_PORT"
wait_until "redis-server (appendfsync always)" redis_up "$REDIS_ALWAYS_PORT"
if [[ ${CEILING:-1} != 0 ]]; then
	wait_until "redcon-bare" redis_up "${BARE_PORT[redcon-bare]}"
	wait_until "gnet-bare" redis_up "${BARE_PORT[gnet-bare]}"
fi
log "raftcache leader RESP $RC_LEADER_RESP (term $RC_TERM), follower RESP $RC_FOLLOWER_RESP"
SERVER_PIDS[raftcache-follower]=${SERVER_PIDS[raftcache]} # the same three processes
TARGETS=(raftcache redis redis-always)
[[ ${FOLLOWER:-1} == 0 ]] || TARGETS=(raftcache raftcache-follower redis redis-always)
[[ ${CEILING:-1} == 0 ]] || TARGETS+=(redcon-bare gnet-bare)

# --- runs -----------------------------------------------------------------

RATE_SCRIPT='local v = redis.call("INCR", KEYS[1]) if v == 1 then redis.call("EXPIRE", KEYS[1], ARGV[1]) end return v'

# bench_cmd NAME HOST PORT CMD...: one measured redis-benchmark run of one
# command line; sets RPS P50 P99.
bench_cmd() {
	local label
	label=$(tr -c 'A-Za-z0-9\n' _ <<<"$4")
	measure "$1" "$label" "$2" "$3" "${@:4}"
}

# measure NAME LABEL HOST PORT ARGS...: one measured redis-benchmark run
# (after a warm-up) of ARGS against target NAME; sets RPS P50 P99 and CPU
# (server CPU microseconds per request).
measure() {
	local name=$1 label=$2 host=$3 port=$4 t0 t1
	shift 4
	local csv="$TMP/out/$name.$label.$ROUND.csv" errf="$TMP/out/$name.$label.$ROUND.err"
	alive
	if ((WARMUP > 0)); then
		redis-benchmark -h "$host" -p "$port" -c "$CLIENTS" -n "$WARMUP" -q "$@" >/dev/null 2>&1 || true
	fi
	log "round $ROUND: redis-benchmark $label against $name"
	# shellcheck disable=SC2086 # a list of PIDs
	t0=$(cpu_ticks ${SERVER_PIDS[$name]})
	redis-benchmark -h "$host" -p "$port" -c "$CLIENTS" -n "$REQUESTS" --csv "$@" >"$csv" 2>"$errf" ||
		die "redis-benchmark $label against $name failed: $(tail -3 "$errf")"
	# shellcheck disable=SC2086
	t1=$(cpu_ticks ${SERVER_PIDS[$name]})
	if grep -qi "error" "$errf" "$csv"; then
		die "redis-benchmark $label against $name saw errors: $(grep -i error "$errf" "$csv" | head -3)"
	fi
	# "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
	read -r RPS P50 P99 < <(awk -F, 'NR == 2 {gsub(/"/, ""); print $2, $5, $7}' "$csv")
	[[ -n $RPS ]] || die "no results from redis-benchmark $label against $name: $(cat "$csv")"
	CPU=$(cpu_per_req "$((t1 - t0))" "$REQUESTS")
}

# bench_rate NAME HOST PORT: the INCR and EVALSHA rate-limit workloads;
# sets RPS_INCR RPS_EVAL P50_INCR P50_EVAL P99_INCR P99_EVAL.
bench_rate() {
	local name=$1 host=$2 port=$3 sha
	if [[ ${RATE:-1} == 0 ]]; then # a build without scripts (compare-builds.sh)
		RPS_INCR=0 P50_INCR=- P99_INCR=- RPS_EVAL=0 P50_EVAL=- P99_EVAL=-
		return
	fi
	sha=$(redis-cli -h "$host" -p "$port" SCRIPT LOAD "$RATE_SCRIPT") || die "SCRIPT LOAD on $name failed"
	[[ $sha =~ ^[0-9a-f]{40}$ ]] || die "SCRIPT LOAD on $name answered $sha"
	bench_cmd "$name" "$host" "$port" INCR rl:incr
	RPS_INCR=$RPS P50_INCR=$P50 P99_INCR=$P99
	bench_cmd "$name" "$host" "$port" EVALSHA "$sha" 1 rl:hot 60
	RPS_EVAL=$RPS P50_EVAL=$P50 P99_EVAL=$P99
	[[ $(redis-cli -h "$host" -p "$port" TTL rl:hot) -gt 0 ]] || die "the EVALSHA workload left rl:hot without an expiry on $name"
}

# bench NAME HOST PORT: measured SET then GET runs; sets RPS_SET RPS_GET
# P50_SET P50_GET P99_SET P99_GET CPU_SET CPU_GET.
bench() {
	measure "$1" SET "$2" "$3" -t set -d "$VALUE_SIZE"
	RPS_SET=$RPS P50_SET=$P50 P99_SET=$P99 CPU_SET=$CPU
	measure "$1" GET "$2" "$3" -t get -d "$VALUE_SIZE"
	RPS_GET=$RPS P50_GET=$P50 P99_GET=$P99 CPU_GET=$CPU
}

# rc_stats: the leader's applied index, strong read rounds and strong reads.
rc_stats() {
	curl -fsS -m 2 "http://$RC_LEADER_HTTP/v1/stats" | jq -r '"\(.applied_index) \(.strong_read_rounds) \(.strong_reads)"'
}

LOAD_BEFORE=$(load_avg)
declare -A R
METRICS=(set get p50set p50get p99set p99get cpuset cpuget incr eval p50incr p50eval p99incr p99eval)
PER_ENTRY_ALL=() PER_ROUND_ALL=()
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	# Alternate the order, so no target always runs on a machine just
	# warmed (or heated) by another.
	order=("${TARGETS[@]}")
	if ((ROUND % 2 == 0)); then
		for ((i = 0; i < ${#TARGETS[@]}; i++)); do order[i]=${TARGETS[${#TARGETS[@]} - 1 - i]}; done
	fi
	for target in "${order[@]}"; do
		case $target in
		raftcache)
			read -r idx0 rounds0 reads0 <<<"$(rc_stats)"
			bench raftcache "${RC_LEADER_RESP%:*}" "${RC_LEADER_RESP##*:}"
			read -r idx1 rounds1 reads1 <<<"$(rc_stats)"
			# The SET runs (warm-up and measured) are the only writers: SETs
			# per Raft entry (group commit); and strong GETs per leadership round.
			PER_ENTRY_ALL+=("$(awk -v n="$((REQUESTS + 2 * WARMUP))" -v e="$((idx1 - idx0))" 'BEGIN {if (e > 0) printf "%.1f", n / e; else print "-"}')")
			PER_ROUND_ALL+=("$(awk -v r="$((reads1 - reads0))" -v n="$((rounds1 - rounds0))" 'BEGIN {if (n > 0) printf "%.1f", r / n; else print "-"}')")
			bench_rate raftcache "${RC_LEADER_RESP%:*}" "${RC_LEADER_RESP##*:}"
			;;
		raftcache-follower)
			# Relayed: SETs are writes, GETs strong reads (no READONLY).
			bench raftcache-follower "${RC_FOLLOWER_RESP%:*}" "${RC_FOLLOWER_RESP##*:}"
			RPS_INCR=0 P50_INCR=- P99_INCR=- RPS_EVAL=0 P50_EVAL=- P99_EVAL=-
			;;
		redis)
			bench redis 127.0.0.1 "$REDIS_PORT"
			bench_rate redis 127.0.0.1 "$REDIS_PORT"
			;;
		redis-always)
			bench redis-always 127.0.0.1 "$REDIS_ALWAYS_PORT"
			bench_rate redis-always 127.0.0.1 "$REDIS_ALWAYS_PORT"
			;;
		redcon-bare | gnet-bare)
			bench "$target" 127.0.0.1 "${BARE_PORT[$target]}"
			RPS_INCR=0 P50_INCR=- P99_INCR=- RPS_EVAL=0 P50_EVAL=- P99_EVAL=-
			;;
		esac
		R[$target.set.$ROUND]=$RPS_SET R[$target.get.$ROUND]=$RPS_GET
		R[$target.p50set.$ROUND]=$P50_SET R[$target.p50get.$ROUND]=$P50_GET R[$target.p99set.$ROUND]=$P99_SET R[$target.p99get.$ROUND]=$P99_GET
		R[$target.cpuset.$ROUND]=$CPU_SET R[$target.cpuget.$ROUND]=$CPU_GET
		R[$target.incr.$ROUND]=$RPS_INCR R[$target.eval.$ROUND]=$RPS_EVAL
		R[$target.p50incr.$ROUND]=$P50_INCR R[$target.p50eval.$ROUND]=$P50_EVAL R[$target.p99incr.$ROUND]=$P99_INCR R[$target.p99eval.$ROUND]=$P99_EVAL
		log "round $ROUND $target: SET $RPS_SET req/s (p99 $P99_SET ms, $CPU_SET us CPU/req), GET $RPS_GET req/s (p99 $P99_GET ms, $CPU_GET us CPU/req)"
	done
done
LOAD_AFTER=$(load_avg)
term0=$RC_TERM
rc_leader || die "raftcache has no ready leader after the runs"
ELECTIONS=$((RC_TERM - term0))

# R[target.metric] is the median over the rounds.
for target in "${TARGETS[@]}"; do
	for m in "${METRICS[@]}"; do
		vals=()
		for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do vals+=("${R[$target.$m.$ROUND]}"); done
		R[$target.$m]=$(median "${vals[@]}")
	done
done
PER_ENTRY=$(median "${PER_ENTRY_ALL[@]}") PER_ROUND=$(median "${PER_ROUND_ALL[@]}")
COMMIT=$(commit_id)

TABLE=$(
	printf '| target | SET req/s | SET p50 / p99 ms | SET CPU/req | GET req/s | GET p50 / p99 ms | GET CPU/req |\n'
	printf '|---|---:|---:|---:|---:|---:|---:|\n'
	for target in "${TARGETS[@]}"; do
		printf '| %s | %.0f | %s / %s | %s us | %.0f | %s / %s | %s us |\n' "$target" "${R[$target.set]}" "${R[$target.p50set]}" "${R[$target.p99set]}" \
			"${R[$target.cpuset]}" "${R[$target.get]}" "${R[$target.p50get]}" "${R[$target.p99get]}" "${R[$target.cpuget]}"
	done
)
RATE_TABLE=$(
	printf '| target | INCR req/s | INCR p50 / p99 ms | EVALSHA req/s | EVALSHA p50 / p99 ms | EVALSHA / INCR |\n'
	printf '|---|---:|---:|---:|---:|---:|\n'
	for target in raftcache redis redis-always; do
		printf '| %s | %.0f | %s / %s | %.0f | %s / %s | %s |\n' "$target" "${R[$target.incr]}" "${R[$target.p50incr]}" "${R[$target.p99incr]}" \
			"${R[$target.eval]}" "${R[$target.p50eval]}" "${R[$target.p99eval]}" "$(ratio "${R[$target.eval]}" "${R[$target.incr]}")"
	done
)
RATIOS=$(
	printf '| ratio | SET | GET |\n|---|---:|---:|\n'
	printf '| raftcache / redis | %s | %s |\n' "$(ratio "${R[raftcache.set]}" "${R[redis.set]}")" "$(ratio "${R[raftcache.get]}" "${R[redis.get]}")"
	printf '| raftcache / redis-always | %s | %s |\n' "$(ratio "${R[raftcache.set]}" "${R[redis-always.set]}")" "$(ratio "${R[raftcache.get]}" "${R[redis-always.get]}")"
	if [[ -n ${R[raftcache-follower.set]:-} ]]; then
		printf '| raftcache-follower / redis | %s | %s |\n' "$(ratio "${R[raftcache-follower.set]}" "${R[redis.set]}")" "$(ratio "${R[raftcache-follower.get]}" "${R[redis.get]}")"
		printf '| raftcache-follower / raftcache | %s | %s |\n' "$(ratio "${R[raftcache-follower.set]}" "${R[raftcache.set]}")" "$(ratio "${R[raftcache-follower.get]}" "${R[raftcache.get]}")"
	fi
	if [[ -n ${R[redcon-bare.get]:-} ]]; then
		# GET is the same work for redis and redis-always: both rows, so the
		# spread between two runs of one server is in sight.
		for b in redcon-bare gnet-bare; do
			printf '| %s / redis | - | %s |\n' "$b" "$(ratio "${R[$b.get]}" "${R[redis.get]}")"
			printf '| %s / redis-always | - | %s |\n' "$b" "$(ratio "${R[$b.get]}" "${R[redis-always.get]}")"
		done
		printf '| raftcache / redcon-bare | - | %s |\n' "$(ratio "${R[raftcache.get]}" "${R[redcon-bare.get]}")"
	fi
)

echo
echo "$TABLE"
echo
echo "$RATIOS"
echo
echo "$RATE_TABLE"
echo
echo "raftcache: $PER_ENTRY SETs per Raft entry, $PER_ROUND GETs per leadership round"
echo "medians of $ROUNDS rounds; commit $COMMIT; raftcache elections during the runs: $ELECTIONS; load average before $LOAD_BEFORE, after $LOAD_AFTER"
((ELECTIONS == 0)) || die "raftcache changed leader during the runs; the figures are not comparable"

# --- docs -----------------------------------------------------------------

if [[ -n $DOC ]]; then
	CEILING_TARGETS='' CEILING_READING=''
	if [[ ${CEILING:-1} != 0 ]]; then
		CEILING_TARGETS='- **redcon-bare**, **gnet-bare** (bench/ceiling): Go servers that hold
  nothing and run no Raft, answering GET with a fixed value and SET with
  +OK, on tidwall/redcon (raftcache'"'"'s Redis front: a goroutine per
  connection) and on panjf2000/gnet (epoll event loops, as redis-server
  works). Their GET is the most a Go server on that network model gets
  from this machine under this load; their SET means nothing.
'
		CEILING_READING='- **The front itself has a ceiling.** redcon-bare is raftcache'"'"'s Redis
  front with nothing behind it: with a goroutine per connection every
  request costs a goroutine wake-up and a read that finds nothing before
  the goroutine parks, which redis-server'"'"'s event loop does not pay;
  gnet-bare is an event loop in Go. Compare raftcache with them in the
  ratio table: where redcon-bare itself is below a target, no change
  behind the front reaches it ("Latest against Redis" above says what
  would).'
	fi
	SECTION=$(
		cat <<EOF
## Redis

Latest: \`bench/compare-redis.sh\` (redis-benchmark, the Redis protocol
front) on $(date -u +%Y-%m-%dT%H:%MZ), commit $COMMIT, $(nproc) cores, load
average $LOAD_BEFORE before and $LOAD_AFTER after; each figure is the
median of $ROUNDS rounds in alternating order. Settings: \`redis-benchmark -t set\`
then \`-t get\`, \`-c $CLIENTS -n $REQUESTS -d $VALUE_SIZE\` (one key per test,
no pipelining), each after an unmeasured run of $WARMUP requests. CPU/req:
user+system time of the server processes (all three raftcache nodes, or
the one redis-server) per request, from /proc/PID/stat.

- **raftcache**: a 3-node cluster on this machine (${LOG_STORE:-default} log store,
  default timings${RC_ARGS:+, flags \`$RC_ARGS\`}), redis-benchmark against the leader's RESP port. A SET is
  acknowledged once a quorum has it in its fsynced log and the leader has
  applied it; a GET is a strong (linearizable) read.
- **raftcache-follower**: the same cluster through a follower's RESP port,
  without READONLY: the follower relays every SET and every (strong) GET
  to the leader over its shared relay connections, so a client that
  knows one address reaches the cluster. Not in the rate-limit table.
- **redis**: redis-server $REDIS_VERSION with its defaults, RDB snapshots off.
- **redis-always**: the same with \`--appendonly yes --appendfsync always\`.
$CEILING_TARGETS
$TABLE

$RATIOS

The rate-limit workloads, one hot key each: \`INCR rl:incr\`, and
\`EVALSHA\` of the fixed-window script (INCR, and EXPIRE on the first hit)
after \`SCRIPT LOAD\`. In raftcache the script runs inside the state
machine on every node, as one unit of a shared Raft entry (target: at
least half of INCR's throughput).

$RATE_TABLE

raftcache packed $PER_ENTRY SETs into each Raft entry (group commit) and
served $PER_ROUND GETs per leadership round.

Reading the figures: all three raftcache nodes, redis-benchmark and
redis-server share this machine's 2 cores and its one disk.

- **SET: one Raft entry per pass of the writers.** A raftcache SET is
  acknowledged once a follower has its entry in its fsynced log, the
  leader's own fdatasync (which runs in parallel with replication:
  docs/consistency.md, "The leader's append overlaps replication") has
  ended, and the leader has applied it; the third node's append competes
  for the same disk. redis-always does one fsync per event-loop pass. The
  proposer keeps one entry in flight and packs the writes that arrive
  meanwhile into the next, so a cycle is one entry (about one fdatasync
  and the Raft hops) and the writers' way back (the replies,
  redis-benchmark answering its connections one after another, the next
  SETs read). Details and measurements: "Write path" above.
- **GET is bound by the front's syscalls and the leadership round.** A
  strong GET waits for the round in flight to end and then for its own
  (a read fence: a 16-byte request to each follower on a connection of
  its own, answered with the follower's term; node/fence.go). Most of
  the leader's CPU is the RESP read and write syscalls of each request
  (the bare servers above show the front's own ceiling); the followers
  answer one request per round. A leader lease would remove the round,
  and docs/consistency.md rules it out; \`READONLY\` reads skip it.
$CEILING_READING
EOF
	)
	if [[ -f $DOC ]]; then
		# Replace an earlier "## Redis" section (up to the next "## " heading).
		doc_splice "$DOC" '^## Redis$' /dev/null >"$TMP/doc"
		# Drop trailing blank lines, then append the section.
		sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$TMP/doc" >"$TMP/doc2"
		{
			cat "$TMP/doc2"
			echo
			echo "$SECTION"
		} >"$DOC"
	else
		echo "$SECTION" >"$DOC"
	fi
	log "results written to $DOC"
fi
