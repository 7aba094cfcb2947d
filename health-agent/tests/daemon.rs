//! Daemon mode: runs on its schedule, serves valid Prometheus text, finishes the run in
//! progress on SIGTERM and exits 0.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::server::TestServer;
use common::{records_of, text};
use health_agent::config::Sources;
use health_agent::schedule::Schedule;
use health_agent::{run_daemon, Config, DaemonOptions};

type Sample = (String, BTreeMap<String, String>, f64);

fn valid_name(name: &str, colons: bool) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'));
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

/// Parses the Prometheus text exposition format (0.0.4) strictly enough to catch what a
/// scraper would reject: metric and label names, label value escapes, numeric values, a
/// TYPE line before the family's samples, no duplicate TYPE or series.
fn parse_exposition(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut types: HashMap<String, String> = HashMap::new();
    let mut sampled: HashSet<String> = HashSet::new();
    let mut series = HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut parts = rest.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(_)) => assert!(valid_name(name, true), "HELP name {name:?}"),
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(valid_name(name, true), "TYPE name {name:?}");
                    assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
                    assert!(!sampled.contains(name), "TYPE of {name} after its samples");
                    assert!(types.insert(name.to_string(), kind.to_string()).is_none(), "second TYPE for {name}");
                }
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value: {line:?}"));
        let name = &line[..name_end];
        assert!(valid_name(name, true), "metric name {name:?}");
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            loop {
                let start = chars.peek().map(|&(i, _)| i).unwrap();
                if body[start..].starts_with('}') {
                    rest = &body[start + 1..];
                    break;
                }
                let eq = body[start..].find('=').unwrap() + start;
                let label = &body[start..eq];
                assert!(valid_name(label, false), "label name {label:?} in {line:?}");
                while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                    chars.next();
                }
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "label value starts with a quote: {line:?}");
                let mut value = String::new();
                loop {
                    match chars.next().unwrap_or_else(|| panic!("unterminated label value: {line:?}")).1 {
                        '\\' => match chars.next().unwrap().1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            c => panic!("bad escape \\{c} in {line:?}"),
                        },
                        '"' => break,
                        '\n' => panic!("raw newline in a label value"),
                        c => value.push(c),
                    }
                }
                assert!(labels.insert(label.to_string(), value).is_none(), "label {label} twice in {line:?}");
                match chars.peek().map(|&(_, c)| c) {
                    Some(',') => {
                        chars.next();
                    }
                    Some('}') => {}
                    other => panic!("expected , or }} after a label, found {other:?} in {line:?}"),
                }
            }
        }
        let mut fields = rest.trim_start_matches(' ').split(' ');
        let raw = fields.next().unwrap();
        let value = match raw {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("value {v:?} in {line:?}")),
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().unwrap_or_else(|_| panic!("timestamp {ts:?} in {line:?}"));
        }
        assert!(fields.next().is_none(), "trailing fields in {line:?}");
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        let family = if types.contains_key(name) { name } else { family };
        assert!(types.contains_key(family), "{name} has no TYPE line before it");
        sampled.insert(family.to_string());
        assert!(series.insert((name.to_string(), labels.clone())), "duplicate series {line:?}");
        samples.push((name.to_string(), labels, value));
    }
    samples
}

fn sample(samples: &[Sample], name: &str, target: Option<&str>) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && target.is_none_or(|t| l.get("target").map(String::as_str) == Some(t)))
        .unwrap_or_else(|| panic!("no {name} for {target:?} in {samples:?}"))
        .2
}

