#!/usr/bin/env bash
# compare.sh: raftcache and etcd side by side, on this machine, driven by
# the same external load tool (hey) with the same settings.
#
# It starts a fresh 3-node etcd and a fresh 3-node raftcache (built from
# this work tree), all on 127.0.0.1 with their data in a temp dir, waits
# until both are healthy, then runs each workload against etcd and
# raftcache in alternation:
#
#   write       etcd POST /v3/kv/put (JSON gateway)    raftcache PUT /v1/kv/{key}
#               on the leader                          on the leader
#   read-lin    etcd POST /v3/kv/range (linearizable)  raftcache GET /v1/kv/{key}
#               on the leader                          (strong) on the leader
#   read-serial etcd range "serializable":true         raftcache GET ?consistency=stale
#               on a follower                          on a follower
#
# hey sends every request of a run to one URL, so each run hits one key
# (reads: a key preloaded with a VALUE_SIZE value); both systems are
# loaded the same way. It prints a table of req/s, p99 and the server CPU
# time per request for each, and the ratios raftcache/etcd. It exits
# non-zero if any measured run had errors or non-2xx answers.
#
# Settings (environment):
#   CLIENTS=64        concurrent hey workers (-c)
#   DURATION=10s      length of each measured run (-z)
#   VALUE_SIZE=100    value size in bytes
#   WARMUP=2s         unmeasured run before each measured one (0: none)
#   ROUNDS=3          repeat the whole alternation (etcd first in odd rounds,
#                     raftcache first in even ones); one table row per round,
#                     then a table of the medians over the rounds, the figure
#                     the targets are stated in
#   PORT_BASE=17100   ports PORT_BASE+1..3 raftcache HTTP, +11..13 raftcache
#                     Raft, +21..23 etcd clients, +31..33 etcd peers
#   KEEP=0            1: keep the temp dir (logs, hey outputs) and print it
#   RC_ARGS=          extra flags for every raftcache node, e.g. "--log-store wal"
#   ETCD_ARGS=        extra flags for every etcd member
#   RAFTCACHE_BIN=    a raftcache binary to run instead of building this work tree
#   DOC=docs/benchmarks.md  where the median table goes ("" to skip): it
#                     replaces the section headed "## Latest against etcd"
#                     (dated, with the commit and the load averages), in
#                     place, or appends one; only with ROUNDS >= 3 and no
#                     errors, so a trial run never replaces the record
#   PPROF=0           1: run the raftcache nodes with --pprof and save a CPU
#                     profile of the node under load during each raftcache
#                     run into the temp dir (implies KEEP=1); read them with
#                     go tool pprof -top <binary> <file> (the binary is kept too)
#
# It installs etcd-server, hey, jq and curl with apt-get if missing, and
# stops everything it started (by PID) on exit.
set -euo pipefail

CLIENTS=${CLIENTS:-64}
DURATION=${DURATION:-10s}
VALUE_SIZE=${VALUE_SIZE:-100}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-3}
PORT_BASE=${PORT_BASE:-17100}
KEEP=${KEEP:-0}
RC_ARGS=${RC_ARGS:-}
ETCD_ARGS=${ETCD_ARGS:-}
PPROF=${PPROF:-0}
[[ $PPROF == 1 ]] && KEEP=1
DOC_SET=${DOC+set}
DOC=${DOC-}
READY_TIMEOUT=60 # seconds, for each cluster to become healthy

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -n $DOC_SET ]] || DOC=$ROOT/docs/benchmarks.md

BENCH_NAME=compare
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_tools etcd:etcd-server hey:hey jq:jq curl:curl

# --- cleanup --------------------------------------------------------------

bench_init raftcache-compare 10
CUR_PROF="" # a profile download in flight
declare -a ETCD_PIDS RC_PIDS

# on_cleanup: bench_cleanup's hook; a profile download is not a server, so
# it is only told to stop.
on_cleanup() {
	if [[ -n $CUR_PROF ]]; then
		kill -TERM "$CUR_PROF" 2>/dev/null || true
	fi
}

# --- ports ----------------------------------------------------------------

etcd_client() { echo $((PORT_BASE + 20 + $1)); }
etcd_peer() { echo $((PORT_BASE + 30 + $1)); }

