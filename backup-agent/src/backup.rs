//! `backup`: snapshot → archive, streamed, under the directory lock, never leaving a partial
//! archive under a final name.
//!
//! Order of work: lock the directory; remove temporary files a killed run left; open the
//! source (so an unreachable server leaves nothing behind); stream the snapshot into a
//! `.partial` file while checking it ([`crate::snapshot::SnapshotScanner`]); add logs and
//! the manifest; fsync; rename to the final name; fsync the directory. Any failure or a
//! stop request removes the `.partial` file; a SIGKILL leaves it for the next run to clean.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::archive::{ArchiveWriteError, ArchiveWriter, Manifest, MemberInfo, ARCHIVE_FORMAT, ARCHIVE_FORMAT_VERSION};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::shutdown::Shutdown;
use crate::snapshot::SnapshotScanner;
use crate::source::{self, SourceSpec};
use crate::store::{self, DirLock, PARTIAL_SUFFIX};

/// What to back up and how.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The snapshot source.
    pub source: SourceSpec,
    /// The backup directory (created if missing).
    pub out: PathBuf,
    /// A directory whose regular files are added under `logs/`.
    pub include_logs: Option<PathBuf>,
    /// gzip level 0..=9.
    pub level: u32,
    /// Read the snapshot no faster than this many bytes per second (spares the server).
    pub limit_rate: Option<u64>,
}

/// What a backup produced.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The archive's final path.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Archive size in bytes.
    pub archive_size: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Leftover temporary files removed first.
    pub cleaned: Vec<String>,
}

/// Removes the temporary archive unless it was renamed to its final name.
struct PartialFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Runs one backup. The caller holds no lock; this takes the directory lock itself and
/// holds it until it returns (use [`backup_locked`] to run more under the same lock).
pub fn backup(opts: &BackupOptions, shutdown: &Shutdown, progress: Progress) -> Result<BackupReport> {
    fs::create_dir_all(&opts.out).map_err(|e| Error::write(&opts.out, e))?;
    let _lock = DirLock::acquire(&opts.out)?;
    backup_locked(opts, shutdown, progress)
}

