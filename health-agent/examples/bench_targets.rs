//! Benchmark fixture for `bench/health_agent.sh`: starts N small HTTP servers on 127.0.0.1
//! (the integration tests' server, one port each) and writes config files that probe them:
//! `one.toml` (1 target), `fifty.toml` (N targets, answering at once) and `fifty-slow.toml`
//! (N targets, each answering after 100 ms). Prints `ready` and serves until killed.
//!
//! ```sh
//! cargo run --release -p health-agent --example bench_targets -- OUT_DIR [N]
//! ```

#![allow(clippy::unwrap_used)] // A benchmark fixture: failing loudly is what it should do.

#[path = "../tests/common/server.rs"]
mod server;

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().expect("usage: bench_targets OUT_DIR [N]"));
    let n: usize = args.next().map_or(50, |n| n.parse().expect("N is a number"));
    std::fs::create_dir_all(&out).unwrap();
    let servers: Vec<server::TestServer> = (0..n).map(|_| server::TestServer::start()).collect();
    let config = |count: usize, query: &str| {
        let mut toml = format!("log = \"{}\"\n", out.join("bench.log").display());
        for (i, s) in servers.iter().take(count).enumerate() {
            let _ = write!(toml, "\n[[target]]\nname = \"t{i:02}\"\nurl = \"{}\"\n", s.url(&format!("/health{query}")));
            toml.push_str("expect_status = 200\nbody_contains = \"ok\"\n");
        }
        toml
    };
    std::fs::write(out.join("one.toml"), config(1, "")).unwrap();
    std::fs::write(out.join("fifty.toml"), config(n, "")).unwrap();
    std::fs::write(out.join("fifty-slow.toml"), config(n, "?delay_ms=100")).unwrap();
    println!("ready");
    loop {
        std::thread::park();
    }
}
