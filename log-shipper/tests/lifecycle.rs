//! The shipper's life through the real binary: positions across restarts, a corrupt
//! positions file, SIGTERM with and without a reachable Loki, bounded memory during an
//! outage, new and deleted files, partial and over-long lines.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::loki::{Loki, Mode};
use support::{append, args, free_addr, metric, wait_until, Shipper, PATIENCE};

fn positions_offsets(path: &Path) -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["files"].as_array().unwrap().iter().map(|f| f["offset"].as_u64().unwrap()).collect()
}

fn numbered(from: usize, to: usize) -> String {
    (from..to).map(|i| format!("line {i}\n")).collect()
}

#[test]
fn restart_resumes_from_the_acknowledged_offset() {
    let loki = Loki::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let pos = dir.path().join("pos.json");
    append(&log, &numbered(0, 100));
    let mut s = Shipper::start(dir.path(), &args(&log, &loki.url(), &pos, &[]));
    loki.wait_entries(100, PATIENCE);
    s.term();
    assert_eq!(s.wait(PATIENCE).and_then(|s| s.code()), Some(0), "{}", s.logs());
    let len = std::fs::metadata(&log).unwrap().len();
    assert_eq!(positions_offsets(&pos), vec![len], "positions hold the acknowledged end of the file");
    assert!(s.logs().contains("log-shipper stopped"), "a final summary line: {}", s.logs());

    append(&log, &numbered(100, 150));
    let _s = Shipper::start(dir.path(), &args(&log, &loki.url(), &pos, &[]));
    loki.wait_entries(150, PATIENCE);
    let expected: Vec<String> = (0..150).map(|i| format!("line {i}")).collect();
    wait_until(Duration::from_millis(500), "no extra lines", || loki.lines().len() >= 150);
    assert_eq!(loki.lines(), expected, "resumed exactly where Loki acknowledged: nothing lost, nothing twice");
}

#[test]
fn a_corrupt_positions_file_is_set_aside_reported_and_replaced() {
    let loki = Loki::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let pos = dir.path().join("pos.json");
    append(&log, &numbered(0, 20));
    std::fs::write(&pos, b"{\"version\":1,\"files\":[{\"path\":\"/x\",\"dev\":1,\"in").unwrap();
    // Without --from-beginning: a corrupt file still means "read everything again".
    let a: Vec<String> = args(&log, &loki.url(), &pos, &[]).into_iter().filter(|a| a != "--from-beginning").collect();
    let mut s = Shipper::start(dir.path(), &a);
    loki.wait_entries(20, PATIENCE);
    let logs = s.logs();
    assert!(logs.contains("positions file is corrupt"), "reported: {logs}");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pos.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the bad file is kept aside for inspection");
    assert!(std::fs::read(aside[0].path()).unwrap().starts_with(b"{\"version\":1,\"files\":[{\"path\""));
    let len = std::fs::metadata(&log).unwrap().len();
    wait_until(PATIENCE, "a fresh positions file", || {
        std::fs::read(&pos)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["files"].as_array().is_some_and(|f| f.iter().any(|f| f["offset"].as_u64() == Some(len))))
    });
    assert!(s.wait(Duration::from_millis(100)).is_none(), "still running");
    s.term();
    assert_eq!(s.wait(PATIENCE).and_then(|s| s.code()), Some(0));
}

#[test]
fn sigterm_flushes_what_was_read_and_exits_0() {
    let loki = Loki::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let maddr = free_addr();
    append(&log, &numbered(0, 30));
    // A batch wait far beyond the test: only the shutdown flush can send these lines.
    let mut s = Shipper::start(
        dir.path(),
        &args(&log, &loki.url(), &dir.path().join("p.json"), &["--batch-wait", "1h", "--metrics-addr", &maddr]),
    );
    wait_until(PATIENCE, "lines read", || metric(&maddr, "log_shipper_lines_read_total") == 30.0);
    assert!(loki.lines().is_empty());
    s.term();
    assert_eq!(s.wait(PATIENCE).and_then(|s| s.code()), Some(0), "{}", s.logs());
    assert_eq!(loki.lines().len(), 30);
}

