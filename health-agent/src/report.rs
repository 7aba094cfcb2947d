//! `report` and `tail`: what an operator reads with `kubectl exec` — per-target
//! availability and latency over a window, and the last records.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::check::Condition;
use crate::logfile::{read_log, ReadSummary};
use crate::record::{format_time, Record};
use crate::Error;

/// Which records a report or tail looks at.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only records at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only this target.
    pub target: Option<String>,
    /// Only failed probes.
    pub failures_only: bool,
}

impl Filter {
    fn keeps(&self, r: &Record) -> bool {
        self.since.is_none_or(|s| r.time >= s)
            && self.target.as_deref().is_none_or(|t| r.target == t)
            && !(self.failures_only && r.ok)
    }
}

/// One target's figures over the window.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// The target's name.
    pub target: String,
    /// Its URL in the latest record.
    pub url: String,
    /// Probes in the window.
    pub probes: u64,
    /// Probes that passed.
    pub ok: u64,
    /// `100 * ok / probes`.
    pub availability_percent: f64,
    /// Median latency of the probes that got an answer, in ms.
    pub p50_latency_ms: Option<f64>,
    /// 95th percentile (nearest rank) of the same, in ms.
    pub p95_latency_ms: Option<f64>,
    /// Time of the latest probe.
    pub last_probe: String,
    /// The latest failed probe, if any.
    pub last_failure: Option<LastFailure>,
}

/// The latest failure of a target.
#[derive(Debug, Clone, Serialize)]
pub struct LastFailure {
    /// When.
    pub time: String,
    /// The status, if an answer came.
    pub status: Option<u16>,
    /// The failed condition.
    pub failed: Option<Condition>,
    /// What went wrong.
    pub error: Option<String>,
}

/// A report: one entry per target, sorted by name, and what reading found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Per-target figures.
    pub targets: Vec<TargetReport>,
    /// Files and lines read and skipped.
    pub read: ReadSummary,
}

#[derive(Default)]
struct Acc {
    url: String,
    probes: u64,
    ok: u64,
    latencies: Vec<f64>,
    last_probe: Option<DateTime<Utc>>,
    last_failure: Option<Record>,
}

/// Summarises the records of `log` that `filter` keeps.
pub fn report(log: &Path, filter: &Filter) -> Result<Report, Error> {
    let mut by_target: BTreeMap<String, Acc> = BTreeMap::new();
    let read = read_log(log, |r| {
        if !filter.keeps(&r) {
            return;
        }
        let acc = by_target.entry(r.target.clone()).or_default();
        acc.probes += 1;
        if r.status.is_some() {
            acc.latencies.push(r.latency_ms);
        }
        if acc.last_probe.is_none_or(|t| r.time >= t) {
            acc.last_probe = Some(r.time);
            acc.url.clone_from(&r.url);
        }
        if r.ok {
            acc.ok += 1;
        } else if acc.last_failure.as_ref().is_none_or(|f| r.time >= f.time) {
            acc.last_failure = Some(r);
        }
    })
    .map_err(|source| Error::ReadLog { path: log.to_path_buf(), source })?;
    let targets = by_target
        .into_iter()
        .map(|(target, mut acc)| {
            acc.latencies.sort_by(f64::total_cmp);
            TargetReport {
                target,
                url: acc.url,
                probes: acc.probes,
                ok: acc.ok,
                availability_percent: 100.0 * acc.ok as f64 / acc.probes.max(1) as f64,
                p50_latency_ms: percentile(&acc.latencies, 50.0),
                p95_latency_ms: percentile(&acc.latencies, 95.0),
                last_probe: acc.last_probe.map(format_time).unwrap_or_default(),
                last_failure: acc.last_failure.map(|f| LastFailure {
                    time: format_time(f.time),
                    status: f.status,
                    failed: f.failed,
                    error: f.error,
                }),
            }
        })
        .collect();
    Ok(Report { targets, read })
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn fmt_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".to_string(), |ms| format!("{ms:.1} ms"))
}

/// A line saying what was read and skipped.
pub fn render_read(log: &Path, read: &ReadSummary) -> String {
    let mut out = format!("{}: {} records in {} files", log.display(), read.records, read.files);
    if read.unreadable > 0 {
        let _ = write!(out, "; {} unreadable lines skipped", read.unreadable);
    }
    if read.truncated > 0 {
        let _ = write!(out, "; {} truncated last lines skipped (a writer was interrupted)", read.truncated);
    }
    out
}

/// The report as a table.
pub fn render_report(log: &Path, filter: &Filter, report: &Report) -> String {
    let mut out = render_read(log, &report.read);
    match filter.since {
        Some(since) => {
            let _ = writeln!(out, "; window from {}", format_time(since));
        }
        None => out.push_str("; whole log\n"),
    }
    if report.targets.is_empty() {
        out.push_str("no probes in the window\n");
        return out;
    }
    let width = report.targets.iter().map(|t| t.target.chars().count()).max().unwrap_or(0).max(6);
    let _ = writeln!(
        out,
        "{:<width$}  {:>7}  {:>8}  {:>10}  {:>10}  last failure",
        "target", "probes", "avail %", "p50", "p95"
    );
    for t in &report.targets {
        let failure = t.last_failure.as_ref().map_or_else(
            || "-".to_string(),
            |f| {
                let what = f.failed.map_or_else(String::new, |c| format!("{c}: "));
                format!("{} {what}{}", f.time, f.error.as_deref().unwrap_or(""))
            },
        );
        let _ = writeln!(
            out,
            "{:<width$}  {:>7}  {:>8.3}  {:>10}  {:>10}  {failure}",
            t.target,
            t.probes,
            t.availability_percent,
            fmt_ms(t.p50_latency_ms),
            fmt_ms(t.p95_latency_ms)
        );
    }
    out
}

/// The last `n` records that `filter` keeps, oldest first.
pub fn tail(log: &Path, n: usize, filter: &Filter) -> Result<(Vec<Record>, ReadSummary), Error> {
    let mut last = VecDeque::with_capacity(n.min(4096));
    let read = read_log(log, |r| {
        if n > 0 && filter.keeps(&r) {
            if last.len() == n {
                last.pop_front();
            }
            last.push_back(r);
        }
    })
    .map_err(|source| Error::ReadLog { path: log.to_path_buf(), source })?;
    Ok((last.into(), read))
}

/// One record as a line for a person.
pub fn render_record(r: &Record) -> String {
    let status = r.status.map_or_else(|| "---".to_string(), |s| s.to_string());
    let mut out = format!(
        "{}  {:<4}  {}  {status:>3}  {:>9}",
        format_time(r.time),
        if r.ok { "ok" } else { "FAIL" },
        r.target,
        fmt_ms(Some(r.latency_ms))
    );
    if r.attempts > 1 {
        let _ = write!(out, "  ({} attempts)", r.attempts);
    }
    if let Some(c) = r.failed {
        let _ = write!(out, "  {c}: {}", r.error.as_deref().unwrap_or(""));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(10.0));
        assert_eq!(percentile(&v, 95.0), Some(19.0));
        assert_eq!(percentile(&v, 100.0), Some(20.0));
        assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
