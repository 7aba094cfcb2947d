//! The log on the volume: caps hold exactly, rotation never happens twice for one file,
//! concurrent writers (threads with their own descriptors, and separate processes) never
//! tear or interleave a line, torn lines are repaired and tolerated.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use health_agent::config::Rotation;
use health_agent::logfile::{log_files, read_log, rotated_path, LogWriter};

const KIB: u64 = 1024;

/// A line of `len` bytes (newline excluded) carrying `writer` and `seq`.
fn line(writer: usize, seq: usize, len: usize) -> String {
    let head = format!(r#"{{"writer":{writer},"seq":{seq},"pad":""#);
    let pad = len.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}

#[derive(serde::Deserialize)]
struct Line {
    writer: usize,
    seq: usize,
}

/// Every line of every file, oldest first, parsed; panics on a torn or foreign line.
fn all_lines(log: &Path) -> Vec<(PathBuf, String, Line)> {
    let mut out = Vec::new();
    for file in log_files(log).unwrap() {
        let content = fs::read_to_string(&file).unwrap();
        assert!(content.is_empty() || content.ends_with('\n'), "{} ends in a torn line", file.display());
        for l in content.lines() {
            let parsed: Line = serde_json::from_str(l).unwrap_or_else(|e| panic!("torn or mixed line {l:?}: {e}"));
            out.push((file.clone(), l.to_string(), parsed));
        }
    }
    out
}

fn size(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The caps, checked on the files as they are.
fn assert_caps(log: &Path, r: Rotation) {
    let files = log_files(log).unwrap();
    assert!(files.len() as u32 <= r.max_files, "{} files, cap {}", files.len(), r.max_files);
    assert!(size(log) <= r.max_bytes, "active file {} bytes, cap {}", size(log), r.max_bytes);
    let total: u64 = files.iter().map(|f| size(f)).sum();
    assert!(total <= r.max_total_bytes, "{total} bytes in all, cap {}", r.max_total_bytes);
    for f in &files {
        assert!(size(f) <= r.max_bytes, "{} holds {} bytes", f.display(), size(f));
    }
}

/// No premature or double rotation: each rotated file was rotated only because the first
/// line of the next newer file did not fit in it.
fn assert_rotated_files_were_full(log: &Path, max_bytes: u64) {
    let files = log_files(log).unwrap();
    for pair in files.windows(2) {
        let (older, newer) = (&pair[0], &pair[1]);
        let first_of_newer = fs::read_to_string(newer).unwrap().lines().next().map_or(0, |l| l.len() as u64 + 1);
        assert!(
            size(older) + first_of_newer > max_bytes,
            "{} ({} bytes) was rotated although the next line ({first_of_newer} bytes) fitted",
            older.display(),
            size(older)
        );
    }
}

#[test]
fn caps_hold_exactly_after_every_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("probes.log");
    let r = Rotation { max_bytes: 16 * KIB, max_files: 4, max_total_bytes: 40 * KIB };
    let mut w = LogWriter::open(&log, r).unwrap();
    let mut written = Vec::new();
    for seq in 0..600 {
        // Lengths from 100 bytes to 3 KiB, so files end at varied fill levels.
        let l = line(0, seq, 100 + (seq * 397) % 3000);
        w.append(&l).unwrap();
        written.push(l);
        assert_caps(&log, r);
    }
    w.sync().unwrap();
    assert_rotated_files_were_full(&log, r.max_bytes);

    // What is kept is exactly the newest lines, in order, with nothing missing in between,
    // and nothing more was deleted than the total cap demanded.
    let kept: Vec<String> = all_lines(&log).into_iter().map(|(_, l, _)| l).collect();
    assert_eq!(kept[..], written[written.len() - kept.len()..]);
    // A deletion removes one whole file (at most max_bytes) only when the total would
    // otherwise pass the cap, so what is kept is never less than the cap minus one file
    // minus one line.
    let kept_bytes: u64 = kept.iter().map(|l| l.len() as u64 + 1).sum();
    assert!(kept_bytes + r.max_bytes + 3100 > r.max_total_bytes, "only {kept_bytes} bytes kept");
    let lock = PathBuf::from(format!("{}.lock", log.display()));
    assert!(lock.exists() && size(&lock) == 0, "the lock file stays empty");
}

#[test]
fn the_file_count_cap_keeps_the_newest_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("p.log");
    let r = Rotation { max_bytes: 16 * KIB, max_files: 3, max_total_bytes: 1024 * KIB };
    let mut w = LogWriter::open(&log, r).unwrap();
    for seq in 0..200 {
        w.append(&line(0, seq, 1000)).unwrap();
    }
    // 1001-byte lines, 16 per file: 200 lines fill 12 files and a half; 3 files are kept.
    let files = log_files(&log).unwrap();
    assert_eq!(files, [rotated_path(&log, 2), rotated_path(&log, 1), log.clone()]);
    let seqs: Vec<usize> = all_lines(&log).into_iter().map(|(_, _, l)| l.seq).collect();
    assert_eq!(seqs, (200 - 32 - 8..200).collect::<Vec<_>>());
    assert_caps(&log, r);
}

