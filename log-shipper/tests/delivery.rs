//! Delivery through the real binary into the test Loki: wire formats, labels and
//! structured metadata, and the answer rules (400 dropped and not retried, 413 split,
//! 429/5xx/drops retried, 401 without a tenant).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod support;

use std::time::{Duration, Instant};

use support::loki::{Loki, Mode, Options, REJECT};
use support::{append, args, free_addr, metric, wait_until, Shipper, PATIENCE};

const SERVER_LINES: &str = concat!(
    r#"{"timestamp":"2026-11-23T10:00:00.000001Z","level":"INFO","message":"request","target":"helpdesk_server::access","request_id":"req-1","method":"GET","route":"/api/v1/tickets/<id>","path":"/api/v1/tickets/7","status":200,"duration_ms":1.25}"#,
    "\n",
    r#"{"timestamp":"2026-11-23T10:00:00.5Z","level":"ERROR","message":"request","target":"helpdesk_server::access","request_id":"req-2","method":"POST","route":"/api/v1/tickets","path":"/api/v1/tickets","status":500,"duration_ms":812.0}"#,
    "\n",
    r#"{"time":"2026-11-23T10:00:01+00:00","target":"server-health","ok":true,"status":200,"latency_ms":3,"run_id":"r-9"}"#,
    "\n",
    "a plain text line\n",
    "\n",
);

fn ns(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_nanos_opt().unwrap()
}

fn ship_sample(encoding: &str) -> (Loki, Vec<support::loki::Entry>, String) {
    let loki = Loki::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    append(&log, SERVER_LINES);
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    let _s = Shipper::start(
        dir.path(),
        &args(
            &log,
            &loki.url(),
            &dir.path().join("pos.json"),
            &["--encoding", encoding, "--label", "namespace=campus"],
        ),
    );
    loki.wait_entries(4, PATIENCE);
    let pushes = loki.pushes();
    (loki, pushes.iter().flat_map(|p| p.accepted.clone()).collect(), format!("{before}|{}", pushes[0].encoding))
}

fn check_sample(entries: &[support::loki::Entry], before_ns: i64) {
    assert_eq!(entries.len(), 4, "blank lines are not shipped: {entries:#?}");
    let by_line = |needle: &str| entries.iter().find(|e| e.line.contains(needle)).unwrap_or_else(|| panic!("{needle}"));

    let ok = by_line("req-1");
    assert_eq!(ok.ts_ns, ns("2026-11-23T10:00:00.000001Z"), "timestamp from the line");
    assert_eq!(ok.labels["level"], "info", "level label, lower-cased");
    assert_eq!(ok.labels["target"], "helpdesk_server::access");
    assert_eq!(ok.labels["job"], "test");
    assert_eq!(ok.labels["namespace"], "campus");
    assert!(!ok.labels.contains_key("request_id"), "request ids are never labels");
    assert_eq!(ok.metadata.get("request_id").map(String::as_str), Some("req-1"), "request id as structured metadata");
    assert_eq!(ok.line, SERVER_LINES.lines().next().unwrap(), "the line is shipped unchanged");

    let err = by_line("req-2");
    assert_eq!(err.labels["level"], "error");
    assert_eq!(err.ts_ns, ns("2026-11-23T10:00:00.5Z"));

    let health = by_line("server-health");
    assert_eq!(health.ts_ns, ns("2026-11-23T10:00:01Z"), "the health-agent's `time` field");
    assert_eq!(health.metadata.get("run_id").map(String::as_str), Some("r-9"));
    assert!(!health.labels.contains_key("level"));

    let plain = by_line("plain text");
    assert!(plain.ts_ns >= before_ns, "a line without a timestamp is stamped when read");
    assert!(plain.metadata.is_empty());
}

#[test]
fn protobuf_snappy_push_carries_labels_metadata_and_line_timestamps() {
    let (_loki, entries, info) = ship_sample("protobuf");
    let (before, encoding) = info.split_once('|').unwrap();
    assert_eq!(encoding, "application/x-protobuf");
    check_sample(&entries, before.parse().unwrap());
}

#[test]
fn json_gzip_push_carries_the_same() {
    let (_loki, entries, info) = ship_sample("json-gzip");
    let (before, encoding) = info.split_once('|').unwrap();
    assert_eq!(encoding, "application/json gzip");
    check_sample(&entries, before.parse().unwrap());
}

