//! `verify` and `restore`: both read an archive in one pass, checking every byte
//! ([`crate::archive::check`]) while the snapshot is imported into a database by the core's
//! `import`, then run the core's `verify` (fsck) on the result. `verify` does this in a
//! throw-away database; `restore` in a staging directory inside the target that becomes
//! `<data_dir>/db` only once everything passed.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use helpdesk_core::{Config, Durability, Helpdesk, SnapshotSummary};

use crate::archive::{self, Manifest};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::shutdown::Shutdown;
use crate::store;

/// The outcome of a successful restore test or restore.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The archive's manifest.
    pub manifest: Manifest,
    /// Tickets imported.
    pub tickets: u64,
    /// Events imported.
    pub events: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Fails reads once a stop was requested, so a long import ends promptly.
struct Interruptible<'a, R> {
    inner: R,
    shutdown: &'a Shutdown,
}

impl<R: Read> Read for Interruptible<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.shutdown.is_triggered() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "stop requested"));
        }
        self.inner.read(buf)
    }
}

/// Imports the archive into a new database at `db` and checks both. The database is left
/// in place (open handle dropped) on success; on failure the caller discards it.
fn import_and_check(
    archive: &Path,
    db: &Path,
    shutdown: &Shutdown,
    progress: Progress,
    what: &str,
) -> Result<Restored> {
    let started = Instant::now();
    // Relaxed: the import flushes explicitly at its end; nothing is acknowledged to anyone
    // before that.
    let desk = Helpdesk::open(db, Config::default().durability(Durability::Relaxed))
        .map_err(|e| Error::core(format!("cannot create the database at {}", db.display()), e))?;
    let bar = progress.bar(what);
    let checked = archive::check(archive, &bar, |reader| -> Result<SnapshotSummary> {
        let mut reader = Interruptible { inner: reader, shutdown };
        desk.import(&mut reader).map_err(|e| {
            if shutdown.is_triggered() {
                Error::Interrupted
            } else {
                Error::core(format!("import into {}", db.display()), e)
            }
        })
    });
    bar.finish_and_clear();
    let checked = checked?;
    let summary = checked.consumed;
    if summary.tickets != checked.snapshot.tickets || summary.events != checked.snapshot.events {
        return Err(Error::Verification(format!(
            "{}: the import restored {} tickets and {} events, the archive holds {} and {}",
            archive.display(),
            summary.tickets,
            summary.events,
            checked.snapshot.tickets,
            checked.snapshot.events
        )));
    }
    let report =
        desk.verify().map_err(|e| Error::core(format!("verify of the restored database {}", db.display()), e))?;
    if !report.is_clean() {
        let first: Vec<String> =
            report.problems.iter().take(5).map(|p| format!("{:?} at {}: {}", p.kind, p.key, p.detail)).collect();
        return Err(Error::Verification(format!(
            "{}: the restored database fails the core's verify with {} problem(s): {}",
            archive.display(),
            report.problem_count,
            first.join("; ")
        )));
    }
    drop(desk);
    Ok(Restored {
        manifest: checked.manifest,
        tickets: summary.tickets,
        events: summary.events,
        elapsed: started.elapsed(),
    })
}

/// Verifies one archive: every checksum, then a restore test into a temporary database in
/// `scratch` followed by the core's `verify`. Records the outcome next to the archive
/// (`<archive>.verify.json`) — the caller must hold the directory lock.
pub fn verify_archive(archive: &Path, scratch: &Path, shutdown: &Shutdown, progress: Progress) -> Result<Restored> {
    let size = fs::metadata(archive).map_err(|e| Error::io(format!("cannot open {}", archive.display()), e))?.len();
    fs::create_dir_all(scratch).map_err(|e| Error::write(scratch, e))?;
    let tmp = tempfile::Builder::new()
        .prefix("backup-agent-verify-")
        .tempdir_in(scratch)
        .map_err(|e| Error::write(scratch, e))?;
    let name = archive.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let result = import_and_check(archive, &tmp.path().join("db"), shutdown, progress, &format!("verify {name}"));
    drop(tmp);
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let state = match &result {
        Ok(r) => store::VerifyState {
            verified_at: now,
            ok: true,
            archive_size: size,
            tickets: Some(r.tickets),
            detail: format!("restored {} tickets and {} events; core verify clean", r.tickets, r.events),
        },
        Err(e @ Error::Verification(_)) => {
            store::VerifyState { verified_at: now, ok: false, archive_size: size, tickets: None, detail: e.to_string() }
        }
        // A stop request, a full scratch disk or another local failure says nothing about
        // the archive itself: no record.
        Err(_) => return result,
    };
    // The verdict stands even if it cannot be recorded (a read-only mount, say).
    if let Err(e) = store::write_state(archive, &state) {
        tracing::warn!(archive = %archive.display(), error = %e, "cannot record the verification result");
    }
    result
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The restore itself.
    pub restored: Restored,
    /// The database directory now holding the restored data.
    pub db: PathBuf,
    /// Where a previous database was moved (with `--force`).
    pub moved_aside: Option<PathBuf>,
}

