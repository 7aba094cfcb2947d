#!/usr/bin/env bash
# Backup and restore benchmark of backup-agent (docs/BENCHMARKS.md, "backup-agent").
#
# For each data set (the core's benchmark data sets: 10k, 100k, 1m tickets with history,
# generated through the public API by helpdesk-core's bench and cached), a release
# helpdesk-server is started on it (127.0.0.1, random port, a tokens file so the data set
# directory gets no admin.token), and then, RUNS times, interleaved:
#
#   agent      backup-agent backup --server ...   (stream -> check -> gzip -> archive)
#   fetch      curl of the same snapshot endpoint to a file (what the export alone costs)
#   gnu        tar czf of that snapshot file      (GNU tar + gzip -6, the baseline)
#   static     backup-agent backup from a static HTTP server (python3 -m http.server) that
#              serves that same snapshot file: the agent's own pipeline without the cost
#              of the server's export, on exactly the bytes GNU tar compressed
#
# and once per data set: backup-agent restore of the archive (import + the core's verify)
# beside GNU tar xzf of the baseline archive, and (after the server stopped) an offline
# backup with --data-dir. Wall time and peak RSS come from GNU time (/usr/bin/time -f);
# throughput is snapshot bytes per wall second. Prints every run and the medians.
#
#   bench/backup.sh                       # SIZES=1m RUNS=3
#   SIZES="10k 100k 1m" RUNS=3 bench/backup.sh
#   RESTORE=0 bench/backup.sh             # skip the restore (the 1m import takes minutes)
#   HELPDESK_BENCH_DATA=/path bench/backup.sh   # where the data sets are cached
#
# Scratch files (archives, snapshot copies, the restored database: about twice the data
# set's size for 1m) go to $SCRATCH (default $CARGO_TARGET_DIR/tmp). Sends traffic to
# 127.0.0.1 only. Installs nothing; needs curl, GNU tar, gzip and GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SIZES=${SIZES:-1m}
RUNS=${RUNS:-3}
RESTORE=${RESTORE:-1}
OFFLINE=${OFFLINE:-1}
LEVEL=${LEVEL:-6}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export HELPDESK_BENCH_DATA=${HELPDESK_BENCH_DATA:-$CARGO_TARGET_DIR/bench-data}
SCRATCH=${SCRATCH:-$CARGO_TARGET_DIR/tmp}

. "$ROOT/.ci/lib.sh"   # log, die, wait_for_port
for tool in curl tar gzip /usr/bin/time sha256sum python3; do command -v "$tool" >/dev/null || die "$tool is missing"; done

log "building release helpdesk-server and backup-agent (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release -p helpdesk-server -p backup-agent >&2
server_bin=$CARGO_TARGET_DIR/release/helpdesk-server
agent=$CARGO_TARGET_DIR/release/backup-agent

