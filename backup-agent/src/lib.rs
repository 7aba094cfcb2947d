//! `backup-agent`: consistent `tar.gz` backups of the helpdesk, with a manifest, checksums,
//! verification by restore test, restore, restic-style retention and a cron daemon.
//!
//! `main.rs` only parses arguments, sets up logging and turns the result into an exit code;
//! everything else is here, driven by [`run`] with a [`Shutdown`] passed in.
//!
//! * [`cli`] — the command line (clap, `BACKUP_AGENT_*` environment fallbacks).
//! * [`source`] — the snapshot source: the server's admin endpoint or an offline data dir.
//! * [`snapshot`] — checks a snapshot stream on the fly (digest, counts, trailer).
//! * [`archive`] — the archive layout: a streamed multi-member tar.gz, and its full check.
//! * [`backup`] — one backup: lock, temp file, fsync, rename, directory fsync.
//! * [`restore`] — `verify` (restore test + core verify) and `restore`.
//! * [`retention`] — the restic-style keep rules; [`prune`] applies them to a directory.
//! * [`store`] — the backup directory: names, lock, verification records, fsync helpers.
//! * [`daemon`] — runs backups on a cron schedule until SIGTERM.
//! * [`error`] — [`Error`] and the documented exit codes ([`error::exit`]).

pub mod archive;
pub mod backup;
pub mod cli;
pub mod daemon;
pub mod error;
pub mod progress;
pub mod prune;
pub mod restore;
pub mod retention;
pub mod shutdown;
pub mod snapshot;
pub mod source;
pub mod store;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Utc;

pub use error::{exit, Error, Result};
pub use shutdown::Shutdown;

use crate::backup::{BackupOptions, BackupReport};
use crate::cli::{BackupArgs, Command};
use crate::progress::Progress;
use crate::retention::Policy;
use crate::source::SourceSpec;

/// A backup with its optional follow-ups, as `backup` and each daemon run do it.
#[derive(Debug, Clone)]
pub struct BackupJob {
    /// The backup itself.
    pub backup: BackupOptions,
    /// Verify the new archive, with the restore test's database in this directory.
    pub verify: Option<PathBuf>,
    /// Then prune with this policy.
    pub prune: Option<Policy>,
}

impl BackupJob {
    /// Builds the job from the command line, reading the token file.
    pub fn from_args(args: &BackupArgs) -> Result<BackupJob> {
        let source = match (&args.server, &args.data_dir) {
            (Some(url), None) => {
                let Some(token_file) = &args.token_file else {
                    return Err(Error::Usage("--server needs --token-file".into()));
                };
                let token = std::fs::read_to_string(token_file)
                    .map_err(|e| Error::Usage(format!("cannot read the token file {}: {e}", token_file.display())))?;
                let token = token.trim().to_owned();
                if token.is_empty() {
                    return Err(Error::Usage(format!("the token file {} is empty", token_file.display())));
                }
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(Error::Usage(format!("--server {url:?} must start with http:// or https://")));
                }
                SourceSpec::Server {
                    url: url.clone(),
                    token,
                    read_timeout: args.read_timeout,
                    connect_timeout: args.connect_timeout,
                }
            }
            (None, Some(dir)) => SourceSpec::DataDir(dir.clone()),
            _ => return Err(Error::Usage("give exactly one of --server and --data-dir".into())),
        };
        let policy = args.policy.policy();
        let prune = if args.prune {
            if policy.is_empty() {
                return Err(Error::Usage(
                    "--prune needs a retention policy: at least one of --keep-last, --keep-hourly, --keep-daily, \
                     --keep-weekly, --keep-monthly, --keep-yearly, --keep-within"
                        .into(),
                ));
            }
            Some(policy)
        } else {
            if !policy.is_empty() {
                return Err(Error::Usage(format!("retention flags ({policy}) are given without --prune")));
            }
            None
        };
        Ok(BackupJob {
            backup: BackupOptions {
                source,
                out: args.out.clone(),
                include_logs: args.include_logs.clone(),
                level: args.level,
                limit_rate: args.limit_rate,
            },
            verify: args.verify.then(|| scratch_dir(args.scratch_dir.as_deref())),
            prune,
        })
    }
}

fn scratch_dir(given: Option<&Path>) -> PathBuf {
    given.map_or_else(std::env::temp_dir, Path::to_path_buf)
}

