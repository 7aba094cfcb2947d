#!/usr/bin/env bash
# HTTP load benchmark of helpdesk-server (docs/BENCHMARKS.md, "HTTP server").
#
# One release server on 127.0.0.1 (random port, fresh temporary data directory, durable
# by default), seeded through the API with TICKETS tickets (a mix of categories,
# priorities, assignees and statuses), then wrk runs, one after the other:
#
#   health   GET /health                                   no database: the HTTP ceiling
#   get      GET /api/v1/tickets/<uniform random id>       at TICKETS tickets
#   list     GET /api/v1/tickets?status=open&category=network&limit=50
#   create   POST /api/v1/tickets                          durable, CONNECTIONS connections
#
# and prints req/s, p50/p90/p99 latency, the CPU used by the server, by wrk and by
# everything else during each run, the GET/health ratio and the target checks.
#
#   bench/http.sh
#   DURATION=30s bench/http.sh            # longer runs (default 15s, after a 3s warm-up)
#   TICKETS=20000 DURATION=5s bench/http.sh   # quick smoke run
#   DURABILITY=relaxed bench/http.sh      # for comparison; the targets are for durable
#   STRICT=1 bench/http.sh                # exit 1 if a target is missed
#
# Other knobs: THREADS (wrk -t, default 2), CONNECTIONS (wrk -c, default 64), WARMUP,
# LIST_QUERY, SERVER_LOG (RUST_LOG for the server; default: unset, so the server's own
# default filter, with the access log, applies; it must keep helpdesk_server at info for
# the "listening" line, e.g. "info,rocket=warn,_=warn,helpdesk_server::access=warn"
# turns off only the access log), KEEP=1 (keep the temporary directory with the server
# log and the wrk outputs).
# Builds with cargo into $CARGO_TARGET_DIR (default ./target). Installs wrk (and curl)
# from Debian when missing (needs root). Sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

TICKETS=${TICKETS:-100000}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
DURABILITY=${DURABILITY:-durable}
LIST_QUERY=${LIST_QUERY:-status=open&category=network&limit=50}
STRICT=${STRICT:-0}
KEEP=${KEEP:-0}
SERVER_LOG=${SERVER_LOG:-}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export WRK_LUA_DIR=$ROOT/bench/wrk

. "$ROOT/.ci/lib.sh"   # log, die, apt_install, wait_for_port

# --- tools -------------------------------------------------------------------------------
command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || apt_install curl

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- helpdesk-core helpdesk-server Cargo.lock 2>/dev/null || commit="$commit (with local changes)"
log "building the release server at $commit (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release -p helpdesk-server >&2
bin=$CARGO_TARGET_DIR/release/helpdesk-server
[ -x "$bin" ] || die "no binary at $bin"

# --- server ------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/helpdesk-http-bench.XXXXXX")
server_pid=
cleanup() {
  local rc=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$server_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if kill -0 "$server_pid" 2>/dev/null; then
      log "server did not stop on SIGTERM within 20 s; killing it"
      kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A clean environment for the server: only our HELPDESK_* settings, run in the temporary
# directory (so no Rocket.toml is found). Its own default log filter applies, which keeps
# the access log (one JSON line per request, to a file here) on, as in a deployment;
# SERVER_LOG, when set, is passed as RUST_LOG.
server_env=(env)
for v in $(compgen -e); do
  case $v in HELPDESK_* | ROCKET_* | RUST_LOG) server_env+=(-u "$v") ;; esac
done
[ -z "$SERVER_LOG" ] || server_env+=(RUST_LOG="$SERVER_LOG")
server_env+=(HELPDESK_ADDRESS=127.0.0.1 HELPDESK_PORT=0 HELPDESK_DATA_DIR="$work/data"
  HELPDESK_DURABILITY="$DURABILITY")
(cd "$work" && exec "${server_env[@]}" "$bin") >"$work/server.log" 2>"$work/server.err" &
server_pid=$!

port=$(wait_for_port "$server_pid" "$work/server.log" "$work/server.err")
token=$(tr -d '[:space:]' <"$work/data/admin.token")
[ -n "$token" ] || die "empty admin token"
export BENCH_TOKEN=$token BENCH_THREADS=$THREADS
base=http://127.0.0.1:$port
log "server pid $server_pid listening on $base ($DURABILITY), data in $work/data"

api() { curl -sS --fail-with-body -H "Authorization: Bearer $token" "$@"; }
total_tickets() { api "$base/api/v1/metrics" | grep -o '"total":[0-9]*' | head -1 | cut -d: -f2; }