#[test]
fn one_file_means_rotation_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("p.log");
    let r = Rotation { max_bytes: 16 * KIB, max_files: 1, max_total_bytes: 16 * KIB };
    let mut w = LogWriter::open(&log, r).unwrap();
    for seq in 0..100 {
        w.append(&line(0, seq, 1000)).unwrap();
        assert_caps(&log, r);
    }
    assert_eq!(log_files(&log).unwrap(), std::slice::from_ref(&log));
    assert_eq!(all_lines(&log).first().unwrap().2.seq, 96, "100 lines, 16 per file: the last 4 remain");
}

#[test]
fn stray_rotated_files_beyond_the_cap_are_removed_at_rotation() {
    // A restart with a lower --max-files leaves old numbers behind; the next rotation
    // brings the count back under the cap.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("p.log");
    for n in 1..=8 {
        fs::write(rotated_path(&log, n), format!("{}\n", line(9, n as usize, 100))).unwrap();
    }
    let r = Rotation { max_bytes: 16 * KIB, max_files: 3, max_total_bytes: 1024 * KIB };
    let mut w = LogWriter::open(&log, r).unwrap();
    for seq in 0..20 {
        w.append(&line(0, seq, 1000)).unwrap();
    }
    assert_caps(&log, r);
    assert_eq!(log_files(&log).unwrap().len(), 3);
}

#[test]
fn threads_with_their_own_descriptors_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("p.log");
    // Large enough caps that nothing is deleted: every line written must be found once.
    let r = Rotation { max_bytes: 16 * KIB, max_files: 1000, max_total_bytes: 1 << 30 };
    let writers = 4;
    let per_writer = 1500;
    std::thread::scope(|s| {
        for id in 0..writers {
            let log = &log;
            s.spawn(move || {
                let mut w = LogWriter::open(log, r).unwrap();
                for seq in 0..per_writer {
                    w.append(&line(id, seq, 60 + (seq * 31 + id * 7) % 900)).unwrap();
                }
                w.sync().unwrap();
            });
        }
    });
    let lines = all_lines(&log);
    assert_eq!(lines.len(), writers * per_writer);
    for id in 0..writers {
        let seqs: Vec<usize> = lines.iter().filter(|(_, _, l)| l.writer == id).map(|(_, _, l)| l.seq).collect();
        assert_eq!(seqs, (0..per_writer).collect::<Vec<_>>(), "writer {id}: every line once, in order");
    }
    assert!(log_files(&log).unwrap().len() > 20, "the test rotated many times");
    assert_rotated_files_were_full(&log, r.max_bytes);
    assert_caps(&log, r);
}

