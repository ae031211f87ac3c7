# shellcheck shell=bash
# lib.sh: what the benchmark scripts (compare.sh, compare-redis.sh,
# compare-builds.sh) do the same way, so that a fix to one of them (how
# servers are stopped, how a median is taken, how docs/benchmarks.md is
# edited) reaches all of them. Sourced, never run:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Sourcing only defines functions; nothing runs and no option changes (the
# scripts keep their own `set -euo pipefail`). The functions share these
# globals with the script that sources them:
#
#   BENCH_NAME    the script's name in log lines (set before the first log)
#   ROOT          the work tree (commit_id)
#   TMP PIDS NAMES KEEP   set up by bench_init: the temp dir, the PIDs to
#                 stop on exit and their names, and whether to keep TMP
#   PORT_BASE     the first port of the raftcache nodes (rc_http, rc_raft)
#   READY_TIMEOUT seconds wait_until polls before it gives up
#   STOP_GRACE    (bench_init) seconds between SIGTERM and SIGKILL on exit
#   RC_PID        (start_rc_node) the PID of the node just started

# log MSG...: a timestamped line on stderr, so that stdout carries only
# the tables (compare-builds.sh parses them).
log() { printf '%s %s: %s\n' "$(date +%T)" "$BENCH_NAME" "$*" >&2; }

# die MSG...: log and exit 1; the EXIT trap then stops what was started.
die() {
	log "error: $*"
	exit 1
}

# need_tools CMD:PKG...: installs with apt-get the Debian package PKG of
# every CMD missing, in one apt-get run. The Go toolchain is no Debian
# package here (the project pins its own), so go is only checked: every
# script that calls this builds raftcache.
need_tools() {
	local t need=()
	for t in "$@"; do
		command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
	done
	if ((${#need[@]})); then
		log "installing ${need[*]}"
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
	fi
	command -v go >/dev/null || die "go is needed to build raftcache"
}

# bench_init PREFIX GRACE: makes the temp dir TMP (named PREFIX.XXXXXX) and
# installs the traps that, on any exit, stop every PID in PIDS, giving
# each GRACE seconds after SIGTERM before SIGKILL (a server killed mid-write
# would leave nothing wrong here, but one left running would hold the
# ports of the next run). INT and TERM exit 130 and 143 through the same
# trap. A script that has more to stop first defines on_cleanup.
bench_init() {
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	STOP_GRACE=$2
	PIDS=()
	declare -gA NAMES
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# bench_cleanup: the EXIT trap of bench_init; exits with the script's
# status.
bench_cleanup() {
	local rc=$? pid deadline
	trap - EXIT INT TERM
	if declare -F on_cleanup >/dev/null; then
		on_cleanup
	fi
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	# One deadline for all: they stop in parallel.
	deadline=$((SECONDS + STOP_GRACE))
	for pid in "${PIDS[@]}"; do
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "${NAMES[$pid]} (pid $pid) did not stop within ${STOP_GRACE}s of SIGTERM; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	if [[ $KEEP == 1 ]]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}

# track PID NAME: a server to stop on exit and to check with alive.
track() {
	PIDS+=("$1")
	NAMES[$1]=$2
}

# alive: dies if a tracked server has exited, so that a crashed node ends
# the run at once instead of as a timeout or a table of errors.
alive() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null || die "${NAMES[$pid]} (pid $pid) exited early; logs in $TMP (run with KEEP=1)"
	done
}

# wait_until DESC CMD...: poll CMD every 0.2s for up to READY_TIMEOUT seconds.
wait_until() {
	local desc=$1 deadline=$((SECONDS + READY_TIMEOUT))
	shift
	until "$@"; do
		alive
		((SECONDS < deadline)) || die "timed out after ${READY_TIMEOUT}s waiting for $desc"
		sleep 0.2
	done
}

# ports_free PORT...: dies on the first port something listens on: a
# server that cannot bind would otherwise show as a slow or failed start.
ports_free() {
	local p
	for p in "$@"; do
		if ss -Hltn "sport = :$p" | grep -q .; then
			die "port $p is in use; set PORT_BASE to another range"
		fi
	done
}

# rc_http I, rc_raft I: node I's HTTP and Raft ports (the same layout in
# every script, as their headers document).
rc_http() { echo $((PORT_BASE + $1)); }
rc_raft() { echo $((PORT_BASE + 10 + $1)); }

# build_raftcache: $TMP/raftcache, built from the work tree, or a copy of
# RAFTCACHE_BIN (compare-builds.sh passes the builds it compares).
build_raftcache() {
	log "building raftcache"
	if [[ -n ${RAFTCACHE_BIN:-} ]]; then
		cp "$RAFTCACHE_BIN" "$TMP/raftcache" # a given build (bench/compare-builds.sh)
	else
		(cd "$ROOT" && go build -o "$TMP/raftcache" .)
	fi
}

# start_rc_node I ARG...: starts node I as `$TMP/raftcache ARG...` plus
# --bootstrap (node 1) or --join node 1, logging to $TMP/rc/nI.log, tracks
# it and sets RC_PID. After node 1 it waits a moment, so that n1 has
# bootstrapped before the others ask it to add them.
start_rc_node() {
	local i=$1 args
	shift
	args=("$@")
	if ((i == 1)); then
		args+=(--bootstrap)
	else
		args+=(--join "http://127.0.0.1:$(rc_http 1)")
	fi
	"$TMP/raftcache" "${args[@]}" >"$TMP/rc/n$i.log" 2>&1 </dev/null &
	RC_PID=$!
	track "$RC_PID" "raftcache n$i"
	if ((i == 1)); then
		sleep 0.5 # let n1 bootstrap before the others ask it to add them
	fi
}

# cpu_ticks PID...: user+system CPU ticks used so far by the processes.
cpu_ticks() {
	local pid sum=0 f
	for pid in "$@"; do
		# Fields after the ")" of the command name: utime is the 12th, stime the 13th.
		f=$(sed 's/.*) //' "/proc/$pid/stat")
		sum=$((sum + $(awk '{print $12 + $13}' <<<"$f")))
	done
	echo "$sum"
}

# cpu_per_req TICKS N: CPU microseconds per request, from a cpu_ticks
# difference over N requests (N > 0).
cpu_per_req() {
	awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" 'BEGIN {printf "%.0f", t / hz * 1e6 / n}'
}

# median V...: the median of numbers ("-" ignored; "-" if none).
median() {
	printf '%s\n' "$@" | { grep -v '^-$' || true; } | sort -g | # grep fails on all "-" (RATE=0)
		awk '{a[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

# ratio A B: A/B to two decimals, "-" unless B > 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }

# load_avg: the 1, 5 and 15 minute load averages, quoted beside every
# figure (on a shared 2-core machine they say how far to trust it).
load_avg() { cut -d' ' -f1-3 /proc/loadavg; }

# commit_id: the work tree's short commit, "+dirty" if tracked files
# changed (a figure is of the code measured, not of the commit).
commit_id() {
	local c
	c=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
	[[ -z $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] || c="$c+dirty"
	echo "$c"
}

# doc_splice DOC HEADING_RE FILE: prints DOC with the section whose heading
# line matches HEADING_RE (an awk regex; up to the next "## " heading)
# replaced by FILE's lines, or removed with FILE=/dev/null. Each script
# decides where its section goes; this is how it comes out.
doc_splice() {
	awk -v re="$2" -v sf="$3" '
		$0 ~ re {while ((getline line < sf) > 0) print line; skip = 1; next}
		skip && /^## / {skip = 0}
		!skip {print}' "$1"
}