/// What a backup job did.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// The backup.
    pub backup: BackupReport,
    /// Whether the new archive was verified.
    pub verified: bool,
    /// The prune, if any.
    pub prune: Option<prune::PruneReport>,
}

impl JobReport {
    /// The one-line summary.
    pub fn summary(&self) -> String {
        let b = &self.backup;
        let mut s = format!(
            "backup ok: {} ({} tickets, {} events; snapshot {}, archive {}; {:.1} s){}",
            b.path.display(),
            b.manifest.ticket_count,
            b.manifest.snapshot.events,
            human_bytes(b.manifest.members.first().map_or(0, |m| m.size)),
            human_bytes(b.archive_size),
            b.elapsed.as_secs_f64(),
            if self.verified { ", verified" } else { "" }
        );
        if let Some(p) = &self.prune {
            s.push_str(&format!("; pruned: kept {}, removed {}", p.kept(), p.removed()));
        }
        s
    }
}

/// Runs a backup job under one hold of the directory lock: backup, then (optionally)
/// verify of the new archive, then (optionally) prune. A failed verification skips the prune.
pub fn run_job(job: &BackupJob, shutdown: &Shutdown, progress: Progress) -> Result<JobReport> {
    std::fs::create_dir_all(&job.backup.out).map_err(|e| Error::write(&job.backup.out, e))?;
    let _lock = store::DirLock::acquire(&job.backup.out)?;
    let report = backup::backup_locked(&job.backup, shutdown, progress)?;
    let verified = match &job.verify {
        Some(scratch) => {
            restore::verify_archive(&report.path, scratch, shutdown, progress)?;
            true
        }
        None => false,
    };
    let prune = match &job.prune {
        Some(policy) => Some(prune::prune_locked(&job.backup.out, policy, false, Utc::now())?),
        None => None,
    };
    Ok(JobReport { backup: report, verified, prune })
}

/// Bytes as `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Runs one command. Per-item output (list rows, prune decisions, verify results) goes to
/// `out` as it happens; the returned string is the final one-line summary.
pub fn run(command: &Command, shutdown: &Shutdown, progress: Progress, out: &mut dyn Write) -> Result<String> {
    match command {
        Command::Backup(args) => {
            let job = BackupJob::from_args(args)?;
            let report = run_job(&job, shutdown, progress)?;
            if let Some(p) = &report.prune {
                print_lines(out, &p.lines())?;
            }
            Ok(report.summary())
        }
        Command::List(args) => list(&args.dir, args.json, out),
        Command::Verify(args) => verify(args, shutdown, progress, out),
        Command::Restore(args) => {
            let r = restore::restore(&args.archive, &args.data_dir, args.force, shutdown, progress)?;
            let aside =
                r.moved_aside.map(|p| format!("; previous database moved to {}", p.display())).unwrap_or_default();
            Ok(format!(
                "restore ok: {} -> {} ({} tickets, {} events; core verify clean; {:.1} s){aside}",
                args.archive.display(),
                r.db.display(),
                r.restored.tickets,
                r.restored.events,
                r.restored.elapsed.as_secs_f64()
            ))
        }
        Command::Prune(args) => {
            let policy = args.policy.policy();
            if policy.is_empty() {
                // Checked before touching the directory.
                return Err(Error::Usage(
                    "refusing to prune with an empty policy (it would remove every archive): give at least one \
                     of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, \
                     --keep-within"
                        .into(),
                ));
            }
            let _lock = store::DirLock::acquire(&args.dir)?;
            let report = prune::prune_locked(&args.dir, &policy, args.dry_run, Utc::now())?;
            print_lines(out, &report.lines())?;
            Ok(format!(
                "prune{}: kept {}, {} {} ({policy})",
                if args.dry_run { " (dry run)" } else { "" },
                report.kept(),
                if args.dry_run { "would remove" } else { "removed" },
                report.removed()
            ))
        }
        Command::Daemon(args) => {
            let schedule = daemon::parse_schedule(&args.schedule)?;
            let job = BackupJob::from_args(&args.backup)?;
            daemon::run(&schedule, &job, shutdown, progress)
        }
    }
}

fn print_lines(out: &mut dyn Write, lines: &[String]) -> Result<()> {
    for line in lines {
        writeln!(out, "{line}").map_err(|e| Error::io("write to stdout", e))?;
    }
    Ok(())
}