for i in 1 2 3; do
	ports_free "$(rc_http $i)" "$(rc_raft $i)" "$(etcd_client $i)" "$(etcd_peer $i)"
done

# --- start ----------------------------------------------------------------

build_raftcache

mkdir -p "$TMP/etcd" "$TMP/rc" "$TMP/out"

ETCD_CLUSTER="e1=http://127.0.0.1:$(etcd_peer 1),e2=http://127.0.0.1:$(etcd_peer 2),e3=http://127.0.0.1:$(etcd_peer 3)"
log "starting etcd $(etcd --version | awk '/etcd Version/{print $3}') on 127.0.0.1:$(etcd_client 1)-$(etcd_client 3)"
for i in 1 2 3; do
	# shellcheck disable=SC2086 # ETCD_ARGS is split into flags on purpose
	etcd --name "e$i" --data-dir "$TMP/etcd/e$i" \
		--listen-client-urls "http://127.0.0.1:$(etcd_client $i)" \
		--advertise-client-urls "http://127.0.0.1:$(etcd_client $i)" \
		--listen-peer-urls "http://127.0.0.1:$(etcd_peer $i)" \
		--initial-advertise-peer-urls "http://127.0.0.1:$(etcd_peer $i)" \
		--initial-cluster "$ETCD_CLUSTER" --initial-cluster-state new \
		--initial-cluster-token "compare-$$" $ETCD_ARGS \
		>"$TMP/etcd/e$i.log" 2>&1 </dev/null &
	ETCD_PIDS[i]=$!
	track $! "etcd e$i"
done

log "starting raftcache on 127.0.0.1:$(rc_http 1)-$(rc_http 3)"
for i in 1 2 3; do
	args=(node --id "n$i" --http-addr "127.0.0.1:$(rc_http $i)" --raft-addr "127.0.0.1:$(rc_raft $i)"
		--data-dir "$TMP/rc/n$i")
	# shellcheck disable=SC2206
	args+=($RC_ARGS)
	[[ $PPROF == 1 ]] && args+=(--pprof)
	start_rc_node "$i" "${args[@]}"
	RC_PIDS[i]=$RC_PID
done

etcd_healthy() {
	local i
	for i in 1 2 3; do
		curl -fsS -m 2 "http://127.0.0.1:$(etcd_client $i)/health" 2>/dev/null | jq -e '.health == "true"' >/dev/null 2>&1 || return 1
	done
}

rc_healthy() {
	local i
	for i in 1 2 3; do
		curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$(rc_http $i)/readyz" 2>/dev/null || return 1
		curl -fsS -m 2 "http://127.0.0.1:$(rc_http $i)/v1/cluster" 2>/dev/null |
			jq -e '.leader != null and (.members | length) == 3' >/dev/null 2>&1 || return 1
	done
}

wait_until "etcd to be healthy" etcd_healthy
wait_until "raftcache to be ready" rc_healthy
log "both clusters are healthy"

# --- roles ----------------------------------------------------------------

# The leader can change during the benchmark (a starved leader steps
# down), so roles are looked up again before every run, and every run
# records how many terms (elections) passed during it.

# etcd_find_roles: sets ETCD_LEADER and ETCD_FOLLOWER, or returns 1.
etcd_find_roles() {
	local i st
	ETCD_LEADER="" ETCD_FOLLOWER=""
	for i in 1 2 3; do
		st=$(curl -fsS -m 2 -X POST "http://127.0.0.1:$(etcd_client $i)/v3/maintenance/status" -d '{}' 2>/dev/null) || continue
		if jq -e '.leader != null and .leader != "0" and .header.member_id == .leader' >/dev/null 2>&1 <<<"$st"; then
			ETCD_LEADER="127.0.0.1:$(etcd_client $i)"
		elif [[ -z $ETCD_FOLLOWER ]]; then
			ETCD_FOLLOWER="127.0.0.1:$(etcd_client $i)"
		fi
	done
	[[ -n $ETCD_LEADER && -n $ETCD_FOLLOWER ]]
}