#[test]
fn the_exposition_parser_rejects_what_scrapers_reject() {
    let good = "# HELP a_b x\n# TYPE a_b gauge\na_b{t=\"q\\\"\\\\\\n\",u=\"\"} 1.5\na_b 2\n";
    assert_eq!(parse_exposition(good).len(), 2);
    for bad in [
        "a 1\n",                                 // no TYPE
        "# TYPE a gauge\na{b=\"x} 1\n",          // unterminated value
        "# TYPE a gauge\na{0b=\"x\"} 1\n",       // bad label name
        "# TYPE a gauge\na one\n",               // bad value
        "# TYPE a gauge\na 1\na 2\n",            // duplicate series
        "# TYPE a gauge\na 1\n# TYPE a gauge\n", // second TYPE
        "# TYPE a gauge\na{b=\"\\x\"} 1\n",      // bad escape
        "# TYPE a gauge\na 1",                   // no final newline
    ] {
        assert!(std::panic::catch_unwind(|| parse_exposition(bad)).is_err(), "accepted {bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_on_schedule_and_serves_metrics() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.log");
    let config = Config::resolve(Sources {
        targets: vec![
            format!("up={}", server.url("/")),
            format!("down={}", server.url("/?status=500&delay_ms=20")),
            format!("quote\"d={}", server.url("/?q=\\")),
        ],
        log: Some(log.clone()),
        ..Sources::default()
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = DaemonOptions {
        schedule: Schedule::every(Duration::from_millis(100)).unwrap(),
        metrics: Some(listener),
        fsync_every: 1,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (run_tx, mut run_rx) = tokio::sync::mpsc::unbounded_channel();
    let daemon = tokio::spawn(run_daemon(
        config,
        options,
        async move {
            let _ = stop_rx.await;
        },
        move |run| {
            let _ = run_tx.send((run.run_id.clone(), run.failed(), run.log_error.is_some()));
        },
    ));

    let mut runs = Vec::new();
    for _ in 0..3 {
        let run = tokio::time::timeout(Duration::from_secs(10), run_rx.recv()).await.unwrap().unwrap();
        assert_eq!((run.1, run.2), (1, false), "one target fails, the log is written");
        runs.push(run.0);
    }

    let res = reqwest::get(format!("http://{addr}/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let body = res.text().await.unwrap();
    let samples = parse_exposition(&body);
    assert_eq!(sample(&samples, "probe_success", Some("up")), 1.0);
    assert_eq!(sample(&samples, "probe_success", Some("down")), 0.0);
    assert_eq!(sample(&samples, "probe_success", Some("quote\"d")), 1.0, "label values are escaped");
    assert!(sample(&samples, "probe_duration_seconds", Some("down")) >= 0.02);
    assert_eq!(sample(&samples, "probe_http_status_code", Some("down")), 500.0);
    assert!(sample(&samples, "health_agent_runs_total", None) >= 3.0);
    assert_eq!(sample(&samples, "health_agent_log_write_errors_total", None), 0.0);
    if let Ok(mut promtool) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        promtool.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
        let out = promtool.wait_with_output().unwrap();
        assert!(out.status.success(), "promtool check metrics: {}", text(&out));
    }
    let other = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(other.status(), 404);

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), daemon).await.unwrap().unwrap().unwrap();
    while let Ok(run) = run_rx.try_recv() {
        runs.push(run.0);
    }
    let records = records_of(&log);
    assert_eq!(records.len(), 3 * runs.len(), "three lines per run");
    let logged: HashSet<_> = records.iter().map(|r| r.run_id.clone()).collect();
    assert_eq!(logged, runs.into_iter().collect());
    // The interval keeps its grid: runs start about 100 ms apart.
    let mut starts: Vec<_> = records.iter().filter(|r| r.target == "up").map(|r| r.time).collect();
    starts.sort();
    for pair in starts.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!((50..1000).contains(&gap), "runs {gap} ms apart");
    }
}

/// Reads the child's stderr (JSON log lines) on a thread, so the test can wait for one.
fn stderr_lines(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line {line:?}: {e}"));
                }
            }
            Err(_) => break,
        }
    }
    panic!("no stderr line with {needle:?}; saw {seen:#?}");
}

#[test]
fn sigterm_finishes_the_run_in_progress_then_exits_0() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sidecar.log");
    let slow = server.url("/?delay_ms=1500&key=slow");
    let mut child = common::agent(&[
        "daemon",
        "--schedule",
        "* * * * * *",
        "--metrics-addr",
        "127.0.0.1:0",
        "--log",
        log.to_str().unwrap(),
        "--target",
        &format!("fast={}", server.url("/")),
        "--target",
        &format!("slow={slow}"),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let rx = stderr_lines(&mut child);
    let mut seen = Vec::new();
    let started = wait_for_line(&rx, "serving metrics", &mut seen);
    let url = started["metrics_url"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"), "{started}");

    // The cron schedule fires on the next whole second; the slow probe keeps the run going
    // for 1.5 s. Wait until the server has that request, then ask the daemon to stop.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.hits("slow") == 0 {
        assert!(Instant::now() < deadline, "the daemon never probed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let scrape = reqwest::blocking::get(&url).unwrap().text().unwrap();
    parse_exposition(&scrape);
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();

    wait_for_line(&rx, "finishing the current run", &mut seen);
    wait_for_line(&rx, "daemon stopped", &mut seen);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 of 2 targets ok, 0 failed; 2 of 2 lines appended"), "{stdout}");

    let records = records_of(&log);
    assert_eq!(records.len(), 2, "the run in progress was finished and written: {records:?}");
    let slow = records.iter().find(|r| r.target == "slow").unwrap();
    assert!(slow.ok && slow.latency_ms >= 1500.0, "{slow:?}");
    assert_eq!(server.hits("slow"), 1, "no new run started after SIGTERM");
}
