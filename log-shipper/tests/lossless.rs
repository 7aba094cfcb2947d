//! The end-to-end guarantee, counted line by line: a writer appends numbered lines while
//! the test rotates the file by rename and by copytruncate several times, the test Loki
//! answers 429/503/drops connections/refuses them for a while, and the shipper is killed
//! with SIGKILL and restarted several times (some rotations happen while it is down).
//! Every line number must arrive, and any duplicate must come from the one batch that was
//! unacknowledged when the shipper was killed.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod support;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::loki::{Loki, Mode};
use support::{args, wait_until, Shipper, PATIENCE};

const N: u64 = 12_000;

/// The application writing its log: one `write` per line, O_APPEND, on a handle the test
/// can swap (reopen after a rename) or pause (during a copytruncate).
struct Writer {
    path: PathBuf,
    file: Mutex<File>,
    written: AtomicU64,
}

impl Writer {
    fn open(path: &Path) -> File {
        OpenOptions::new().create(true).append(true).open(path).unwrap()
    }

    fn write_next(&self) -> u64 {
        let mut f = self.file.lock().unwrap();
        let n = self.written.load(Ordering::SeqCst) + 1;
        writeln!(f, r#"{{"timestamp":"2026-11-23T10:00:00Z","level":"INFO","seq":{n},"pad":"{}"}}"#, "p".repeat(40))
            .unwrap();
        self.written.store(n, Ordering::SeqCst);
        n
    }

    /// logrotate's default: rename, the application keeps writing to the old file for a
    /// moment, then reopens the path.
    fn rotate_by_rename(&self, to: &Path, late_lines: u32) {
        std::fs::rename(&self.path, to).unwrap();
        for _ in 0..late_lines {
            self.write_next();
        }
        *self.file.lock().unwrap() = Writer::open(&self.path);
    }

    /// logrotate's copytruncate: copy, then truncate in place (the application keeps its
    /// O_APPEND handle). Writes are paused in between, as the race between the copy and the
    /// truncation loses lines for any reader and is not what this test is about.
    fn copytruncate(&self, to: &Path) {
        let _pause = self.file.lock().unwrap();
        std::fs::copy(&self.path, to).unwrap();
        OpenOptions::new().write(true).open(&self.path).unwrap().set_len(0).unwrap();
    }

    fn at(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }
}

fn seq_of(line: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a whole line: {line:?}: {e}"));
    v["seq"].as_u64().unwrap()
}

#[test]
fn no_line_lost_or_duplicated_across_rotation_restarts_and_outages() {
    let loki = Loki::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let positions = dir.path().join("positions.json");
    let writer =
        Arc::new(Writer { path: log.clone(), file: Mutex::new(Writer::open(&log)), written: AtomicU64::new(0) });
    let shipper_args = args(&dir.path().join("app.log*"), &loki.url(), &positions, &["--batch-bytes", "16KiB"]);
    let mut shipper = Shipper::start(dir.path(), &shipper_args);

    let w = writer.clone();
    let writing = std::thread::spawn(move || {
        while w.at() < N {
            for _ in 0..10 {
                if w.write_next() >= N {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(3));
        }
    });
    let at = |n: u64| wait_until(PATIENCE, &format!("writer at line {n}"), || writer.at() >= n);
    // Restart points: the push count when each new process started.
    let mut restarts: Vec<usize> = Vec::new();
    let mut logs = String::new();
    let mut restart = |shipper: &mut Shipper, restarts: &mut Vec<usize>| {
        restarts.push(loki.push_count());
        logs.push_str(&shipper.logs());
        *shipper = Shipper::start(dir.path(), &shipper_args);
    };
    let (mut renames, mut copies) = (0, 0);
    let mut rename = |w: &Writer| {
        renames += 1;
        w.rotate_by_rename(&dir.path().join(format!("app.log.r{renames}")), 25);
    };
    let mut copytruncate = |w: &Writer| {
        copies += 1;
        w.copytruncate(&dir.path().join(format!("app.log.c{copies}")));
    };

    // An outage lasts until the shipper has met it a few times (however busy the machine).
    let outage = |mode: Mode, answer: &str| {
        loki.set_mode(mode);
        wait_until(PATIENCE, &format!("{answer} answers"), || loki.answers().get(answer).is_some_and(|n| *n >= 3));
        loki.set_mode(Mode::Accept);
    };
    at(1000);
    rename(&writer);
    at(2000);
    outage(Mode::Status(503, None), "503");
    at(3000);
    copytruncate(&writer);
    at(3500);
    shipper.kill();
    at(4000);
    rename(&writer); // while the shipper is down
    at(4300);
    restart(&mut shipper, &mut restarts);
    at(5000);
    outage(Mode::Status(429, Some(0)), "429");
    at(5500);
    copytruncate(&writer);
    outage(Mode::Drop, "drop");
    at(6500);
    shipper.kill();
    at(6800);
    copytruncate(&writer); // while the shipper is down
    at(7000);
    restart(&mut shipper, &mut restarts);
    at(7500);
    rename(&writer);
    at(8000);
    loki.set_mode(Mode::Refuse);
    at(8600);
    shipper.kill(); // killed during an outage
    at(8800);
    restart(&mut shipper, &mut restarts);
    at(9000);
    loki.set_mode(Mode::Accept);
    at(10_000);
    rename(&writer);
    copytruncate(&writer);
    at(11_000);
    shipper.kill();
    restart(&mut shipper, &mut restarts);
    writing.join().unwrap();

    loki.wait_for(Duration::from_secs(60), "every line number", |pushes| {
        let mut seen = vec![false; N as usize + 1];
        for e in pushes.iter().flat_map(|p| &p.accepted) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&e.line) {
                if let Some(n) = v["seq"].as_u64().filter(|n| *n <= N) {
                    seen[n as usize] = true;
                }
            }
        }
        seen[1..].iter().all(|s| *s)
    });

