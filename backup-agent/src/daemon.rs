//! `daemon`: runs a [`BackupJob`] at each time of a cron schedule until a stop request.
//!
//! The schedule uses the `cron` crate's syntax: seconds first, 6 or 7 fields, evaluated in
//! UTC. A failed run is logged with its error class and exit code, and the daemon waits for
//! the next time; a stop request (SIGTERM) during a wait ends the daemon at once, during a
//! run it aborts the run (its temporary file is removed) and then ends it, with success.

use std::str::FromStr;

use chrono::Utc;
use cron::Schedule;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::shutdown::Shutdown;
use crate::{run_job, BackupJob};

/// Parses a 6- or 7-field cron expression (seconds first).
pub fn parse_schedule(expr: &str) -> Result<Schedule> {
    Schedule::from_str(expr.trim()).map_err(|e| {
        let fields = expr.split_whitespace().count();
        let hint = if fields == 5 {
            " (this looks like a 5-field crontab line: add a seconds field first, e.g. \"0 0 2 * * *\" for 02:00 daily)"
        } else {
            " (expected 6 or 7 fields, seconds first, e.g. \"0 0 2 * * *\")"
        };
        Error::Usage(format!("invalid --schedule {expr:?}: {e}{hint}"))
    })
}

/// Runs until `shutdown`; returns the final summary line.
pub fn run(schedule: &Schedule, job: &BackupJob, shutdown: &Shutdown, progress: Progress) -> Result<String> {
    let mut runs = 0u64;
    let mut failures = 0u64;
    loop {
        let now = Utc::now();
        let Some(next) = schedule.after(&now).next() else {
            return Err(Error::Usage("the schedule has no future time".into()));
        };
        tracing::info!(next = %next.to_rfc3339(), "waiting for the next scheduled backup");
        let wait = (next - now).to_std().unwrap_or_default();
        if shutdown.wait_timeout(wait) {
            break;
        }
        runs += 1;
        match run_job(job, shutdown, progress) {
            Ok(report) => tracing::info!(summary = %report.summary(), "scheduled backup finished"),
            Err(Error::Interrupted) => break,
            Err(e) => {
                failures += 1;
                tracing::error!(error = %e, kind = e.kind(), exit_code = e.exit_code(), "scheduled backup failed");
            }
        }
        if shutdown.is_triggered() {
            break;
        }
    }
    tracing::info!(runs, failures, "daemon stopping");
    Ok(format!("daemon stopped: {runs} scheduled run(s), {failures} failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_field_expressions_parse_and_five_field_ones_get_a_hint() {
        let s = parse_schedule("0 0 2 * * *").unwrap();
        let next = s.upcoming(Utc).next().unwrap();
        assert_eq!(next.format("%H:%M:%S").to_string(), "02:00:00");
        let err = parse_schedule("0 2 * * *").unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::USAGE);
        assert!(err.to_string().contains("seconds field"), "{err}");
        assert!(parse_schedule("every night").is_err());
    }
}