const STAGING_PREFIX: &str = ".restore-";

/// Restores `archive` into `data_dir` (as `<data_dir>/db`, the layout helpdesk-server uses).
/// Refuses a non-empty `data_dir` unless `force`, and always refuses while a server holds
/// the database there. With `force`, an existing database is moved aside (never deleted).
pub fn restore(
    archive: &Path,
    data_dir: &Path,
    force: bool,
    shutdown: &Shutdown,
    progress: Progress,
) -> Result<RestoreReport> {
    if !archive.is_file() {
        return Err(Error::Usage(format!("{} is not an archive file", archive.display())));
    }
    fs::create_dir_all(data_dir).map_err(|e| Error::write(data_dir, e))?;
    let db = data_dir.join("db");
    let db_populated = fs::read_dir(&db).map(|mut d| d.next().is_some()).unwrap_or(false);
    if db_populated {
        // The engine's own open is the lock probe: it fails with Locked while a server runs.
        match Helpdesk::open(&db, Config::default()) {
            Err(e @ helpdesk_core::Error::Locked { .. }) => {
                return Err(Error::LockHeld(format!(
                    "{e}; stop the server before restoring into {}",
                    data_dir.display()
                )))
            }
            Ok(desk) => drop(desk),
            Err(_) => {} // unreadable: it is still "something there", handled below
        }
    }
    // Staging directories of a restore that was killed are ours to remove.
    let mut present = Vec::new();
    for entry in fs::read_dir(data_dir).map_err(|e| Error::io(format!("cannot read {}", data_dir.display()), e))? {
        let entry = entry.map_err(|e| Error::io(format!("cannot read {}", data_dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(STAGING_PREFIX) {
            tracing::warn!(dir = %name, "removing the staging directory of an interrupted restore");
            fs::remove_dir_all(entry.path()).map_err(|e| Error::io(format!("cannot remove {name}"), e))?;
        } else {
            present.push(name);
        }
    }
    if !present.is_empty() && !force {
        present.sort();
        return Err(Error::Usage(format!(
            "{} is not empty ({}); restore into an empty directory, or pass --force to move the current database aside",
            data_dir.display(),
            present.join(", ")
        )));
    }

    let staging =
        tempfile::Builder::new().prefix(STAGING_PREFIX).tempdir_in(data_dir).map_err(|e| Error::write(data_dir, e))?;
    let staged_db = staging.path().join("db");
    let name = archive.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let restored = import_and_check(archive, &staged_db, shutdown, progress, &format!("restore {name}"))?;
    if shutdown.is_triggered() {
        return Err(Error::Interrupted);
    }

    let mut moved_aside = None;
    if db.exists() {
        let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
        let aside = data_dir.join(format!("db.before-restore-{stamp}"));
        fs::rename(&db, &aside).map_err(|e| Error::io(format!("cannot move {} aside", db.display()), e))?;
        tracing::warn!(from = %db.display(), to = %aside.display(), "moved the previous database aside");
        moved_aside = Some(aside);
    }
    fs::rename(&staged_db, &db).map_err(|e| Error::write(&db, e))?;
    drop(staging);
    store::sync_dir(data_dir)?;
    tracing::info!(archive = %archive.display(), db = %db.display(), tickets = restored.tickets,
        events = restored.events, seconds = restored.elapsed.as_secs_f64(), "restore finished");
    Ok(RestoreReport { restored, db, moved_aside })
}