# rc_find_roles: sets RC_LEADER and RC_FOLLOWER, or returns 1.
rc_find_roles() {
	local i
	RC_LEADER=$(curl -fsS -m 2 "http://127.0.0.1:$(rc_http 1)/v1/cluster" 2>/dev/null | jq -r '.leader.http_addr // empty' 2>/dev/null)
	RC_FOLLOWER=""
	[[ -n $RC_LEADER ]] || return 1
	curl -fsS -m 2 -o /dev/null "http://$RC_LEADER/readyz" 2>/dev/null || return 1
	for i in 1 2 3; do
		if [[ "127.0.0.1:$(rc_http $i)" != "$RC_LEADER" ]]; then
			RC_FOLLOWER="127.0.0.1:$(rc_http $i)"
			return 0
		fi
	done
	return 1
}

# etcd_term, rc_term: the highest Raft term any member reports.
etcd_term() {
	local i t max=0
	for i in 1 2 3; do
		t=$(curl -fsS -m 2 -X POST "http://127.0.0.1:$(etcd_client $i)/v3/maintenance/status" -d '{}' 2>/dev/null |
			jq -r '.header.raft_term // 0' 2>/dev/null) || t=0
		((${t:-0} > max)) && max=$t
	done
	echo "$max"
}
rc_term() {
	local i t max=0
	for i in 1 2 3; do
		t=$(curl -fsS -m 2 "http://127.0.0.1:$(rc_http $i)/v1/cluster" 2>/dev/null | jq -r '.term // 0' 2>/dev/null) || t=0
		((${t:-0} > max)) && max=$t
	done
	echo "$max"
}

term_of() { if [[ $1 == etcd ]]; then etcd_term; else rc_term; fi; }

wait_until "the etcd leader" etcd_find_roles
wait_until "the raftcache leader" rc_find_roles
log "etcd leader $ETCD_LEADER follower $ETCD_FOLLOWER; raftcache leader $RC_LEADER follower $RC_FOLLOWER"

# --- bodies and preload ---------------------------------------------------

VALUE="$TMP/value"
head -c "$VALUE_SIZE" /dev/urandom | base64 -w0 | cut -c "1-$VALUE_SIZE" | tr -d '\n' >"$VALUE"
[[ $(stat -c %s "$VALUE") == "$VALUE_SIZE" ]] || die "could not make a $VALUE_SIZE-byte value"

b64() { printf '%s' "$1" | base64 -w0; }
VALUE_B64=$(base64 -w0 <"$VALUE")
printf '{"key":"%s","value":"%s"}' "$(b64 bench-write)" "$VALUE_B64" >"$TMP/etcd-put.json"
printf '{"key":"%s","value":"%s"}' "$(b64 bench-read)" "$VALUE_B64" >"$TMP/etcd-preload.json"
printf '{"key":"%s"}' "$(b64 bench-read)" >"$TMP/etcd-range.json"
printf '{"key":"%s","serializable":true}' "$(b64 bench-read)" >"$TMP/etcd-range-serial.json"

curl -fsS -m 5 -X POST "http://$ETCD_LEADER/v3/kv/put" -H 'Content-Type: application/json' \
	--data-binary @"$TMP/etcd-preload.json" >/dev/null || die "etcd preload failed"
curl -fsS -m 5 -X PUT "http://$RC_LEADER/v1/kv/bench-read" -H 'Content-Type: application/octet-stream' \
	--data-binary @"$VALUE" >/dev/null || die "raftcache preload failed"

etcd_follower_has_key() {
	curl -fsS -m 2 -X POST "http://$ETCD_FOLLOWER/v3/kv/range" --data-binary @"$TMP/etcd-range-serial.json" |
		jq -e '(.kvs | length) == 1' >/dev/null 2>&1
}
rc_follower_has_key() {
	curl -fsS -m 2 -o /dev/null "http://$RC_FOLLOWER/v1/kv/bench-read?consistency=stale" 2>/dev/null
}
wait_until "the etcd follower to have the read key" etcd_follower_has_key
wait_until "the raftcache follower to have the read key" rc_follower_has_key

# --- runs -----------------------------------------------------------------

