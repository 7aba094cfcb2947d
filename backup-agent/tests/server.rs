//! Against a real helpdesk-server on 127.0.0.1: backup, list, verify, restore, serve the
//! restored directory and find every ticket and its history; and a backup taken while
//! writers run.
// Helpers outside #[test] functions panic on failure just as the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_list_verify_restore_and_serve_every_ticket_with_its_history() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, backups, restored) = (tmp.path().join("data"), tmp.path().join("backups"), tmp.path().join("restored"));
    let server = server(&data).await;
    let base = server.base_url();
    let token = admin_token(&data);
    let c = client();

    let mut ids = Vec::new();
    for i in 0..24 {
        let (id, _) = create_ticket(&c, &base, &token, i).await;
        if i % 2 == 0 {
            patch(&c, &base, &token, id, json!({"status": "in_progress", "assigned_to": "grace"})).await;
            comment(&c, &base, &token, id, &format!("on site at {i}")).await;
        }
        if i % 3 == 0 {
            patch(&c, &base, &token, id, json!({"status": "resolved", "resolution_notes": "rollers replaced"})).await;
        }
        ids.push(id);
    }
    let token_path = token_file(&data, tmp.path());

    let b = run_async(vec![
        "backup".into(),
        "--server".into(),
        base.clone(),
        "--token-file".into(),
        s(&token_path),
        "--out".into(),
        s(&backups),
    ])
    .await
    .expect(OK);
    assert!(b.stdout.starts_with("backup ok:"), "{}", b.stdout);
    assert!(b.stdout.contains("24 tickets"), "{}", b.stdout);
    assert_eq!(b.stdout.lines().count(), 1, "one summary line: {}", b.stdout);
    let logs = b.json_logs();
    assert!(logs.iter().any(|l| l["message"] == "backup written" && l["tickets"] == 24), "{logs:?}");
    // The token never reaches the logs or the archive's manifest.
    assert!(!b.stderr.contains(&token));
    let archive = archives(&backups).pop().expect("one archive");
    assert!(partials(&backups).is_empty());

    let l = run(&["list", "--dir", &s(&backups)]).expect(OK);
    let name = archive.file_name().unwrap().to_str().unwrap();
    let row = l.stdout.lines().find(|r| r.starts_with(name)).unwrap_or_else(|| panic!("{}", l.stdout));
    assert!(row.contains(" 24 ") && row.trim_end().ends_with("no"), "{row}");
    let lj = run(&["list", "--dir", &s(&backups), "--json"]).expect(OK);
    let first: Value = serde_json::from_str(lj.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["tickets"], 24);
    assert_eq!(first["verified"], false);

    let v = run(&["verify", "--dir", &s(&backups), "--scratch-dir", &s(tmp.path())]).expect(OK);
    assert!(v.stdout.contains("ok      helpdesk-"), "{}", v.stdout);
    let l = run(&["list", "--dir", &s(&backups)]).expect(OK);
    assert!(l.stdout.lines().any(|r| r.starts_with(name) && r.contains("yes (")), "{}", l.stdout);

    let r = run(&["restore", &s(&archive), "--data-dir", &s(&restored)]).expect(OK);
    assert!(r.stdout.contains("24 tickets") && r.stdout.contains("core verify clean"), "{}", r.stdout);

    // Serve the restored directory and compare every ticket and its history.
    let second = helpdesk_server_on(&restored).await;
    let token2 = admin_token(&restored);
    for id in &ids {
        let (s1, t1) = get_json(&c, format!("{base}/api/v1/tickets/{id}"), &token).await;
        let (s2, t2) = get_json(&c, format!("{}/api/v1/tickets/{id}", second.base_url()), &token2).await;
        assert_eq!((s1, s2), (200, 200));
        assert_eq!(t1, t2, "ticket {id}");
        let (_, h1) = get_json(&c, format!("{base}/api/v1/tickets/{id}/history"), &token).await;
        let (_, h2) = get_json(&c, format!("{}/api/v1/tickets/{id}/history", second.base_url()), &token2).await;
        assert_eq!(h1, h2, "history of {id}");
        assert!(h2.to_string().contains("created") || h2.as_array().is_some_and(|a| !a.is_empty()), "{h2}");
    }
    let (_, m1) = get_json(&c, format!("{base}/api/v1/metrics"), &token).await;
    let (_, m2) = get_json(&c, format!("{}/api/v1/metrics", second.base_url()), &token2).await;
    assert_eq!(m1["total"], m2["total"]);
    assert_eq!(m1["by_status"], m2["by_status"]);
    // New tickets continue the id sequence instead of reusing an id.
    let (next_id, _) = create_ticket(&c, &second.base_url(), &token2, 99).await;
    assert_eq!(next_id, ids.last().unwrap() + 1);
    second.stop().await.unwrap();
    server.stop().await.unwrap();
}

