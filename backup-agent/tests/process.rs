//! The agent as a process: SIGKILL mid-backup, the run lock, out of space, the daemon and
//! SIGTERM, and the documented exit codes for usage errors and unreachable sources.
// Helpers outside #[test] functions panic on failure just as the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rustix::process::{kill_process, Pid, Signal};

fn spawn(args: &[&str]) -> Child {
    agent().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn signal(child: &Child, sig: Signal) {
    kill_process(Pid::from_raw(child.id() as i32).unwrap(), sig).unwrap();
}

/// Whether process `pid` has installed a SIGTERM handler (Linux: `SigCgt` in its status).
fn catches_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

/// Waits for the child to exit (deadline), returning its output.
fn finish(mut child: Child, timeout: Duration) -> Run {
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::from(child.wait_with_output().unwrap())
}

/// A data dir large enough that a rate-limited backup takes several seconds.
fn slow_source(tmp: &Path) -> String {
    let data = tmp.join("data");
    make_data_dir(&data, 150);
    s(&data)
}

#[test]
fn sigkill_mid_backup_leaves_no_final_archive_and_the_next_run_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = slow_source(tmp.path());
    let out = tmp.path().join("backups");
    let child = spawn(&["backup", "--data-dir", &data, "--out", &s(&out), "--limit-rate", "8K"]);
    // Mid-backup: the temporary archive exists and the agent is still streaming.
    assert!(wait_until(Duration::from_secs(20), || !partials(&out).is_empty()), "no temporary archive appeared");
    signal(&child, Signal::KILL);
    let killed = finish(child, Duration::from_secs(10));
    assert_eq!(killed.code, -1, "killed by a signal: {killed:?}");
    assert!(archives(&out).is_empty(), "a file with a final name exists after SIGKILL");
    assert_eq!(partials(&out).len(), 1, "the killed run's temporary file is there");

    let next = run(&["backup", "--data-dir", &data, "--out", &s(&out)]).expect(OK);
    assert!(partials(&out).is_empty(), "the next run removed the temporary file");
    assert_eq!(archives(&out).len(), 1);
    let logs = next.json_logs();
    assert!(
        logs.iter().any(|l| l["level"] == "WARN" && l["message"].as_str().unwrap().contains("temporary archive")),
        "{logs:?}"
    );
    run(&["verify", &s(&archives(&out)[0]), "--scratch-dir", &s(tmp.path())]).expect(OK);
}

#[test]
fn a_second_run_on_the_same_directory_exits_with_the_lock_code_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = slow_source(tmp.path());
    let out = tmp.path().join("backups");
    let first = spawn(&["backup", "--data-dir", &data, "--out", &s(&out), "--limit-rate", "8K"]);
    assert!(wait_until(Duration::from_secs(20), || !partials(&out).is_empty()));
    let started = Instant::now();
    let second = run(&["backup", "--data-dir", &data, "--out", &s(&out)]).expect(LOCK_HELD);
    assert!(started.elapsed() < Duration::from_secs(5), "the second run waited instead of failing");
    assert!(second.stdout.contains(&format!("pid {}", first.id())), "{}", second.stdout);
    // Prune and verify respect the lock too.
    run(&["prune", "--dir", &s(&out), "--keep-last", "1"]).expect(LOCK_HELD);
    // SIGTERM stops the first run cleanly: no final archive, no temporary file.
    signal(&first, Signal::TERM);
    let stopped = finish(first, Duration::from_secs(20));
    assert_eq!(stopped.code, 7, "{stopped:?}");
    assert!(archives(&out).is_empty());
    assert!(partials(&out).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_space_gives_its_exit_code_a_clear_message_and_no_partial_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = server(&data).await;
    let c = client();
    let token = admin_token(&data);
    for i in 0..60 {
        create_ticket(&c, &server.base_url(), &token, i).await;
    }
    let token_path = token_file(&data, tmp.path());
    let out = tmp.path().join("backups");
    std::fs::create_dir_all(&out).unwrap();
    let (base, out2, tp) = (server.base_url(), out.clone(), token_path.clone());
    // A file-size limit of 8 blocks (4 or 8 KiB, depending on the shell's unit) stands in
    // for a full disk: writes beyond it fail with EFBIG, as they would with ENOSPC.
    let r = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg("ulimit -f 8 && exec \"$0\" \"$@\"").arg(BIN);
        cmd.args(["backup", "--server", &base, "--token-file", &s(&tp), "--out", &s(&out2)]);
        cmd.env("BACKUP_AGENT_LOG_FORMAT", "json");
        Run::from(cmd.output().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(r.code, OUT_OF_SPACE, "{r:?}");
    assert!(r.stdout.contains("out of space"), "{}", r.stdout);
    assert!(archives(&out).is_empty(), "an archive was left under a final name");
    assert!(partials(&out).is_empty(), "the temporary file was not removed");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_backs_up_on_schedule_and_exits_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = server(&data).await;
    let c = client();
    let token = admin_token(&data);
    for i in 0..5 {
        create_ticket(&c, &server.base_url(), &token, i).await;
    }
    let token_path = token_file(&data, tmp.path());
    let out = tmp.path().join("backups");
    let child = spawn(&[
        "daemon",
        "--schedule",
        "*/1 * * * * *",
        "--server",
        &server.base_url(),
        "--token-file",
        &s(&token_path),
        "--out",
        &s(&out),
        "--prune",
        "--keep-last",
        "2",
    ]);
    let out2 = out.clone();
    let produced =
        tokio::task::spawn_blocking(move || wait_until(Duration::from_secs(30), || archives(&out2).len() >= 2))
            .await
            .unwrap();
    assert!(produced, "the daemon made no archives");
    signal(&child, Signal::TERM);
    let stopped = tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(20))).await.unwrap();
    assert_eq!(stopped.code, OK, "{stopped:?}");
    assert!(stopped.stdout.starts_with("daemon stopped:"), "{}", stopped.stdout);
    assert!(partials(&out).is_empty());
    // keep-last 2 pruned the older ones as it went.
    assert!(archives(&out).len() <= 3, "{:?}", archives(&out));
    server.stop().await.unwrap();
}

