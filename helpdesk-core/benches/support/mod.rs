//! Helpers shared by the benchmark (`benches/engine.rs`) and `examples/open_bench.rs`,
//! which measure the same cached data sets.

use std::path::PathBuf;

/// Where the data sets are cached: `$HELPDESK_BENCH_DATA`, else
/// `$CARGO_TARGET_DIR/bench-data`, else `bench-data` in the target directory holding the
/// running binary (`<target>/release/deps/engine-*` or `<target>/release/examples/*`).
pub fn data_root() -> PathBuf {
    if let Some(d) = std::env::var_os("HELPDESK_BENCH_DATA") {
        return PathBuf::from(d);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("bench-data");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(|t| t.join("bench-data")))
        .unwrap_or_else(|| PathBuf::from("target/bench-data"))
}

/// `(VmRSS, VmHWM)` of this process in KiB (zeros where /proc is unavailable).
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