async fn helpdesk_server_on(dir: &std::path::Path) -> helpdesk_server::Running {
    server(dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_writers_run_holds_every_acknowledged_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, backups, restored) = (tmp.path().join("data"), tmp.path().join("backups"), tmp.path().join("restored"));
    let server = server(&data).await;
    let base = server.base_url();
    let token = admin_token(&data);
    let token_path = token_file(&data, tmp.path());
    let c = client();
    for i in 0..30 {
        create_ticket(&c, &base, &token, i).await;
    }

    // Writers create and update tickets through the server and record what it acknowledged.
    let acked: Arc<Mutex<BTreeMap<u64, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..3 {
        let (c, base, token, acked, stop, ops) =
            (c.clone(), base.clone(), token.clone(), acked.clone(), stop.clone(), ops.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 1000 * (w + 1);
            while !stop.load(Ordering::Relaxed) {
                let (id, v) = create_ticket(&c, &base, &token, i).await;
                acked.lock().unwrap().insert(id, v);
                let v = patch(&c, &base, &token, id, json!({"priority": "high", "tags": ["printer", "urgent"]})).await;
                acked.lock().unwrap().insert(id, v);
                ops.fetch_add(2, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    // Let the writers get going, then take the backup while they keep writing.
    assert!(wait_until(Duration::from_secs(20), || ops.load(Ordering::Relaxed) >= 20));
    let before: BTreeMap<u64, u64> = acked.lock().unwrap().clone();
    let ops_at_start = ops.load(Ordering::Relaxed);
    let b = run_async(vec![
        "backup".into(),
        "--server".into(),
        base.clone(),
        "--token-file".into(),
        s(&token_path),
        "--out".into(),
        s(&backups),
        // Slow the transfer down so that the writers demonstrably overlap with it.
        "--limit-rate".into(),
        "64K".into(),
    ])
    .await;
    let ops_during = ops.load(Ordering::Relaxed) - ops_at_start;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    b.expect(OK);
    assert!(ops_during > 0, "the writers did not run during the backup");

    let archive = archives(&backups).pop().unwrap();
    run(&["restore", &s(&archive), "--data-dir", &s(&restored)]).expect(OK);
    server.stop().await.unwrap();

    // The restored database passes the core's verify and holds every change acknowledged
    // before the backup began (at least that version of each ticket).
    let desk = helpdesk_core::Helpdesk::open(restored.join("db"), helpdesk_core::Config::default()).unwrap();
    let report = desk.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    for (id, version) in &before {
        let t = desk.get(helpdesk_core::TicketId(*id)).unwrap_or_else(|e| panic!("ticket {id} lost: {e}"));
        assert!(t.version >= *version, "ticket {id}: restored version {} < acknowledged {version}", t.version);
        assert_eq!(desk.history(t.id).unwrap().len() as u64, t.version);
    }
    assert!(report.tickets >= before.len() as u64 + 30);
}
