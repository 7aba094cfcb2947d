#!/usr/bin/env bash
# Time to ready and resident memory of a fresh process opening the cached 1M-ticket
# database (docs/BENCHMARKS.md). Runs helpdesk-core/examples/open_bench.rs RUNS times,
# each in a new process, prints every run and the median of each figure.
#
#   bench/open_1m.sh                 # 5 runs on $CARGO_TARGET_DIR/bench-data/1m/db
#   RUNS=9 SIZE=100k bench/open_1m.sh
#   COLD=1 bench/open_1m.sh          # evict the database files from the page cache
#                                    # (posix_fadvise DONTNEED) before every run
#
# Generates the data set first if it is not cached (about 20 minutes for 1m).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
SIZE=${SIZE:-1m}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export HELPDESK_BENCH_DATA=${HELPDESK_BENCH_DATA:-$CARGO_TARGET_DIR/bench-data}
db=$HELPDESK_BENCH_DATA/$SIZE/db

if [ ! -f "$HELPDESK_BENCH_DATA/$SIZE/COMPLETE" ]; then
  echo "generating the $SIZE data set into $HELPDESK_BENCH_DATA/$SIZE" >&2
  HELPDESK_BENCH_GENERATE=$SIZE cargo bench -p helpdesk-core --bench engine >&2
fi
# The bench profile (release + line debug info) shares its build with `cargo bench`.
cargo build --profile bench -p helpdesk-core --example open_bench >&2
bin=$CARGO_TARGET_DIR/release/examples/open_bench

out=$(mktemp)
trap 'rm -f "$out"' EXIT
evict() {
  python3 - "$db" <<'PY'
import os, sys
for dirpath, _, files in os.walk(sys.argv[1]):
    for name in files:
        fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
PY
}

for i in $(seq "$RUNS"); do
  if [ "${COLD:-0}" = 1 ]; then evict; fi
  "$bin" "$db" | tee -a "$out"
  sleep 1 # sled releases its file lock asynchronously; do not reopen at once
done

echo "median of $RUNS runs ($db, page cache: $([ "${COLD:-0}" = 1 ] && echo evicted || echo warm)):"
for key in open_ms first_stats_ms first_list_ms ready_ms rss_ready_mib hwm_ready_mib rss_after_100_pages_mib hwm_mib; do
  tr ' ' '\n' <"$out" | sed -n "s/^$key=//p" | sort -g |
    awk -v k="$key" '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "  %-24s %8.1f   (min %.1f, max %.1f)\n", k, m, v[1], v[NR] }'
done
if [ -f "$HELPDESK_BENCH_DATA/$SIZE/COMPLETE" ]; then
  echo "generation of this data set (peak RSS under sustained writes):"
  sed 's/^/  /' "$HELPDESK_BENCH_DATA/$SIZE/COMPLETE"
fi