# duration_seconds D: whole seconds in a duration like 10s, 2m or 1m30s
# (0 if it is not in that form).
duration_seconds() {
	local d=$1 total=0
	[[ $d =~ ^([0-9]+h)?([0-9]+m)?([0-9]+s)?$ && -n $d ]] || {
		echo 0
		return
	}
	[[ $d =~ ([0-9]+)h ]] && total=$((total + BASH_REMATCH[1] * 3600))
	[[ $d =~ ([0-9]+)m ]] && total=$((total + BASH_REMATCH[1] * 60))
	[[ $d =~ ([0-9]+)s ]] && total=$((total + BASH_REMATCH[1]))
	echo "$total"
}

# hey_args SYSTEM WORKLOAD: prints the hey arguments after -z/-c.
hey_args() {
	case "$1/$2" in
	etcd/write) echo "-m POST -T application/json -D $TMP/etcd-put.json http://$ETCD_LEADER/v3/kv/put" ;;
	etcd/read-lin) echo "-m POST -T application/json -D $TMP/etcd-range.json http://$ETCD_LEADER/v3/kv/range" ;;
	etcd/read-serial) echo "-m POST -T application/json -D $TMP/etcd-range-serial.json http://$ETCD_FOLLOWER/v3/kv/range" ;;
	raftcache/write) echo "-m PUT -T application/octet-stream -D $VALUE http://$RC_LEADER/v1/kv/bench-write" ;;
	raftcache/read-lin) echo "-m GET http://$RC_LEADER/v1/kv/bench-read" ;;
	raftcache/read-serial) echo "-m GET http://$RC_FOLLOWER/v1/kv/bench-read?consistency=stale" ;;
	esac
}