# --- seeding -----------------------------------------------------------------------------
# wrk with a quota (bench/wrk/create.lua, patch_status.lua): each thread sends exactly its
# share, waits for the answers, and the last thread to finish ends wrk (-d only bounds it).
seed_wrk() { # name script [VAR=value...]; prints the number of failed requests
  local name=$1 script=$2
  shift 2
  local done_dir=$work/$name.done
  mkdir -p "$done_dir"
  env BENCH_NAME="$name" BENCH_DONE_DIR="$done_dir" "$@" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d300s --timeout 10s -s "$WRK_LUA_DIR/$script" "$base" \
    >"$work/$name.txt" 2>&1 || { cat "$work/$name.txt" >&2; die "wrk failed ($name)"; }
  [ "$(find "$done_dir" -type f ! -name '*.tmp' | wc -l)" -eq "$THREADS" ] \
    || { cat "$work/$name.txt" >&2; die "$name did not finish within 300 s"; }
  cat "$done_dir"/* | awk '{ n += $1 } END { print n + 0 }'
}

seed_start=$(date +%s.%N)
have=$(total_tickets)
for attempt in 1 2 3; do
  [ "$have" -lt "$TICKETS" ] || break
  log "seeding: creating $((TICKETS - have)) tickets through the API (attempt $attempt)"
  failed=$(seed_wrk "seed-$attempt" create.lua BENCH_QUOTA=$((TICKETS - have)))
  [ "$failed" -eq 0 ] || log "WARNING: $failed creations failed while seeding"
  have=$(total_tickets)
done
[ "$have" -ge "$TICKETS" ] || die "seeding reached only $have of $TICKETS tickets"
seed_secs=$(awk -v a="$seed_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
log "seeding: $have tickets in $seed_secs s"
for pass in 1 2; do
  log "seeding: workflow pass $pass (PATCH status)"
  failed=$(seed_wrk "patch-$pass" patch_status.lua BENCH_PASS=$pass BENCH_MAX_ID="$TICKETS")
  [ "$failed" -eq 0 ] || die "$failed PATCH requests failed in pass $pass"
done
stats=$(api "$base/api/v1/metrics")
log "seeded: $(
  grep -o '"by_status":{[^}]*}' <<<"$stats")"
api -o /dev/null "$base/api/v1/tickets/$TICKETS" || die "GET of ticket $TICKETS failed"
list_n=$(api "$base/api/v1/tickets?$LIST_QUERY" | grep -o '"id":[0-9]*' | wc -l)
log "list query ?$LIST_QUERY returns $list_n tickets on its first page"

# --- measurement -------------------------------------------------------------------------
hz=$(getconf CLK_TCK)
cpu_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
server_ticks() { sed 's/^.*) //' "/proc/$server_pid/stat" | awk '{print $12+$13}'; }

# Group-commit flushes so far, from the Prometheus exposition: "count sum_seconds".
flushes() {
  curl -sS "$base/metrics" | awk '/^helpdesk_db_flush_duration_seconds_count/ { c = $2 }
    /^helpdesk_db_flush_duration_seconds_sum/ { s = $2 } END { print c + 0, s + 0 }'
}

declare -A RPS P50 P90 P99 NON2XX SOCKERR SRVCPU WRKCPU OTHCPU REQS FLUSH
run() { # name script url [VAR=value...]: a warm-up run, then the measured run
  local name=$1 script=$2 url=$3
  shift 3
  log "$name: warm-up $WARMUP, then $DURATION (wrk -t$THREADS -c$CONNECTIONS)"
  env BENCH_NAME="$name-warmup" "$@" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" --timeout 5s \
    -s "$WRK_LUA_DIR/$script" "$url" >"$work/$name-warmup.txt" 2>&1 \
    || { cat "$work/$name-warmup.txt" >&2; die "wrk failed ($name warm-up)"; }
  local b0 s0 t0 b1 s1 t1 times f0 f1
  f0=$(flushes)
  b0=$(cpu_busy) s0=$(server_ticks) t0=$(date +%s.%N)
  local TIMEFORMAT='%3U %3S'
  { time env BENCH_NAME="$name" "$@" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 5s --latency \
    -s "$WRK_LUA_DIR/$script" "$url" >"$work/$name.txt" 2>&1; } 2>"$work/$name.time" \
    || { cat "$work/$name.txt" >&2; die "wrk failed ($name)"; }
  b1=$(cpu_busy) s1=$(server_ticks) t1=$(date +%s.%N)
  f1=$(flushes)
  sed -n '/^Running/,/^RESULT/p' "$work/$name.txt" | grep -v '^RESULT' >&2
  times=$(tail -1 "$work/$name.time")
  local _ _n req _secs rps p50 p90 p99 max non2xx sockerr _failed
  read -r _ _n req _secs rps p50 p90 p99 max non2xx sockerr _failed < <(grep '^RESULT' "$work/$name.txt")
  REQS[$name]=$req
  # flushes during the run, mean flush ms, requests per flush
  FLUSH[$name]=$(awk -v a="$f0" -v b="$f1" -v n="$req" 'BEGIN { split(a, x, " "); split(b, y, " ")
    c = y[1] - x[1]; s = y[2] - x[2]
    if (c > 0) printf "%d flushes, mean %.2f ms, %.1f requests per flush", c, 1000 * s / c, n / c; else print "no flushes" }')
  RPS[$name]=$rps P50[$name]=$p50 P90[$name]=$p90 P99[$name]=$p99 NON2XX[$name]=$non2xx SOCKERR[$name]=$sockerr
  read -r SRVCPU[$name] WRKCPU[$name] OTHCPU[$name] < <(awk -v b="$((b1 - b0))" -v s="$((s1 - s0))" \
    -v hz="$hz" -v t0="$t0" -v t1="$t1" -v w="$times" 'BEGIN {
      split(w, a, " "); el = t1 - t0; srv = s / hz / el; wrk = (a[1] + a[2]) / el; tot = b / hz / el
      oth = tot - srv - wrk; if (oth < 0) oth = 0
      printf "%.2f %.2f %.2f\n", srv, wrk, oth }')
  [ "$non2xx" -eq 0 ] && [ "$sockerr" -eq 0 ] || log "WARNING: $name had $non2xx non-2xx answers and $sockerr socket errors"
}

nproc_=$(nproc)
cpu_model=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

run health get.lua "$base/health"
run get get_by_id.lua "$base/" BENCH_MAX_ID="$TICKETS"
run list get.lua "$base/" BENCH_PATH="/api/v1/tickets?$LIST_QUERY"
run create create.lua "$base/"
after=$(total_tickets)

# --- report ------------------------------------------------------------------------------
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
label() {
  case $1 in
    health) echo "GET /health" ;;
    get) echo "GET /api/v1/tickets/{id} (random of $TICKETS)" ;;
    list) echo "GET /api/v1/tickets?$LIST_QUERY" ;;
    create) echo "POST /api/v1/tickets ($DURABILITY)" ;;
  esac
}
get_ratio=$(awk -v a="${RPS[get]}" -v b="${RPS[health]}" 'BEGIN { printf "%.0f", 100 * a / b }')
list_ratio=$(awk -v a="${RPS[list]}" -v b="${RPS[health]}" 'BEGIN { printf "%.0f", 100 * a / b }')
get_ok=$(awk -v r="$get_ratio" 'BEGIN { print (r >= 50) ? "PASS" : "MISS" }')
create_rps_ok=$(awk -v r="${RPS[create]}" 'BEGIN { print (r >= 5000) ? "PASS" : "MISS" }')
create_p99_ok=$(awk -v p="${P99[create]}" 'BEGIN { print (p < 25000) ? "PASS" : "MISS" }')

{
  echo
  echo "## helpdesk-server HTTP benchmark"
  echo
  echo "server: helpdesk-server release build of $commit"
  echo "machine: $nproc_ cores, $cpu_model, $mem RAM, $(uname -sr); load average before the runs: $load_before"
  echo "wrk $(wrk --version 2>&1 | awk 'NR==1{print $2}') -t$THREADS -c$CONNECTIONS -d$DURATION (after a $WARMUP warm-up), server and wrk on the same machine"
  echo "data: $TICKETS tickets seeded through the API ($CONNECTIONS connections, durability $DURABILITY) in $seed_secs s ($(awk -v n="$TICKETS" -v s="$seed_secs" 'BEGIN { printf "%.0f", n / (s > 0 ? s : 1) }')/s) plus $((TICKETS / 2 + TICKETS / 5)) status PATCHes, $after after the create run"
  echo
  echo "| endpoint | req/s | p50 ms | p90 ms | p99 ms | errors | server CPU | server µs/req | wrk CPU | other CPU |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for n in health get list create; do
    printf '| %s | %.0f | %s | %s | %s | %d | %s | %.0f | %s | %s |\n' "$(label $n)" "${RPS[$n]}" \
      "$(ms "${P50[$n]}")" "$(ms "${P90[$n]}")" "$(ms "${P99[$n]}")" "$((NON2XX[$n] + SOCKERR[$n]))" \
      "${SRVCPU[$n]}" "$(awk -v c="${SRVCPU[$n]}" -v r="${RPS[$n]}" 'BEGIN { print 1e6 * c / r }')" \
      "${WRKCPU[$n]}" "${OTHCPU[$n]}"
  done
  echo
  echo "(CPU in cores, of $nproc_, averaged over the run; \"other\" is every other process on the machine;"
  echo "server µs/req is the server's CPU time per answered request.)"
  echo
  echo "- GET by id / health: $get_ratio % (target >= 50 %): $get_ok"
  echo "- list / health: $list_ratio %"
  echo "- group commit during the create run: ${FLUSH[create]}"
  echo "- create ($DURABILITY; the target is for durable) with $CONNECTIONS connections: $(printf '%.0f' "${RPS[create]}")/s (target >= 5000/s): $create_rps_ok; p99 $(ms "${P99[create]}") ms (target < 25 ms): $create_p99_ok"
}

if [ "$STRICT" = 1 ] && { [ "$get_ok" = MISS ] || [ "$create_rps_ok" = MISS ] || [ "$create_p99_ok" = MISS ]; }; then
  exit 1
fi