mkdir -p "$SCRATCH"
work=$(mktemp -d "$SCRATCH/backup-bench.XXXXXX")
server_pid=
static_pid=
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=
}
cleanup() {
  local rc=$?
  stop_server
  [ -z "$static_pid" ] || kill "$static_pid" 2>/dev/null || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

token=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
cat >"$work/tokens.toml" <<EOF
[[token]]
name = "backup"
role = "admin"
sha256 = "$(printf %s "$token" | sha256sum | cut -c1-64)"
EOF
printf '%s\n' "$token" >"$work/token"

# timed NAME CMD...: runs CMD under GNU time; appends "NAME seconds max_rss_kib cpu_seconds"
# to $results.
timed() {
  local name=$1
  shift
  /usr/bin/time -f "%e %M %U %S" -o "$work/time.out" "$@"
  printf '%s %s\n' "$name" "$(awk '{ printf "%s %s %.2f", $1, $2, $3 + $4 }' "$work/time.out")" >>"$results"
  tail -1 "$results" >&2
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$results"; }

for size in $SIZES; do
  data=$HELPDESK_BENCH_DATA/$size
  if [ ! -f "$data/COMPLETE" ]; then
    log "generating the $size data set into $data (1m takes about 25 minutes)"
    HELPDESK_BENCH_GENERATE=$size cargo bench -p helpdesk-core --bench engine >&2
  fi
  results=$work/results-$size.txt
  : >"$results"

  (cd "$work" && exec env HELPDESK_ADDRESS=127.0.0.1 HELPDESK_PORT=0 HELPDESK_DATA_DIR="$data" \
    HELPDESK_TOKENS_FILE="$work/tokens.toml" "$server_bin") \
    >"$work/server.log" 2>&1 &
  server_pid=$!
  port=$(wait_for_port "$server_pid" "$work/server.log")
  base=http://127.0.0.1:$port
  log "$size: server on $base (data set $data)"

  for run in $(seq "$RUNS"); do
    rm -rf "$work/out" "$work/snapshot.jsonl" "$work/gnu.tar.gz"
    timed agent "$agent" --log-format json backup --server "$base" --token-file "$work/token" \
      --out "$work/out" --level "$LEVEL" 2>>"$work/agent.log" >/dev/null
    timed fetch curl -sS --fail -H "Authorization: Bearer $token" -o "$work/snapshot.jsonl" "$base/api/v1/admin/snapshot"
    # tar czf, with the agent's level (gzip's default, 6, unless LEVEL says otherwise).
    timed gnu tar -I "gzip -$LEVEL" -cf "$work/gnu.tar.gz" -C "$work" snapshot.jsonl
    mkdir -p "$work/static/api/v1/admin"
    ln -f "$work/snapshot.jsonl" "$work/static/api/v1/admin/snapshot"
    static_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 -m http.server "$static_port" --bind 127.0.0.1 --directory "$work/static" >/dev/null 2>&1 &
    static_pid=$!
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$static_port/" && break; sleep 0.1; done
    rm -rf "$work/out-static"
    timed static "$agent" --log-format json backup --server "http://127.0.0.1:$static_port" --token-file "$work/token" \
      --out "$work/out-static" --level "$LEVEL" 2>>"$work/agent.log" >/dev/null
    kill "$static_pid"
    wait "$static_pid" 2>/dev/null || true
    static_pid=
    snap=$(stat -c %s "$work/snapshot.jsonl")
    archive=$(ls "$work"/out/helpdesk-*.tar.gz)
    printf 'bytes %s %s %s\n' "$snap" "$(stat -c %s "$archive")" "$(stat -c %s "$work/gnu.tar.gz")" | tee -a "$results" >&2
  done
  stop_server

  if [ "$RESTORE" = 1 ]; then
    rm -rf "$work/restored" "$work/gnu-x"
    mkdir -p "$work/gnu-x"
    timed restore "$agent" --log-format json restore "$archive" --data-dir "$work/restored" 2>>"$work/agent.log" >/dev/null
    timed gnu_x tar xzf "$work/gnu.tar.gz" -C "$work/gnu-x"
    rm -rf "$work/restored" "$work/gnu-x"
  fi
  if [ "$OFFLINE" = 1 ]; then
    rm -rf "$work/out"
    sleep 1 # the server's sled lock is released asynchronously
    timed offline "$agent" --log-format json backup --data-dir "$data" --out "$work/out" --level "$LEVEL" \
      2>>"$work/agent.log" >/dev/null
  fi

  snap=$(col bytes 2 | median)
  arch=$(col bytes 3 | median)
  gnu_size=$(col bytes 4 | median)
  a_s=$(col agent 2 | median); f_s=$(col fetch 2 | median); g_s=$(col gnu 2 | median); st_s=$(col static 2 | median)
  a_rss=$(col agent 3 | median); g_rss=$(col gnu 3 | median); st_rss=$(col static 3 | median)
  a_cpu=$(col agent 4 | median); g_cpu=$(col gnu 4 | median); st_cpu=$(col static 4 | median)
  echo
  echo "-- $size: every run (name, wall s, peak RSS KiB, CPU s; bytes: snapshot, agent archive, GNU archive)"
  sed 's/^/   /' "$results"
  echo "== $size: medians of $RUNS runs (snapshot $(awk -v b="$snap" 'BEGIN { printf "%.1f MiB", b / 1048576 }'))"
  awk -v snap="$snap" -v arch="$arch" -v gsize="$gnu_size" -v a="$a_s" -v f="$f_s" -v g="$g_s" \
    -v ar="$a_rss" -v gr="$g_rss" -v st="$st_s" -v sr="$st_rss" -v ac="$a_cpu" -v gc="$g_cpu" -v sc="$st_cpu" 'BEGIN {
      mib = snap / 1048576
      printf "  %-38s %8.2f s %7.1f MiB/s  cpu %6.2f s  peak RSS %6.1f MiB  archive %.1f MiB\n", "backup-agent backup --server", a, mib / a, ac, ar / 1024, arch / 1048576
      printf "  %-38s %8.2f s %7.1f MiB/s\n", "curl of the snapshot (export only)", f, mib / f
      printf "  %-38s %8.2f s %7.1f MiB/s  cpu %6.2f s  peak RSS %6.1f MiB  archive %.1f MiB\n", "tar czf of the snapshot file", g, mib / g, gc, gr / 1024, gsize / 1048576
      printf "  %-38s %8.2f s %7.1f MiB/s  cpu %6.2f s  peak RSS %6.1f MiB\n", "backup-agent, same bytes, static HTTP", st, mib / st, sc, sr / 1024
      printf "  throughput ratio, same bytes (static) / tar czf:  %.2f\n", g / st
      printf "  throughput ratio, from the server / tar czf:      %.2f\n", g / a
      printf "  throughput ratio, from the server / (curl + tar czf): %.2f\n", (f + g) / a
    }'
  if [ "$RESTORE" = 1 ]; then
    awk -v snap="$snap" -v r="$(col restore 2)" -v rr="$(col restore 3)" -v x="$(col gnu_x 2)" 'BEGIN {
      mib = snap / 1048576
      printf "  %-34s %8.2f s %8.1f MiB/s   peak RSS %7.1f MiB\n", "backup-agent restore (import+verify)", r, mib / r, rr / 1024
      printf "  %-34s %8.2f s %8.1f MiB/s\n", "tar xzf of the GNU archive", x, mib / x
    }'
  fi
  if [ "$OFFLINE" = 1 ]; then
    awk -v snap="$snap" -v o="$(col offline 2)" -v orss="$(col offline 3)" 'BEGIN {
      printf "  %-34s %8.2f s %8.1f MiB/s   peak RSS %7.1f MiB\n", "backup-agent backup --data-dir", o, snap / 1048576 / o, orss / 1024
    }'
  fi
done
