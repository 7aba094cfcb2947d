//! `prune`: applies a [`Policy`] to the archives of a backup directory.

use std::fs;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::retention::{self, Decision, Policy};
use crate::store::{self, ArchiveEntry};

/// One archive and what the policy decided for it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The archive.
    pub archive: ArchiveEntry,
    /// Kept or removed, and why.
    pub decision: Decision,
}

/// What a prune did (or, with `dry_run`, would do).
#[derive(Debug, Clone)]
pub struct PruneReport {
    /// Every archive, newest first.
    pub verdicts: Vec<Verdict>,
    /// Whether nothing was removed on purpose.
    pub dry_run: bool,
}

impl PruneReport {
    /// Archives kept.
    pub fn kept(&self) -> usize {
        self.verdicts.iter().filter(|v| v.decision.keep).count()
    }

    /// Archives removed (or to be removed).
    pub fn removed(&self) -> usize {
        self.verdicts.len() - self.kept()
    }

    /// One line per archive: `keep    NAME  (reasons)` / `remove  NAME`.
    pub fn lines(&self) -> Vec<String> {
        self.verdicts
            .iter()
            .map(|v| {
                if v.decision.keep {
                    format!("keep    {}  ({})", v.archive.name, v.decision.reasons.join(", "))
                } else {
                    let verb = if self.dry_run { "would remove" } else { "remove" };
                    format!("{verb}  {}  (no rule keeps it)", v.archive.name)
                }
            })
            .collect()
    }
}

/// Applies `policy` to the archives in `dir` and removes the others (unless `dry_run`). The
/// newest verified archive is always kept. The caller must hold the directory lock.
pub fn prune_locked(dir: &Path, policy: &Policy, dry_run: bool, now: DateTime<Utc>) -> Result<PruneReport> {
    if policy.is_empty() {
        return Err(Error::Usage(
            "refusing to prune with an empty policy (it would remove every archive): give at least one of \
             --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within"
                .into(),
        ));
    }
    let archives = store::list_archives(dir)?;
    let times: Vec<_> = archives.iter().map(|a| a.time).collect();
    let verified: Vec<_> = archives.iter().map(ArchiveEntry::verified).collect();
    let mut decisions = retention::apply(&times, policy, now);
    retention::protect_newest_verified(&mut decisions, &times, &verified);
    let verdicts: Vec<Verdict> =
        decisions.into_iter().map(|decision| Verdict { archive: archives[decision.index].clone(), decision }).collect();
    if !dry_run {
        let mut removed_any = false;
        for v in verdicts.iter().filter(|v| !v.decision.keep) {
            fs::remove_file(&v.archive.path)
                .map_err(|e| Error::io(format!("cannot remove {}", v.archive.path.display()), e))?;
            let state = store::state_path(&v.archive.path);
            if state.exists() {
                fs::remove_file(&state).map_err(|e| Error::io(format!("cannot remove {}", state.display()), e))?;
            }
            removed_any = true;
            tracing::info!(archive = %v.archive.name, "removed by retention policy");
        }
        if removed_any {
            store::sync_dir(dir)?;
        }
    }
    Ok(PruneReport { verdicts, dry_run })
}