#[test]
fn sigterm_with_loki_down_stops_at_the_deadline_and_the_next_start_delivers() {
    let loki = Loki::start();
    loki.set_mode(Mode::Status(503, None));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let pos = dir.path().join("p.json");
    append(&log, &numbered(0, 40));
    let mut s = Shipper::start(dir.path(), &args(&log, &loki.url(), &pos, &["--shutdown-timeout", "1s"]));
    loki.wait_for(PATIENCE, "failed pushes", |p| p.len() >= 2);
    let t = Instant::now();
    s.term();
    let code = s.wait(PATIENCE).and_then(|s| s.code());
    let took = t.elapsed();
    assert_eq!(code, Some(3), "undelivered lines at the deadline: exit 3\n{}", s.logs());
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "exited after {took:?}");
    assert!(s.logs().contains("\"lines_undelivered\":40"), "{}", s.logs());
    assert_eq!(positions_offsets(&pos), vec![0], "nothing was acknowledged, so nothing is skipped");

    loki.set_mode(Mode::Accept);
    let _s = Shipper::start(dir.path(), &args(&log, &loki.url(), &pos, &[]));
    loki.wait_entries(40, PATIENCE);
    assert_eq!(loki.lines(), numbered(0, 40).lines().collect::<Vec<_>>());
}

#[test]
fn memory_stays_bounded_while_loki_is_down() {
    let loki = Loki::start();
    loki.set_mode(Mode::Status(503, None));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let maddr = free_addr();
    // 24 MiB of log waiting while Loki is down.
    let line = format!(r#"{{"timestamp":"2026-11-23T10:00:00Z","level":"INFO","message":"{}","seq":"#, "m".repeat(150));
    let mut text = String::with_capacity(25 << 20);
    let mut n = 0u64;
    while text.len() < 24 << 20 {
        text.push_str(&line);
        text.push_str(&format!("{n}}}\n"));
        n += 1;
    }
    append(&log, &text);
    drop(text);
    let s = Shipper::start(
        dir.path(),
        &args(&log, &loki.url(), &dir.path().join("p.json"), &["--batch-bytes", "256KiB", "--metrics-addr", &maddr]),
    );
    wait_until(PATIENCE, "retries", || metric(&maddr, "log_shipper_push_retries_total") >= 5.0);
    let read_then = metric(&maddr, "log_shipper_bytes_read_total");
    wait_until(PATIENCE, "more retries", || metric(&maddr, "log_shipper_push_retries_total") >= 15.0);
    let read_now = metric(&maddr, "log_shipper_bytes_read_total");
    assert_eq!(read_then, read_now, "reading paused while Loki is down");
    // One batch in flight, two queued, one being filled, one read chunk: ~1.5 MiB.
    assert!(read_now < 4.0 * 1024.0 * 1024.0, "read {read_now} bytes ahead of Loki");
    let rss = s.peak_rss_kib().unwrap();
    assert!(rss < 48 * 1024, "peak RSS {rss} KiB while 24 MiB wait to be sent");

    loki.set_mode(Mode::Accept);
    loki.wait_entries(n as usize, Duration::from_secs(90));
    let rss = s.peak_rss_kib().unwrap();
    assert!(rss < 48 * 1024, "peak RSS {rss} KiB after catching up");
    eprintln!("peak RSS {rss} KiB for {n} lines, {read_then} bytes read ahead during the outage");
}

#[test]
fn existing_files_start_at_their_end_on_a_first_run_and_new_files_from_the_start() {
    let loki = Loki::start();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    append(&a, "old history\n");
    let glob = dir.path().join("*.log");
    let argv: Vec<String> = args(&glob, &loki.url(), &dir.path().join("p.json"), &[])
        .into_iter()
        .filter(|a| a != "--from-beginning")
        .collect();
    let _s = Shipper::start(dir.path(), &argv);
    // The positions file records a.log at its end before anything is shipped.
    wait_until(PATIENCE, "a.log recorded at its end", || {
        std::fs::read(dir.path().join("p.json")).is_ok_and(|b| b.windows(5).any(|w| w == b"a.log"))
    });
    assert_eq!(positions_offsets(&dir.path().join("p.json")), vec![12]);
    append(&a, "new in a\n");
    let b = dir.path().join("b.log");
    append(&b, "first line of a file created later\n");
    loki.wait_entries(2, PATIENCE);
    let mut lines = loki.lines();
    lines.sort();
    assert_eq!(lines, ["first line of a file created later", "new in a"]);
}

#[test]
fn a_file_renamed_out_of_the_globs_is_drained_then_released() {
    let loki = Loki::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let old = dir.path().join("app.old");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"before rotation\n").unwrap();
    let s = Shipper::start(dir.path(), &args(&log, &loki.url(), &dir.path().join("p.json"), &[]));
    loki.wait_entries(1, PATIENCE);
    std::fs::rename(&log, &old).unwrap();
    // The application has not reopened yet: these go to the renamed file.
    std::io::Write::write_all(&mut f, b"late 1\nlate 2\n").unwrap();
    drop(f);
    append(&log, "in the new file\n");
    loki.wait_entries(4, PATIENCE);
    let mut lines = loki.lines();
    lines.sort();
    assert_eq!(lines, ["before rotation", "in the new file", "late 1", "late 2"]);
    std::fs::remove_file(&old).unwrap();
    let fd_dir = format!("/proc/{}/fd", s.pid());
    wait_until(PATIENCE, "the deleted file released", || {
        std::fs::read_dir(&fd_dir)
            .unwrap()
            .flatten()
            .all(|e| std::fs::read_link(e.path()).map(|t| !t.to_string_lossy().contains("app.old")).unwrap_or(true))
    });
}

