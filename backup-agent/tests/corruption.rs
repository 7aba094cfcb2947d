//! Damaged archives: a byte flipped at 20 random offsets, and truncations. `verify` must fail
//! every time with a message that says what is wrong, and `restore` must refuse the archive
//! and leave no database behind. Plus: the format is a plain tar.gz that GNU tar reads.
// Helpers outside #[test] functions panic on failure just as the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// An offline backup of a fresh database with history, plus a log file.
fn make_archive(tmp: &Path) -> PathBuf {
    let data = tmp.join("data");
    make_data_dir(&data, 40);
    let logs = tmp.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("server.log"), "{\"level\":\"INFO\",\"message\":\"started\"}\n".repeat(50)).unwrap();
    let out = tmp.join("backups");
    run(&["backup", "--data-dir", &s(&data), "--out", &s(&out), "--include-logs", &s(&logs)]).expect(OK);
    archives(&out).pop().unwrap()
}

/// Copies `archive` (same file name) into a fresh directory and applies `damage`.
fn damaged_copy(archive: &Path, dir: &Path, damage: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut bytes = std::fs::read(archive).unwrap();
    damage(&mut bytes);
    let path = dir.join(archive.file_name().unwrap());
    std::fs::write(&path, bytes).unwrap();
    path
}

fn assert_refused(archive: &Path, scratch: &Path, what: &str) {
    let v = run(&["verify", &s(archive), "--scratch-dir", &s(scratch)]);
    assert_eq!(v.code, VERIFICATION_FAILED, "verify of {what} must fail; stdout:\n{}\nstderr:\n{}", v.stdout, v.stderr);
    let line = v.stdout.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("verify failed (exit 5, verification_failed):") && line.contains("helpdesk-"),
        "{what}: the summary must name the archive and the problem: {line}"
    );
    // The message says what is wrong, not just that something is.
    let reasons = [
        "gzip",
        "damaged",
        "truncated",
        "sha256",
        "checksum",
        "corrupt",
        "invalid",
        "manifest",
        "header",
        "differ",
        "unexpected",
        "size",
    ];
    assert!(reasons.iter().any(|r| line.contains(r)), "{what}: vague message: {line}");
    // The failure is recorded for `list`.
    let state = std::fs::read_to_string(format!("{}.verify.json", archive.display())).unwrap();
    assert!(state.contains("\"ok\": false"), "{state}");

    let target = archive.with_extension("restored");
    let r = run(&["restore", &s(archive), "--data-dir", &s(&target)]);
    assert_eq!(
        r.code, VERIFICATION_FAILED,
        "restore of {what} must be refused; stdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
    assert!(!target.join("db").exists(), "{what}: restore left a database behind");
    let leftovers: Vec<_> = std::fs::read_dir(&target).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(leftovers.is_empty(), "{what}: restore left {leftovers:?}");
}

#[test]
fn a_flipped_byte_anywhere_fails_verify_and_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = make_archive(tmp.path());
    let len = std::fs::metadata(&archive).unwrap().len() as usize;
    run(&["verify", &s(&archive), "--scratch-dir", &s(tmp.path())]).expect(OK);

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x4b1d);
    for round in 0..20 {
        let offset = rng.gen_range(0..len);
        let mask: u8 = rng.gen_range(1..=255);
        let copy = damaged_copy(&archive, &tmp.path().join(format!("flip{round}")), |b| b[offset] ^= mask);
        assert_refused(&copy, tmp.path(), &format!("byte {offset} ^ {mask:#04x} (of {len})"));
    }
}

#[test]
fn every_structural_byte_is_checked() {
    // Offsets random sampling could miss: the gzip header fields no CRC covers (MTIME, XFL,
    // OS of each member), the extra field with the manifest offset, the last byte.
    let tmp = tempfile::tempdir().unwrap();
    let archive = make_archive(tmp.path());
    let bytes = std::fs::read(&archive).unwrap();
    let len = bytes.len();
    let head = backup_agent::archive::head_len() as usize;
    let offset_c = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
    let mut offsets = vec![4, 8, 9, 12, 16, 20, 24, head - 1];
    offsets.extend([head + 4, head + 8, head + 9, offset_c + 4, offset_c + 8, offset_c + 9, len - 1, len - 5]);
    for (i, offset) in offsets.into_iter().enumerate() {
        let copy = damaged_copy(&archive, &tmp.path().join(format!("s{i}")), |b| b[offset] ^= 0x01);
        assert_refused(&copy, tmp.path(), &format!("structural byte {offset}"));
    }
}

#[test]
fn truncated_and_extended_archives_fail_verify_and_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = make_archive(tmp.path());
    let len = std::fs::metadata(&archive).unwrap().len() as usize;
    for (i, keep) in [len - 1, len - 9, len / 2, 600, 20, 0].into_iter().enumerate() {
        let copy = damaged_copy(&archive, &tmp.path().join(format!("t{i}")), |b| b.truncate(keep));
        assert_refused(&copy, tmp.path(), &format!("truncated to {keep} of {len}"));
    }
    let copy = damaged_copy(&archive, &tmp.path().join("appended"), |b| b.extend_from_slice(b"garbage"));
    assert_refused(&copy, tmp.path(), "garbage appended");
}

#[test]
fn the_archive_is_a_plain_tar_gz_that_gnu_tar_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = make_archive(tmp.path());
    let out = tmp.path().join("x");
    std::fs::create_dir_all(&out).unwrap();
    let status = std::process::Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(&out).status().unwrap();
    assert!(status.success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "helpdesk-backup");
    assert_eq!(manifest["ticket_count"], 40);
    assert_eq!(manifest["source"]["kind"], "data_dir");
    for member in manifest["members"].as_array().unwrap() {
        let body = std::fs::read(out.join(member["name"].as_str().unwrap())).unwrap();
        assert_eq!(body.len() as u64, member["size"].as_u64().unwrap());
        let digest: String = Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, member["sha256"].as_str().unwrap(), "{}", member["name"]);
    }
    let names: Vec<_> = manifest["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["snapshot.jsonl", "logs/server.log"]);
    // `tar -t` lists the members in archive order, manifest last.
    let listing = std::process::Command::new("tar").arg("-tzf").arg(&archive).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&listing.stdout), "snapshot.jsonl\nlogs/server.log\nmanifest.json\n");
}
