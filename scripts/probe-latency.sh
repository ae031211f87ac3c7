#!/usr/bin/env bash
# Measures /livez and /readyz latency under the 4 MiB load of issue 15:
# a three-node cluster on loopback, 20 curl clients reading (strong, 3 in
# 4) and writing 4 MiB values on the leader,
# and a prober polling every node's /livez and /readyz for SECONDS
# (default 60) while it runs.
#
#   scripts/probe-latency.sh [SECONDS]
#
# The prober is curl (one process and one new connection per probe, as the
# kubelet opens a new connection for each HTTP probe), up to ten probes a
# second per endpoint and node, each bounded by 5 s. It prints, per node role and
# endpoint, the number of probes, p50, p99 and max latency, and every
# answer other than 200. BASE_PORT (default 18100) picks the ports.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
base=${BASE_PORT:-18100}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/raftcache" .)
rc=$work/raftcache
urls=()
for i in 1 2 3; do
  http=127.0.0.1:$((base + i)); raft=127.0.0.1:$((base + 10 + i))
  urls+=("http://$http")
  args=(node --id "n$i" --http-addr "$http" --raft-addr "$raft" --data-dir "$work/n$i" --max-memory 1GB)
  if [ "$i" = 1 ]; then args+=(--bootstrap); else args+=(--join "http://127.0.0.1:$((base + 1))"); fi
  "$rc" "${args[@]}" >"$work/n$i.log" 2>&1 &
  pids+=($!)
  [ "$i" = 1 ] && for _ in $(seq 100); do curl -fs "http://$http/readyz" >/dev/null && break; sleep 0.2; done
done
endpoints=$(IFS=,; echo "${urls[*]}")
# Wait for three voters, every node ready.
for _ in $(seq 300); do
  voters=$(curl -fs "${urls[0]}/v1/cluster" | grep -o '"voter":true' | wc -l || true)
  ready=0
  for u in "${urls[@]}"; do curl -fs "$u/readyz" >/dev/null && ready=$((ready + 1)); done
  [ "$voters" = 3 ] && [ "$ready" = 3 ] && break
  sleep 0.2
done
leader=$(curl -fs "${urls[0]}/v1/cluster" | sed -n 's/.*"leader":{"id":"\([^"]*\)".*/\1/p')
term0=$(curl -fs "${urls[0]}/v1/cluster" | sed -n 's/.*"term":\([0-9]*\).*/\1/p')
echo "cluster ready: leader $leader, term $term0; load for $((secs + 10)) s, probes for $secs s"

# The load: 20 clients, each a loop of one PUT of its own 4 MiB key and
# three strong GETs of it, all on the leader (as the Go client sends them).
head -c $((4 << 20)) /dev/urandom >"$work/value"
leader_url=${urls[$((${leader#n} - 1))]}
load_end=$((SECONDS + secs + 10))
client() {
  local ok=0 bad=0
  while [ $SECONDS -lt $load_end ]; do
    for op in put get get get; do
      if [ $op = put ]; then
        code=$(curl -sL -o /dev/null --max-time 30 -w '%{http_code}' -X PUT --data-binary @"$work/value" "$leader_url/v1/kv/big/$1" || echo 000)
      else
        code=$(curl -sL -o /dev/null --max-time 30 -w '%{http_code}' "$leader_url/v1/kv/big/$1" || echo 000)
      fi
      if [ "$code" = 200 ] || { [ $op = get ] && [ "$code" = 404 ]; }; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
    done
  done
  echo "$ok $bad" >"$work/load-$1"
}
load=()
for c in $(seq 20); do client "$c" & load+=($!); done
sleep 5 # the load reaches its pace
probe() { # node url endpoint
  local end=$((SECONDS + secs))
  while [ $SECONDS -lt $end ]; do
    curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}\n' "$2$3" >>"$work/probe-$1-${3#/}" || echo "000 5" >>"$work/probe-$1-${3#/}"
    sleep 0.1
  done
}
probers=()
for i in 1 2 3; do
  for ep in /livez /readyz; do probe "n$i" "${urls[$((i - 1))]}" "$ep" & probers+=($!); done
done
wait "${probers[@]}"
wait "${load[@]}"
term1=$(curl -fs "${urls[0]}/v1/cluster" | sed -n 's/.*"term":\([0-9]*\).*/\1/p')

cat "$work"/load-* | awk -v s="$((secs + 10))" '{ ok += $1; bad += $2 } END {
  printf "load: 20 curl clients, 4 MiB values, 1 PUT to 3 strong GETs on the leader: %d operations in %d s (%.1f MiB/s), %d failed\n", ok + bad, s, ok * 4 / s, bad }'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Raft term $term0 -> $term1 (equal: no election during the run)"
printf '%-9s %-8s %7s %9s %9s %9s  %s\n' role endpoint probes p50_ms p99_ms max_ms "non-200 answers"
for i in 1 2 3; do
  role=follower; [ "n$i" = "$leader" ] && role=leader
  for ep in livez readyz; do
    f=$work/probe-n$i-$ep
    n=$(wc -l <"$f")
    sort -k2 -g "$f" | awk -v n="$n" -v role="$role($i)" -v ep="/$ep" '
      { t[NR] = $2 * 1000; if ($1 != "200") bad[$1]++ }
      END {
        p50 = t[int((n - 1) * 0.50) + 1]; p99 = t[int((n - 1) * 0.99) + 1]; mx = t[n]
        s = ""; for (c in bad) s = s c "x" bad[c] " "
        if (s == "") s = "none"
        printf "%-9s %-8s %7d %9.1f %9.1f %9.1f  %s\n", role, ep, n, p50, p99, mx, s
      }'
  done
done