#[test]
fn a_400_batch_is_counted_and_never_retried() {
    let loki = Loki::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let maddr = free_addr();
    // One batch (large batch wait) holding one line Loki refuses among valid ones.
    let text: String =
        (0..10).map(|i| if i == 4 { format!("line {i} {REJECT}\n") } else { format!("line {i}\n") }).collect();
    append(&log, &text);
    let a = args(&log, &loki.url(), &dir.path().join("pos.json"), &["--metrics-addr", &maddr, "--batch-wait", "300ms"]);
    let _s = Shipper::start(dir.path(), &a);
    loki.wait_for(PATIENCE, "the 400", |p| p.iter().any(|p| p.status == 400));
    // Then a later batch goes through normally.
    append(&log, "after the refused batch\n");
    loki.wait_for(PATIENCE, "the next batch", |p| {
        p.iter().any(|p| p.accepted.iter().any(|e| e.line.contains("after")))
    });

    let pushes = loki.pushes();
    let with_reject = pushes.iter().filter(|p| p.status == 400).count();
    assert_eq!(with_reject, 1, "a 400 is never retried: {:?}", loki.answers());
    let p400 = pushes.iter().find(|p| p.status == 400).unwrap();
    assert_eq!(p400.entries_in_request, 10);
    assert_eq!(p400.accepted.len(), 9, "Loki stored the valid lines of the 400 batch (partial success)");
    wait_until(PATIENCE, "drop counters", || metric(&maddr, "log_shipper_lines_dropped_total") == 10.0);
    assert_eq!(metric(&maddr, "log_shipper_batches_dropped_total"), 1.0);
    assert_eq!(metric(&maddr, "log_shipper_push_retries_total"), 0.0);
}

#[test]
fn a_413_batch_is_split_until_each_part_fits() {
    // 40 lines of ~200 bytes in one batch: ~9 KB of protobuf; Loki takes at most 2.5 KB.
    let loki = Loki::with(Options { max_message_bytes: Some(2500), ..Options::default() });
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let maddr = free_addr();
    let text: String = (0..40).map(|i| format!("line {i:03} {}\n", "x".repeat(190))).collect();
    append(&log, &text);
    // One more line that can never fit on its own.
    append(&log, &format!("huge {}\n", "y".repeat(4000)));
    append(&log, "last\n");
    let a = args(&log, &loki.url(), &dir.path().join("pos.json"), &["--metrics-addr", &maddr, "--batch-wait", "300ms"]);
    let _s = Shipper::start(dir.path(), &a);
    loki.wait_for(PATIENCE, "every line that fits", |p| {
        p.iter().flat_map(|p| &p.accepted).filter(|e| e.line.starts_with("line ") || e.line == "last").count() >= 41
    });
    let lines = loki.lines();
    for i in 0..40 {
        let n = lines.iter().filter(|l| l.starts_with(&format!("line {i:03} "))).count();
        assert_eq!(n, 1, "line {i} delivered exactly once");
    }
    assert!(loki.answers()["413"] >= 3, "the batch was refused and split: {:?}", loki.answers());
    assert!(loki.pushes().iter().filter(|p| p.status == 204).count() >= 4, "every delivered part fits");
    wait_until(PATIENCE, "split and drop counters", || {
        metric(&maddr, "log_shipper_batch_splits_total") >= 3.0
            && metric(&maddr, "log_shipper_lines_dropped_total") == 1.0
    });
    assert!(!lines.iter().any(|l| l.starts_with("huge")), "a single line over the limit is dropped");
}

