//! The backup directory: archive names, the run lock, verification records, leftover
//! temporary files, and the durable-write helpers (fsync of files and directories).
//!
//! ```text
//! <dir>/helpdesk-20261123T020000.123Z.tar.gz                an archive (final name)
//! <dir>/helpdesk-20261123T020000.123Z.tar.gz.verify.json    its last verification result
//! <dir>/.helpdesk-20261123T020000.123Z.tar.gz.partial       an archive being written
//! <dir>/.backup-agent.lock                                  flock'ed by the running command
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Archive names start with this.
pub const PREFIX: &str = "helpdesk-";
/// Archive names end with this.
pub const SUFFIX: &str = ".tar.gz";
/// Temporary archives end with this (and start with a dot).
pub const PARTIAL_SUFFIX: &str = ".partial";
/// Verification records: the archive name plus this.
pub const STATE_SUFFIX: &str = ".verify.json";
/// The lock file.
pub const LOCK_FILE: &str = ".backup-agent.lock";
const TIME_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";

/// The final file name of an archive made at `time`.
pub fn archive_name(time: DateTime<Utc>) -> String {
    format!("{PREFIX}{}{SUFFIX}", time.format(TIME_FORMAT))
}

/// The time in an archive's file name, if it is one.
pub fn parse_archive_name(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    NaiveDateTime::parse_from_str(stamp, TIME_FORMAT).ok().map(|t| t.and_utc())
}

/// The recorded outcome of the last `verify` of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyState {
    /// When it was verified (RFC 3339).
    pub verified_at: String,
    /// Whether it passed.
    pub ok: bool,
    /// Archive size at the time, so a changed file is noticed.
    pub archive_size: u64,
    /// Tickets restored by the restore test (when it passed).
    pub tickets: Option<u64>,
    /// What failed, or a short summary.
    pub detail: String,
}

/// One archive found in the directory.
#[derive(Debug, Clone)]
pub struct ArchiveEntry {
    /// Full path.
    pub path: PathBuf,
    /// File name.
    pub name: String,
    /// Time from the name.
    pub time: DateTime<Utc>,
    /// Size in bytes.
    pub size: u64,
    /// Last verification, if any (ignored when the archive's size changed since).
    pub state: Option<VerifyState>,
}

impl ArchiveEntry {
    /// Whether the last verification passed and the file is unchanged in size since.
    pub fn verified(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.ok && s.archive_size == self.size)
    }
}

/// The verification record path of an archive.
pub fn state_path(archive: &Path) -> PathBuf {
    let mut name = archive.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(STATE_SUFFIX);
    archive.with_file_name(name)
}

/// Reads an archive's verification record (absent or unreadable: `None`).
pub fn read_state(archive: &Path) -> Option<VerifyState> {
    let body = fs::read(state_path(archive)).ok()?;
    serde_json::from_slice(&body).ok()
}

/// Writes an archive's verification record durably.
pub fn write_state(archive: &Path, state: &VerifyState) -> Result<()> {
    let body = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::io("encode the verification record", io::Error::other(e)))?;
    write_atomic(&state_path(archive), &body)
}

/// Every archive in `dir`, newest first. Other files are ignored.
pub fn list_archives(dir: &Path) -> Result<Vec<ArchiveEntry>> {
    let read =
        fs::read_dir(dir).map_err(|e| Error::io(format!("cannot read the backup directory {}", dir.display()), e))?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| Error::io(format!("cannot read the backup directory {}", dir.display()), e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        let Some(time) = parse_archive_name(&name) else { continue };
        let meta = entry.metadata().map_err(|e| Error::io(format!("cannot stat {name}"), e))?;
        if !meta.is_file() {
            continue;
        }
        let path = entry.path();
        let state = read_state(&path);
        out.push(ArchiveEntry { path, name, time, size: meta.len(), state });
    }
    out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.name.cmp(&a.name)));
    Ok(out)
}

/// Removes temporary archives a killed run left behind. Call only while holding the lock.
pub fn clean_partials(dir: &Path) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let read =
        fs::read_dir(dir).map_err(|e| Error::io(format!("cannot read the backup directory {}", dir.display()), e))?;
    for entry in read.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        let leftover = (name.starts_with(&format!(".{PREFIX}")) && name.ends_with(PARTIAL_SUFFIX))
            || (name.starts_with('.') && name.ends_with(".tmp") && name.contains(STATE_SUFFIX));
        if leftover {
            fs::remove_file(entry.path()).map_err(|e| Error::io(format!("cannot remove the leftover {name}"), e))?;
            removed.push(name);
        }
    }
    if !removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// An exclusive, non-blocking lock on the backup directory, held until dropped. The kernel
/// releases it when the process dies, so a killed run never leaves a stale lock.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock or fails at once with [`Error::LockHeld`] naming the holder's pid.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::write(&path, e))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() { String::new() } else { format!(" (pid {holder})") };
                return Err(Error::LockHeld(format!(
                    "another backup-agent run{who} holds the lock on {}; try again when it has finished",
                    dir.display()
                )));
            }
            Err(e) => return Err(Error::io(format!("cannot lock {}", path.display()), e.into())),
        }
        file.set_len(0).map_err(|e| Error::write(&path, e))?;
        write!(file, "{}", std::process::id()).map_err(|e| Error::write(&path, e))?;
        Ok(DirLock { _file: file })
    }
}

/// fsyncs a directory, making renames and removals in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot fsync the directory {}", dir.display()), e))
}

/// Writes `body` to `path` so that `path` only ever holds the old or the new content:
/// temporary file, fsync, rename, directory fsync.
pub fn write_atomic(path: &Path, body: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::write(path, e));
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_round_trip_with_milliseconds() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 2, 15, 0).unwrap() + chrono::Duration::milliseconds(123);
        let name = archive_name(t);
        assert_eq!(name, "helpdesk-20261123T021500.123Z.tar.gz");
        assert_eq!(parse_archive_name(&name), Some(t));
        assert_eq!(parse_archive_name("helpdesk-2026.tar.gz"), None);
        assert_eq!(parse_archive_name(&format!("{name}{STATE_SUFFIX}")), None);
        assert_eq!(parse_archive_name(&format!(".{name}{PARTIAL_SUFFIX}")), None);
    }

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let err = DirLock::acquire(dir.path()).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::LOCK_HELD);
        assert!(err.to_string().contains(&format!("pid {}", std::process::id())), "{err}");
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn listing_is_newest_first_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "helpdesk-20260101T000000.000Z.tar.gz",
            "helpdesk-20260301T000000.000Z.tar.gz",
            "helpdesk-20260201T000000.000Z.tar.gz",
            "notes.txt",
            ".helpdesk-20260401T000000.000Z.tar.gz.partial",
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let names: Vec<_> = list_archives(dir.path()).unwrap().into_iter().map(|a| a.name).collect();
        assert_eq!(
            names,
            [
                "helpdesk-20260301T000000.000Z.tar.gz",
                "helpdesk-20260201T000000.000Z.tar.gz",
                "helpdesk-20260101T000000.000Z.tar.gz"
            ]
        );
        assert_eq!(clean_partials(dir.path()).unwrap(), [".helpdesk-20260401T000000.000Z.tar.gz.partial"]);
        assert!(dir.path().join("notes.txt").exists());
    }
}