#[test]
fn two_agent_processes_share_one_log() {
    let server = common::server::TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("probes.log");
    let targets = 150;
    let agent = |id: usize| {
        let mut args = vec!["once".to_string(), "--log".into(), log.display().to_string()];
        args.extend(["--max-bytes", "16KiB", "--max-files", "200", "--max-total-bytes", "100MiB"].map(String::from));
        for t in 0..targets {
            // Spread the answers over 60 ms so both processes write while the other does.
            args.push("--target".into());
            args.push(format!("a{id}-t{t:03}={}", server.url(&format!("/?delay_ms={}&t={t}", t % 60))));
        }
        common::agent(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    for round in 0..3 {
        let (a, b) = (agent(0), agent(1));
        for (i, mut child) in [a, b].into_iter().enumerate() {
            assert!(child.wait().unwrap().success(), "round {round}: agent {i} failed");
        }
    }
    let mut seen = std::collections::HashMap::new();
    let mut order = Vec::new();
    for file in log_files(&log).unwrap() {
        for record in common::records_of(&file) {
            assert!(record.ok, "{record:?}");
            order.push(record.target[..2].to_string());
            *seen.entry(record.target).or_insert(0) += 1;
        }
    }
    // Run one after the other, three rounds of two agents change writer at most 5 times;
    // more proves the agents really wrote at the same time.
    let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches > 5, "the agents never overlapped ({switches} changes of writer)");
    assert_eq!(seen.len(), 2 * targets, "every target of both agents is in the log");
    assert!(seen.values().all(|&n| n == 3), "each target once per round, never lost or doubled");
    assert_rotated_files_were_full(&log, 16 * KIB);
    assert_caps(&log, Rotation { max_bytes: 16 * KIB, max_files: 200, max_total_bytes: 100 << 20 });
}

#[test]
fn two_agent_processes_keep_tight_caps() {
    let server = common::server::TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("probes.log");
    let r = Rotation { max_bytes: 16 * KIB, max_files: 3, max_total_bytes: 40 * KIB };
    let agent = |id: usize| {
        let mut args = vec!["once".to_string(), "--log".into(), log.display().to_string()];
        args.extend(["--max-bytes", "16KiB", "--max-files", "3", "--max-total-bytes", "40KiB"].map(String::from));
        for t in 0..200 {
            args.push("--target".into());
            args.push(format!("a{id}-t{t:03}={}", server.url(&format!("/?delay_ms={}", t % 40))));
        }
        common::agent(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (agent(0), agent(1));
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    assert_caps(&log, r);
    assert_rotated_files_were_full(&log, r.max_bytes);
    for file in log_files(&log).unwrap() {
        common::records_of(&file);
    }
}

#[test]
fn a_torn_last_line_is_cut_before_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("p.log");
    let whole = format!("{}\n{}\n", line(0, 0, 200), line(0, 1, 200));
    fs::write(&log, format!("{whole}{{\"writer\":0,\"seq\":2,\"pa")).unwrap();
    let mut w = LogWriter::open(&log, Rotation::default()).unwrap();
    w.append(&line(1, 0, 200)).unwrap();
    let warnings = w.take_warnings();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("torn last line (23 bytes)"), "{warnings:?}");
    assert_eq!(fs::read_to_string(&log).unwrap(), format!("{whole}{}\n", line(1, 0, 200)));
}

#[test]
fn the_reader_tolerates_a_truncated_last_line_and_counts_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("p.log");
    let record = |target: &str| {
        format!(
            r#"{{"time":"2026-11-23T12:00:00.000Z","run_id":"r","target":"{target}","url":"http://a/","method":"GET","ok":true,"status":200,"latency_ms":1.0,"connect_ms":null,"attempts":1,"failed":null,"error":null,"agent_version":"0.1.0"}}"#
        )
    };
    fs::write(rotated_path(&log, 1), format!("{}\nnot json\n{}\n", record("a"), record("b"))).unwrap();
    let cut = record("d");
    fs::write(&log, format!("{}\n\n{}", record("c"), &cut[..cut.len() / 2])).unwrap();
    let mut targets = Vec::new();
    let summary = read_log(&log, |r| targets.push(r.target)).unwrap();
    assert_eq!(targets, ["a", "b", "c"], "oldest file first");
    assert_eq!((summary.files, summary.records, summary.unreadable, summary.truncated), (2, 3, 1, 1));
}
