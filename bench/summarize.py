#!/usr/bin/env python3
"""Summarise criterion results of `cargo bench -p helpdesk-core --bench engine` as a
Markdown table of medians (criterion's console "time:" line shows the mean), plus the
1M/10k ratios and the group-commit gain used in docs/BENCHMARKS.md.

    python3 bench/summarize.py [CRITERION_DIR]   # default $CARGO_TARGET_DIR/criterion
"""
import json
import os
import sys
from pathlib import Path


def fmt_time(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def main():
    default = Path(os.environ.get("CARGO_TARGET_DIR", "target")) / "criterion"
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    rows = {}
    for bench in sorted(root.glob("**/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        median = est["median"]["point_estimate"]
        lo = est["median"]["confidence_interval"]["lower_bound"]
        hi = est["median"]["confidence_interval"]["upper_bound"]
        mean = est["mean"]["point_estimate"]
        rows[meta["full_id"]] = (median, lo, hi, mean, meta.get("throughput"))
    if not rows:
        sys.exit(f"no criterion results under {root}")

    print("| benchmark | median | 95% CI of median | mean | per second (median) |")
    print("|---|---:|---:|---:|---:|")
    for name, (median, lo, hi, mean, _) in rows.items():
        print(f"| `{name}` | {fmt_time(median)} | {fmt_time(lo)} – {fmt_time(hi)} | {fmt_time(mean)} "
              f"| {1e9 / median:,.0f} |")

    print()
    for name, target in [("list/50_filtered", 1.5), ("list/50_two_filters", 1.5), ("list/50_three_filters", None),
                         ("list/50_random_depth", None), ("get/by_id", None), ("stats", 1.2)]:
        small, big = rows.get(f"{name}/10k"), rows.get(f"{name}/1m")
        if small and big:
            ratio = big[0] / small[0]
            verdict = "" if target is None else (f" (target < {target}: {'met' if ratio < target else 'MISSED'})")
            print(f"- `{name}` 1M/10k median ratio: {ratio:.2f}{verdict}")
    fsync, d1, d64 = rows.get("baseline/fsync"), rows.get("create/durable_1_writer"), rows.get("create/durable_64_writers")
    if fsync and d64:
        print(f"- durable creates/s with 64 writers: {1e9 / d64[0]:,.0f}; disk fsync/s: {1e9 / fsync[0]:,.0f}; "
              f"ratio {fsync[0] / d64[0]:.1f}x" + (f"; 1 writer: {1e9 / d1[0]:,.0f}/s" if d1 else ""))


if __name__ == "__main__":
    main()