    // Every received line is whole, and duplicates only replay the batch in flight at a kill.
    let pushes = loki.pushes();
    let mut first_push: BTreeMap<u64, usize> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for (i, p) in pushes.iter().enumerate() {
        for e in &p.accepted {
            let n = seq_of(&e.line);
            if let Some(&first) = first_push.get(&n) {
                duplicates.push((n, first, i));
            } else {
                first_push.insert(n, i);
            }
        }
    }
    let unacknowledged_at_kill: Vec<Option<usize>> =
        restarts.iter().map(|&k| pushes[..k].iter().rposition(|p| p.status == 204 || p.status == 400)).collect();
    for (n, first, again) in &duplicates {
        let explained =
            restarts.iter().zip(&unacknowledged_at_kill).any(|(&k, &last)| Some(*first) == last && *again >= k);
        assert!(
            explained,
            "line {n} was received in push {first} and again in push {again}, which no kill explains \
             (restarts at pushes {restarts:?}, last accepted before each {unacknowledged_at_kill:?})"
        );
    }
    assert_eq!(first_push.len() as u64, N);
    assert_eq!(*first_push.keys().next().unwrap(), 1);
    assert_eq!(*first_push.keys().last().unwrap(), N);
    let answers = loki.answers();
    assert!(answers.get("503").is_some_and(|n| *n > 0) && answers.get("429").is_some_and(|n| *n > 0), "{answers:?}");
    assert!(answers.get("drop").is_some_and(|n| *n > 0), "{answers:?}");
    eprintln!("{} lines, {} duplicates after 4 kills, answers {answers:?}", N, duplicates.len());
    shipper.term();
    assert_eq!(shipper.wait(PATIENCE).and_then(|s| s.code()), Some(0), "{}", shipper.logs());
    logs.push_str(&shipper.logs());
    // The rotations were seen as such (not, say, as new files read from the start).
    for what in ["file renamed (rotation)", "file truncated", "copy of a truncated file", "resumed"] {
        assert!(logs.contains(what), "no {what:?} in the shipper's logs:\n{logs}");
    }
}