#[test]
fn the_daemon_exits_at_once_on_sigterm_while_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let child = spawn(&[
        "daemon",
        "--schedule",
        "0 0 2 1 1 *",
        "--data-dir",
        &s(tmp.path()),
        "--out",
        &s(&tmp.path().join("b")),
    ]);
    assert!(wait_until(Duration::from_secs(10), || catches_sigterm(child.id())), "no SIGTERM handler");
    let started = Instant::now();
    signal(&child, Signal::TERM);
    let r = finish(child, Duration::from_secs(10));
    assert_eq!(r.code, OK, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(r.json_logs().iter().any(|l| l["message"] == "waiting for the next scheduled backup"));
}

#[test]
fn usage_errors_exit_2_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = s(tmp.path());
    let r = run(&["prune", "--dir", &dir]).expect(USAGE);
    assert!(r.stdout.contains("empty policy"), "{}", r.stdout);
    let r = run(&["backup", "--data-dir", &dir, "--out", &dir, "--prune"]).expect(USAGE);
    assert!(r.stdout.contains("--prune needs a retention policy"), "{}", r.stdout);
    let r = run(&["backup", "--data-dir", &dir, "--out", &dir, "--keep-daily", "3"]).expect(USAGE);
    assert!(r.stdout.contains("without --prune"), "{}", r.stdout);
    let r = run(&["daemon", "--schedule", "0 2 * * *", "--data-dir", &dir, "--out", &dir]).expect(USAGE);
    assert!(r.stdout.contains("seconds field"), "{}", r.stdout);
    run(&["backup", "--out", &dir]).expect(USAGE); // no source: clap's own usage error
    run(&["backup", "--data-dir", &dir, "--out", &dir, "--level", "12"]).expect(USAGE);
    let r =
        run(&["backup", "--server", "http://127.0.0.1:1", "--token-file", "/nonexistent", "--out", &dir]).expect(USAGE);
    assert!(r.stdout.contains("token file"), "{}", r.stdout);
    assert!(archives(tmp.path()).is_empty());
    let help = run(&["--help"]).expect(OK);
    assert!(help.stdout.contains("Exit codes:") && help.stdout.contains("6  out of space"), "{}", help.stdout);
}