/// [`backup`] for a caller that already holds the directory lock.
pub fn backup_locked(opts: &BackupOptions, shutdown: &Shutdown, progress: Progress) -> Result<BackupReport> {
    let started = Instant::now();
    let cleaned = store::clean_partials(&opts.out)?;
    for name in &cleaned {
        tracing::warn!(file = %name, "removed a temporary archive left by an interrupted run");
    }
    let created: DateTime<Utc> = Utc::now();
    let final_name = store::archive_name(created);
    let final_path = opts.out.join(&final_name);
    if final_path.exists() {
        return Err(Error::Usage(format!("{} already exists", final_path.display())));
    }

    let mut source = source::open(&opts.source)?;
    tracing::info!(source = %source.info, archive = %final_name, "backup started");

    let partial_path = opts.out.join(format!(".{final_name}{PARTIAL_SUFFIX}"));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial_path)
        .map_err(|e| Error::write(&partial_path, e))?;
    let mut partial = PartialFile { path: partial_path.clone(), armed: true };
    let write_err = |e: ArchiveWriteError| match e {
        ArchiveWriteError::Usage(m) => Error::Usage(m),
        ArchiveWriteError::Io(e) => Error::write(&partial_path, e),
    };
    let mut writer = ArchiveWriter::new(BufWriter::with_capacity(1 << 20, file), opts.level).map_err(write_err)?;

    // Stream the snapshot: read, check, compress; memory stays one buffer and one line.
    let bar = progress.bytes("backup");
    let mut scanner = SnapshotScanner::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut total: u64 = 0;
    let stream_started = Instant::now();
    let read_failure = loop {
        if shutdown.is_triggered() {
            let _ = source.finish();
            return Err(Error::Interrupted);
        }
        let n = match source.reader.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Some(e),
        };
        let chunk = &buf[..n];
        if let Err(e) = scanner.feed(chunk) {
            let _ = source.finish();
            return Err(Error::SourceUnreachable(format!(
                "the snapshot stream from {} is damaged: {e}; no archive was written",
                opts_source(opts)
            )));
        }
        writer.snapshot(chunk).map_err(|e| Error::write(&partial_path, e))?;
        total += n as u64;
        bar.set_position(total);
        if let Some(rate) = opts.limit_rate {
            throttle(total, rate, stream_started, shutdown);
        }
    };
    bar.finish_and_clear();
    let source_info = source.info.clone();
    // An in-process export's own error explains a short stream best.
    source.finish()?;
    if let Some(e) = read_failure {
        return Err(Error::SourceUnreachable(format!(
            "reading the snapshot from {source_info} failed after {total} bytes: {}; no archive was written",
            source::chain(&e)
        )));
    }
    let snapshot = scanner.finish().map_err(|e| {
        Error::SourceUnreachable(format!(
            "the snapshot stream from {source_info} is incomplete: {e}; no archive was written"
        ))
    })?;

    let mut members: Vec<MemberInfo> = vec![writer.snapshot_member().map_err(|e| Error::write(&partial_path, e))?];
    let trailer_offset = writer.trailer_offset().map_err(|e| Error::write(&partial_path, e))?;
    if let Some(dir) = &opts.include_logs {
        members.extend(add_logs(&mut writer, dir, &partial_path)?);
    }
    if shutdown.is_triggered() {
        return Err(Error::Interrupted);
    }
    let manifest = Manifest {
        format: ARCHIVE_FORMAT.into(),
        format_version: ARCHIVE_FORMAT_VERSION,
        tool: "backup-agent".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        created_at: created.to_rfc3339_opts(SecondsFormat::Millis, true),
        source: source_info,
        ticket_count: snapshot.tickets,
        snapshot,
        compression_level: opts.level,
        trailer_member_offset: trailer_offset,
        members,
    };
    let mtime = created.timestamp().max(0) as u64;
    let out = writer.finish(&manifest, mtime).map_err(write_err)?;
    let file = out.into_inner().map_err(|e| Error::write(&partial_path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::write(&partial_path, e))?;
    let archive_size = file.metadata().map_err(|e| Error::io("stat the archive", e))?.len();
    drop(file);
    if shutdown.is_triggered() {
        return Err(Error::Interrupted);
    }
    fs::rename(&partial_path, &final_path).map_err(|e| Error::write(&final_path, e))?;
    partial.armed = false;
    store::sync_dir(&opts.out)?;
    tracing::info!(archive = %final_path.display(), tickets = manifest.ticket_count, snapshot_bytes = total,
        archive_bytes = archive_size, seconds = started.elapsed().as_secs_f64(), "backup written");
    Ok(BackupReport { path: final_path, manifest, archive_size, elapsed: started.elapsed(), cleaned })
}

fn opts_source(opts: &BackupOptions) -> String {
    match &opts.source {
        SourceSpec::Server { url, .. } => format!("server {url}"),
        SourceSpec::DataDir(d) => format!("data dir {}", d.display()),
    }
}

/// Sleeps until `done` bytes are due at `rate` bytes/s since `since` (or a stop request).
fn throttle(done: u64, rate: u64, since: Instant, shutdown: &Shutdown) {
    let due = Duration::from_secs_f64(done as f64 / rate.max(1) as f64);
    let elapsed = since.elapsed();
    if due > elapsed {
        shutdown.wait_timeout(due - elapsed);
    }
}

/// Adds every regular file directly in `dir` (sorted by name) under `logs/`. Each is read up
/// to the size it had when opened, so a log being appended to is captured consistently.
fn add_logs<W: std::io::Write + std::io::Seek>(
    writer: &mut ArchiveWriter<W>,
    dir: &Path,
    partial: &Path,
) -> Result<Vec<MemberInfo>> {
    let read =
        fs::read_dir(dir).map_err(|e| Error::io(format!("cannot read the log directory {}", dir.display()), e))?;
    let mut files = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| Error::io(format!("cannot read the log directory {}", dir.display()), e))?;
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        match entry.file_name().into_string() {
            Ok(name) => files.push((name, entry.path())),
            Err(name) => tracing::warn!(file = ?name, "skipping a log file whose name is not UTF-8"),
        }
    }
    files.sort();
    let mut members = Vec::new();
    for (name, path) in files {
        let file =
            File::open(&path).map_err(|e| Error::io(format!("cannot open the log file {}", path.display()), e))?;
        let meta = file.metadata().map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
        let mtime =
            meta.modified().ok().and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
        let member = writer.add_log(&name, meta.len(), mtime, file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::io(format!("cannot archive {}", path.display()), e)
            } else {
                Error::write(partial, e)
            }
        })?;
        members.push(member);
    }
    Ok(members)
}