#[test]
fn partial_lines_wait_for_their_newline_or_the_timeout() {
    let loki = Loki::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let _s = Shipper::start(
        dir.path(),
        &args(&log, &loki.url(), &dir.path().join("p.json"), &["--partial-line-timeout", "1s"]),
    );
    append(&log, "");
    wait_until(PATIENCE, "positions written", || dir.path().join("p.json").exists());
    append(&log, "first half, ");
    std::thread::sleep(Duration::from_millis(200));
    append(&log, "second half\n");
    loki.wait_entries(1, PATIENCE);
    assert_eq!(loki.lines(), ["first half, second half"], "completed lines are whole");
    append(&log, "never finished");
    let t = Instant::now();
    loki.wait_entries(2, PATIENCE);
    assert!(t.elapsed() >= Duration::from_millis(900), "held for the timeout");
    assert_eq!(loki.lines()[1], "never finished");
}

#[test]
fn over_long_lines_are_truncated_and_counted() {
    let loki = Loki::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let maddr = free_addr();
    append(&log, &format!("{}\nshort\n", "é".repeat(3000)));
    let _s = Shipper::start(
        dir.path(),
        &args(&log, &loki.url(), &dir.path().join("p.json"), &["--max-line-bytes", "1KiB", "--metrics-addr", &maddr]),
    );
    loki.wait_entries(2, PATIENCE);
    let lines = loki.lines();
    assert_eq!(lines[0], "é".repeat(512), "cut at 1 KiB, on a character boundary");
    assert_eq!(lines[1], "short");
    wait_until(PATIENCE, "truncation counter", || metric(&maddr, "log_shipper_lines_truncated_total") == 1.0);
}

#[test]
fn a_copy_made_while_stopped_never_takes_over_the_original() {
    // Regression: on restart, a copy of a file (same first bytes, other inode) that sorts
    // before the original must not claim the original's record; the original resumes and
    // the copy, whose lines were all sent already, is not shipped again.
    let loki = Loki::start();
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("z.log");
    let pos = dir.path().join("p.json");
    let glob = dir.path().join("*.log");
    append(&original, &numbered(0, 10));
    let mut s = Shipper::start(dir.path(), &args(&glob, &loki.url(), &pos, &[]));
    loki.wait_entries(10, PATIENCE);
    s.term();
    assert_eq!(s.wait(PATIENCE).and_then(|s| s.code()), Some(0));
    std::fs::copy(&original, dir.path().join("a.log")).unwrap();
    append(&original, &numbered(10, 15));
    let _s = Shipper::start(dir.path(), &args(&glob, &loki.url(), &pos, &[]));
    loki.wait_entries(15, PATIENCE);
    append(&original, "marker\n");
    loki.wait_for(PATIENCE, "the marker", |p| p.iter().flat_map(|p| &p.accepted).any(|e| e.line == "marker"));
    let mut want: Vec<String> = (0..15).map(|i| format!("line {i}")).collect();
    want.push("marker".into());
    assert_eq!(loki.lines(), want);
}

#[test]
fn two_shippers_never_share_a_positions_file() {
    let loki = Loki::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let pos = dir.path().join("p.json");
    append(&log, "one\n");
    let _first = Shipper::start(dir.path(), &args(&log, &loki.url(), &pos, &[]));
    loki.wait_entries(1, PATIENCE);
    let mut second = Shipper::start(dir.path(), &args(&log, &loki.url(), &pos, &[]));
    assert_eq!(second.wait(PATIENCE).and_then(|s| s.code()), Some(1), "{}", second.logs());
    assert!(second.logs().contains("another log-shipper is using this positions file"), "{}", second.logs());
    assert_eq!(loki.lines(), ["one"], "the second shipper sent nothing");
}