#[test]
fn an_unreachable_server_or_missing_database_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let token = tmp.path().join("token");
    std::fs::write(&token, "x").unwrap();
    let out = tmp.path().join("b");
    let r = run(&[
        "backup",
        "--server",
        &format!("http://127.0.0.1:{port}"),
        "--token-file",
        &s(&token),
        "--out",
        &s(&out),
        "--connect-timeout",
        "2s",
    ])
    .expect(SOURCE_UNREACHABLE);
    assert!(r.stdout.contains("cannot reach the server"), "{}", r.stdout);
    let r =
        run(&["backup", "--data-dir", &s(&tmp.path().join("nothing")), "--out", &s(&out)]).expect(SOURCE_UNREACHABLE);
    assert!(r.stdout.contains("no database at"), "{}", r.stdout);
    assert!(archives(&out).is_empty() && partials(&out).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_a_server_held_database_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = server(&data).await;
    let bad = tmp.path().join("bad-token");
    std::fs::write(&bad, "not-the-token\n").unwrap();
    let out = tmp.path().join("b");
    let r = run_async(
        ["backup", "--server", &server.base_url(), "--token-file", &s(&bad), "--out", &s(&out)]
            .map(String::from)
            .to_vec(),
    )
    .await
    .expect(SOURCE_UNREACHABLE);
    assert!(r.stdout.contains("401") && r.stdout.contains("token was not accepted"), "{}", r.stdout);

    // Offline mode on a database a server holds: a clear error and the lock code.
    let r = run_async(["backup", "--data-dir", &s(&data), "--out", &s(&out)].map(String::from).to_vec())
        .await
        .expect(LOCK_HELD);
    assert!(r.stdout.contains("locked by another process") && r.stdout.contains("--server"), "{}", r.stdout);
    // Restore into the directory of a running server is refused, even with --force.
    let archive_dir = tmp.path().join("a");
    let src = tmp.path().join("src");
    make_data_dir(&src, 3);
    run(&["backup", "--data-dir", &s(&src), "--out", &s(&archive_dir)]).expect(OK);
    let archive = archives(&archive_dir).pop().unwrap();
    let r = run_async(["restore", &s(&archive), "--data-dir", &s(&data), "--force"].map(String::from).to_vec())
        .await
        .expect(LOCK_HELD);
    assert!(r.stdout.contains("stop the server"), "{}", r.stdout);
    assert!(archives(&out).is_empty());
    server.stop().await.unwrap();
}

#[test]
fn restore_refuses_a_non_empty_directory_without_force_and_moves_the_old_database_aside_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_data_dir(&src, 7);
    let backups = tmp.path().join("b");
    run(&["backup", "--data-dir", &s(&src), "--out", &s(&backups)]).expect(OK);
    let archive = archives(&backups).pop().unwrap();

    let target = tmp.path().join("target");
    make_data_dir(&target, 2);
    let r = run(&["restore", &s(&archive), "--data-dir", &s(&target)]).expect(USAGE);
    assert!(r.stdout.contains("not empty") && r.stdout.contains("--force"), "{}", r.stdout);
    let before = helpdesk_core::Helpdesk::open(target.join("db"), helpdesk_core::Config::default()).unwrap();
    assert_eq!(before.stats().unwrap().total, 2, "the refused restore changed the target");
    drop(before);
    std::thread::sleep(Duration::from_millis(200)); // sled releases its lock asynchronously

    let r = run(&["restore", &s(&archive), "--data-dir", &s(&target), "--force"]).expect(OK);
    assert!(r.stdout.contains("previous database moved to"), "{}", r.stdout);
    let aside: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("db.before-restore-"))
        .collect();
    assert_eq!(aside.len(), 1);
    let restored = helpdesk_core::Helpdesk::open(target.join("db"), helpdesk_core::Config::default()).unwrap();
    assert_eq!(restored.stats().unwrap().total, 7);
    let old = helpdesk_core::Helpdesk::open(aside[0].path(), helpdesk_core::Config::default()).unwrap();
    assert_eq!(old.stats().unwrap().total, 2, "the old database was kept intact");
}

/// Serves one HTTP response with `body` (cut off abruptly when `abort`), then stops.
fn one_shot_server(body: Vec<u8>, abort: bool) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = conn.read(&mut request);
        let length = if abort { body.len() * 2 } else { body.len() };
        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ncontent-length: {length}\r\n\r\n");
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(&body);
        // Dropping the connection ends the response early when `abort`.
    });
    (url, handle)
}

#[test]
fn a_snapshot_stream_cut_short_leaves_no_archive() {
    let desk = helpdesk_core::Helpdesk::temporary(helpdesk_core::Config::default()).unwrap();
    common::fill(&desk, 20);
    let mut snapshot = Vec::new();
    desk.export(&mut snapshot).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let out = tmp.path().join("b");

    // The connection drops in the middle of the body.
    let (url, server) = one_shot_server(snapshot[..snapshot.len() / 2].to_vec(), true);
    let r =
        run(&["backup", "--server", &url, "--token-file", &s(&token), "--out", &s(&out)]).expect(SOURCE_UNREACHABLE);
    server.join().unwrap();
    assert!(r.stdout.contains("no archive was written"), "{}", r.stdout);

    // A complete HTTP response whose snapshot lacks its end record (an export that failed).
    let last_line = snapshot[..snapshot.len() - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let (url, server) = one_shot_server(snapshot[..last_line].to_vec(), false);
    let r =
        run(&["backup", "--server", &url, "--token-file", &s(&token), "--out", &s(&out)]).expect(SOURCE_UNREACHABLE);
    server.join().unwrap();
    assert!(r.stdout.contains("without its end record"), "{}", r.stdout);
    assert!(archives(&out).is_empty() && partials(&out).is_empty());
}
