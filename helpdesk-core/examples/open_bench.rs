//! Opens a ticket database and reports how long it takes to be ready and how much memory
//! the process then holds: the "open a database with 1M tickets" figure of
//! docs/BENCHMARKS.md. Run it in a fresh process each time (bench/open_1m.sh does, and
//! reports the median):
//!
//! ```text
//! cargo run --profile bench -p helpdesk-core --example open_bench -- [DB_DIR]
//! ```
//!
//! `DB_DIR` defaults to the cached 1M data set of the engine benchmark,
//! `$HELPDESK_BENCH_DATA/1m/db` (see benches/engine.rs for how the data directory is
//! found). Ready means: `Helpdesk::open` returned, a first `stats()` and a first page of
//! 50 open tickets were served. Prints one line of `key=value` pairs.
//!
//! `HELPDESK_CACHE_MB` overrides sled's page cache size (default: the engine's 64 MiB), to
//! see how much of the resident memory is cache.

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use helpdesk_core::{Config, Filter, Helpdesk, ListQuery, Status};

#[path = "../benches/support/mod.rs"]
mod support;

use support::rss_kib;

/// The benchmark's 1M data set (see `benches/support` for where data sets live).
fn default_db() -> PathBuf {
    support::data_root().join("1m").join("db")
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(default_db);
    if !path.join("conf").exists() {
        return Err(format!(
            "no database at {}; generate it with HELPDESK_BENCH_GENERATE=1m cargo bench -p helpdesk-core --bench engine",
            path.display()
        )
        .into());
    }
    let (rss_before, _) = rss_kib();
    let began = Instant::now();
    let mut config = Config::default();
    if let Some(mb) = std::env::var("HELPDESK_CACHE_MB").ok().and_then(|v| v.parse::<u64>().ok()) {
        config.cache_capacity = mb << 20;
    }
    let cache_mib = config.cache_capacity >> 20;
    let desk = Helpdesk::open(&path, config)?;
    let open_ms = ms(began);
    let stats = desk.stats()?;
    let stats_ms = ms(began);
    let page = desk.list(&ListQuery::new(Filter { status: Some(Status::Open), ..Filter::default() }).limit(50))?;
    let ready_ms = ms(began);
    let (rss_ready, hwm_ready) = rss_kib();

    // A little read traffic after readiness: 100 pages of the newest tickets.
    let mut q = ListQuery::default().limit(50);
    for _ in 0..100 {
        let p = desk.list(&q)?;
        match p.next_cursor {
            Some(c) => q = q.after(Some(c)),
            None => break,
        }
    }
    let (rss_after_reads, hwm) = rss_kib();
    let close = Instant::now();
    drop(desk);
    let close_ms = ms(close);

    println!(
        "tickets={} cache_mib={cache_mib} open_backlog={} page={} open_ms={open_ms:.1} first_stats_ms={:.3} first_list_ms={:.1} \
         ready_ms={ready_ms:.1} rss_start_mib={:.1} rss_ready_mib={:.1} hwm_ready_mib={:.1} \
         rss_after_100_pages_mib={:.1} hwm_mib={:.1} close_ms={close_ms:.1}",
        stats.total,
        stats.open_backlog,
        page.tickets.len(),
        stats_ms - open_ms,
        ready_ms - stats_ms,
        rss_before as f64 / 1024.0,
        rss_ready as f64 / 1024.0,
        hwm_ready as f64 / 1024.0,
        rss_after_reads as f64 / 1024.0,
        hwm as f64 / 1024.0,
    );
    Ok(())
}
