#!/usr/bin/env bash
# Interleaved A/B of two helpdesk-server builds under the same load (docs/BENCHMARKS.md,
# "HTTP server": the A/B tables). On a noisy 2-core machine one run per build decides
# nothing; alternating the builds round by round lets the noise hit both alike.
#
#   bench/http_ab.sh OLD_BINARY NEW_BINARY
#   ROUNDS=5 DURATION=8s bench/http_ab.sh a/helpdesk-server b/helpdesk-server
#
# Each build gets one fresh server (127.0.0.1, random port, empty temporary data
# directory, durable, default logging). Then, ROUNDS times, builds alternating:
#
#   create   POST /api/v1/tickets, wrk -t2 -c64 (the create runs also fill the database)
#   get      GET /api/v1/tickets/<random of 1..GET_IDS>, after every create round
#
# each after a WARMUP run, and prints one line per run: req/s, p50/p99, the server's CPU
# per request (utime + stime from /proc/<pid>/stat) and its context switches per request
# (voluntary + involuntary, summed over /proc/<pid>/task/*/status; threads that exit
# during a run take their counts with them, so an idle-pool shrink can make it negative).
#
# Knobs: ROUNDS (3), DURATION (6s), WARMUP (2s), GET_IDS (20000), KEEP=1 (keep the temporary
# directory). Needs wrk (installed from Debian when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. "$ROOT/.ci/lib.sh"   # log, die, apt_install, wait_for_port

[ $# -eq 2 ] || die "usage: bench/http_ab.sh OLD_BINARY NEW_BINARY"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6s}
WARMUP=${WARMUP:-2s}
GET_IDS=${GET_IDS:-20000}
KEEP=${KEEP:-0}
export WRK_LUA_DIR=$ROOT/bench/wrk BENCH_THREADS=2
command -v wrk >/dev/null || apt_install wrk

work=$(mktemp -d "${TMPDIR:-/tmp}/helpdesk-http-ab.XXXXXX")
declare -A PID PORT TOKEN
cleanup() {
  local rc=$?
  for b in "${!PID[@]}"; do kill -TERM "${PID[$b]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT

start() { # name binary
  local name=$1 bin dir=$work/$1
  bin=$(realpath "$2")
  [ -x "$bin" ] || die "$2 is not an executable"
  mkdir -p "$dir"
  (cd "$dir" && exec env -u RUST_LOG HELPDESK_ADDRESS=127.0.0.1 HELPDESK_PORT=0 HELPDESK_DATA_DIR="$dir/data" \
    HELPDESK_DURABILITY=durable "$bin") >"$dir/server.log" 2>"$dir/server.err" &
  PID[$name]=$!
  PORT[$name]=$(wait_for_port "${PID[$name]}" "$dir/server.log" "$dir/server.err")
  TOKEN[$name]=$(tr -d '[:space:]' <"$dir/data/admin.token")
  log "$name: $bin on port ${PORT[$name]}"
}

cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }'; }

measure() { # name script [VAR=value...]: one warm-up, one measured run, one line of output
  local name=$1 script=$2 pid=${PID[$1]} url=http://127.0.0.1:${PORT[$1]}/
  shift 2
  env BENCH_TOKEN="${TOKEN[$name]}" BENCH_NAME=warmup "$@" wrk -t2 -c64 -d"$WARMUP" -s "$WRK_LUA_DIR/$script" "$url" >/dev/null 2>&1 \
    || die "wrk failed ($name $script warm-up)"
  local t0 c0 t1 c1 out
  t0=$(cpu_ticks "$pid") c0=$(switches "$pid")
  out=$(env BENCH_TOKEN="${TOKEN[$name]}" BENCH_NAME=run "$@" wrk -t2 -c64 -d"$DURATION" --latency -s "$WRK_LUA_DIR/$script" "$url" 2>&1) \
    || die "wrk failed ($name $script): $out"
  t1=$(cpu_ticks "$pid") c1=$(switches "$pid")
  grep '^RESULT' <<<"$out" | awk -v n="$name" -v s="${script%.lua}" -v t=$((t1 - t0)) -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" '{
    req = $3; printf "%-4s %-10s %8.0f req/s  p50 %5.1f ms  p99 %5.1f ms  %4.0f us CPU/req  %4.1f switches/req  errors %d\n",
      n, s, $5, $6 / 1000, $8 / 1000, 1e6 * t / hz / req, c / req, $10 + $11 }'
}

start old "$1"
start new "$2"
echo "== create (durable, wrk -t2 -c64 -d$DURATION after $WARMUP), $ROUNDS rounds, builds alternating"
for round in $(seq "$ROUNDS"); do
  for b in old new; do measure "$b" create.lua; done
done
for b in old new; do
  total=$(curl -sS -H "Authorization: Bearer ${TOKEN[$b]}" "http://127.0.0.1:${PORT[$b]}/api/v1/metrics" | grep -o '"total":[0-9]*' | head -1 | cut -d: -f2)
  [ "${total:-0}" -ge "$GET_IDS" ] || die "$b has $total tickets, fewer than GET_IDS=$GET_IDS: raise ROUNDS or DURATION"
done
echo "== GET by id (random of 1..$GET_IDS), $ROUNDS rounds, builds alternating"
for round in $(seq "$ROUNDS"); do
  for b in old new; do measure "$b" get_by_id.lua BENCH_MAX_ID="$GET_IDS"; done
done
