//! Throughput benchmark: the release `log-shipper` binary ships a pre-written file of the
//! server's JSON log lines into the decoding test Loki on loopback. Prints lines/s, MiB/s
//! and the shipper's peak RSS, next to two baselines measured in the same run:
//!
//! - **read**: reading the same file with 256 KiB reads (what `cat file > /dev/null` does)
//!   — the ceiling of any tailer;
//! - **ingest**: the receiver's own ceiling — pre-encoded 1 MiB protobuf+snappy batches of
//!   the same lines posted back to back from one client, decoded the same way.
//!
//! ```sh
//! cargo bench -p log-shipper --bench throughput            # MIB=256 RUNS=3 by default
//! MIB=512 RUNS=5 cargo bench -p log-shipper --bench throughput
//! ```

#![allow(clippy::unwrap_used)] // Benchmark code: a failed unwrap is a failed run.

#[path = "../tests/support/loki.rs"]
mod loki;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log_shipper::batch::{Batch, Entry, Stream};
use log_shipper::positions::SourceId;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Access-log lines as the server writes them, with varying routes, statuses and ids.
fn write_log(path: &std::path::Path, mib: usize) -> (usize, usize) {
    let routes = ["/api/v1/tickets", "/api/v1/tickets/<id>", "/health", "/api/v1/health", "/api/v1/metrics"];
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let (mut lines, mut bytes) = (0usize, 0usize);
    let mut i = 0u64;
    while bytes < mib << 20 {
        let route = routes[(i % 5) as usize];
        let status = if i.is_multiple_of(97) {
            500
        } else if i.is_multiple_of(13) {
            404
        } else {
            200
        };
        let level = if status >= 500 { "ERROR" } else { "INFO" };
        let line = format!(
            r#"{{"timestamp":"2026-11-23T10:{:02}:{:02}.{:06}Z","level":"{level}","message":"request","target":"helpdesk_server::access","request_id":"{:016x}","method":"GET","route":"{route}","path":"{}","status":{status},"duration_ms":{}.{:03}}}"#,
            (i / 60_000_000) % 60,
            (i / 1_000_000) % 60,
            i % 1_000_000,
            i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            route.replace("<id>", &(i % 100_000).to_string()),
            i % 50,
            i % 1000
        );
        f.write_all(line.as_bytes()).unwrap();
        f.write_all(b"\n").unwrap();
        lines += 1;
        bytes += line.len() + 1;
        i += 1;
    }
    f.flush().unwrap();
    (lines, bytes)
}