# run SYSTEM WORKLOAD ROUND: one measured hey run; sets RPS P99 CPU ERRS
# and ELECT (the terms that passed during the run).
run() {
	local sys=$1 wl=$2 round=$3 out="$TMP/out/$1-$2-$3.txt" pids t0 t1 n term0 term1 prof_pid
	if [[ $sys == etcd ]]; then pids=("${ETCD_PIDS[@]}"); else pids=("${RC_PIDS[@]}"); fi
	alive
	if [[ $sys == etcd ]]; then
		wait_until "the etcd leader" etcd_find_roles
	else
		wait_until "the raftcache leader" rc_find_roles
	fi
	# shellcheck disable=SC2046
	if [[ $WARMUP != 0 ]]; then
		hey -z "$WARMUP" -c "$CLIENTS" $(hey_args "$sys" "$wl") >/dev/null 2>&1 || true
	fi
	term0=$(term_of "$sys")
	prof_pid=""
	if [[ $PPROF == 1 && $sys == raftcache ]]; then
		# Profile the node the load goes to, for all but the last second.
		local target=$RC_LEADER secs
		[[ $wl == read-serial ]] && target=$RC_FOLLOWER
		secs=$(($(duration_seconds "$DURATION") - 1))
		if ((secs > 0)); then
			curl -fsS -m $((secs + 15)) -o "$TMP/out/$sys-$wl-$round.cpu.pprof" \
				"http://$target/debug/pprof/profile?seconds=$secs" 2>/dev/null &
			prof_pid=$!
			CUR_PROF=$prof_pid
		fi
	fi
	t0=$(cpu_ticks "${pids[@]}")
	# shellcheck disable=SC2046
	hey -z "$DURATION" -c "$CLIENTS" $(hey_args "$sys" "$wl") >"$out" 2>&1 || die "hey failed: $(tail -3 "$out")"
	t1=$(cpu_ticks "${pids[@]}")
	if [[ -n $prof_pid ]]; then
		wait "$prof_pid" || log "could not save a CPU profile of $sys $wl"
		CUR_PROF=""
	fi
	term1=$(term_of "$sys")
	ELECT=$((term1 - term0))
	# hey's Requests/sec counts every answer, 307s and 503s too: count 2xx only.
	n=$(awk '/^Status code distribution:/{s=1; next} /^[A-Z]/{s=0} s && $1 ~ /^\[2[0-9][0-9]\]$/ {n += $2} END {print n + 0}' "$out")
	RPS=$(awk -v n="$n" '$1 == "Total:" {if ($2 > 0) printf "%.0f", n / $2; else print 0; exit}' "$out")
	# Latency percentiles (hey's are over all answers, whatever the status).
	P99=$(awk '$1 ~ /^99%+$/ && $2 == "in" {printf "%.2f", $3 * 1000}' "$out")
	# Errors: non-2xx statuses plus transport errors.
	ERRS=$(awk '/^Status code distribution:/{s=1; next} /^Error distribution:/{s=2; next} /^[A-Z]/{s=0}
		s == 1 && $1 ~ /^\[[0-9]+\]$/ && $1 !~ /^\[2[0-9][0-9]\]$/ {n += $2}
		s == 2 && $1 ~ /^\[[0-9]+\]$/ {gsub(/[][]/, "", $1); n += $1}
		END {print n + 0}' "$out")
	if ((n > 0)); then
		CPU=$(cpu_per_req "$((t1 - t0))" "$n")
	else
		CPU=-
	fi
	[[ -n $P99 ]] || P99=-
	log "$(printf '%-9s %-11s round %d: %s req/s, p99 %s ms, %s CPU us/req, %d ok, %d errors, %d elections' \
		"$sys" "$wl" "$round" "$RPS" "$P99" "$CPU" "$n" "$ERRS" "$ELECT")"
	if ((ERRS > 0)); then
		log "errors in $sys $wl (hey output: $out; KEEP=1 keeps it):"
		sed -n '/^Status code distribution:/,$p' "$out" | head -12 >&2
	fi
	sleep 1
}

WORKLOADS=(write read-lin read-serial)
LOAD_BEFORE=$(load_avg)
ROWS=()
declare -A R P C E L
FAILED=0
for ((r = 1; r <= ROUNDS; r++)); do
	for wl in "${WORKLOADS[@]}"; do
		# Alternate which system goes first, so neither always runs on a
		# machine just warmed (or heated) by the other.
		if ((r % 2 == 1)); then order=(etcd raftcache); else order=(raftcache etcd); fi
		for sys in "${order[@]}"; do
			run "$sys" "$wl" "$r"
			((ERRS == 0)) || FAILED=1
			R[$sys]=$RPS P[$sys]=$P99 C[$sys]=$CPU E[$sys]=$ERRS L[$sys]=$ELECT
		done
		name=$wl
		((ROUNDS == 1)) || name="$wl#$r"
		ROWS+=("$name ${R[etcd]} ${P[etcd]} ${C[etcd]} ${E[etcd]} ${L[etcd]} ${R[raftcache]} ${P[raftcache]} ${C[raftcache]} ${E[raftcache]} ${L[raftcache]}")
	done
done

# --- report ---------------------------------------------------------------

header() {
	printf '| %-13s | %11s | %9s | %9s | %11s | %9s | %9s | %13s | %11s | %9s |\n' \
		workload "etcd req/s" "etcd p99" "etcd cpu" "rc req/s" "rc p99" "rc cpu" "req/s rc/etcd" "p99 rc/etcd" "elections"
	printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' --------------- ------------: ----------: ----------: \
		------------: ----------: ----------: ---------------: ------------: ----------:
}

print_row() {
	local wl=$1 re=$2 pe=$3 ce=$4 ee=$5 le=$6 rr=$7 pr=$8 cr=$9 er=${10} lr=${11} ratio pratio ce_s cr_s
	ratio=$(ratio "$rr" "$re")
	pratio=$(awk -v a="$pr" -v b="$pe" 'BEGIN {if (a != "-" && b > 0) printf "%.2f", a / b; else print "-"}')
	ce_s="$ce us" cr_s="$cr us"
	[[ $ce == - ]] && ce_s=-
	[[ $cr == - ]] && cr_s=-
	((ee == 0)) || re="$re (${ee} err)"
	((er == 0)) || rr="$rr (${er} err)"
	printf '| %-13s | %11s | %6s ms | %9s | %11s | %6s ms | %9s | %13s | %11s | %9s |\n' \
		"$wl" "$re" "$pe" "$ce_s" "$rr" "$pr" "$cr_s" "$ratio" "$pratio" "$le / $lr"
}

COMMIT=$(commit_id)
echo
echo "raftcache vs etcd $(etcd --version | awk '/etcd Version/{print $3}'): hey -c $CLIENTS -z $DURATION, ${VALUE_SIZE}-byte values, $(nproc) CPUs, $(date -u +%FT%TZ), commit $COMMIT${RC_ARGS:+, RC_ARGS=$RC_ARGS}"
echo "load average before the runs: $LOAD_BEFORE; after: $(load_avg)"
echo
header
for row in "${ROWS[@]}"; do
	# shellcheck disable=SC2086
	print_row $row
done
# medians: the median table's rows, one per workload.
medians() {
	for wl in "${WORKLOADS[@]}"; do
		cols=()
		for col in 2 3 4 5 6 7 8 9 10 11; do
			vals=()
			for row in "${ROWS[@]}"; do
				read -r -a f <<<"$row"
				[[ ${f[0]%%#*} == "$wl" ]] && vals+=("${f[col - 1]}")
			done
			if ((col == 5 || col == 6 || col == 10 || col == 11)); then
				cols+=("$(printf '%s\n' "${vals[@]}" | awk '{n += $1} END {print n + 0}')")
			else
				cols+=("$(median "${vals[@]}")")
			fi
		done
		print_row "$wl" "${cols[@]}"
	done
}

# verdicts TABLE: each of issue 19's targets against a median table.
verdicts() {
	echo "$1" | awk -F'|' '
		function num(s) { gsub(/[^0-9.]/, "", s); return s + 0 }
		function verdict(ok) { return ok ? "met" : "missed" }
		{ wl = $2; gsub(/ /, "", wl) }
		wl == "write" {
			printf "- writes: %.2fx etcd (target 2x: %s); write p99 %.2fx etcd (target at most 1x: %s)\n", num($9), verdict(num($9) >= 2), num($10), verdict(num($10) <= 1)
		}
		wl == "read-lin" { printf "- linearizable reads: %.2fx etcd (target 2.5x: %s)\n", num($9), verdict(num($9) >= 2.5) }
		wl == "read-serial" { printf "- stale follower reads: %.2fx etcd (target 3x: %s)\n", num($9), verdict(num($9) >= 3) }'
}

if ((ROUNDS > 1)); then
	echo
	echo "Median of $ROUNDS rounds (each column's median; errors and elections summed):"
	echo
	header
	MEDIANS=$(medians)
	echo "$MEDIANS"
	echo
	verdicts "$MEDIANS"
fi
echo
echo "cpu: user+system CPU time of the three server processes per successful (2xx) request."
echo "elections: Raft terms that passed during the run, etcd / raftcache (0 / 0 when leaders held)."
if ((FAILED)); then
	log "some runs had errors or non-2xx answers"
	exit 1
fi

# --- the record in docs/benchmarks.md ----------------------------------------

if [[ -n $DOC ]] && ((ROUNDS >= 3)); then
	PER_ROUND=$(for row in "${ROWS[@]}"; do
		read -r -a f <<<"$row"
		printf '%s %s; ' "${f[0]}" "$(ratio "${f[6]}" "${f[1]}")"
	done | sed 's/; $/./')
	SECTION=$(
		cat <<EOF
## Latest against etcd ($(date -u +%FT%H:%MZ), commit $COMMIT)

Written by \`bench/compare.sh\`: $ROUNDS alternating rounds, hey -c $CLIENTS -z $DURATION,
${VALUE_SIZE}-byte values, a fresh three-node etcd $(etcd --version | awk '/etcd Version/{print $3}') beside a fresh
three-node raftcache on $(nproc) CPUs${RC_ARGS:+, RC_ARGS=$RC_ARGS}. Load average $LOAD_BEFORE before
the runs, $(load_avg) after. The median of each column over the rounds:

$(header)
$MEDIANS

$(verdicts "$MEDIANS")

req/s raftcache / etcd in each round: $PER_ROUND
EOF
	)
	if [[ -f $DOC ]] && grep -q '^## Latest against etcd' "$DOC"; then
		# Replace the section in place (up to the next "## " heading).
		printf '%s\n\n' "$SECTION" >"$TMP/section"
		doc_splice "$DOC" '^## Latest against etcd' "$TMP/section" >"$TMP/doc"
		cat "$TMP/doc" >"$DOC"
	else
		printf '\n%s\n' "$SECTION" >>"$DOC"
	fi
	log "median table written to $DOC"
fi