#[test]
fn rate_limits_failures_and_dropped_connections_are_retried_honouring_retry_after() {
    let loki = Loki::start();
    loki.script([Mode::Status(429, Some(1)), Mode::Status(500, None), Mode::Drop, Mode::Status(503, None)]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let maddr = free_addr();
    append(&log, "one\ntwo\nthree\n");
    let a = args(&log, &loki.url(), &dir.path().join("pos.json"), &["--metrics-addr", &maddr, "--max-backoff", "5s"]);
    let _s = Shipper::start(dir.path(), &a);
    loki.wait_for(PATIENCE, "the 429", |p| !p.is_empty());
    let after_429 = Instant::now();
    loki.wait_for(PATIENCE, "the 500", |p| p.len() >= 2);
    assert!(after_429.elapsed() >= Duration::from_millis(800), "Retry-After: 1 was honoured");
    loki.wait_entries(3, PATIENCE);
    assert_eq!(loki.lines(), ["one", "two", "three"], "delivered once, in order");
    let answers = loki.answers();
    assert_eq!((answers["429"], answers["500"], answers["drop"], answers["503"], answers["204"]), (1, 1, 1, 1, 1));
    wait_until(PATIENCE, "retry counter", || metric(&maddr, "log_shipper_push_retries_total") == 4.0);
    assert_eq!(metric(&maddr, "log_shipper_lines_sent_total"), 3.0);
    assert_eq!(metric(&maddr, "log_shipper_lines_dropped_total"), 0.0);
}

#[test]
fn refused_connections_and_timeouts_are_retried() {
    let loki = Loki::start();
    loki.set_mode(Mode::Refuse);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let maddr = free_addr();
    append(&log, "while down\n");
    let a =
        args(&log, &loki.url(), &dir.path().join("pos.json"), &["--metrics-addr", &maddr, "--push-timeout", "300ms"]);
    let _s = Shipper::start(dir.path(), &a);
    wait_until(PATIENCE, "network retries", || metric(&maddr, "log_shipper_push_retries_total") >= 3.0);
    // A Loki slower than the push timeout counts as a timeout and is retried too.
    loki.script([Mode::Delay(Duration::from_secs(2))]);
    loki.set_mode(Mode::Accept);
    loki.wait_entries(1, PATIENCE);
    wait_until(PATIENCE, "a timeout retry", || {
        reqwest::blocking::get(format!("http://{maddr}/metrics"))
            .and_then(|r| r.text())
            .unwrap_or_default()
            .contains("log_shipper_push_retries_total{reason=\"timeout\"} 1")
    });
    wait_until(PATIENCE, "sent counter", || metric(&maddr, "log_shipper_lines_sent_total") == 1.0);
    assert!(loki.lines().iter().all(|l| l == "while down"));
}

#[test]
fn tenant_is_required_when_tenancy_is_on_and_credentials_are_sent() {
    let loki = Loki::with(Options { require_tenant: true, ..Options::default() });
    let dir = tempfile::tempdir().unwrap();
    let maddr = free_addr();

    // Without a tenant: 401, dropped and counted (not retried forever).
    let log = dir.path().join("a.log");
    append(&log, "no tenant\n");
    let mut s =
        Shipper::start(dir.path(), &args(&log, &loki.url(), &dir.path().join("a.json"), &["--metrics-addr", &maddr]));
    loki.wait_for(PATIENCE, "the 401", |p| p.iter().any(|p| p.status == 401));
    wait_until(PATIENCE, "drop counter", || metric(&maddr, "log_shipper_lines_dropped_total") == 1.0);
    assert_eq!(loki.answers().get("401"), Some(&1));
    s.kill();

    // With a tenant and a bearer token from a file.
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let log = dir.path().join("b.log");
    append(&log, "with tenant\n");
    let _s = Shipper::start(
        dir.path(),
        &args(
            &log,
            &loki.url(),
            &dir.path().join("b.json"),
            &["--tenant", "campus", "--bearer-token-file", token.to_str().unwrap()],
        ),
    );
    loki.wait_entries(1, PATIENCE);
    let p = loki.pushes().into_iter().find(|p| p.status == 204).unwrap();
    assert_eq!(p.tenant.as_deref(), Some("campus"));
    assert_eq!(p.authorization.as_deref(), Some("Bearer s3cret"));

    // Basic auth.
    let log = dir.path().join("c.log");
    append(&log, "basic\n");
    let _s2 = Shipper::start(
        dir.path(),
        &args(
            &log,
            &loki.url(),
            &dir.path().join("c.json"),
            &["--tenant", "campus", "--basic-auth-user", "shipper", "--basic-auth-password", "pw"],
        ),
    );
    loki.wait_entries(2, PATIENCE);
    let p = loki.pushes().into_iter().rfind(|p| p.status == 204).unwrap();
    // base64("shipper:pw")
    assert_eq!(p.authorization.as_deref(), Some("Basic c2hpcHBlcjpwdw=="));
}

#[test]
fn the_receiver_refuses_framed_snappy_like_loki() {
    // Guards the test receiver itself: framed snappy (the streaming format) is what Loki
    // refuses, so a shipper sending it would fail here as it would against Loki.
    let loki = Loki::start();
    let mut framed = snap::write::FrameEncoder::new(Vec::new());
    std::io::Write::write_all(&mut framed, b"\x0a\x00").unwrap();
    let body = framed.into_inner().unwrap();
    let resp = reqwest::blocking::Client::new()
        .post(loki.push_url())
        .header("Content-Type", "application/x-protobuf")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().unwrap().contains("snappy: corrupt input"));
}

#[test]
fn bad_command_lines_exit_2_and_name_the_problem() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_log-shipper"))
        .args(["--path", "/tmp/x.log", "--loki-url", "ftp://nope", "--positions", "/tmp/p.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http or https"));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_log-shipper")).args(["--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_log-shipper"))
        .args(["--path", "/tmp/x.log", "--loki-url", "http://127.0.0.1:9", "--positions"])
        .arg(dir.path().join("missing-dir/pos.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "an unwritable positions file is a runtime failure");
    assert!(String::from_utf8_lossy(&out.stderr).contains("positions file"));
}
