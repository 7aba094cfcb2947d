#!/usr/bin/env bash
# health-agent benchmark (docs/BENCHMARKS.md, "health-agent"): one `once` run probing 50
# targets, wall time and peak resident memory.
#
# The fixture (health-agent/examples/bench_targets.rs) starts 50 HTTP servers on 127.0.0.1,
# one port each, and writes three config files. Then hyperfine times whole processes,
# one after the other, RUNS times each after WARMUP runs:
#
#   one         health-agent once, 1 target                   the fixed cost: the baseline
#   fifty       health-agent once, 50 targets answering at once
#   fifty-slow  health-agent once, 50 targets each answering after 100 ms
#               (concurrent probes: about one delay in all, not 50)
#   curl-50     50 sequential curl calls appending one line each: the "curl in a
#               CronJob" script that health-agent replaces, for comparison
#
# Every probe checks status 200 and a body condition and opens its own connection; every
# run appends its lines to a log (fsynced at the end of the run for health-agent). Peak
# RSS is GNU time's maximum resident set size, median of RSS_RUNS runs.
#
#   bench/health_agent.sh
#   RUNS=50 bench/health_agent.sh
#
# Builds with cargo into $CARGO_TARGET_DIR (default ./target); the example links the
# crate's dev-dependencies (the helpdesk server), so the first release build takes
# several minutes. Installs hyperfine, GNU
# time and curl from Debian when missing (needs root). Sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
RSS_RUNS=${RSS_RUNS:-10}
TARGETS=${TARGETS:-50}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

. "$ROOT/.ci/lib.sh"   # log, die, apt_install
command -v hyperfine >/dev/null || apt_install hyperfine
[ -x /usr/bin/time ] || apt_install time
command -v curl >/dev/null || apt_install curl

log "building the release binary and the fixture"
cargo build --release --locked -p health-agent --bin health-agent --example bench_targets >&2
bin=$CARGO_TARGET_DIR/release/health-agent
fixture=$CARGO_TARGET_DIR/release/examples/bench_targets

work=$(mktemp -d)
fixture_pid=""
cleanup() {
  [ -n "$fixture_pid" ] && kill "$fixture_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$fixture" "$work" "$TARGETS" >"$work/fixture.out" &
fixture_pid=$!
for _ in $(seq 1 100); do
  grep -q ready "$work/fixture.out" 2>/dev/null && break
  kill -0 "$fixture_pid" 2>/dev/null || die "the fixture exited"
  sleep 0.1
done
grep -q ready "$work/fixture.out" || die "the fixture did not start"
log "$TARGETS target servers up; configs in $work"

# The script health-agent replaces: one curl per target, a line appended per probe.
{
  echo '#!/usr/bin/env bash'
  echo "for url in $(grep '^url' "$work/fifty.toml" | cut -d'"' -f2 | tr '\n' ' '); do"
  echo "  curl -s -o /dev/null -w '{\"time\":\"'\"\$(date -u +%FT%T.%3NZ)\"'\",\"url\":\"%{url_effective}\",\"status\":%{http_code},\"latency_s\":%{time_total}}\n' \"\$url\" >>'$work/curl.log'"
  echo "done"
  echo "sync '$work/curl.log'"
} >"$work/curl50.sh"

# Each command must pass (exit 0), so a broken fixture cannot produce fast numbers.
for c in one fifty fifty-slow; do
  "$bin" once --config "$work/$c.toml" >/dev/null || die "$c: health-agent once failed"
done

log "hyperfine: $RUNS runs each after $WARMUP warm-up runs"
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$work/hyperfine.json" \
  -n one "$bin once --config $work/one.toml" \
  -n fifty "$bin once --config $work/fifty.toml" \
  -n fifty-slow "$bin once --config $work/fifty-slow.toml" \
  -n curl-50 "bash $work/curl50.sh" >&2

log "peak RSS: $RSS_RUNS runs each"
for c in one fifty fifty-slow; do
  for _ in $(seq 1 "$RSS_RUNS"); do
    /usr/bin/time -f "$c %M" -a -o "$work/rss.txt" "$bin" once --config "$work/$c.toml" >/dev/null
  done
done
for _ in $(seq 1 "$RSS_RUNS"); do
  /usr/bin/time -f "curl-50 %M" -a -o "$work/rss.txt" bash "$work/curl50.sh"
done

lines=$(wc -l <"$work/bench.log")
log "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
python3 - "$work/hyperfine.json" "$work/rss.txt" "$lines" <<'PY'
import json, statistics, sys
runs = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
rss = {}
for line in open(sys.argv[2]):
    name, kib = line.split()
    rss.setdefault(name, []).append(int(kib))
base = statistics.median(runs["one"]["times"])
print("| run | median wall | min | max | vs `one` | CPU user+sys (mean) | peak RSS (median) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name in ["one", "fifty", "fifty-slow", "curl-50"]:
    t = runs[name]["times"]
    med = statistics.median(t)
    print(f"| {name} | {med*1000:.1f} ms | {min(t)*1000:.1f} ms | {max(t)*1000:.1f} ms | "
          f"{med/base:.2f}x | {(runs[name]['user'] + runs[name]['system'])*1000:.1f} ms | "
          f"{statistics.median(rss[name])/1024:.1f} MiB |")
print(f"\n{sys.argv[3]} lines appended to the health-agent log; all runs exited 0")
PY
