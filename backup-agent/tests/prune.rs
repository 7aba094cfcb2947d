//! `prune` on synthetic archive sets spanning months: keep/remove with reasons in
//! `--dry-run`, the files removed (with their verification records), and the newest
//! verified archive protected whatever the policy says.

// Helpers outside #[test] functions panic on failure just as the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use chrono::{Duration, TimeZone, Utc};
use common::*;

/// Nightly archives (empty files: prune only reads names and records) from `days` days.
fn nightlies(dir: &Path, start: chrono::DateTime<Utc>, days: i64) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    (0..days)
        .map(|d| {
            let name = backup_agent::store::archive_name(start + Duration::days(d));
            std::fs::write(dir.join(&name), b"").unwrap();
            name
        })
        .collect()
}

fn mark_verified(dir: &Path, name: &str) {
    let state = backup_agent::store::VerifyState {
        verified_at: "2026-03-01T00:00:00Z".into(),
        ok: true,
        archive_size: 0,
        tickets: Some(1),
        detail: "test".into(),
    };
    backup_agent::store::write_state(&dir.join(name), &state).unwrap();
}

fn present(dir: &Path) -> Vec<String> {
    archives(dir).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

#[test]
fn dry_run_prints_keep_and_remove_with_reasons_and_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    // 2026-01-01 .. 2026-03-31 at 02:00, 90 archives.
    let names = nightlies(&dir, Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap(), 90);
    let r = run(&[
        "prune",
        "--dir",
        &s(&dir),
        "--dry-run",
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
        "--keep-monthly",
        "3",
    ])
    .expect(OK);
    assert_eq!(present(&dir).len(), 90, "a dry run removed files");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 91, "{}", r.stdout);
    let newest = lines.iter().find(|l| l.contains(&names[89])).unwrap();
    assert!(
        newest.starts_with("keep ") && newest.contains("(daily snapshot, weekly snapshot, monthly snapshot)"),
        "{newest}"
    );
    let feb = lines.iter().find(|l| l.contains("helpdesk-20260228T020000.000Z")).unwrap();
    assert!(feb.starts_with("keep ") && feb.contains("(monthly snapshot)"), "{feb}");
    let gone = lines.iter().find(|l| l.contains("helpdesk-20260324T020000.000Z")).unwrap();
    assert!(gone.starts_with("would remove"), "{gone}");
    assert!(lines[90].starts_with("prune (dry run): kept 11, would remove 79"), "{}", lines[90]);
}

#[test]
fn prune_removes_archives_and_their_records_and_protects_the_newest_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    let names = nightlies(&dir, Utc.with_ymd_and_hms(2026, 5, 1, 2, 0, 0).unwrap(), 10);
    // Only an older archive passed verification; keep-last 2 would remove it.
    mark_verified(&dir, &names[4]);
    mark_verified(&dir, &names[1]);
    std::fs::write(dir.join("README.txt"), "not an archive").unwrap();
    let r = run(&["prune", "--dir", &s(&dir), "--keep-last", "2"]).expect(OK);
    assert_eq!(present(&dir), [names[4].clone(), names[8].clone(), names[9].clone()]);
    let protected = r.stdout.lines().find(|l| l.contains(&names[4])).unwrap();
    assert!(protected.contains("newest verified archive (never removed)"), "{protected}");
    assert!(dir.join(format!("{}.verify.json", names[4])).exists());
    assert!(!dir.join(format!("{}.verify.json", names[1])).exists(), "the record of a removed archive stays");
    assert!(dir.join("README.txt").exists());
    assert!(r.stdout.lines().last().unwrap().starts_with("prune: kept 3, removed 7"), "{}", r.stdout);
}

#[test]
fn keep_within_counts_from_the_newest_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    let names = nightlies(&dir, Utc.with_ymd_and_hms(2025, 1, 1, 2, 0, 0).unwrap(), 30);
    // The newest archive is from 2025-01-30 02:00, long before now: within 3d still keeps
    // 01-28, 01-29 and 01-30; 01-27 02:00 is exactly 3 days older, so it goes.
    run(&["prune", "--dir", &s(&dir), "--keep-within", "3d"]).expect(OK);
    assert_eq!(present(&dir), [names[27].clone(), names[28].clone(), names[29].clone()]);
}