fn list(dir: &Path, json: bool, out: &mut dyn Write) -> Result<String> {
    let archives = store::list_archives(dir)?;
    let mut lines = Vec::new();
    if !json {
        lines
            .push(format!("{:<40} {:<20} {:>10} {:>9}  {}", "ARCHIVE", "CREATED (UTC)", "SIZE", "TICKETS", "VERIFIED"));
    }
    let mut total = 0;
    for a in &archives {
        total += a.size;
        let manifest = archive::read_manifest(&a.path);
        let tickets = manifest.as_ref().map(|m| m.ticket_count).ok();
        let verified = match (&a.state, a.verified()) {
            (_, true) => format!("yes ({})", a.state.as_ref().map_or("", |s| s.verified_at.as_str())),
            (Some(s), false) if !s.ok => format!("FAILED ({})", s.verified_at),
            (Some(_), false) => "stale (archive changed since)".into(),
            (None, _) => "no".into(),
        };
        if json {
            let v = serde_json::json!({
                "archive": a.name,
                "path": a.path,
                "created_at": a.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "size": a.size,
                "tickets": tickets,
                "verified": a.verified(),
                "verify_state": a.state,
                "manifest_error": manifest.as_ref().err().map(ToString::to_string),
            });
            lines.push(v.to_string());
        } else {
            lines.push(format!(
                "{:<40} {:<20} {:>10} {:>9}  {}",
                a.name,
                a.time.format("%Y-%m-%d %H:%M:%S"),
                human_bytes(a.size),
                tickets.map_or_else(|| "unreadable".to_string(), |t| t.to_string()),
                verified
            ));
        }
    }
    print_lines(out, &lines)?;
    Ok(format!("{} archive(s), {} in {}", archives.len(), human_bytes(total), dir.display()))
}

fn verify(args: &cli::VerifyArgs, shutdown: &Shutdown, progress: Progress, out: &mut dyn Write) -> Result<String> {
    let scratch = scratch_dir(args.scratch_dir.as_deref());
    let (dir, targets): (PathBuf, Vec<PathBuf>) = match (&args.archive, args.all, &args.dir) {
        (Some(path), _, _) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
            (dir, vec![path.clone()])
        }
        (None, all, Some(dir)) => {
            let archives = store::list_archives(dir)?;
            if archives.is_empty() {
                return Err(Error::Usage(format!("no archives in {}", dir.display())));
            }
            let paths: Vec<PathBuf> = archives.into_iter().map(|a| a.path).collect();
            let take = if all { paths.len() } else { 1 };
            (dir.clone(), paths.into_iter().take(take).collect())
        }
        (None, _, None) => {
            return Err(Error::Usage("verify needs an ARCHIVE or --dir (with --all for every archive)".into()))
        }
    };
    if !targets[0].exists() {
        return Err(Error::Usage(format!("{} does not exist", targets[0].display())));
    }
    // A read-only backup mount (a restore drill on a copy, say) can still be verified; the
    // results just cannot be recorded there.
    let _lock = match store::DirLock::acquire(&dir) {
        Ok(lock) => Some(lock),
        Err(Error::Io { source, .. })
            if matches!(
                source.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            tracing::warn!(dir = %dir.display(), error = %source, "cannot lock the backup directory (read-only?); verifying without recording results");
            None
        }
        Err(e) => return Err(e),
    };
    let mut failures = Vec::new();
    for path in &targets {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match restore::verify_archive(path, &scratch, shutdown, progress) {
            Ok(r) => {
                tracing::info!(archive = %name, tickets = r.tickets, events = r.events, "verified");
                print_lines(
                    out,
                    &[format!("ok      {name}  ({} tickets, {} events; core verify clean)", r.tickets, r.events)],
                )?;
            }
            Err(e @ Error::Verification(_)) => {
                tracing::error!(archive = %name, error = %e, "verification failed");
                print_lines(out, &[format!("FAILED  {name}  {e}")])?;
                failures.push(e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    if failures.is_empty() {
        Ok(format!("verify ok: {} archive(s) passed", targets.len()))
    } else if failures.len() == 1 {
        Err(Error::Verification(failures.remove(0).trim_start_matches("verification failed: ").to_owned()))
    } else {
        Err(Error::Verification(format!(
            "{} of {} archives failed: {}",
            failures.len(),
            targets.len(),
            failures.join("; ")
        )))
    }
}