fn read_baseline(path: &std::path::Path) -> f64 {
    let t = Instant::now();
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0usize;
    loop {
        let r = f.read(&mut buf).unwrap();
        if r == 0 {
            break;
        }
        n += r;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn ingest_baseline(path: &std::path::Path) -> f64 {
    // Encode with the shipper's own encoder, outside the timed part.
    let text = std::fs::read_to_string(path).unwrap();
    let stream = Arc::new(Stream::new(1, vec![("job".into(), "bench".into()), ("level".into(), "info".into())]));
    let mut bodies = Vec::new();
    let mut b = Batch::default();
    let mut total = 0usize;
    for (i, line) in text.lines().enumerate() {
        b.push(Entry {
            stream: Some(stream.clone()),
            ts_ns: 1_700_000_000_000_000_000 + i as i64,
            line: line.to_owned(),
            metadata: vec![(Arc::from("request_id"), format!("{i:016x}"))],
            source: SourceId(0),
            end_offset: 0,
        });
        total += line.len() + 1;
        if b.bytes >= 1 << 20 {
            bodies.push(log_shipper::proto::encode_protobuf(&mut b).unwrap());
            b = Batch::default();
        }
    }
    if !b.is_empty() {
        bodies.push(log_shipper::proto::encode_protobuf(&mut b).unwrap());
    }
    drop(text);
    let receiver = loki::Loki::with(loki::Options { discard: true, ..Default::default() });
    let client = reqwest::blocking::Client::new();
    let t = Instant::now();
    for body in bodies {
        let r = client
            .post(receiver.push_url())
            .header("Content-Type", "application/x-protobuf")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
    }
    total as f64 / t.elapsed().as_secs_f64()
}

struct ShipRun {
    secs: f64,
    peak_rss_kib: u64,
    /// CPU seconds (user + system) the shipper used.
    cpu_secs: f64,
}

fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn ship(path: &std::path::Path, lines: usize, dir: &std::path::Path, run: usize) -> ShipRun {
    let receiver = loki::Loki::with(loki::Options { discard: true, ..Default::default() });
    let positions = dir.join(format!("positions-{run}.json"));
    let t = Instant::now();
    // SHIPPER_BIN runs another build of the shipper (A/B comparisons) in the same harness.
    let bin = std::env::var("SHIPPER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_log-shipper").to_owned());
    let mut child = Command::new(bin)
        .args(["--path", path.to_str().unwrap(), "--loki-url", &receiver.url(), "--positions"])
        .arg(&positions)
        .args([
            "--from-beginning",
            "--label",
            "job=bench",
            "--label",
            "namespace=helpdesk",
            "--log",
            "warn",
            "--batch-wait",
            "100ms",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0u64;
    let hwm = || -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    loop {
        let (n, _) = receiver.accepted();
        peak = peak.max(hwm());
        if n >= lines {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(600), "shipping took too long ({n} of {lines} lines)");
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = t.elapsed().as_secs_f64();
    if std::env::var("TIMELINE").is_ok() {
        let pushes = receiver.pushes();
        let mut prev = t;
        for p in &pushes {
            eprintln!(
                "push at {:>7.1} ms (+{:>5.1}), decode {:>4.1} ms, {} lines",
                (p.received_at - t).as_secs_f64() * 1e3,
                (p.received_at - prev).as_secs_f64() * 1e3,
                (p.answered_at - p.received_at).as_secs_f64() * 1e3,
                p.accepted_count
            );
            prev = p.received_at;
        }
    }
    peak = peak.max(hwm());
    let cpu = cpu_secs(pid);
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "shipper exit {status}");
    ShipRun { secs, peak_rss_kib: peak, cpu_secs: cpu }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run tiny then.
    let benching = std::env::args().any(|a| a == "--bench");
    let mib = if benching { env_num("MIB", 256) } else { 2 };
    let runs = if benching { env_num("RUNS", 3) } else { 1 };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.log");
    let (lines, bytes) = write_log(&path, mib);
    let mb = bytes as f64 / (1 << 20) as f64;
    println!(
        "log-shipper throughput: {lines} lines, {mb:.1} MiB ({:.0} bytes/line), {runs} runs",
        bytes as f64 / lines as f64
    );

    let (mut read, mut ingest, mut ship_rate, mut ship_lines, mut rss) = (vec![], vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        read.push(read_baseline(&path) / (1 << 20) as f64);
        ingest.push(ingest_baseline(&path) / (1 << 20) as f64);
        let r = ship(&path, lines, dir.path(), run);
        ship_rate.push(mb / r.secs);
        ship_lines.push(lines as f64 / r.secs);
        rss.push(r.peak_rss_kib as f64 / 1024.0);
        println!(
            "run {run}: read {:.0} MiB/s, receiver ingest {:.0} MiB/s, shipper {:.1} MiB/s = {:.0} lines/s in {:.2} s ({:.2} CPU s), peak RSS {:.1} MiB",
            read[run], ingest[run], ship_rate[run], ship_lines[run], r.secs, r.cpu_secs, rss[run]
        );
    }
    let (r, i, s, l, m) = (median(read), median(ingest), median(ship_rate), median(ship_lines), median(rss));
    println!("median: shipper {s:.1} MiB/s, {l:.0} lines/s, peak RSS {m:.1} MiB");
    println!(
        "        read baseline {r:.0} MiB/s (shipper = {:.1} %), receiver ingest {i:.0} MiB/s (shipper = {:.1} %)",
        100.0 * s / r,
        100.0 * s / i
    );
}
